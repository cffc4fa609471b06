"""One task and its episodes: :class:`Task` (a material system's points), :class:`Episode` (a support/query
split of it) and :func:`sample_episode`.

A *task* is one material system (an element pair, an electrolyte system, a study). An *episode*
splits a task into a support set (the few measurements a model adapts on) and a query set (where it
is evaluated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._validate import check_count, is_missing


class _LazyMeta:
    """The ``meta`` attribute of a :class:`Task`: a plain value, except that a subset's frame is only sliced
    from its parent's (``iloc`` + ``reset_index``) when first read. Episode sampling makes two subsets per
    episode and training never reads their metadata, so this pandas work is skipped on the hot path."""

    def __get__(self, obj, owner=None):
        if obj is None:
            return None  # the dataclass default of ``meta``
        d = obj.__dict__
        rows = d.get("_meta_rows")
        if rows is not None:
            d["_meta"] = rows[0].iloc[rows[1]].reset_index(drop=True)
            d["_meta_rows"] = None
        return d["_meta"] if "_meta" in d else d.get("meta")  # "meta": a Task pickled before this attribute

    def __set__(self, obj, value) -> None:
        obj.__dict__["_meta"] = value
        obj.__dict__["_meta_rows"] = None


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
    target_name, target_unit:
        Name and unit of the target, e.g. ``"mixing_energy"`` in ``"eV/atom"`` (nanoalloys),
        ``"log10_k"`` in ``"log10(mS/cm)"`` (CALiSol-23), ``"efficacy"`` as a ``"z-score"`` (LNPDB).
        Predictions and errors are reported in this unit.
    group_keys:
        Named group labels, ``{key: labels}`` (e.g. ``{"polymer": ("PEO",), "salt": ("LiTFSI",)}``), so a
        split can name the key it groups by (:meth:`TaskSet.group_kfold(key="polymer")
        <nanonb.tasks.taskset.TaskSet.group_kfold>`). Empty when the groups are unnamed.

    Example
    -------
    >>> t = Task("Cu-Pt", np.array([[0.25], [0.50], [0.75]]), [-0.05, -0.08, -0.04],
    ...          groups=("Cu", "Pt"), target_name="mixing_energy", target_unit="eV/atom")
    >>> t, len(t), t.inputs.dtype, t.descriptors.shape       # descriptors default to tabular inputs
    (Task('Cu-Pt', n=3, tabular, groups=('Cu', 'Pt')), 3, dtype('float32'), (3, 1))
    >>> t.subset([0, 2]).targets                              # eV/atom
    array([-0.05, -0.04])
    """

    name: str
    inputs: np.ndarray | Sequence
    targets: np.ndarray
    meta: pd.DataFrame | None = _LazyMeta()  # type: ignore[assignment]  # default None
    groups: tuple[str, ...] = ()
    descriptors: np.ndarray | None = None
    target_name: str = "y"
    target_unit: str = ""
    group_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)

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
        missing = [g for g in groups if is_missing(g)]
        if missing:
            raise ValueError(
                f"Task {self.name!r}: group labels {missing} are missing values; give every task real "
                "group labels (fill the group column, e.g. with 'unknown') or drop those rows."
            )
        self.groups = tuple(str(g) for g in groups)
        self.group_keys = {str(k): (v,) if isinstance(v, str) else tuple(str(x) for x in v)
                           for k, v in dict(self.group_keys or {}).items()}
        self._validated = self._fields_now()

    def _fields_now(self) -> tuple:
        return (self.inputs, self.targets, self.descriptors, self.groups, self.group_keys)

    def __getstate__(self) -> dict:
        self.meta  # noqa: B018  (slice a pending subset's meta, so a pickle does not carry the parent's frame)
        return self.__dict__

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def is_tabular(self) -> bool:
        return isinstance(self.inputs, np.ndarray)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Task:
        """The task restricted to the points ``idx`` (same name and groups).

        A subset of a validated task skips re-validation (its arrays are slices of checked arrays) and slices
        ``meta`` only when it is first read: the same :class:`Task`, made cheaply (episode sampling).
        """
        idx = np.asarray(idx, dtype=int)
        if idx.ndim == 1 and len(idx) and self._trusted():
            return self._trusted_subset(idx)
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
            group_keys=self.group_keys,
        )

    def _trusted(self) -> bool:
        """Whether the validated fields are still the ones :meth:`__post_init__` checked (not reassigned)."""
        checked = self.__dict__.get("_validated")
        return checked is not None and all(a is b for a, b in zip(checked, self._fields_now(), strict=True))

    def _trusted_subset(self, idx: np.ndarray) -> Task:
        """:meth:`subset` without re-validation: the result of ``Task(...)`` on the sliced fields, field by field."""
        out = object.__new__(Task)
        out.name, out.target_name, out.target_unit = self.name, self.target_name, self.target_unit
        out.inputs = self.inputs[idx] if self.is_tabular else [self.inputs[i] for i in idx]
        out.targets = self.targets[idx]
        out.descriptors = None if self.descriptors is None else self.descriptors[idx]
        out.groups, out.group_keys = self.groups, dict(self.group_keys)
        rows = self.__dict__.get("_meta_rows")  # a subset of a subset composes the row indices
        out.__dict__["_meta"] = None
        out.__dict__["_meta_rows"] = (rows[0], rows[1][idx]) if rows is not None else (self.meta, idx)
        out._validated = out._fields_now()
        return out

    def __repr__(self) -> str:
        kind = "tabular" if self.is_tabular else "structures"
        return f"Task({self.name!r}, n={len(self)}, {kind}, groups={self.groups})"


