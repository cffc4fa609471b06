"""nanonb.baselines.nets: the fine-tune of a pooled network, plain and with a Gaussian prior on its weights."""

import copy

import numpy as np
import torch

from nanonb.baselines.nets import FineTune, Pooled
from nanonb.tasks import Task, TaskSet


def _pooled() -> tuple[Pooled, Task]:
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(6):
        x = rng.normal(size=(20, 2))
        tasks.append(Task(f"t{i}", x, np.sin(x[:, 0]) + 0.3 * i * x[:, 1]))
    pooled = Pooled(model="MLP", model_kwargs={"n_in": 2, "hidden": [16]}, epochs=3, batch_size=16).fit(TaskSet(tasks))
    x = rng.normal(size=(12, 2))
    return pooled, Task("new", x, np.sin(x[:, 0]) + 2.0 + x[:, 1])


def test_prior_zero_is_the_plain_adam_fine_tune_bit_for_bit():
    pooled, task = _pooled()
    support, query = task.subset(range(5)), task.subset(range(5, 12))
    got = FineTune(pooled, steps=30, lr=1e-2).adapt(support).predict(query)
    model = copy.deepcopy(pooled.model)
    x, y = pooled.scaler.x(support, 0.0), pooled.scaler.y(support.targets)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        by_hand = pooled.scaler.y_inv(model(pooled.scaler.x(query, 0.0)))
    np.testing.assert_array_equal(got, by_hand)


def test_the_prior_shrinks_a_tiny_support_fit_towards_the_pooled_network():
    pooled, task = _pooled()
    support, query = task.subset(range(3)), task.subset(range(3, 12))
    base = pooled.adapt(None).predict(query)
    dist = {lam: np.abs(FineTune(pooled, steps=200, lr=1e-2, prior=lam).adapt(support).predict(query) - base).mean()
            for lam in (0.0, 1.0, 100.0)}
    assert dist[0.0] > dist[1.0] > dist[100.0], dist
    assert dist[100.0] < 0.05 * dist[0.0], dist                        # a strong prior: (almost) the pooled curve
    fitted = FineTune(pooled, steps=200, lr=1e-2, prior=0.03).adapt(support).predict(support)
    before = pooled.adapt(None).predict(support)
    assert np.abs(fitted - support.targets).mean() < np.abs(before - support.targets).mean()
