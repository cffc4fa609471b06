"""OnDescriptors: a tabular learner that takes structure tasks (:mod:`nanonb.learners.descriptors`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.learners.descriptors import OnDescriptors
from nanonb.tasks import Task, TaskSet, descriptor_task


def _structure_like_tasks(n_tasks: int = 6, n: int = 30) -> TaskSet:
    """Tasks whose inputs are not tabular (lists) but that carry descriptors: y = d @ w + offset."""
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(n_tasks):
        d = rng.normal(size=(n, 3))
        y = d @ np.array([0.5, -1.0, 0.2]) + 0.3 * i
        tasks.append(Task(f"t{i}", [f"structure {j}" for j in range(n)], y, groups=(f"g{i}",), descriptors=d))
    return TaskSet(tasks, name="toy")


def test_descriptor_task_keeps_targets_and_swaps_inputs():
    t = _structure_like_tasks()[0]
    d = descriptor_task(t)
    assert d.is_tabular and d.inputs.dtype == np.float32 and d.inputs.shape == (30, 3)
    assert np.array_equal(d.targets, t.targets) and d.name == t.name and d.groups == t.groups
    assert descriptor_task(d) is d
    with pytest.raises(ValueError, match="no descriptors"):
        descriptor_task(Task("bare", ["s1", "s2", "s3", "s4"], np.zeros(4)))


def test_on_descriptors_matches_the_wrapped_learner_on_descriptor_tasks():
    torch.set_num_threads(1)
    ts = _structure_like_tasks()
    train, test = ts.select(["t0", "t1", "t2", "t3", "t4"]), ts.select(["t5"])
    wrapped = OnDescriptors(BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=30,
                                                k_support=(0, 10), seed=0))
    assert wrapped.fit(train, progress=False) is wrapped and wrapped.name == "bml" and wrapped.kind == "meta"
    ep = test.episode("t5", 5, seed=0)
    mean, std = wrapped.adapt(ep.support).predict_dist(ep.query)
    direct = wrapped.learner.adapt(descriptor_task(ep.support)).predict_dist(descriptor_task(ep.query))
    np.testing.assert_allclose(mean, direct[0])
    np.testing.assert_allclose(std, direct[1])
    assert np.all(std > 0) and wrapped.noise_std > 0  # attributes of the wrapped learner pass through
    zero = wrapped.adapt(None).predict(ep.query)
    assert zero.shape == mean.shape and not np.allclose(zero, mean)


def test_on_descriptors_wraps_a_learner_whose_fit_takes_no_val():
    """DKT.fit has no ``val``: the wrapper passes one only when given."""
    import numpy as np

    from nanonb.learners.descriptors import OnDescriptors
    from nanonb.tasks import Task, TaskSet

    calls = []

    class NoVal:
        name = "noval"

        def fit(self, train, progress=False):
            calls.append(len(train))
            return self

    rng = np.random.default_rng(0)
    tasks = [Task(f"t{i}", [object()] * 6, rng.normal(size=6), descriptors=rng.normal(size=(6, 3))) for i in range(3)]
    OnDescriptors(NoVal()).fit(TaskSet(tasks, name="s"), progress=False)
    assert calls == [3]
