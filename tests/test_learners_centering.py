"""The MAML family adapts around the support mean (``center="support"``) and fits its support (issue 10)."""

import numpy as np
import pytest
import torch

from nanonb.learners.registry import make_learner
from nanonb.tasks import Task, TaskSet


def offset_sine_tasks(n_tasks=16, n=24, seed=0):
    """y = amp sin(x + phase) + offset with a large task offset (what plain MAML struggles to adapt)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        amp, phase, off = rng.uniform(0.5, 2.0), rng.uniform(0, np.pi), rng.normal(0, 5.0)
        x = rng.uniform(-4, 4, (n, 1))
        tasks.append(Task(f"t{i:02d}", x, amp * np.sin(x[:, 0] + phase) + off, groups=(f"g{i}",)))
    return TaskSet(tasks)


def _learner(algo, center="support", **kw):
    torch.manual_seed(0)
    cfg = {"model_kwargs": {"hidden": (16, 16)}, "inner_lr": 0.5, "inner_steps": 10, "adapt_steps": 50,
           "inner_grad_clip": 1.0, "n_iterations": 15, "k_support": (2, 8), "center": center, "seed": 0, **kw}
    return make_learner(algo, model="MLP", **cfg)


def test_center_is_validated():
    with pytest.raises(ValueError, match="center must be"):
        make_learner("anil", model="MLP", center="task")


def test_k1_prediction_is_anchored_on_the_support_value():
    """With one support point the centred inner loss is zero: prediction = y_1 + f(x) - f(x_1)."""
    ts = offset_sine_tasks(4)
    learner = _learner("fomaml", n_iterations=1)
    learner.fit(ts, progress=False)
    task = ts[0]
    sup = Task("s", task.inputs[:1], task.targets[:1])
    pred = learner.adapt(sup).predict(task)
    assert pred[0] == pytest.approx(task.targets[0], abs=1e-5)
    raw = learner.adapt(None).predict(task)
    assert np.allclose(pred - pred[0], raw - raw[0], atol=1e-4)


@pytest.mark.parametrize("algo", ["maml", "fomaml", "anil", "metasgd"])
def test_support_loss_after_adapt_is_well_below_the_loss_before_on_held_out_tasks(algo):
    ts = offset_sine_tasks()
    train, test = ts.select(ts.names[:12]), ts.select(ts.names[12:])
    learner = _learner(algo).fit(train, progress=False)
    before, after = [], []
    for i, task in enumerate(test):
        ep = test.episode(task, 8, seed=i)
        before.append(learner.support_loss(ep.support, steps=0))
        after.append(learner.support_loss(ep.support))
    assert np.mean(after) < 0.5 * np.mean(before), (before, after)  # at least halved (ANIL: head only)


def test_centering_beats_the_uncentred_learner_on_offset_tasks():
    ts = offset_sine_tasks()
    train, test = ts.select(ts.names[:12]), ts.select(ts.names[12:])

    def mae(learner):
        errs = [np.abs(learner.adapt(ep.support).predict(ep.query) - ep.query.targets).mean()
                for i, t in enumerate(test) for ep in [test.episode(t, 5, seed=i)]]
        return float(np.mean(errs))

    centred = mae(_learner("anil").fit(train, progress=False))
    plain = mae(_learner("anil", center="none").fit(train, progress=False))
    assert centred < plain
