"""Fast test-time adaptation (:mod:`nanonb.bench.adaptation`) equals the learners' own ``adapt``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.bench.adaptation import FastMeta, adapt_many, fast_adapt
from nanonb.learners import make_learner
from nanonb.tasks import TaskSet


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 3)).astype(np.float32)
    ids = np.repeat(np.arange(4), 40)
    y = x @ np.array([1.0, -2.0, 0.5]) + ids * 0.7 + 0.05 * rng.normal(size=160)
    return TaskSet.from_arrays(x, y, ids)


@pytest.mark.parametrize("algorithm", ["fomaml", "anil", "metasgd"])
def test_fast_adapt_and_adapt_many_match_adapt(tasks, algorithm):
    torch.manual_seed(0)
    learner = make_learner(algorithm, model="MLP", model_kwargs={"hidden": [16]}, n_iterations=3, seed=0,
                           inner_grad_clip=0.5).fit(tasks, progress=False)
    eps = [tasks.episode(tasks[1], 6, seed=s) for s in range(3)]
    ref = [learner.adapt(ep.support, steps=15, lr=0.05).predict(ep.query) for ep in eps]
    fast = [fast_adapt(learner, ep.support, steps=15, lr=0.05).predict(ep.query) for ep in eps]
    many = adapt_many(learner, [ep.support for ep in eps], [ep.query for ep in eps], steps=15, lr=0.05)
    for r, f, m in zip(ref, fast, many):
        np.testing.assert_allclose(f, r, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(m, r, rtol=1e-4, atol=1e-5)
    wrapped = FastMeta(learner, "m", "meta", adapt_kwargs={"steps": 15, "lr": 0.05})
    assert wrapped.name == "m" and wrapped.kind == "meta"
    np.testing.assert_allclose(wrapped.adapt(eps[0].support).predict(eps[0].query), fast[0], rtol=1e-6)