@dataclass
class Episode:
    """A support/query split of one task. ``support_idx`` and ``query_idx`` index ``task``.

    ``support`` and ``query`` are the two parts as :class:`Task` objects (targets in the task's
    ``target_unit``). A zero-shot episode (``k_support=0``) has an empty ``support_idx`` and
    ``support=None``. Usually made by :meth:`TaskSet.episode <nanonb.tasks.taskset.TaskSet.episode>`.

    Example
    -------
    >>> t = Task("a", np.arange(10.0).reshape(5, 2), [0.1, 0.2, 0.3, 0.4, 0.5], target_unit="eV/atom")
    >>> ep = Episode(t, support_idx=np.array([0, 3]), query_idx=np.array([1, 2, 4]))
    >>> ep
    Episode('a', support=2, query=3, seed=None)
    >>> ep.support.targets, ep.query.targets                   # eV/atom
    (array([0.1, 0.4]), array([0.2, 0.3, 0.5]))
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
        for name in ("support", "query"):              # made now; a sampled episode makes them on first read
            self._part(name)

    @classmethod
    def _sampled(cls, task: Task, support_idx: np.ndarray, query_idx: np.ndarray, seed: int) -> Episode:
        """The episode of disjoint indices drawn by :func:`sample_episode` (the overlap check is skipped)."""
        ep = object.__new__(cls)
        ep.task, ep.support_idx, ep.query_idx, ep.seed = task, support_idx, query_idx, seed
        return ep  # ``support`` and ``query`` are made on first access (__getattr__): fit reads only the indices

    def _part(self, name: str) -> Task | None:
        """Make and keep ``support`` or ``query``: the one rule for checked and sampled episodes."""
        idx = self.support_idx if name == "support" else self.query_idx
        value = self.task.subset(idx) if name == "query" or len(idx) else None
        self.__dict__[name] = value
        return value

    def __getattr__(self, name: str):
        """``support`` / ``query`` of a sampled episode, made (and kept) when first read."""
        if name in ("support", "query"):
            return self._part(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return (f"Episode({self.task.name!r}, support={len(self.support_idx)}, "
                f"query={len(self.query_idx)}, seed={self.seed})")


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
    k_support = check_count("k_support", k_support, 0)
    if k_query is not None:
        k_query = check_count("k_query", k_query, 1, " Use k_query=None for all remaining points.")
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
    return Episode._sampled(task, s, q, seed)  # s and q are disjoint parts of one permutation

