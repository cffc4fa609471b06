"""Argument checks shared by :class:`~nanonb.tasks.Task`, :class:`~nanonb.tasks.TaskSet` and episode sampling.

Checks at the door: every error names the argument (or column, or task), the offending value and
the fix. :func:`check_frame` and :func:`check_arrays` hold the up-front checks of
:meth:`TaskSet.from_frame <nanonb.tasks.TaskSet.from_frame>` and
:meth:`TaskSet.from_arrays <nanonb.tasks.TaskSet.from_arrays>`; :func:`check_count` checks episode
sizes.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd


def is_missing(value) -> bool:
    """True for None, NaN, pd.NA and NaT (a scalar missing value)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays, lists: not a scalar missing value
        return False


def check_count(arg: str, value, minimum: int, hint: str = "") -> int:
    """``value`` as an ``int`` >= ``minimum``, else a TypeError/ValueError naming ``arg`` and the fix."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fix = ""
        if isinstance(value, (tuple, list, range, np.ndarray)):
            fix = (" It takes one number: for several sizes call once per size (a (min, max) range of "
                   "support sizes belongs to MetaConfig.k_support).")
        elif isinstance(value, numbers.Real) and np.isfinite(value) and float(value).is_integer():
            fix = f" Use {arg}={int(value)}."
        elif isinstance(value, numbers.Real):
            fix = " Round it to a whole number of points."
        elif isinstance(value, str):
            fix = " Pass a number, not text (e.g. int(value))."
        raise TypeError(f"{arg} must be an integer, got {value!r} ({type(value).__name__}).{fix}")
    if value < minimum:
        raise ValueError(f"{arg} must be >= {minimum}, got {value}.{hint}")
    return int(value)


K_SUPPORT_HINT = (" Meta-training episodes need at least one support point to adapt on (k_support=0, "
                   "zero-shot, is for evaluation: TaskSet.episode).")


def column_list(arg: str, value) -> list:
    """Column names given as one name or a list; each listed once."""
    if isinstance(value, str):
        return [value]
    try:
        cols = list(value)
    except TypeError:
        raise TypeError(f"{arg} must be a column name or a list of column names, got {value!r}.") from None
    dup = sorted({str(c) for c in cols if cols.count(c) > 1})
    if dup:
        raise ValueError(f"{arg} lists {dup} more than once; list each column once.")
    return cols


def floats_ok(values: np.ndarray) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def row_labels(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    labels = index[mask][:limit].tolist()
    more = f" and {int(mask.sum()) - limit} more" if mask.sum() > limit else ""
    return f"{labels}{more}"


def numeric_column(col: pd.Series, name, role: str, dtype, ids: pd.Series) -> None:
    """Check that column ``name`` converts to ``dtype`` with only finite values; else raise naming it
    (and the task ids ``ids`` of the offending rows)."""
    fix = f"or leave {name!r} out of the {role}s" if role == "feature" else "or pick another target"
    if col.dtype.kind in "mMc":
        raise TypeError(
            f"{role} column {name!r} has dtype {col.dtype}, not a real number; convert it explicitly "
            f"(e.g. to seconds or to its real part) {fix}."
        )
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            values = col.to_numpy(dtype=dtype)
        except (TypeError, ValueError):
            values = None
    if values is None:
        missing = np.zeros(len(col), dtype=bool)
        for i, v in enumerate(col.tolist()):
            if is_missing(v):
                missing[i] = True
                continue
            try:
                float(v)
            except (TypeError, ValueError):
                raise TypeError(
                    f"{role} column {name!r} is not numeric: row {col.index[i]!r} (task {ids.iloc[i]!r}) "
                    f"holds {v!r} ({type(v).__name__}). Convert it, e.g. pd.to_numeric(df[{name!r}], errors='coerce') "
                    f"then drop the rows that become NaN, {fix}."
                ) from None
        bad = missing
    else:
        bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{role} column {name!r} has {int(bad.sum())} missing or non-finite values (NaN/inf, or beyond "
            f"the float32 range for features) at rows {row_labels(col.index, bad)} (task(s) "
            f"{sorted({str(t) for t in ids[bad].tolist()})[:5]}); drop or impute them before "
            f"building the tasks, e.g. df.dropna(subset=[{name!r}])."
        )


def check_frame(
    df: pd.DataFrame,
    task: str,
    features: Sequence[str],
    target: str,
    groups: str | Sequence[str] | Callable[[pd.DataFrame], Iterable[str]] | None,
    meta: Sequence[str] | None,
    min_points: int,
):
    """The checks of :meth:`TaskSet.from_frame <nanonb.tasks.TaskSet.from_frame>` (see there).

    Returns ``(features, meta_cols, group_cols, min_points, by_task)``: the column lists, the
    checked ``min_points`` and ``df`` grouped by ``task`` (sorted).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_frame needs a pandas DataFrame, got {type(df).__name__}.")
    features = column_list("features", features)
    if not features:
        raise ValueError("features is empty: list at least one feature column.")
    meta_cols = column_list("meta", meta) if meta is not None else []
    group_cols = [] if groups is None or callable(groups) else column_list("groups", groups)
    if target in features:
        raise ValueError(
            f"The target {target!r} is also listed in features: the label would leak into the "
            f"inputs. Remove it from features (put it in meta= to keep it alongside)."
        )
    used = list(dict.fromkeys([task, target, *features, *meta_cols, *group_cols]))
    missing = [c for c in used if c not in df.columns]
    if missing:
        raise KeyError(f"Columns not in the frame: {missing}. Available: {list(df.columns)[:30]}")
    doubled = [c for c in used if int((df.columns == c).sum()) > 1]
    if doubled:
        raise ValueError(
            f"The frame has several columns named {doubled}; each would widen the inputs. Rename or "
            "drop the copies first, e.g. df.loc[:, ~df.columns.duplicated()]."
        )
    min_points = check_count("min_points", min_points, 0)
    ids = df[task]
    no_id = ids.isna().to_numpy()
    if no_id.any():
        raise ValueError(
            f"Task column {task!r} has {int(no_id.sum())} missing task ids at rows "
            f"{row_labels(df.index, no_id)}; those rows would be dropped silently. Drop them "
            f"(df.dropna(subset=[{task!r}])) or fill them."
        )
    by_task = df.groupby(task, sort=True)
    names = [str(k) for k in by_task.indices]
    alike = sorted({n for n in names if names.count(n) > 1})
    if alike:
        raise ValueError(
            f"Task ids in column {task!r} differ but print alike: {alike} (e.g. 1 and '1'), so their "
            f"tasks would merge or clash. Make them one type, e.g. df[{task!r}].astype(str)."
        )
    keep = np.zeros(len(df), dtype=bool)
    for rows in by_task.indices.values():
        keep[rows] = len(rows) >= min_points
    kept = df.loc[keep]
    for col in features:
        numeric_column(kept[col], col, "feature", np.float32, kept[task])
    numeric_column(kept[target], target, "target", np.float64, kept[task])
    for col in group_cols:
        no_group = kept[col].isna().to_numpy()
        if no_group.any():
            raise ValueError(
                f"Group column {col!r} has {int(no_group.sum())} missing labels at rows "
                f"{row_labels(kept.index, no_group)}; they would become the group 'nan'. Fill them "
                f"(e.g. df[{col!r}].fillna('unknown')) or drop those rows."
            )
    return features, meta_cols, group_cols, min_points, by_task


