"""The work of :meth:`TaskSet.from_frame <nanonb.tasks.TaskSet.from_frame>`: a long frame -> tasks.

:func:`frame_tasks` checks the frame (:func:`~nanonb.tasks._validate.check_frame`), converts the role
columns and a conductivity target to canonical units (:mod:`nanonb.tasks.roles`), keeps group labels in
the order of the group columns (named in ``Task.group_keys``) and reports every column.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._validate import check_frame, column_list
from .roles import ROLES, check_roles, column_report, convert_role, convert_target
from .task import Task


def frame_tasks(df: pd.DataFrame, task: str, features: Sequence[str] | None, target: str,
                groups: str | Sequence[str] | Callable[[pd.DataFrame], Iterable[str]] | None,
                meta: Sequence[str] | None, min_points: int, target_unit: str,
                roles: Mapping[str, str] | None, units: Mapping[str, str] | None
                ) -> tuple[list[Task], list[str], dict]:
    """``(tasks, feature_names, attributes)`` for ``from_frame`` (arguments and checks: see there).

    ``attributes`` are ``roles`` (role -> feature name), ``units`` (feature name or ``"target"`` ->
    unit) and ``column_report`` (:func:`~nanonb.tasks.roles.column_report`).

    Example
    -------
    >>> df = pd.DataFrame({"t": ["a", "a"], "x": [1.0, 2.0], "y": [0.0, 1.0], "note": [5, 6]})
    >>> tasks, names, attrs = frame_tasks(df, "t", ["x"], "y", None, None, 1, "", None, None)  # doctest: +SKIP
    >>> attrs["column_report"]["use"].tolist()                                                 # doctest: +SKIP
    ['task', 'feature', 'target', 'unused']
    """
    roles, role_units, t_unit = check_roles(roles, units, target_unit)
    feats = [] if features is None else column_list("features", features)
    feats += [c for c in roles.values() if c not in feats]
    features, meta_cols, group_cols, min_points, by_task = check_frame(
        df, task, feats, target, groups, meta, min_points)
    kept = [rows for rows in by_task.indices.values() if len(rows) >= min_points]
    kept_rows = df.iloc[np.concatenate(kept)] if kept else df.iloc[:0]
    role_of = {col: r for r, col in roles.items()}
    uses = {task: ("task", "", ""), **{c: ("meta", "", "") for c in meta_cols},
            **{c: ("group", "", "") for c in group_cols}}
    names = list(features)
    for j, col in enumerate(features):
        if col in role_of:
            r = role_of[col]
            _, note = convert_role(kept_rows[col].to_numpy(dtype=np.float64), r, role_units[r], col)
            names[j] = ROLES[r]["name"]
            uses[col] = (f"role:{r}", role_units[r], note)
        else:
            uses[col] = ("feature", "", "")
    if len(set(names)) < len(names):
        raise ValueError(f"A feature is named like a role's canonical column ({names}); rename it.")
    t_name, unit = target, t_unit or ""
    if t_unit is not None:
        _, unit, note = convert_target(kept_rows[target].to_numpy(dtype=np.float64), t_unit, target)
        t_name = "log10_k" if unit != t_unit else target
        uses[target] = ("target", t_unit, note)
    else:
        uses[target] = ("target", unit, "")
    tasks = []
    for tname, sub in by_task:
        if len(sub) < min_points:
            continue
        keys: dict[str, tuple[str, ...]] = {}
        if groups is None:
            g: list[str] = [str(tname)]
        elif callable(groups):
            labels = groups(sub)
            g = [labels] if isinstance(labels, str) else list(labels)
        else:  # labels in the order of the group columns, each column's labels sorted
            keys = {str(col): tuple(sorted({str(v) for v in sub[col].unique()})) for col in group_cols}
            g = list(dict.fromkeys(v for col in group_cols for v in keys[str(col)]))
        x = np.array(sub[list(features)].to_numpy(dtype=np.float64), copy=True)
        for j, col in enumerate(features):
            if col in role_of:
                x[:, j] = convert_role(x[:, j], role_of[col], role_units[role_of[col]], col)[0]
        y = sub[target].to_numpy(dtype=np.float64)
        if t_unit is not None:
            y = convert_target(y, t_unit, target)[0]
        tasks.append(Task(name=str(tname), inputs=x.astype(np.float32), targets=y,
                          meta=sub[list(meta_cols)].reset_index(drop=True) if meta_cols else None,
                          groups=tuple(g), target_name=t_name, target_unit=unit, group_keys=keys))
    if not tasks:
        raise ValueError(
            f"No task has min_points={min_points} rows (the largest of {by_task.ngroups} tasks has "
            f"{max(map(len, by_task.indices.values()), default=0)}); lower min_points or add data."
        )
    attrs = {"roles": {r: ROLES[r]["name"] for r in roles},
             "units": {**{ROLES[r]["name"]: ROLES[r]["units"][u][0] for r, u in role_units.items()}, "target": unit},
             "column_report": column_report(df.columns, uses)}
    unused = [str(c) for c in df.columns if c not in uses and pd.api.types.is_numeric_dtype(df[c])]
    if unused:
        warnings.warn(f"from_frame: numeric column(s) {unused} are not used (not in features, roles, groups or "
                      "meta); list them if they are inputs (e.g. roles={'concentration': ...}). "
                      "ts.column_report shows every column.", UserWarning, stacklevel=3)
    return tasks, names, attrs

