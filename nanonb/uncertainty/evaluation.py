"""Score predictive distributions over many held-out episodes, the same episodes for every method.

:func:`task_model` gives any uncertainty method a per-task fast path (``predict_dist(train_idx,
test_idx)``), :func:`evaluate_uncertainty` scores NLL, interval coverage, sharpness and errors per
(method, task, k, episode), and :func:`calibration_summary` turns those rows into calibration curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..evaluation import evaluate, mae, rmse
from ..tasks import Task, TaskSet
from .metrics import CURVE_LEVELS, LEVELS, coverage, gaussian_nll, interval_z, sharpness


class _GenericTaskModel:
    """``predict_dist(train_idx, test_idx)`` on one task via ``method.adapt(...).predict_dist(...)``."""

    def __init__(self, method, task: Task):
        self.method, self.task = method, task

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        train_idx = np.asarray(train_idx, dtype=int)
        support = self.task.subset(train_idx) if len(train_idx) else None
        mean, std = self.method.adapt(support).predict_dist(self.task.subset(test_idx))
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def task_model(method, task: Task):
    """An object with ``predict_dist(train_idx, test_idx) -> (mean, std)`` for repeated use on one task.

    Uses ``method.for_task(task)`` when the method has it (features or base predictions computed
    once per task: much faster for campaigns and many episodes), else adapts from scratch each call.
    Indices refer to points of ``task``; ``train_idx`` may be empty (zero-shot). ``mean`` and
    ``std`` are in the task's target units.

    Example
    -------
    >>> tm = task_model(bml, task)                        # doctest: +SKIP
    >>> mean, std = tm.predict_dist([0, 3, 7], [1, 2])    # doctest: +SKIP
    """
    if hasattr(method, "for_task"):
        return method.for_task(task)
    return _GenericTaskModel(method, task)


def evaluate_uncertainty(methods: Sequence, test: TaskSet, shots: Sequence[int] = (5, 10), n_episodes: int = 10,
                         k_query: int | None = None, seed: int = 0, levels: Sequence[float] = CURVE_LEVELS,
                         progress: bool = True) -> pd.DataFrame:
    """Score predictive distributions on held-out tasks, the same episodes for every method.

    Returns one row per (method, task, k, episode) with ``nll`` (nats/point, target units),
    ``coverage50/90/95`` (fraction of query points inside the central interval), ``sharpness``
    (mean std, target units), ``mae``, ``rmse``, ``n_query``, ``adapt_s`` and one ``cal_<level>``
    column per calibration level (observed coverage). Aggregate with
    :func:`nanonb.evaluation.summarize` (per-task mean, then mean/median over tasks) and
    :func:`calibration_summary`. The loop is :func:`nanonb.evaluation.evaluate` (same episodes as
    every other benchmark) with ``predict`` = the per-task fast path :func:`task_model` (one cached
    per method for the current task) and these scores as metric functions.

    Example
    -------
    >>> df = evaluate_uncertainty([bml, gp], test, shots=(5,), n_episodes=3)   # doctest: +SKIP
    >>> summarize(df, "nll")                                                   # doctest: +SKIP
    """
    models: dict[tuple[str, str], Any] = {}

    def predict(m, task: Task, ep) -> tuple[np.ndarray, np.ndarray]:
        nonlocal models
        key = (m.name, task.name)
        if key not in models:
            models = {kk: v for kk, v in models.items() if kk[1] == task.name}  # keep one task cached
            models[key] = task_model(m, task)
        return models[key].predict_dist(ep.support_idx, ep.query_idx)

    def intervals(m, task: Task, ep, pred) -> dict[str, float]:
        (mean, std), y = pred, ep.query.targets
        row = {f"coverage{int(round(100 * lev))}": coverage(y, mean, std, lev) for lev in LEVELS}
        a = np.abs(y - mean) / std
        row.update({f"cal_{lev:g}": float(np.mean(a <= interval_z(lev))) for lev in levels})
        return row

    metrics = {"nll": lambda pred, y, **_: gaussian_nll(y, *pred), "sharpness": lambda pred, y, **_: sharpness(pred[1]),
               "mae": mae, "rmse": rmse}
    return evaluate(methods, test, shots, n_episodes, k_query, seed, progress, metrics=metrics, predict=predict,
                    extra=intervals, order="episode", desc="evaluating uncertainty")


def calibration_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Calibration curves from :func:`evaluate_uncertainty` rows.

    Observed coverage per nominal level: mean over episodes within a task, then over tasks. Long
    frame with columns ``method, kind, k, level, observed, n_tasks`` (``level`` and ``observed``
    are fractions).

    Example
    -------
    >>> curves = calibration_summary(evaluate_uncertainty([bml], test))   # doctest: +SKIP
    >>> nanonb.plots.calibration(curves)                                   # doctest: +SKIP
    """
    cols = [c for c in df.columns if c.startswith("cal_")]
    if not cols:
        raise ValueError("no cal_<level> columns: pass the output of evaluate_uncertainty")
    per_task = df.groupby(["method", "kind", "k", "task"], sort=False)[cols].mean().reset_index()
    g = per_task.groupby(["method", "kind", "k"], sort=False)
    out = []
    for (method, kind, k), sub in g:
        for c in cols:
            out.append({"method": method, "kind": kind, "k": int(k), "level": float(c[4:]),
                        "observed": float(sub[c].mean()), "n_tasks": len(sub)})
    return pd.DataFrame(out)