def check_arrays(inputs, targets, task_ids, groups):
    """The checks of :meth:`TaskSet.from_arrays <nanonb.tasks.TaskSet.from_arrays>` (see there).

    Returns ``(inputs, targets, task_ids, unique_ids)``: float32 ``(n, d)`` inputs, float64 ``(n,)``
    targets, the task ids as an array and their sorted unique values.
    """
    raw = inputs
    try:
        inputs = np.asarray(inputs, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        obj = np.asarray(raw, dtype=object)
        cols = [j for j in range(obj.shape[1]) if not floats_ok(obj[:, j])] if obj.ndim == 2 else []
        where = f" in column(s) {cols}" if cols else ""
        raise TypeError(f"from_arrays: inputs must be numbers ({exc}){where}; convert them first.") from None
    if inputs.ndim != 2:
        raise ValueError(
            f"from_arrays: inputs must be 2-D (n_points, n_features), got shape {inputs.shape}; "
            "for one feature use inputs.reshape(-1, 1)."
        )
    try:
        targets = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"from_arrays: targets must be numbers ({exc}); convert them first.") from None
    task_ids = np.asarray(task_ids)
    n = len(inputs)
    if n == 0:
        raise ValueError("from_arrays: inputs has no rows; a TaskSet needs at least one task.")
    if targets.ndim != 1 or len(targets) != n or task_ids.ndim != 1 or len(task_ids) != n:
        raise ValueError(
            f"from_arrays: inputs has {n} rows but targets has shape {targets.shape} and task_ids "
            f"{task_ids.shape}; give one target and one task id per row."
        )
    no_id = np.array([is_missing(t) for t in task_ids.tolist()], dtype=bool)
    if no_id.any():
        raise ValueError(
            f"from_arrays: {int(no_id.sum())} task ids are missing (None/NaN) at rows "
            f"{np.flatnonzero(no_id)[:5].tolist()}; drop those rows or give them a task id."
        )
    try:
        unique_ids = np.unique(task_ids)
    except TypeError:
        raise TypeError(
            f"from_arrays: task_ids mix types that cannot be ordered "
            f"({sorted({type(t).__name__ for t in task_ids.tolist()})}); make them one type, "
            "e.g. [str(t) for t in task_ids]."
        ) from None
    if groups is not None and not isinstance(groups, dict):
        raise TypeError(f"from_arrays: groups must be a dict task id -> label(s), got {type(groups).__name__}.")
    return inputs, targets, task_ids, unique_ids
