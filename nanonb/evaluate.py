"""Few-shot evaluation on held-out tasks: the same episodes for every method.

:func:`evaluate` runs each method's ``adapt(support).predict(query)`` on ``n_episodes`` seeded
episodes per task and shot count and returns one row per (method, task, k, episode).
:func:`summarize` averages over episodes within a task, then reports mean, standard error and
median over tasks (tasks, not episodes, are the independent units).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .tasks import TaskSet


class Named:
    """A method under another display name (e.g. two versions of one learner in a table)."""

    def __init__(self, method, name: str):
        self.method, self.name, self.kind = method, name, method.kind

    def adapt(self, support):
        return self.method.adapt(support)


def episode_seed(seed: int, task: str, k: int, episode: int) -> int:
    """Deterministic episode seed from (seed, task name, k, episode index)."""
    return (zlib.crc32(f"{seed}|{task}|{k}|{episode}".encode()) + seed) % (2**31 - 1)


def evaluate(methods: Sequence, test: TaskSet, shots: Sequence[int] = (1, 5, 10), n_episodes: int = 10,
             k_query: int | None = None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Evaluate fitted ``methods`` on every task of ``test``.

    Returns a DataFrame with columns ``method, kind, task, k, episode, mae, rmse, n_query,
    adapt_s`` (``adapt_s``: seconds for adapt + predict). Errors are in the tasks' target units.
    """
    from tqdm.auto import tqdm

    rows = []
    jobs = [(t, k, e) for t in test for k in shots if k < len(t) for e in range(n_episodes)]
    for task, k, e in tqdm(jobs, desc="evaluating", disable=not progress, leave=False):
        kq = None if k_query is None else min(k_query, len(task) - k)
        ep = test.episode(task, k, kq, seed=episode_seed(seed, task.name, k, e))
        for m in methods:
            t0 = time.perf_counter()
            pred = np.asarray(m.adapt(ep.support).predict(ep.query), dtype=np.float64)
            dt = time.perf_counter() - t0
            err = pred - ep.query.targets
            rows.append({"method": m.name, "kind": m.kind, "task": task.name, "k": k, "episode": e,
                         "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
                         "n_query": len(err), "adapt_s": dt})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, metric: str = "mae", scale: float = 1.0) -> pd.DataFrame:
    """Mean over episodes per task, then mean, s.e.m. and median over tasks (× ``scale``)."""
    per_task = df.groupby(["method", "kind", "k", "task"], sort=False)[metric].mean().reset_index()
    g = per_task.groupby(["method", "kind", "k"], sort=False)[metric]
    out = pd.DataFrame({
        "mean": g.mean() * scale,
        "sem": g.sem(ddof=1).fillna(0.0) * scale,
        "median": g.median() * scale,
        "n_tasks": g.count(),
    }).reset_index()
    out.insert(3, "metric", metric)
    return out


def table(summary: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Wide table: one row per method, one column per k, cells 'mean ± sem'."""
    s = summary.copy()
    s["cell"] = [f"{m:.{digits}f} ± {e:.{digits}f}" for m, e in zip(s["mean"], s["sem"])]
    order = list(dict.fromkeys(s["method"]))
    wide = s.pivot(index="method", columns="k", values="cell").loc[order]
    wide.columns = [f"k={k}" for k in wide.columns]
    return wide
