"""The tabular task-set builder shared by the CALiSol-23 and LNPDB loaders.

A loader cleans its table and computes one feature row per measurement; this module does the
rest the same way for both: keep the groups with enough rows (:func:`keep_min_points`), z-score
the features (:func:`standardize`), cut the table into one :class:`~nanonb.tasks.Task` per group
and attach the loader attributes (:func:`tabular_taskset`). It also words report details
(:func:`top_counts`). The RDKit descriptors both use are in :mod:`nanonb.data.chem`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..tasks import Task, TaskSet
from ._fetch import DataQualityReport

__all__ = ["keep_min_points", "standardize", "tabular_taskset", "top_counts"]


def top_counts(s: pd.Series, n: int = 6) -> str:
    """The ``n`` most frequent values of ``s`` with their counts, for a data-quality report.

    Example
    -------
    >>> top_counts(pd.Series(["a", "b", "a"]))
    'a: 2, b: 1'
    """
    if len(s) == 0:
        return ""
    vc = s.value_counts()
    txt = ", ".join(f"{k}: {v}" for k, v in vc.head(n).items())
    return txt + (f", ... ({len(vc) - n} more)" if len(vc) > n else "")


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-score columns, except those already in [0, 1] (flags, fractions, fingerprint bits).

    Returns ``(z, mean, std)`` with ``x = z * std + mean`` (mean 0 and std 1 for the kept columns
    and for constant ones).

    Example
    -------
    >>> z, mean, std = standardize(np.array([[0.0, 10.0], [1.0, 30.0]]))
    >>> z[:, 1], mean, std
    (array([-1.,  1.]), array([ 0., 20.]), array([ 1., 10.]))
    """
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    unit = (x.min(axis=0) >= 0) & (x.max(axis=0) <= 1)
    const = std < 1e-12
    mean = np.where(unit | const, 0.0, mean)
    std = np.where(unit | const, 1.0, std)
    return (x - mean) / std, mean, std


def keep_min_points(df: pd.DataFrame, column: str, min_points: int, report: DataQualityReport,
                    detail: Callable[[pd.Series, list], str], what: str = "group",
                    unit: str = "rows") -> tuple[pd.DataFrame, list]:
    """Rows of the groups (values of ``column``) with at least ``min_points`` rows, and those groups (sorted).

    Adds the rule ``below_min_points_<min_points>`` to ``report`` (``detail(small_sizes, kept)``
    words it). Raises ``ValueError`` for ``min_points < 1`` or when no group is large enough
    (``what`` and ``unit`` word the message: "No system has >= 20 points").

    Example
    -------
    >>> sub, keep = keep_min_points(df, "system", 20, report, detail, "system", "points")  # doctest: +SKIP
    """
    if min_points < 1:
        raise ValueError(f"min_points must be >= 1, got {min_points}")
    sizes = df[column].value_counts()
    keep = sorted(sizes[sizes >= min_points].index)
    if not keep:
        raise ValueError(f"No {what} has >= {min_points} {unit} (largest: {sizes.max()}).")
    small = sizes[sizes < min_points]
    report.add(f"below_min_points_{min_points}", int(small.sum()), "excluded from the task set (kept in df)",
               detail(small, keep))
    return df[df[column].isin(keep)].reset_index(drop=True), keep


def tabular_taskset(sub: pd.DataFrame, column: str, keep: Sequence, x: np.ndarray, target: str,
                    meta_columns: Sequence[str], groups: Callable[[str, pd.DataFrame], tuple], *, name: str,
                    feature_names: list[str], report: DataQualityReport, standardize_inputs: bool,
                    target_name: str, target_unit: str, t0: float,
                    group_keys: Callable[[str, pd.DataFrame], dict] | None = None) -> TaskSet:
    """One task per value ``keep`` of ``sub[column]``, from the feature rows ``x`` (aligned with ``sub``).

    Inputs are the z-scored features (:func:`standardize`; the raw ones if not
    ``standardize_inputs``) as float32; ``descriptors`` are always the z-scored ones; targets
    ``sub[target]``; ``meta`` the ``meta_columns``; ``groups(task_name, rows)``; ``group_keys(task_name,
    rows)`` the named group labels (``{"salt": ("LiPF6",)}``, so ``group_kfold(key="salt")`` works). The task set gets
    ``feature_mean``, ``feature_std``, ``quality_report`` and ``build_seconds`` (since ``t0``, a
    ``time.perf_counter()`` value).

    Example
    -------
    >>> ts = tabular_taskset(sub, "Experiment_ID", keep, x, "Experiment_value", ["LNP_ID"],
    ...                      lambda name, rows: (name,), name="LNPDB", ...)  # doctest: +SKIP
    """
    z, mean, std = standardize(x)
    inputs = z if standardize_inputs else x
    y = sub[target].to_numpy(dtype=np.float64)
    tasks = []
    for task_name in keep:
        idx = np.flatnonzero((sub[column] == task_name).to_numpy())
        rows = sub.iloc[idx]
        tasks.append(Task(
            name=str(task_name),
            inputs=inputs[idx].astype(np.float32),
            targets=y[idx],
            meta=rows[list(meta_columns)].reset_index(drop=True),
            groups=groups(str(task_name), rows),
            descriptors=z[idx],
            target_name=target_name,
            target_unit=target_unit,
            group_keys=group_keys(str(task_name), rows) if group_keys is not None else {},
        ))
    ts = TaskSet(tasks, name=name, feature_names=feature_names)
    ts.feature_mean = mean
    ts.feature_std = std
    ts.quality_report = report
    ts.build_seconds = time.perf_counter() - t0
    return ts
