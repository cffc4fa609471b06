"""Iterative refinement: feed campaign measurements back into meta-training.

:func:`refine` adds the acquired points to the meta-training set (a new :class:`~nanonb.tasks.TaskSet`)
and continues meta-training (``fit`` continues from the current weights).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from ..tasks import Task, TaskSet
from .campaign import CampaignResult


def acquired_tasks(campaigns: Sequence[CampaignResult], tasks: TaskSet | Sequence[Task]) -> list[Task]:
    """One task per campaigned system holding the union of its measured points (sorted by index).

    Example
    -------
    >>> new = acquired_tasks(runs, test)   # runs from compare_strategies   # doctest: +SKIP
    """
    by_name = {t.name: t for t in tasks}
    idx: dict[str, set[int]] = {}
    for c in campaigns:
        if c.task not in by_name:
            raise KeyError(f"campaign task {c.task!r} is not among the given tasks")
        idx.setdefault(c.task, set()).update(int(i) for i in c.measured)
    return [by_name[n].subset(sorted(ix)) for n, ix in idx.items()]


def augment_taskset(train: TaskSet, new_tasks: Sequence[Task], suffix: str = " [acquired]") -> TaskSet:
    """A new meta-training set: ``train`` plus ``new_tasks`` (renamed with ``suffix`` on a name clash).

    Example
    -------
    >>> augmented = augment_taskset(train, acquired_tasks(runs, test))   # doctest: +SKIP
    >>> len(augmented) == len(train) + len({r.task for r in runs})        # doctest: +SKIP
    """
    names = set(train.names)
    added = []
    for t in new_tasks:
        if t.name in names:
            t = copy.copy(t)
            t.name = t.name + suffix
        if t.name in names:
            raise ValueError(f"task {t.name!r} is already in the meta-training set")
        names.add(t.name)
        added.append(t)
    return TaskSet([*train.tasks, *added], name=train.name, feature_names=train.feature_names)


def refine(learner, train: TaskSet, campaigns: Sequence[CampaignResult], tasks: TaskSet | Sequence[Task],
           n_iterations: int = 200, progress: bool = False) -> TaskSet:
    """Feed the campaigns' measured points back into meta-training and continue ``learner.fit``.

    Returns the augmented meta-training set. ``learner`` (a MetaLearner, BayesianMetaLearner or
    EnsembleMetaLearner) keeps its weights and target scaling and trains ``n_iterations`` more
    iterations on the augmented set.

    Example
    -------
    >>> augmented = refine(bml.copy(), train, runs, test, n_iterations=200)   # doctest: +SKIP
    """
    augmented = augment_taskset(train, acquired_tasks(campaigns, tasks))
    learner.fit(augmented, n_iterations=n_iterations, progress=progress)
    return augmented
