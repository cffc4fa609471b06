"""Run a tabular learner on the per-structure descriptors of structure tasks (:class:`OnDescriptors`).

The nanoalloy tasks carry, next to each cluster's structure (the graph-network input), a row of
cluster descriptors (composition, bond fractions, strain, rattle amplitude, ...; see
:data:`nanonb.data.nanoalloys.DESCRIPTOR_NAMES`). :class:`OnDescriptors` wraps a learner that needs
tabular inputs (e.g. :class:`~nanonb.learners.alpaca.BayesianMetaLearner` with ``model="MLP"``) so that
it takes the *structure* tasks directly: every task is swapped for its descriptor view on the way in.
The tasks themselves keep their structures, so a widget or a notebook can show the 3D support
clusters of the very episode the learner adapted on, and compare it with graph-network baselines on
the same episodes.

Example
-------
>>> from nanonb.learners.alpaca import BayesianMetaLearner
>>> learner = OnDescriptors(BayesianMetaLearner(model="MLP", n_iterations=200))
>>> learner.name
'bml'
>>> learner.fit(meta_train)                                          # doctest: +SKIP
>>> mean, std = learner.adapt(ep.support).predict_dist(ep.query)      # eV/atom  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tasks import Task, TaskSet, descriptor_task, descriptor_tasks

__all__ = ["OnDescriptors"]


def _convert(inputs: Any) -> Any:
    return descriptor_task(inputs) if isinstance(inputs, Task) else inputs


class _AdaptedOnDescriptors:
    """An adapted learner that converts the tasks it predicts on (see :class:`OnDescriptors`)."""

    def __init__(self, adapted):
        self.adapted = adapted

    def predict(self, inputs) -> np.ndarray:
        """Point predictions (target units, e.g. eV/atom) for a task (or a descriptor matrix)."""
        return np.asarray(self.adapted.predict(_convert(inputs)))

    def predict_dist(self, inputs, **kwargs):
        """Predictive mean and standard deviation (target units); only if the wrapped learner has it."""
        if not hasattr(self.adapted, "predict_dist"):
            raise AttributeError(f"{type(self.adapted).__name__} has no predict_dist")
        return self.adapted.predict_dist(_convert(inputs), **kwargs)

    def __getattr__(self, item):
        if item == "adapted":
            raise AttributeError(item)
        if item == "predict_dist" and not hasattr(self.adapted, "predict_dist"):
            raise AttributeError(item)
        return getattr(self.adapted, item)


class OnDescriptors:
    """A tabular learner that takes structure tasks and uses their descriptors as inputs.

    ``fit(train)``, ``adapt(support)`` and the adapted model's ``predict`` / ``predict_dist``
    (target units, e.g. eV/atom; mean and standard deviation) convert each task with
    :func:`nanonb.tasks.descriptor_task` and call the wrapped ``learner``. Other attributes (``config``,
    ``noise_std``, ``save``, ...) are the wrapped learner's. Adapting twice on the same support
    gives the same predictions as adapting the learner on ``descriptor_task(support)``.

    Parameters
    ----------
    learner:
        A learner for tabular tasks (``fit`` / ``adapt``), e.g. ``BayesianMetaLearner(model="MLP")``.
    name:
        Display name (default: the learner's).

    Example
    -------
    >>> from nanonb.learners.alpaca import BayesianMetaLearner
    >>> bml = OnDescriptors(BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (64, 64)}))
    >>> bml.fit(meta_train, progress=False)                        # doctest: +SKIP
    >>> bml.adapt(ep.support).predict(ep.query)                    # eV/atom  # doctest: +SKIP
    """

    inputs = "descriptors"

    def __init__(self, learner, name: str | None = None):
        self.learner = learner
        self.name = str(name if name is not None else getattr(learner, "name", type(learner).__name__))
        self.kind = getattr(learner, "kind", "meta")

    def __repr__(self) -> str:
        return f"OnDescriptors({self.learner!r})"

    @staticmethod
    def taskset(ts: TaskSet | None) -> TaskSet | None:
        """The descriptor view of a task set (same names, groups and targets)."""
        return None if ts is None else descriptor_tasks(ts)

    def fit(self, train: TaskSet, val: TaskSet | None = None, **kwargs) -> OnDescriptors:
        """Meta-train the wrapped learner on the descriptor views of ``train`` (and ``val``, if given).

        ``val`` is passed on only when given, so learners whose ``fit`` takes no validation set (e.g.
        :class:`~nanonb.learners.dkt.DKT`) can be wrapped too.
        """
        if val is not None:
            kwargs["val"] = self.taskset(val)
        self.learner.fit(self.taskset(train), **kwargs)
        return self

    def adapt(self, support: Task | None, **kwargs) -> _AdaptedOnDescriptors:
        """Adapt the wrapped learner on ``support``'s descriptors (``None``: its zero-shot prediction)."""
        return _AdaptedOnDescriptors(self.learner.adapt(None if support is None else descriptor_task(support),
                                                        **kwargs))

    def __getattr__(self, item):
        if item == "learner":
            raise AttributeError(item)
        return getattr(self.learner, item)
