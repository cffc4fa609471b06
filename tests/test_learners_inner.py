"""The one inner-loop update: clip formula, first-order flag, batched episodes, agreement with the higher loop."""

import numpy as np
import torch

from nanonb.learners.inner import clip_scale, prepare_grads, sgd_step, squared_norm
from nanonb.learners.registry import make_learner
from nanonb.tasks import Task, TaskSet


def test_clip_scale_and_step():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    (g,) = torch.autograd.grad((w ** 2).sum(), [w])  # (6, 8): norm 10
    assert abs(float(clip_scale(squared_norm([g]), 1.0)) - 0.1) < 1e-7
    assert float(clip_scale(squared_norm([g]), 100.0)) == 1.0  # never scales up
    new = sgd_step([w], [g], lr=0.1, clip=1.0)[0]
    np.testing.assert_allclose(new.detach().numpy(), [3 - 0.1 * 0.6, 4 - 0.1 * 0.8], rtol=1e-6)
    assert sgd_step([w], [None], lr=0.1)[0] is w  # no gradient: parameter unchanged


def test_clip_is_differentiable_and_first_order_detaches():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    (g,) = torch.autograd.grad((w ** 2).sum(), [w], create_graph=True)
    second = sgd_step([w], [g], lr=0.1, clip=1.0)[0].sum()
    first = sgd_step([w], [g], lr=0.1, clip=1.0, first_order=True)[0].sum()
    d2, = torch.autograd.grad(second, [w], retain_graph=True)
    d1, = torch.autograd.grad(first, [w])
    np.testing.assert_allclose(d1.numpy(), [1.0, 1.0])
    assert not torch.allclose(d1, d2)  # the clipped step's Jacobian reaches the meta-gradient
    clipped = prepare_grads([g, None], clip=1.0, first_order=True)
    assert clipped[1] is None and not clipped[0].requires_grad


def test_batched_step_equals_per_episode():
    torch.manual_seed(0)
    params = [torch.randn(4, 3, 2), torch.randn(4, 2)]
    grads = [torch.randn(4, 3, 2) * 5, torch.randn(4, 2) * 5]
    batched = sgd_step(params, grads, lr=0.2, clip=1.0, batch_dims=1)
    for i in range(4):
        one = sgd_step([p[i] for p in params], [g[i] for g in grads], lr=0.2, clip=1.0)
        for a, b in zip(batched, one):
            torch.testing.assert_close(a[i], b)


def test_functional_loop_matches_the_learners_higher_loop():
    rng = np.random.default_rng(0)
    ts = TaskSet([Task(f"t{i}", rng.normal(size=(20, 2)), 3 * rng.normal(size=20), groups=(f"g{i}",))
                  for i in range(6)])
    learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=2, inner_lr=0.3,
                           inner_steps=3, inner_grad_clip=0.5).fit(ts, progress=False)
    ep = ts.episode(ts[0], 5, seed=0)
    x, y = learner.scaler.x(ep.support), learner.scaler.y(ep.support.targets)
    names = [n for n, _ in learner.model.named_parameters()]
    params = [p.detach() for p in learner.model.parameters()]
    from torch.func import functional_call

    for _ in range(learner.config.inner_steps):
        params = [p.requires_grad_(True) for p in params]
        loss = ((functional_call(learner.model, dict(zip(names, params)), (x,)) - y) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        params = [p.detach() for p in sgd_step(params, grads, learner.config.inner_lr, clip=0.5)]
    with torch.no_grad():
        pred = learner.scaler.y_inv(functional_call(learner.model, dict(zip(names, params)),
                                                    (learner.scaler.x(ep.query),)))
    np.testing.assert_allclose(pred, learner.adapt(ep.support).predict(ep.query), rtol=1e-5, atol=1e-5)
