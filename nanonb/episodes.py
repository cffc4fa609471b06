"""Seeded few-shot episodes for the tabular case studies: ranking metrics and the episode loop.

:func:`evaluate_episodes` is the loop behind the ``calisol`` and ``lnpdb`` protocols: every
method on the same seeded episodes (seeds from :func:`nanonb.evaluate.episode_seed`), the query
optionally capped, any metric of :data:`METRICS`, and one vectorised call per (task, K) for
methods with ``predict_many``. :func:`episode_predictions` replays one of those episodes (the
case-study explorer shows it).
"""
# WAVE2: merge into nanonb/evaluate.py (one episode loop: metric functions, query cap, predict_many,
# per-method adapt kwargs) and take mae/spearman/top_recall from there.

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from .evaluate import episode_seed
from .tasks import TaskSet

__all__ = ["METRICS", "episode_predictions", "evaluate_episodes", "mae", "spearman", "top_recall"]


# ---------------------------------------------------------------------- metrics
def mae(pred: np.ndarray, y: np.ndarray, **_) -> float:
    """Mean absolute error (target units).

    Example
    -------
    >>> mae(np.array([1.0, 2.0]), np.array([1.5, 2.5]))
    0.5
    """
    return float(np.mean(np.abs(np.asarray(pred, dtype=np.float64) - y)))


def spearman(pred: np.ndarray, y: np.ndarray, **_) -> float:
    """Spearman rank correlation (dimensionless); 0.0 when either side is constant (no ranking information).

    Example
    -------
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0]))
    1.0
    """
    pred = np.asarray(pred, dtype=np.float64)
    if len(y) < 2 or np.ptp(pred) == 0 or np.ptp(y) == 0:
        return 0.0
    r = spearmanr(pred, y).statistic
    return 0.0 if not np.isfinite(r) else float(r)


def top_recall(pred: np.ndarray, y: np.ndarray, frac: float = 0.1, seed: int = 0) -> float:
    """Share of the true top ``frac`` of the query found in the predicted top ``frac`` (0 to 1).

    ``n_top = max(1, round(frac * n))``. The true top set holds every point whose value is at least
    the ``n_top``-th largest value (ties at the threshold included: several LNPDB studies report only
    3–8 distinct outcome values); the predicted top set is the ``n_top`` highest predictions (ties
    broken at random with ``seed``). Returns ``|predicted ∩ true| / n_top`` (equal to the plain
    recall of the top ``frac`` when there are no ties). A random ranking scores ``|true| / n`` on
    average, i.e. ``frac`` without ties and more with them.

    Example
    -------
    >>> y = np.arange(100.0)
    >>> top_recall(y, y), top_recall(-y, y)
    (1.0, 0.0)
    """
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    n = len(y)
    n_top = max(1, int(round(frac * n)))
    thr = np.sort(y)[-n_top]
    true_top = y >= thr
    tiebreak = np.random.default_rng(seed).random(n)
    order = np.lexsort((tiebreak, -pred))
    return float(true_top[order[:n_top]].sum() / n_top)


#: metric name -> ``f(pred, y, seed=...) -> float``
METRICS: dict[str, Callable] = {"mae": mae, "spearman": spearman, "top10_recall": top_recall}


# ---------------------------------------------------------------------- the episode loop
def _query_size(n: int, k: int, k_query_cap: int | None) -> int | None:
    rest = n - k
    return None if k_query_cap is None or rest <= k_query_cap else k_query_cap


def evaluate_episodes(methods: Sequence, test: TaskSet, shots: Sequence[int], n_episodes: int,
                      metrics: Sequence[str], seed: int = 0, k_query_cap: int | None = None,
                      progress: bool = False, fold: int | str = 0) -> pd.DataFrame:
    """Every method on the same seeded episodes of every test task; one row per (method, task, k, episode).

    Episode seeds: :func:`nanonb.evaluate.episode_seed` ``(seed, task, k, episode)``; the query is
    the rest of the task, or a seeded random ``k_query_cap`` of it. Methods with ``predict_many``
    (meta-learners here) handle the episodes of one (task, K) in one vectorised call. Columns:
    ``method, kind, task, k, episode, fold, n_query, adapt_s`` (seconds per episode for adapt +
    predict) and one per metric (target units for ``mae``).

    Example
    -------
    >>> df = evaluate_episodes([gp, rf], test, shots=(10,), n_episodes=20,
    ...                        metrics=["spearman", "top10_recall"])          # doctest: +SKIP
    """
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"Unknown metric(s) {bad}; available: {sorted(METRICS)}")
    jobs = [(t, k) for t in test for k in shots if k < len(t)]
    rows = []
    for task, k in tqdm(jobs, desc="episodes", disable=not progress, leave=False):
        kq = _query_size(len(task), k, k_query_cap)
        seeds = [episode_seed(seed, task.name, k, e) for e in range(n_episodes)]
        eps = [test.episode(task, k, kq, seed=s) for s in seeds]
        for m in methods:
            t0 = time.perf_counter()
            if hasattr(m, "predict_many"):  # vectorised over the episodes of this (task, k)
                preds = m.predict_many([ep.support for ep in eps], [ep.query for ep in eps])
            else:
                preds = [m.adapt(ep.support).predict(ep.query) for ep in eps]
            dt = (time.perf_counter() - t0) / len(eps)
            for e, (ep, s, pred) in enumerate(zip(eps, seeds, preds)):
                pred = np.asarray(pred, dtype=np.float64)
                if pred.shape != ep.query.targets.shape or not np.isfinite(pred).all():
                    raise RuntimeError(f"{m.name} returned {pred.shape} predictions with "
                                       f"{int((~np.isfinite(pred)).sum())} non-finite values on {ep}.")
                row = {"method": m.name, "kind": m.kind, "task": task.name, "k": k, "episode": e, "fold": fold,
                       "n_query": len(pred), "adapt_s": dt}
                for name in metrics:
                    row[name] = METRICS[name](pred, ep.query.targets, seed=s)
                rows.append(row)
    return pd.DataFrame(rows)


def episode_predictions(methods: Sequence, test: TaskSet, task: str, k: int, episode: int = 0, seed: int = 0,
                        k_query_cap: int | None = None) -> tuple:
    """One benchmark episode (same seed as :func:`evaluate_episodes`) and every method's query predictions.

    Returns ``(episode, {method name: predictions})`` (predictions in target units).

    Example
    -------
    >>> ep, preds = episode_predictions(methods, test, "LiPF6|EC+DMC", k=5, episode=3)  # doctest: +SKIP
    """
    t = test[task]
    ep = test.episode(t, k, _query_size(len(t), k, k_query_cap), seed=episode_seed(seed, t.name, k, episode))
    return ep, {m.name: np.asarray(m.adapt(ep.support).predict(ep.query), dtype=np.float64) for m in methods}
