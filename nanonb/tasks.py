"""Task distributions: tasks, episodes (support/query), chemistry-aware splits and leakage reports.

A *task* is one material system (an element pair, an electrolyte system, a study). An *episode*
splits a task into a support set (the few measurements a model adapts on) and a query set (where it
is evaluated). A :class:`TaskSet` holds the tasks and makes the splits: by group (hold out every
task that contains an element / salt / study), by similarity clustering, or at random (for
contrast only). :func:`leakage_report` measures how close meta-test points sit to meta-train points
so that a leaky split is visible.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Task:
    """One task: inputs, targets, per-point metadata and group labels.

    Parameters
    ----------
    name:
        Unique task name, e.g. ``"Cu-Pt"`` or ``"LiPF6|EC+DMC"``.
    inputs:
        Either a float array of shape ``(n, d)`` (tabular) or a sequence of ``n`` structures
        (:class:`nanonb.graphs.Structure`) for graph models.
    targets:
        Float array of shape ``(n,)``, in ``target_unit``.
    meta:
        Per-point metadata (``n`` rows), kept alongside but never fed to models.
    groups:
        Group labels of the whole task (elements, salt, study) used for group splits.
    descriptors:
        Optional ``(n, p)`` float array used for similarity (leakage, clustering) and for
        descriptor-based baselines (GP). Defaults to ``inputs`` when those are tabular.
    """

    name: str
    inputs: np.ndarray | Sequence
    targets: np.ndarray
    meta: pd.DataFrame | None = None
    groups: tuple[str, ...] = ()
    descriptors: np.ndarray | None = None
    target_name: str = "y"
    target_unit: str = ""

    def __post_init__(self) -> None:
        try:
            self.targets = np.asarray(self.targets, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Task {self.name!r}: targets must be numbers ({exc}); convert them first, e.g. "
                "pd.to_numeric(values, errors='coerce'), and drop the rows that become NaN."
            ) from None
        n = len(self.targets)
        if n == 0:
            raise ValueError(f"Task {self.name!r} is empty: it has no data points.")
        if len(self.inputs) != n:
            raise ValueError(
                f"Task {self.name!r}: {len(self.inputs)} inputs but {n} targets; they must match."
            )
        bad = ~np.isfinite(self.targets)
        if bad.any():
            rows = np.flatnonzero(bad)[:10].tolist()
            raise ValueError(
                f"Task {self.name!r} has {int(bad.sum())} NaN/inf targets (rows {rows}); "
                "drop or impute them before building the task."
            )
        if isinstance(self.inputs, (pd.DataFrame, pd.Series)):
            raise TypeError(
                f"Task {self.name!r}: inputs is a pandas {type(self.inputs).__name__}; pass a float array "
                "(e.g. df[features].to_numpy()) or build the tasks with TaskSet.from_frame."
            )
        if isinstance(self.inputs, np.ndarray):
            try:
                self.inputs = np.asarray(self.inputs, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"Task {self.name!r}: tabular inputs must be numbers ({exc}).") from None
            if self.inputs.ndim != 2:
                raise ValueError(f"Task {self.name!r}: tabular inputs must be 2-D, got {self.inputs.shape}.")
            bad = ~np.isfinite(self.inputs)
            if bad.any():
                raise ValueError(
                    f"Task {self.name!r} has {int(bad.sum())} NaN/inf inputs in column(s) "
                    f"{np.flatnonzero(bad.any(0)).tolist()[:10]} (rows {np.flatnonzero(bad.any(1))[:10].tolist()}); "
                    "drop or impute them before building the task."
                )
            if self.descriptors is None:
                self.descriptors = self.inputs
        if self.descriptors is not None:
            self.descriptors = np.asarray(self.descriptors, dtype=np.float64)
            if len(self.descriptors) != n:
                raise ValueError(f"Task {self.name!r}: {len(self.descriptors)} descriptor rows, not {n}.")
        if self.meta is None:
            self.meta = pd.DataFrame(index=range(n))
        elif len(self.meta) != n:
            raise ValueError(f"Task {self.name!r}: meta has {len(self.meta)} rows, not {n}.")
        groups = (self.groups,) if isinstance(self.groups, str) else tuple(self.groups)
        missing = [g for g in groups if _is_missing(g)]
        if missing:
            raise ValueError(
                f"Task {self.name!r}: group labels {missing} are missing values; give every task real "
                "group labels (fill the group column, e.g. with 'unknown') or drop those rows."
            )
        self.groups = tuple(str(g) for g in groups)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def is_tabular(self) -> bool:
        return isinstance(self.inputs, np.ndarray)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Task:
        """The task restricted to the points ``idx`` (same name and groups)."""
        idx = np.asarray(idx, dtype=int)
        inputs = self.inputs[idx] if self.is_tabular else [self.inputs[i] for i in idx]
        return Task(
            name=self.name,
            inputs=inputs,
            targets=self.targets[idx],
            meta=self.meta.iloc[idx].reset_index(drop=True),
            groups=self.groups,
            descriptors=None if self.descriptors is None else self.descriptors[idx],
            target_name=self.target_name,
            target_unit=self.target_unit,
        )

    def __repr__(self) -> str:
        kind = "tabular" if self.is_tabular else "structures"
        return f"Task({self.name!r}, n={len(self)}, {kind}, groups={self.groups})"


@dataclass
class Episode:
    """A support/query split of one task. ``support_idx`` and ``query_idx`` index ``task``.

    A zero-shot episode (``k_support=0``) has an empty ``support_idx`` and ``support=None``.
    """

    task: Task
    support_idx: np.ndarray
    query_idx: np.ndarray
    seed: int | None = None
    support: Task | None = field(init=False, repr=False)
    query: Task = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if np.intersect1d(self.support_idx, self.query_idx).size:
            raise ValueError("support and query sets overlap")
        self.support = self.task.subset(self.support_idx) if len(self.support_idx) else None
        self.query = self.task.subset(self.query_idx)

    def __repr__(self) -> str:
        return (f"Episode({self.task.name!r}, support={len(self.support_idx)}, "
                f"query={len(self.query_idx)}, seed={self.seed})")


def _as_list(x: str | Iterable[str]) -> list[str]:
    return [x] if isinstance(x, str) else [str(v) for v in x]


# ---------------------------------------------------------------------- argument checks
def _is_missing(value) -> bool:
    """True for None, NaN, pd.NA and NaT (a scalar missing value)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays, lists: not a scalar missing value
        return False


