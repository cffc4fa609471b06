"""Episode loop and helpers shared by the ``forces`` and ``tb`` protocols.

:func:`run_episodes` runs every method on the same seeded episodes (with zero-shot ``k = 0``), keeps
the predictions for constraint checks, counts negative predictions and, for graph meta-learners,
measures the force MAE. :func:`violation_rows` turns the negative counts into result rows.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nanonb.baselines.nets import Pooled
from nanonb.evaluate import episode_seed
from nanonb.learners.base import AdaptedModel, MetaLearner
from nanonb.learners.training import predict_energy_forces
from nanonb.physics import HuckelCalibration


# WAVE2: replace by nanonb.evaluate.Named (H1) once it exists.
class NamedMethod:
    """A fitted method under another name (several meta-learners share ``algorithm="fomaml"``).

    Example
    -------
    >>> NamedMethod(learner, "anil-tb", "meta").name          # doctest: +SKIP
    'anil-tb'
    """

    def __init__(self, method, name: str, kind: str | None = None, zero_shot: bool = True):
        self.method, self.name = method, name
        self.kind = kind or getattr(method, "kind", "meta")
        self.zero_shot = zero_shot

    def adapt(self, support):
        return self.method.adapt(support)

    def __repr__(self) -> str:
        return f"NamedMethod({self.name!r}, {self.method!r})"


def _zero_shot(m) -> bool:
    """Whether ``m.adapt(None)`` is meaningful (meta-learners, pooled nets, calibrated Hückel)."""
    if isinstance(m, NamedMethod):
        return m.zero_shot
    return isinstance(m, (MetaLearner, Pooled, HuckelCalibration))


# WAVE2: fold into nanonb.evaluate's one episode loop once H1 generalizes it (zero-shot k=0, kept
# predictions, n_negative, force_mae as an extra metric).
def run_episodes(methods, test, shots=(1, 5, 10), n_episodes: int = 10, seed: int = 0, progress: bool = False,
                 force_mae: bool = False, k_query: int | None = None):
    """Every method on the same seeded episodes; keeps the predictions (for constraint checks).

    Episode seeds come from :func:`nanonb.evaluate.episode_seed`, so ``k >= 1`` episodes are the
    ones :func:`nanonb.evaluate.evaluate` draws (also with the same ``k_query`` cap; ``None``: the rest
    of the task). ``k = 0`` is zero-shot: the query is the whole task (or its first seeded
    ``k_query``) and only methods that can predict without a support set take part (see :func:`_zero_shot`).

    Returns
    -------
    (pandas.DataFrame, dict)
        Rows ``method, kind, task, k, episode, mae, rmse, n_query, n_negative, adapt_s`` (errors in
        target units; ``n_negative`` = predictions < 0) plus ``force_mae`` (eV/Å, NaN where not
        available) when ``force_mae=True``; and ``{method: concatenated predictions}``.

    Example
    -------
    >>> df, preds = run_episodes([learner, HuckelCalibration().fit(train)], test, shots=(0, 5))  # doctest: +SKIP
    >>> df.groupby(["method", "k"]).mae.mean()                                                  # doctest: +SKIP
    """
    rows, preds = [], {}
    jobs = [(t, k, e) for t in test for k in shots if k < len(t) for e in range(n_episodes if k > 0 else 1)]
    for task, k, e in tqdm(jobs, desc="episodes", disable=not progress, leave=False):
        kq = None if k_query is None else min(k_query, len(task) - k)
        if k == 0:
            support = None
            query = task
            if kq is not None and kq < len(task):
                query = test.episode(task, 0, kq, seed=episode_seed(seed, task.name, 0, e)).query
        else:
            ep = test.episode(task, k, kq, seed=episode_seed(seed, task.name, k, e))
            support, query = ep.support, ep.query
        for m in methods:
            if k == 0 and not _zero_shot(m):
                continue
            t0 = time.perf_counter()
            adapted = m.adapt(support)
            pred = np.asarray(adapted.predict(query), dtype=np.float64).reshape(-1)
            dt = time.perf_counter() - t0
            if pred.shape != query.targets.shape or not np.isfinite(pred).all():
                raise RuntimeError(f"{m.name} returned {pred.shape} predictions with "
                                   f"{int((~np.isfinite(pred)).sum())} non-finite values on task {task.name}, k={k}.")
            err = pred - query.targets
            row = {"method": m.name, "kind": m.kind, "task": task.name, "k": k, "episode": e,
                   "mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
                   "n_query": len(err), "n_negative": int((pred < 0).sum()), "adapt_s": dt}
            if force_mae:
                row["force_mae"] = _force_mae(adapted, query)
            rows.append(row)
            preds.setdefault(m.name, []).append(pred)
    return pd.DataFrame(rows), {k: np.concatenate(v) for k, v in preds.items()}


def _force_mae(adapted, query) -> float:
    """MAE (eV/Å) of ``-dE/dpos`` of an adapted graph meta-learner on the query structures."""
    if not isinstance(adapted, AdaptedModel) or adapted.head_only or query.is_tabular:
        return float("nan")
    batch = adapted.learner.scaler.x(query, adapted.learner.cutoff)
    if batch.forces is None:
        return float("nan")
    _, f = predict_energy_forces(adapted.fmodel, batch, create_graph=False)
    return float((f.detach() * adapted.learner.scaler.y_std - batch.forces).abs().mean())


def violation_rows(df: pd.DataFrame, split: str) -> list[dict]:
    """Rows (metric ``constraint_violations``): negative predictions per task, summed over episodes.

    Example
    -------
    >>> rows = violation_rows(df, "holdout-BN")               # doctest: +SKIP
    """
    per_task = df.groupby(["method", "kind", "k", "task"], sort=False)["n_negative"].sum().reset_index()
    rows = []
    for (method, kind, k), g in per_task.groupby(["method", "kind", "k"], sort=False):
        v = g["n_negative"].to_numpy(float)
        rows.append({"split": split, "method": method, "kind": kind, "k": int(k), "metric": "constraint_violations",
                     "mean": float(v.mean()), "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
                     "median": float(np.median(v)), "n_tasks": len(v), "total": int(v.sum()),
                     "n_predictions": int(df[(df.method == method) & (df.k == k)]["n_query"].sum())})
    return rows


# WAVE2: replace by the one --set rule of nanonb.bench.schema (H4).
def apply_options(cfg, options: dict, log):
    """Override dataclass fields of ``cfg`` from ``--set key=value`` options (unknown keys are reported).

    Example
    -------
    >>> from nanonb.bench.tb import TBBenchConfig
    >>> apply_options(TBBenchConfig(), {"shots": [1, 5]}, print).shots
    (1, 5)
    """
    names = {f.name for f in dataclasses.fields(cfg)}
    known = {k: (tuple(v) if isinstance(getattr(cfg, k), tuple) and isinstance(v, list) else v)
             for k, v in options.items() if k in names}
    unknown = sorted(set(options) - names - {"cache_dir"})
    if unknown:
        log(f"  (ignoring unknown options {unknown}; known: {sorted(names)})")
    return dataclasses.replace(cfg, **known)
