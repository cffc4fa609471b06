"""A collection of tasks: :class:`TaskSet` (construction, episode sampling, chemistry-aware splits).

A :class:`TaskSet` holds the tasks and makes the splits: by group (hold out every task that
contains an element / salt / study), by similarity clustering, or at random (for contrast only).
:func:`~nanonb.tasks.leakage.leakage_report` measures how close meta-test points sit to meta-train
points so that a leaky split is visible.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering
from sklearn.model_selection import GroupKFold

from ._validate import K_SUPPORT_HINT, check_arrays, check_count
from .frame import frame_tasks
from .task import Episode, Task, sample_episode


def _as_list(x: str | Iterable[str]) -> list[str]:
    return [x] if isinstance(x, str) else [str(v) for v in x]


class TaskSet:
    """A collection of tasks with episode sampling and splits.

    Build one with :meth:`from_frame` (a long table, one task per value of a column) or
    :meth:`from_arrays`, or from :class:`~nanonb.tasks.task.Task` objects (``name`` labels the set;
    ``feature_names`` the input columns). Index by task name or position; :meth:`episode` samples a
    support/query split; :meth:`split_by_group`, :meth:`group_kfold`, :meth:`split_by_similarity`
    and :meth:`random_split` return ``(meta_train, meta_test)`` task sets. Targets keep each task's
    ``target_unit`` (eV/atom for nanoalloys, log10(mS/cm) for CALiSol-23, a z-score for LNPDB).

    Example
    -------
    >>> ts = TaskSet.from_arrays(np.arange(12.0).reshape(6, 2), np.linspace(-0.1, 0.0, 6),
    ...                          ["Cu-Pt", "Cu-Pt", "Cu-Pt", "Ag-Au", "Ag-Au", "Ag-Au"],
    ...                          groups={"Cu-Pt": ("Cu", "Pt"), "Ag-Au": ("Ag", "Au")}, name="demo")
    >>> ts, ts.names, ts.all_groups
    (TaskSet('demo', 2 tasks, 6 points), ['Ag-Au', 'Cu-Pt'], ['Ag', 'Au', 'Cu', 'Pt'])
    >>> meta_train, meta_test = ts.split_by_group("Pt")      # every Pt task is held out
    >>> meta_train.names, meta_test.names
    (['Ag-Au'], ['Cu-Pt'])
    >>> ts.episode("Cu-Pt", k_support=1, seed=0)
    Episode('Cu-Pt', support=1, query=2, seed=0)
    """

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
        features: Sequence[str] | None,
        target: str,
        groups: str | Sequence[str] | Callable[[pd.DataFrame], Iterable[str]] | None = None,
        meta: Sequence[str] | None = None,
        min_points: int = 1,
        target_unit: str = "",
        name: str = "",
        roles: Mapping[str, str] | None = None,
        units: Mapping[str, str] | None = None,
    ) -> TaskSet:
        """Build tasks from a long DataFrame, one task per value of column ``task``.

        ``features`` and ``meta`` are column names (a list, or one name). ``groups`` is a column name
        (its unique values in a task become the task's groups), a list of column names (labels in
        the order of the columns, each column's labels stored under its name in
        ``Task.group_keys``, so ``group_kfold(key="salt")`` names the column it splits by), or a
        function of the task's sub-frame returning group labels. Tasks with fewer than
        ``min_points`` rows are skipped. The frame is not modified.

        ``roles`` names the physical columns (``{"temperature": "T_C", "concentration": "molality"}``,
        see :data:`nanonb.tasks.roles.ROLES`) and ``units`` their units (``{"temperature": "degC",
        "concentration": "mol/kg", "target": "log10 S/cm"}``): role columns become features under
        canonical names (``temperature_K`` in K, ``concentration``), converted and checked against
        the values' apparent scale; a conductivity target is converted to log10(mS/cm). The task set
        records the roles (``ts.roles``: role -> feature name, ``ts.units``) and what became of every
        column (``ts.column_report``); numeric columns left unused are named in a warning.

        Everything is checked up front, and an error names the argument, the value and the fix:
        a column that is missing (``KeyError``), listed twice or present twice in the frame, the
        target listed as a feature (a label leak), missing task ids or group labels, a non-numeric
        feature or target (``TypeError``), NaN/inf in a feature or the target of a kept task (the
        column and the task are named), task ids that print alike (``1`` and ``"1"``), a unit that
        does not fit the numbers, and no task with ``min_points`` rows.

        Example
        -------
        >>> df = pd.DataFrame({"system": ["a", "a", "b", "b"], "salt": ["X", "X", "Y", "Y"],
        ...                    "x": [0.1, 0.2, 0.3, 0.4], "y": [1.0, 2.0, 3.0, 4.0]})
        >>> ts = TaskSet.from_frame(df, task="system", features=["x"], target="y", groups="salt")
        >>> ts.names, ts["b"].groups, ts["b"].inputs.shape
        (['a', 'b'], ('Y',), (2, 1))
        >>> df["T_C"] = [25.0, 40.0, 25.0, 40.0]                       # °C
        >>> ts = TaskSet.from_frame(df, "system", ["x"], "y", roles={"temperature": "T_C"},
        ...                         units={"temperature": "degC"})
        >>> ts.feature_names, ts["a"].inputs[:, 1].tolist()           # K
        (['x', 'temperature_K'], [298.1499938964844, 313.1499938964844])
        """
        tasks, names, attrs = frame_tasks(df, task, features, target, groups, meta, min_points, target_unit,
                                          roles, units)
        out = cls(tasks, name=name, feature_names=names)
        out.__dict__.update(attrs)
        return out

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
        inputs, targets, task_ids, unique_ids = check_arrays(inputs, targets, task_ids, groups)
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

    def with_tasks(self, tasks: Iterable[Task], name: str | None = None) -> TaskSet:
        """A new TaskSet of ``tasks`` that keeps this set's name (unless ``name`` is given), its
        ``feature_names`` and the extra attributes a loader attached (e.g. ``feature_mean``,
        ``feature_std``, ``quality_report``), so every split and view keeps them.

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.ones((4, 1)), np.arange(4.0), ["a", "a", "b", "b"], name="demo")
        >>> ts.feature_mean = np.zeros(1)                  # attached by a loader
        >>> view = ts.with_tasks([ts["a"]])
        >>> view.names, view.name, view.feature_mean.tolist()
        (['a'], 'demo', [0.0])
        """
        out = TaskSet(tasks, name=self.name if name is None else name, feature_names=self.feature_names)
        for key, value in self.__dict__.items():
            if key not in out.__dict__:
                setattr(out, key, value)
        return out

    def select(self, names: Iterable[str]) -> TaskSet:
        """The named tasks as a new TaskSet; extra attributes a loader attached (e.g. ``feature_mean``,
        ``feature_std``, ``quality_report``) carry over, so every split keeps them (see :meth:`with_tasks`).

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.ones((4, 1)), np.arange(4.0), ["a", "a", "b", "b"])
        >>> ts.select(["b"]).names
        ['b']
        """
        return self.with_tasks([self[n] for n in names])

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
        n_tasks = check_count("n_tasks", n_tasks, 1)
        k_support = check_count("k_support", k_support, 1, K_SUPPORT_HINT)
        rng = np.random.default_rng(seed)
        eligible = [t for t in self.tasks if len(t) > k_support]
        if not eligible:
            raise ValueError(f"No task has more than k_support={k_support} points.")
        replace = n_tasks > len(eligible)
        picks = rng.choice(len(eligible), size=n_tasks, replace=replace)
        seeds = rng.integers(0, 2**31 - 1, size=n_tasks)
        return [sample_episode(eligible[i], k_support, k_query, int(s)) for i, s in zip(picks, seeds)]

    def episodes(self, task: int | str | Task, k_support: int, k_query: int | None = None,
                 seeds: Iterable[int] = range(10)) -> list[Episode]:
        """One episode per seed: ``[self.episode(task, k_support, k_query, seed=s) for s in seeds]``.

        The seeds are the ones you give (``seeds=range(20)`` gives the episodes of seeds 0 to 19), so an
        evaluation can be repeated by hand; :func:`nanonb.evaluation.evaluate` takes the same ``seeds``.

        Example
        -------
        >>> ts = TaskSet.from_arrays(np.arange(10.0).reshape(5, 2), np.arange(5.0), ["a"] * 5)
        >>> [ep.seed for ep in ts.episodes("a", k_support=2, seeds=range(3))]
        [0, 1, 2]
        """
        return [self.episode(task, k_support, k_query, seed=int(s)) for s in seeds]

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

    def group_kfold(self, n_splits: int = 5, key: str | Callable[[Task], str] | None = None
                    ) -> list[tuple[TaskSet, TaskSet]]:
        """Leave-group-out folds: every task of a group lands in the same fold.

        ``key`` is the name of a group key (a group column of :meth:`from_frame`, e.g.
        ``key="polymer"``; every task must have one label under it) or a function mapping a task to its
        group. Without ``key``: the one group key the tasks have; tasks with several named keys must
        name one (``ValueError`` listing them); tasks without named keys use their first group label
        (the salt of CALiSol-23, the study of LNPDB). Deterministic (sklearn's GroupKFold).

        Example
        -------
        >>> df = pd.DataFrame({"t": list("abcdef"), "polymer": list("PPQQRR"), "salt": list("XYXYXY"),
        ...                    "x": np.arange(6.0), "y": np.arange(6.0)})
        >>> ts = TaskSet.from_frame(df, "t", ["x"], "y", groups=["polymer", "salt"])
        >>> [sorted({t.group_keys["polymer"][0] for t in te}) for _, te in ts.group_kfold(3, key="polymer")]
        [['R'], ['Q'], ['P']]
        """
        if isinstance(key, str):
            key = self._named_key(key)
        elif key is None:
            named = sorted({k for t in self.tasks for k in t.group_keys})
            if len(named) > 1:
                raise ValueError(f"The tasks have several group keys {named}; name the one to split by, e.g. "
                                 f"group_kfold({n_splits}, key={named[0]!r}).")
            key = self._named_key(named[0]) if named else (lambda t: t.groups[0] if t.groups else t.name)
        labels = np.array([key(t) for t in self.tasks])
        n_groups = len(set(labels))
        if n_groups < n_splits:
            raise ValueError(f"{n_groups} groups cannot make {n_splits} folds.")
        folds = []
        for tr, te in GroupKFold(n_splits=n_splits).split(np.zeros(len(labels)), groups=labels):
            folds.append((self.select([self.tasks[i].name for i in tr]),
                          self.select([self.tasks[i].name for i in te])))
        return folds

    def _named_key(self, key: str) -> Callable[[Task], str]:
        """``task -> its one label under group key ``key```` (errors name the key and the task)."""
        for t in self.tasks:
            labels = t.group_keys.get(key)
            if labels is None:
                have = sorted(t.group_keys)
                raise ValueError(f"Task {t.name!r} has no group key {key!r} (its keys: {have}); name a group "
                                 "column of from_frame(groups=...), or pass key=a function of the task.")
            if len(labels) != 1:
                raise ValueError(f"Task {t.name!r} has {len(labels)} labels under {key!r} ({list(labels)[:5]}), so "
                                 "it belongs to no single fold; split the task or group by another key.")
        return lambda t: t.group_keys[key][0]

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



def descriptor_task(task: Task) -> Task:
    """``task`` with its descriptors (float32, ``(n, n_descriptors)``) as inputs; targets, units,
    metadata, groups and descriptors unchanged. A task whose inputs already are its descriptors is
    returned as is.

    Example
    -------
    >>> t = Task("a", [object()] * 3, [1.0, 2.0, 3.0], descriptors=np.eye(3))   # structure-like inputs
    >>> d = descriptor_task(t)
    >>> d.inputs.shape, descriptor_task(d) is d
    ((3, 3), True)
    """
    if task.descriptors is None:
        raise ValueError(f"Task {task.name!r} has no descriptors to use as inputs: use tasks with descriptors "
                         "(e.g. load_nanoalloys()), or pass tabular tasks to the learner itself.")
    d = np.asarray(task.descriptors, dtype=np.float32)
    if task.is_tabular and np.shape(task.inputs) == d.shape and np.array_equal(task.inputs, d):
        return task
    return Task(task.name, d, task.targets, task.meta, task.groups, task.descriptors, task.target_name,
                task.target_unit, task.group_keys)


def descriptor_tasks(ts: TaskSet) -> TaskSet:
    """The same tasks with the descriptors as (tabular) model inputs, e.g. an MLP on cluster descriptors.

    :func:`descriptor_task` of every task: targets, metadata, groups and descriptors are unchanged; only
    ``inputs`` is replaced (float32,
    shape ``(n, p)``, in the descriptors' own units). The new set is named ``"<name> (descriptor
    inputs)"`` and keeps ``feature_names``.

    Example
    -------
    >>> t = Task("a", [object()] * 3, [1.0, 2.0, 3.0], descriptors=np.eye(3))   # structure-like inputs
    >>> descriptor_tasks(TaskSet([t], name="demo"))["a"].inputs.shape
    (3, 3)
    """
    return TaskSet([descriptor_task(t) for t in ts], name=f"{ts.name} (descriptor inputs)",
                   feature_names=getattr(ts, "feature_names", None))


def condition_tasks(ts: TaskSet, names: Sequence[str]) -> TaskSet:
    """The same tasks with descriptor columns ``names`` attached to every structure as its conditions.

    For graph networks that take per-structure condition variables (``n_conditions=len(names)``; see
    :mod:`nanonb.models.gnn`), e.g. the nanoalloys' ``("strain", "rattle_std_A")``. ``ts.feature_names``
    names the descriptor columns. Structures are copied (:attr:`nanonb.graphs.Structure.conditions` set, in
    the descriptors' units); targets, descriptors, groups and metadata are unchanged.

    Example
    -------
    >>> from nanonb.graphs import Structure
    >>> s = Structure([29], [[0.0, 0.0, 0.0]])
    >>> t = Task("a", [s, s], [1.0, 2.0], descriptors=np.array([[0.1, 5.0], [0.2, 6.0]]))
    >>> ct = condition_tasks(TaskSet([t], feature_names=["strain", "T_K"]), ["T_K"])
    >>> [float(x.conditions[0]) for x in ct["a"].inputs], s.conditions is None
    ([5.0, 6.0], True)
    """
    features = list(getattr(ts, "feature_names", None) or [])
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"condition_tasks: {missing} are not descriptor columns of {ts.name!r} "
                         f"(feature_names: {features})")
    cols = [features.index(n) for n in names]
    out = []
    for t in ts:
        if t.is_tabular or t.descriptors is None:
            raise ValueError(f"condition_tasks needs structure tasks with descriptors; {t.name!r} has "
                             f"{'tabular inputs' if t.is_tabular else 'no descriptors'}")
        d = np.asarray(t.descriptors, dtype=np.float64)[:, cols]
        structures = [dataclasses.replace(s, conditions=d[i]) for i, s in enumerate(t.inputs)]
        out.append(Task(t.name, structures, t.targets, t.meta, t.groups, t.descriptors, t.target_name,
                        t.target_unit))
    return TaskSet(out, name=f"{ts.name} (conditions: {', '.join(names)})", feature_names=ts.feature_names)
