"""Input standardization (nanonb.scaling): near-constant columns and clipping keep new tasks' inputs bounded."""

import numpy as np
import pytest
import torch

from nanonb.learners.registry import make_learner
from nanonb.learners.training import Scaler
from nanonb.scaling import CLIP_STD, clip_standardized, near_constant, standardization
from nanonb.tasks import Task, TaskSet


def _tasks(n_tasks: int, const: float, seed: int) -> TaskSet:
    """Tabular tasks: y = sin(x0) + x1; column 2 is ``const`` with a 1e-7 wobble (near-constant)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_tasks):
        x = rng.normal(size=(20, 3))
        x[:, 2] = const + 1e-7 * rng.normal(size=20)
        out.append(Task(f"t{seed}_{i}", x, np.sin(x[:, 0]) + x[:, 1] + 0.1 * i))
    return TaskSet(out)


def test_near_constant_is_relative_to_the_column_scale():
    x = np.array([[1.0, 5.0, 1e3], [2.0, 5.0 + 1e-7, 1e3 + 1e-4], [3.0, 5.0, 1e3]])
    assert near_constant(x).tolist() == [False, True, True]
    st = standardization(TaskSet([Task("a", x, np.arange(3.0))]))
    assert st["x_std"][1] == 1.0 and st["x_std"][2] == 1.0 and st["x_std"][0] == pytest.approx(x[:, 0].std())


def test_scaler_clips_inputs_of_a_new_task():
    train = _tasks(4, const=5.0, seed=0)
    scaler = Scaler.fit(train)
    z = scaler.x(np.array([[0.0, 0.0, 6.0], [100.0, 0.0, 5.0]]))
    assert float(z.abs().max()) == CLIP_STD
    assert torch.equal(clip_standardized(torch.tensor([-30.0, 1.0])), torch.tensor([-CLIP_STD, 1.0]))


@pytest.mark.parametrize("name, kwargs", [
    ("bml", dict(n_iterations=20, meta_batch_size=4)),
    ("ensemble", dict(n_members=2, algorithm="anil", n_iterations=20, meta_batch_size=4)),
])
def test_learners_stay_bounded_when_a_near_constant_column_changes(name, kwargs):
    """Before the shared rule, column 2's std (1e-7) made the held-out value 6.0 a 1e7-sigma input: the model
    input exploded for both learners, and the ensemble's ANIL heads diverged (predictions ~1e6)."""
    train, test = _tasks(6, const=5.0, seed=0), _tasks(1, const=6.0, seed=1)[0]
    learner = make_learner(name, model="MLP", model_kwargs={"n_in": 3, "hidden": (16, 16)}, seed=0, **kwargs)
    learner.fit(train, progress=False)
    pred = learner.adapt(test.subset(range(5))).predict(test.subset(range(5, 20)))
    assert float(learner.scaler.x(test.inputs).abs().max()) <= CLIP_STD
    spread = np.ptp(np.concatenate([t.targets for t in train]))
    assert np.isfinite(pred).all() and np.abs(pred).max() < 3 * spread
