"""The torch.func backend: the same meta-gradients and adapted predictions as the higher reference."""

import dataclasses

import numpy as np
import pytest
import torch

from nanonb.graphs import GraphBatch, Structure
from nanonb.learners import functional
from nanonb.learners.registry import make_learner
from nanonb.tasks import Task, TaskSet


def tabular_tasks(n_tasks=6, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return TaskSet([Task(f"t{i}", rng.normal(size=(n, 2)), 3 * rng.normal() + np.sin(rng.normal(size=n)),
                         groups=(f"g{i}",)) for i in range(n_tasks)])


def structure_tasks(n_tasks=4, n=10, seed=0):
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        structs = []
        for _ in range(n):
            k = int(rng.integers(3, 6))
            pos = rng.normal(scale=1.4, size=(k, 3))
            structs.append(Structure(rng.choice([29, 78], size=k), pos, forces=rng.normal(size=(k, 3))))
        tasks.append(Task(f"s{i}", structs, rng.normal(size=n) + i, groups=(f"g{i}",)))
    return TaskSet(tasks)


def _double(x):
    if isinstance(x, GraphBatch):
        return dataclasses.replace(x, pos=x.pos.double(), forces=None if x.forces is None else x.forces.double())
    return x.double()


def _learner(algorithm, family, backend, **kw):
    model_kwargs = {"hidden": (16, 16)} if family == "MLP" else {"width": 8, "n_blocks": 1, "n_rbf": 6}
    learner = make_learner(algorithm, model=family, model_kwargs=model_kwargs, inner_lr=0.2, inner_steps=3,
                           inner_grad_clip=1.0, k_support=(2, 5), k_query=4, meta_batch_size=3, n_iterations=0,
                           backend=backend, **kw)
    ts = tabular_tasks() if family == "MLP" else structure_tasks()
    learner.fit(ts, progress=False)  # zero iterations: builds the network and the scaler
    learner.model.double()
    with torch.no_grad():
        for i, a in enumerate(learner.inner_lrs):  # distinct learned step sizes per weight
            a.data = a.data.double() * (1.0 + 0.1 * torch.rand(a.shape, generator=torch.Generator().manual_seed(i),
                                                                dtype=torch.float64))
    inputs, targets = learner.inputs, learner.targets
    learner.inputs = lambda x: _double(inputs(x))
    learner.targets = lambda y: targets(y).double()
    return learner, ts


def _episodes(ts):
    return [ts.episode(ts[i], k, 4, seed=i) for i, k in enumerate((2, 5, 3))]


CASES = [(a, "MLP", c) for a in ("maml", "fomaml", "anil", "metasgd") for c in ("none", "support")]
CASES += [(a, "InvariantGNN", "support") for a in ("maml", "fomaml", "anil", "metasgd")]


@pytest.mark.parametrize("algorithm,family,center", CASES)
def test_func_and_higher_give_the_same_meta_gradient_and_predictions(algorithm, family, center):
    got = {}
    for backend in ("higher", "func"):
        learner, ts = _learner(algorithm, family, backend, center=center)
        eps = _episodes(ts)
        if backend == "func" and family == "MLP":
            assert functional.can_vmap(learner, eps)  # the tabular meta-batch runs as one vmap
        loss = learner._meta_batch_grads(eps)
        grads = [p.grad.clone() for p in learner.parameters()]
        preds = [learner.adapt(ep.support, steps=4).predict(ep.query) for ep in eps]
        got[backend] = (loss, grads, preds)
    (l_h, g_h, p_h), (l_f, g_f, p_f) = got["higher"], got["func"]
    assert abs(l_h - l_f) < 1e-9
    assert len(g_h) == len(g_f) and float(g_f[0].abs().max()) > 0  # (a centred bias may get exactly 0)
    for a, b in zip(g_h, g_f):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    for a, b in zip(p_h, p_f):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


def test_graph_force_term_gives_the_same_meta_gradient():
    grads = {}
    for backend in ("higher", "func"):
        learner, ts = _learner("maml", "InvariantGNN", backend, force_weight=0.5)
        learner._meta_batch_grads(_episodes(ts))
        grads[backend] = [p.grad.clone() for p in learner.parameters()]
    for a, b in zip(grads["higher"], grads["func"]):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)


def test_meta_training_follows_the_same_path():
    ts = tabular_tasks()
    params = {}
    for backend in ("higher", "func"):
        learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (8,)}, inner_steps=2, k_support=(2, 5),
                               k_query=4, meta_batch_size=3, n_iterations=4, backend=backend).fit(ts, progress=False)
        params[backend] = torch.cat([p.detach().reshape(-1) for p in learner.parameters()])
    torch.testing.assert_close(params["func"], params["higher"], rtol=1e-5, atol=1e-5)


def test_backend_is_validated_and_func_is_the_default():
    assert make_learner("maml", model="MLP").config.backend == "func"
    with pytest.raises(ValueError, match="backend"):
        make_learner("maml", model="MLP", backend="jax")