def _check_count(arg: str, value, minimum: int, hint: str = "") -> int:
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


_K_SUPPORT_HINT = (" Meta-training episodes need at least one support point to adapt on (k_support=0, "
                   "zero-shot, is for evaluation: TaskSet.episode).")


def _column_list(arg: str, value) -> list:
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


def _floats_ok(values: np.ndarray) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _rows(index: pd.Index, mask: np.ndarray, limit: int = 5) -> str:
    labels = index[mask][:limit].tolist()
    more = f" and {int(mask.sum()) - limit} more" if mask.sum() > limit else ""
    return f"{labels}{more}"


def _numeric_column(col: pd.Series, name, role: str, dtype, ids: pd.Series) -> None:
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
            if _is_missing(v):
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
            f"the float32 range for features) at rows {_rows(col.index, bad)} (task(s) "
            f"{sorted({str(t) for t in ids[bad].tolist()})[:5]}); drop or impute them before "
            f"building the tasks, e.g. df.dropna(subset=[{name!r}])."
        )


class TaskSet:
    """A collection of tasks with episode sampling and splits."""

    def __init__(self, tasks: Iterable[Task], name: str = "", feature_names: Sequence[str] | None = None):
        self.tasks: list[Task] = list(tasks)
        if not self.tasks:
            raise ValueError("A TaskSet needs at least one task.")
        names = [t.name for t in self.tasks]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"Task names must be unique; repeated: {sorted(dup)}")
        self._index = {t.name: i for i, t in enumerate(self.tasks)}
        self.name = name
        self.feature_names = list(feature_names) if feature_names is not None else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        task: str,
        features: Sequence[str],
        target: str,
        groups: str | Sequence[str] | Callable[[pd.DataFrame], Iterable[str]] | None = None,
        meta: Sequence[str] | None = None,
        min_points: int = 1,
        target_unit: str = "",
        name: str = "",
    ) -> TaskSet:
        """Build tasks from a long DataFrame, one task per value of column ``task``.

        ``features`` and ``meta`` are column names (a list, or one name). ``groups`` is a column name
        (its unique values in a task become the task's groups), a list of column names, or a
        function of the task's sub-frame returning group labels. Tasks with fewer than
        ``min_points`` rows are skipped. The frame is not modified.

        Everything is checked up front, and an error names the argument, the value and the fix:
        a column that is missing (``KeyError``), listed twice or present twice in the frame, the
        target listed as a feature (a label leak), missing task ids or group labels, a non-numeric
        feature or target (``TypeError``), NaN/inf in a feature or the target of a kept task,
        task ids that print alike (``1`` and ``"1"``), and no task with ``min_points`` rows.

        Example
        -------
        >>> df = pd.DataFrame({"system": ["a", "a", "b", "b"], "salt": ["X", "X", "Y", "Y"],
        ...                    "x": [0.1, 0.2, 0.3, 0.4], "y": [1.0, 2.0, 3.0, 4.0]})
        >>> ts = TaskSet.from_frame(df, task="system", features=["x"], target="y", groups="salt")
        >>> ts.names, ts["b"].groups, ts["b"].inputs.shape
        (['a', 'b'], ('Y',), (2, 1))
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_frame needs a pandas DataFrame, got {type(df).__name__}.")
        features = _column_list("features", features)
        if not features:
            raise ValueError("features is empty: list at least one feature column.")
        meta_cols = _column_list("meta", meta) if meta is not None else []
        group_cols = [] if groups is None or callable(groups) else _column_list("groups", groups)
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
        min_points = _check_count("min_points", min_points, 0)
        ids = df[task]
        no_id = ids.isna().to_numpy()
        if no_id.any():
            raise ValueError(
                f"Task column {task!r} has {int(no_id.sum())} missing task ids at rows "
                f"{_rows(df.index, no_id)}; those rows would be dropped silently. Drop them "
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
            _numeric_column(kept[col], col, "feature", np.float32, kept[task])
        _numeric_column(kept[target], target, "target", np.float64, kept[task])
        for col in group_cols:
            no_group = kept[col].isna().to_numpy()
            if no_group.any():
                raise ValueError(
                    f"Group column {col!r} has {int(no_group.sum())} missing labels at rows "
                    f"{_rows(kept.index, no_group)}; they would become the group 'nan'. Fill them "
                    f"(e.g. df[{col!r}].fillna('unknown')) or drop those rows."
                )
        tasks = []
        for tname, sub in by_task:
            if len(sub) < min_points:
                continue
            if groups is None:
                g: list[str] = [str(tname)]
            elif callable(groups):
                labels = groups(sub)
                g = [labels] if isinstance(labels, str) else list(labels)
            else:
                g = sorted({str(v) for col in group_cols for v in sub[col].unique()})
            tasks.append(
                Task(
                    name=str(tname),
                    inputs=sub[list(features)].to_numpy(dtype=np.float32),
                    targets=sub[target].to_numpy(dtype=np.float64),
                    meta=sub[list(meta_cols)].reset_index(drop=True) if meta_cols else None,
                    groups=tuple(g),
                    target_name=target,
                    target_unit=target_unit,
                )
            )
        if not tasks:
            raise ValueError(
                f"No task has min_points={min_points} rows (the largest of {by_task.ngroups} tasks has "
                f"{max(map(len, by_task.indices.values()), default=0)}); lower min_points or add data."
            )
        return cls(tasks, name=name, feature_names=features)

    @classmethod
    def from_arrays(
        cls,
        inputs: np.ndarray,
        targets: np.ndarray,
        task_ids: Sequence,
        groups: dict | None = None,
        name: str = "",
    ) -> TaskSet:
        """Build tasks from arrays; ``task_ids[i]`` names the task of row ``i``.

        ``inputs`` is ``(n, d)`` numbers, ``targets`` ``(n,)`` numbers, ``task_ids`` ``n`` labels (no
        missing ones); ``groups`` maps a task id to its group label(s). Shapes, types and missing
        values are checked up front, with errors naming the argument and the fix.

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.arange(8.0).reshape(4, 2), [1.0, 2.0, 3.0, 4.0],
        ...                          ["a", "a", "b", "b"], groups={"a": "X", "b": ("X", "Y")})
        >>> ts.names, ts["b"].groups
        (['a', 'b'], ('X', 'Y'))
        """
        raw = inputs
        try:
            inputs = np.asarray(inputs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            obj = np.asarray(raw, dtype=object)
            cols = [j for j in range(obj.shape[1]) if not _floats_ok(obj[:, j])] if obj.ndim == 2 else []
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
        no_id = np.array([_is_missing(t) for t in task_ids.tolist()], dtype=bool)
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
        tasks = []
        for tid in unique_ids:
            m = task_ids == tid
            g = (groups or {}).get(tid, (str(tid),))
            tasks.append(Task(str(tid), inputs[m], targets[m], groups=tuple(_as_list(g))))
        return cls(tasks, name=name)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self):
        return iter(self.tasks)

    def __getitem__(self, key: int | str) -> Task:
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"No task named {key!r}; tasks are {self.names}")
            return self.tasks[self._index[key]]
        return self.tasks[key]

    def __contains__(self, name: str) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def all_groups(self) -> list[str]:
        return sorted({g for t in self.tasks for g in t.groups})

    def select(self, names: Iterable[str]) -> TaskSet:
        """The named tasks as a new TaskSet; extra attributes a loader attached (e.g. ``feature_mean``,
        ``feature_std``, ``quality_report``) carry over, so every split keeps them."""
        out = TaskSet([self[n] for n in names], name=self.name, feature_names=self.feature_names)
        for key, value in self.__dict__.items():
            if key not in out.__dict__:
                setattr(out, key, value)
        return out

    def filter(self, min_points: int = 1) -> TaskSet:
        return self.select([t.name for t in self.tasks if len(t) >= min_points])

    def summary(self) -> pd.DataFrame:
        """One row per task: size, groups and target statistics."""
        return pd.DataFrame(
            [
                {"task": t.name, "n": len(t), "groups": ",".join(t.groups),
                 "target_mean": t.targets.mean(), "target_std": t.targets.std()}
                for t in self.tasks
            ]
        )

    def __repr__(self) -> str:
        return f"TaskSet({self.name!r}, {len(self)} tasks, {sum(len(t) for t in self)} points)"

    # ------------------------------------------------------------------ episodes
    def episode(
        self, task: int | str | Task, k_support: int, k_query: int | None = None, seed: int = 0
    ) -> Episode:
        """Sample a support set of ``k_support`` points and a disjoint query set.

        ``k_support`` is an integer in ``[0, n - 1]``; ``k_support=0`` is a zero-shot episode
        (``support=None``, the query a seeded random part of the task). ``k_query=None`` uses all
        remaining points as the query, else an integer in ``[1, n - k_support]``. Deterministic for
        a seed. Bad values raise ``TypeError``/``ValueError`` naming the argument and the fix.

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.arange(10.0).reshape(5, 2), np.arange(5.0), ["a"] * 5)
        >>> ep = ts.episode("a", k_support=2, seed=0)
        >>> len(ep.support), len(ep.query)
        (2, 3)
        """
        if not isinstance(task, (Task, str, numbers.Integral)) or isinstance(task, bool):
            raise TypeError(f"task must be a task name, an index or a Task, got {task!r} ({type(task).__name__}).")
        t = task if isinstance(task, Task) else self[task]
        return sample_episode(t, k_support, k_query, seed)

    def meta_batch(
        self, n_tasks: int, k_support: int, k_query: int | None = None, seed: int = 0
    ) -> list[Episode]:
        """``n_tasks`` episodes from distinct random tasks (with replacement if too few tasks).

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.ones((6, 1)), np.arange(6.0), ["a", "a", "a", "b", "b", "b"])
        >>> [len(ep.support) for ep in ts.meta_batch(2, k_support=1, seed=0)]
        [1, 1]
        """
        n_tasks = _check_count("n_tasks", n_tasks, 1)
        k_support = _check_count("k_support", k_support, 1, _K_SUPPORT_HINT)
        rng = np.random.default_rng(seed)
        eligible = [t for t in self.tasks if len(t) > k_support]
        if not eligible:
            raise ValueError(f"No task has more than k_support={k_support} points.")
        replace = n_tasks > len(eligible)
        picks = rng.choice(len(eligible), size=n_tasks, replace=replace)
        seeds = rng.integers(0, 2**31 - 1, size=n_tasks)
        return [sample_episode(eligible[i], k_support, k_query, int(s)) for i, s in zip(picks, seeds)]

    # ------------------------------------------------------------------ splits
    def split_by_group(self, holdout: str | Iterable[str]) -> tuple[TaskSet, TaskSet]:
        """Hold out every task that contains any of the ``holdout`` groups.

        Returns ``(meta_train, meta_test)``. E.g. ``split_by_group("Pt")`` puts every Pt alloy in
        meta-test, so meta-test chemistry is unseen in meta-training.
        """
        hold = set(_as_list(holdout))
        unknown = hold - set(self.all_groups)
        if unknown:
            raise ValueError(f"Unknown group(s) {sorted(unknown)}; groups are {self.all_groups}")
        test = [t.name for t in self.tasks if hold & set(t.groups)]
        train = [t.name for t in self.tasks if not hold & set(t.groups)]
        if not train:
            raise ValueError(f"Holding out {sorted(hold)} leaves no meta-training task.")
        return self.select(train), self.select(test)

    def group_kfold(self, n_splits: int = 5, key: Callable[[Task], str] | None = None
                    ) -> list[tuple[TaskSet, TaskSet]]:
        """Leave-group-out folds: every task of a group lands in the same fold.

        ``key`` maps a task to its group (default: its first group label, e.g. the salt or the
        study). Deterministic (groups sorted by name and size, sklearn's GroupKFold).
        """
        from sklearn.model_selection import GroupKFold

        key = key or (lambda t: t.groups[0] if t.groups else t.name)
        labels = np.array([key(t) for t in self.tasks])
        n_groups = len(set(labels))
        if n_groups < n_splits:
            raise ValueError(f"{n_groups} groups cannot make {n_splits} folds.")
        folds = []
        for tr, te in GroupKFold(n_splits=n_splits).split(np.zeros(len(labels)), groups=labels):
            folds.append((self.select([self.tasks[i].name for i in tr]),
                          self.select([self.tasks[i].name for i in te])))
        return folds

    def random_split(self, test_fraction: float = 0.3, seed: int = 0) -> tuple[TaskSet, TaskSet]:
        """Random task split: for contrast only, since it lets related chemistry leak."""
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self))
        n_test = max(1, int(round(test_fraction * len(self))))
        test = sorted(self.tasks[i].name for i in order[:n_test])
        train = [n for n in self.names if n not in test]
        return self.select(train), self.select(test)

    def task_embedding(self) -> np.ndarray:
        """Per-task vector: mean and std of the standardized point descriptors."""
        d_all = np.vstack([self._descriptors(t) for t in self.tasks])
        mu, sd = d_all.mean(0), d_all.std(0) + 1e-12
        return np.array([
            np.concatenate([((self._descriptors(t) - mu) / sd).mean(0),
                            ((self._descriptors(t) - mu) / sd).std(0)])
            for t in self.tasks
        ])

    def split_by_similarity(
        self, n_clusters: int = 4, test_clusters: int | Sequence[int] = 1, seed: int = 0
    ) -> tuple[TaskSet, TaskSet]:
        """Cluster tasks by their descriptor distribution and hold out whole clusters.

        Agglomerative (Ward) clustering of :meth:`task_embedding`; ``test_clusters`` is a number of
        clusters chosen at random (by ``seed``) or explicit cluster ids. Similar tasks stay on the
        same side, so meta-test is genuinely new chemistry.
        """
        from sklearn.cluster import AgglomerativeClustering

        if n_clusters >= len(self):
            raise ValueError(f"n_clusters={n_clusters} must be below the number of tasks ({len(self)}).")
        labels = AgglomerativeClustering(n_clusters=n_clusters).fit_predict(self.task_embedding())
        if isinstance(test_clusters, int):
            ids = np.random.default_rng(seed).choice(n_clusters, size=test_clusters, replace=False)
        else:
            ids = np.asarray(test_clusters)
        test = [t.name for t, lab in zip(self.tasks, labels) if lab in set(ids.tolist())]
        train = [t.name for t, lab in zip(self.tasks, labels) if lab not in set(ids.tolist())]
        return self.select(train), self.select(test)

    @staticmethod
    def _descriptors(t: Task) -> np.ndarray:
        if t.descriptors is None:
            raise ValueError(f"Task {t.name!r} has no descriptors (needed for similarity).")
        return t.descriptors


def sample_episode(task: Task, k_support: int, k_query: int | None = None, seed: int = 0) -> Episode:
    """Random support/query episode of ``task`` (see :meth:`TaskSet.episode`).

    Example
    -------
    >>> t = Task("a", np.arange(10.0).reshape(5, 2), np.arange(5.0))
    >>> ep = sample_episode(t, k_support=0, k_query=2, seed=0)   # zero-shot: no support
    >>> ep.support is None, len(ep.query)
    (True, 2)
    """
    n = len(task)
    k_support = _check_count("k_support", k_support, 0)
    if k_query is not None:
        k_query = _check_count("k_query", k_query, 1, " Use k_query=None for all remaining points.")
    if k_support >= n:
        raise ValueError(
            f"k_support={k_support} is too large for task {task.name!r} with {n} points: "
            f"need at least one query point, so use k_support <= {n - 1}."
        )
    rest = n - k_support
    if k_query is not None and (k_query < 1 or k_query > rest):
        raise ValueError(f"k_query={k_query} must be in [1, {rest}] for task {task.name!r}.")
    perm = np.random.default_rng(seed).permutation(n)
    s = np.sort(perm[:k_support])
    q = np.sort(perm[k_support: k_support + (k_query if k_query is not None else rest)])
    return Episode(task, s, q, seed)


# ---------------------------------------------------------------------- leakage
@dataclass
class LeakageReport:
    """Nearest-neighbour similarity of meta-test points to meta-train points.

    Distances are Euclidean in descriptor space standardized on meta-train. ``ratio`` is the
    median test-to-train NN distance divided by the median train-to-train NN distance
    (leave-one-out): ~1 or below means meta-test points look like meta-train points (a leaky
    split); well above 1 means meta-test is genuinely new. ``near_duplicate_fraction`` is the share
    of test points closer to a train point than ``dup_quantile`` of the train NN distances.
    ``unseen_group_fraction`` is the share of test tasks with at least one group label (element,
    salt, study) that no meta-train task has: 0 means every test task's chemistry was seen in
    meta-training (as in a random task split), 1 means every test task brings something new.

    Verdict: *leaky* when more than 5 % of test points are near-duplicates, or when no test task
    has an unseen group and the test points are not farther from train than train points are from
    each other (ratio < 1.5).
    """

    median_nn_test_to_train: float
    median_nn_train_to_train: float
    ratio: float
    near_duplicate_fraction: float
    shared_groups: list[str]
    n_train_points: int
    n_test_points: int
    unseen_group_fraction: float = 0.0

    @property
    def leaky(self) -> bool:
        return self.near_duplicate_fraction > 0.05 or (self.unseen_group_fraction == 0 and self.ratio < 1.5)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__ | {"shared_groups": ",".join(self.shared_groups)}])

    def __str__(self) -> str:
        verdict = "LEAKY: meta-test looks like meta-train" if self.leaky else "meta-test is new chemistry"
        return (
            f"leakage: {verdict}. Median NN distance test->train {self.median_nn_test_to_train:.3g} vs "
            f"train->train {self.median_nn_train_to_train:.3g} (ratio {self.ratio:.2f}); "
            f"{100 * self.near_duplicate_fraction:.1f}% near-duplicates; "
            f"{100 * self.unseen_group_fraction:.0f}% of test tasks have a group unseen in meta-train; "
            f"shared groups: {self.shared_groups or 'none'}"
        )


def _stack(tasks: Iterable[Task], max_points: int | None, rng) -> np.ndarray:
    d = np.vstack([TaskSet._descriptors(t) for t in tasks])
    if max_points is not None and len(d) > max_points:
        d = d[rng.choice(len(d), max_points, replace=False)]
    return d


def _nn_report(train_d: np.ndarray, test_d: np.ndarray, dup_quantile: float):
    from sklearn.neighbors import NearestNeighbors

    mu, sd = train_d.mean(0), train_d.std(0)
    sd[sd < 1e-12] = 1.0
    a, b = (train_d - mu) / sd, (test_d - mu) / sd
    nn = NearestNeighbors(n_neighbors=2).fit(a)
    d_tt = nn.kneighbors(a)[0][:, 1]
    d_te = nn.kneighbors(b, n_neighbors=1)[0][:, 0]
    ref = float(np.median(d_tt))
    thr = float(np.quantile(d_tt, dup_quantile))
    return float(np.median(d_te)), ref, float(np.median(d_te) / max(ref, 1e-12)), float(np.mean(d_te <= thr))


def leakage_report(
    train: TaskSet | Task, test: TaskSet | Task, max_points: int | None = 5000,
    dup_quantile: float = 0.05, seed: int = 0,
) -> LeakageReport:
    """Measure how close meta-test points are to meta-train points (see :class:`LeakageReport`).

    Also works for one episode: ``leakage_report(ep.support, ep.query)``.
    """
    rng = np.random.default_rng(seed)
    tr = [train] if isinstance(train, Task) else list(train)
    te = [test] if isinstance(test, Task) else list(test)
    a, b = _stack(tr, max_points, rng), _stack(te, max_points, rng)
    if len(a) < 2:
        raise ValueError("leakage_report needs at least 2 train points.")
    m_te, m_tt, ratio, dup = _nn_report(a, b, dup_quantile)
    train_groups = {g for t in tr for g in t.groups}
    shared = sorted(train_groups & {g for t in te for g in t.groups})
    unseen = float(np.mean([bool(set(t.groups) - train_groups) for t in te]))
    return LeakageReport(m_te, m_tt, ratio, dup, shared, len(a), len(b), unseen)
