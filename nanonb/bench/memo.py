"""Memos for fits shared by several benchmark candidates: one fit per training set, one adaptation per support.

:func:`once_per_trainset` memoises a fit on the meta-train set's task names, so a candidate and the stacks that
contain it share one fitted learner.

In the case studies' nested selection a fitted member (e.g. the MAP fine-tune of CALiSol) is evaluated alone and
inside one or more stacks (:class:`~nanonb.learners.stack.StackLearner`) on the same seeded episodes, so the same,
deterministic adaptation (hundreds of optimiser steps) was computed once per candidate. :class:`MemoAdapt` keeps
the adapted predictor per support (keyed on the support's name, inputs and targets) and hands the same object to
every caller: the predictions are the same numbers, the adaptation runs once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

__all__ = ["MemoAdapt", "once_per_trainset"]


def once_per_trainset(fit: Callable[[object], object], size: int = 1) -> Callable[[object], object]:
    """``fit`` memoised on the meta-train set's task names (the last ``size`` sets): a candidate and a stack
    share it (``size > 1``: also a GP mean fitted on cross-fitting parts and on the whole set).

    Example
    -------
    >>> from nanonb.tasks import Task, TaskSet
    >>> ts = TaskSet([Task("a", np.ones((3, 1)), np.arange(3.0))])
    >>> once = once_per_trainset(lambda tr: object())
    >>> once(ts) is once(TaskSet(list(ts)))
    True
    """
    memo: dict[tuple, object] = {}

    def fitted(train):
        key = tuple(train.names)
        if key not in memo:
            while len(memo) >= size:
                memo.pop(next(iter(memo)))
            memo[key] = fit(train)
        return memo[key]
    return fitted


def _support_key(support) -> tuple | None:
    """``(name, shape, digest of inputs and targets)``; None when the inputs are not one numeric array."""
    x = getattr(support, "inputs", None)
    if not isinstance(x, np.ndarray) or x.dtype == object:
        return None
    y = np.ascontiguousarray(np.asarray(support.targets))
    h = hashlib.sha1(np.ascontiguousarray(x).tobytes())
    h.update(y.tobytes())
    return getattr(support, "name", None), x.shape, str(x.dtype), y.shape, str(y.dtype), h.hexdigest()


class MemoAdapt:
    """``learner.adapt(support)`` memoised on the support's content; other attributes are the learner's.

    Only for a learner whose adaptation is deterministic given the support (full-batch fine-tuning, a GP fit):
    a second call with an equal support returns the first call's predictor. ``adapt(None)``, an empty support,
    extra keyword arguments and non-array inputs (graphs) are passed through without the memo. The memo keeps the
    ``maxsize`` most recently used predictors (default 4096: more than the supports one case-study fold evaluates,
    560 outer plus the inner episodes), so its memory is bounded.

    Example
    -------
    >>> class Count:
    ...     calls = 0
    ...     def adapt(self, support):
    ...         Count.calls += 1
    ...         return object()
    >>> from nanonb.tasks import Task
    >>> s = Task("a", np.ones((3, 2)), np.arange(3.0))
    >>> m = MemoAdapt(Count())
    >>> m.adapt(s) is m.adapt(Task("a", np.ones((3, 2)), np.arange(3.0))), Count.calls
    (True, 1)
    """

    def __init__(self, learner, maxsize: int = 4096):
        if maxsize < 1:
            raise ValueError(f"MemoAdapt(maxsize={maxsize}): keep at least one adapted predictor (maxsize >= 1)")
        self.learner, self.maxsize = learner, maxsize
        self._memo: OrderedDict[tuple, object] = OrderedDict()

    def adapt(self, support, **kw):
        key = None if support is None or kw or len(support) == 0 else _support_key(support)
        if key is None:
            return self.learner.adapt(support, **kw)
        if key in self._memo:
            self._memo.move_to_end(key)
        else:
            while len(self._memo) >= self.maxsize:
                self._memo.popitem(last=False)         # the least recently used
            self._memo[key] = self.learner.adapt(support)
        return self._memo[key]

    def __getattr__(self, item):
        if item in ("learner", "maxsize", "_memo"):
            raise AttributeError(item)
        return getattr(self.learner, item)

    def __repr__(self) -> str:
        return f"MemoAdapt({self.learner!r})"
