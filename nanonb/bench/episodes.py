"""Evaluation settings shared by the ``forces`` and ``tb`` protocols (on top of :mod:`nanonb.evaluation`).

:func:`run_episodes` runs :func:`nanonb.evaluation.evaluate` (THE episode loop) with zero-shot
``k = 0`` for the methods that can (:func:`can_zero_shot`), keeps the predictions for constraint
checks, counts negative predictions and, for graph meta-learners, measures the force MAE.
:func:`violation_rows` turns the negative counts into result rows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from nanonb.baselines.nets import Pooled
from nanonb.evaluation import evaluate
from nanonb.learners.base import AdaptedModel, MetaLearner
from nanonb.learners.training import predict_energy_forces
from nanonb.physics import HuckelCalibration

#: Methods whose ``adapt(None)`` is meaningful (zero-shot ``k = 0``) unless they say otherwise.
ZERO_SHOT_TYPES = (MetaLearner, Pooled, HuckelCalibration)


def can_zero_shot(method) -> bool:
    """Whether ``method.adapt(None)`` is meaningful: its ``zero_shot`` attribute if it has one (e.g.
    ``Named(m, name, zero_shot=False)``), else whether it (or the method a :class:`~nanonb.evaluation.Named`
    wraps) is a meta-learner, a pooled net or calibrated Hückel theory.

    Example
    -------
    >>> from nanonb.evaluation import Named
    >>> can_zero_shot(HuckelCalibration()), can_zero_shot(Named(HuckelCalibration(), "h", zero_shot=False))
    (True, False)
    """
    return bool(getattr(method, "zero_shot", isinstance(getattr(method, "method", method), ZERO_SHOT_TYPES)))


def run_episodes(methods, test, shots=(1, 5, 10), n_episodes: int = 10, seed: int = 0, progress: bool = False,
                 force_mae: bool = False, k_query: int | None = None):
    """:func:`nanonb.evaluation.evaluate` with the physics protocols' settings; keeps the predictions.

    Same seeded episodes as every other benchmark (``k_query`` caps the query; ``None``: the rest of
    the task). ``k = 0`` is zero-shot: the query is the whole task (or a seeded ``k_query`` of it) and
    only methods for which :func:`can_zero_shot` holds take part. Extra columns: ``n_negative``
    (predictions < 0, the constraint count of the ``tb`` protocol) and, with ``force_mae=True``,
    ``force_mae`` (eV/Å, forces ``-dE/dpos`` of the adapted graph meta-learner on the query; NaN
    where not available).

    Returns
    -------
    (pandas.DataFrame, dict)
        Rows ``method, kind, task, k, episode, mae, rmse, n_query, adapt_s, n_negative[, force_mae]``
        (errors in target units) and ``{method: concatenated predictions}``.

    Example
    -------
    >>> df, preds = run_episodes([learner, HuckelCalibration().fit(train)], test, shots=(0, 5))  # doctest: +SKIP
    >>> df.groupby(["method", "k"]).mae.mean()                                                  # doctest: +SKIP
    """
    last = {}  # the adapted model of the episode just predicted: evaluate() calls extra() right after predict()

    def predict(method, task, episode):
        last["adapted"] = method.adapt(episode.support)
        return last["adapted"].predict(episode.query)

    def extra(method, task, episode, pred) -> dict:
        row = {"n_negative": int((pred < 0).sum())}
        if force_mae:
            row["force_mae"] = _force_mae(last["adapted"], episode.query)
        return row

    return evaluate(methods, test, shots, n_episodes, k_query=k_query, seed=seed, progress=progress,
                    metrics=("mae", "rmse"), predict=predict, include=lambda m, k: k > 0 or can_zero_shot(m),
                    extra=extra, return_predictions=True, desc="episodes")


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
