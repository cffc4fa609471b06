"""nanonb.bench.memo: one fit per training set and one adaptation per support, shared by the callers."""

import numpy as np
import pytest

from nanonb.bench.memo import MemoAdapt, once_per_trainset
from nanonb.learners.stack import StackLearner
from nanonb.tasks import Task


class _Shift:
    """Predicts the support mean; counts its adaptations."""

    kind, name = "baseline", "shift"

    def __init__(self):
        self.calls = []

    def adapt(self, support, **kw):
        self.calls.append((None if support is None else len(support), kw))
        m = 0.0 if support is None else float(np.mean(support.targets))
        return type("P", (), {"predict": lambda self, x: np.full(len(x), m)})()


def _task(y, name="t"):
    y = np.asarray(y, dtype=float)
    return Task(name, np.arange(2.0 * len(y)).reshape(-1, 2), y)


def test_equal_supports_share_one_adaptation_and_others_do_not():
    inner = _Shift()
    m = MemoAdapt(inner)
    a = m.adapt(_task([1.0, 2.0]))
    assert m.adapt(_task([1.0, 2.0])) is a and len(inner.calls) == 1          # equal content: memo
    assert m.adapt(_task([1.0, 3.0])) is not a and len(inner.calls) == 2      # other targets
    assert m.adapt(_task([1.0, 2.0], name="u")) is not a and len(inner.calls) == 3  # other task
    m.adapt(None), m.adapt(None), m.adapt(_task([1.0, 2.0]), steps=3)
    assert len(inner.calls) == 6                                               # None and kwargs pass through
    assert (m.name, m.kind, m.learner) == ("shift", "baseline", inner)         # attributes are the learner's


def test_the_memo_keeps_the_maxsize_most_recently_used_predictors():
    inner = _Shift()
    m = MemoAdapt(inner, maxsize=2)
    a, b = m.adapt(_task([1.0])), m.adapt(_task([2.0]))
    assert m.adapt(_task([1.0])) is a and len(inner.calls) == 2               # a is now the most recent
    m.adapt(_task([3.0]))                                                      # evicts b, the least recent
    assert len(m._memo) == 2 and m.adapt(_task([1.0])) is a and len(inner.calls) == 3
    assert m.adapt(_task([2.0])) is not b and len(inner.calls) == 4            # b was adapted again
    with pytest.raises(ValueError, match="maxsize >= 1"):
        MemoAdapt(inner, maxsize=0)


def test_a_stack_reuses_its_members_adaptation_with_the_same_predictions():
    inner = _Shift()
    member = MemoAdapt(inner)
    s = _task([1.0, 3.0])
    alone = member.adapt(s).predict(np.zeros((4, 2)))
    stack = StackLearner([member, MemoAdapt(_Shift())], weights=[0.5, 0.5], scale="mean", name="stack")
    np.testing.assert_array_equal(stack.adapt(s).predict(np.zeros((4, 2))), alone)
    assert len(inner.calls) == 1


def test_once_per_trainset_keeps_the_last_size_sets():
    class _TS:
        def __init__(self, *names):
            self.names = list(names)

    calls = []
    once = once_per_trainset(lambda tr: calls.append(tuple(tr.names)) or object(), size=2)
    a, b = once(_TS("a")), once(_TS("b"))
    assert once(_TS("a")) is a and once(_TS("b")) is b and len(calls) == 2
    once(_TS("c"))                                                  # evicts "a", the oldest
    assert once(_TS("b")) is b and once(_TS("a")) is not a and len(calls) == 4
