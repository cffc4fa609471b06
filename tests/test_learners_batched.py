"""The batched MLP path: the same meta-gradients as higher and as the vmap path; dispatch by model structure."""

import numpy as np
import pytest
import torch
from test_learners_functional import _episodes, _learner
from torch import nn

from nanonb.learners import batched, functional


def _no(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} should not run here")
    return fail


def _run(path, algorithm, center, monkeypatch, clip=None, no_clip=False, activation=None):
    """``(summed query loss, meta-gradients, adapted predictions)`` of one meta-batch through ``path``
    (inner-gradient clip 1 unless ``clip`` is given or ``no_clip``; the body's activations replaced by
    ``activation`` if given)."""
    learner, ts = _learner(algorithm, "MLP", "higher" if path == "higher" else "func", center=center)
    if clip is not None or no_clip:
        learner.config.inner_grad_clip = clip
    if activation is not None:
        for i in range(1, len(learner.model.body), 2):
            learner.model.body[i] = activation
    eps = _episodes(ts)
    with monkeypatch.context() as m:
        if path == "vmap":
            loss = float(torch.stack(functional.vmap_meta_batch(learner, eps)).sum())
        else:
            if path == "batched":  # the dispatch must take the batched path, never vmap
                assert batched.mlp_layers(learner) is not None
                m.setattr(functional, "vmap_meta_batch", _no("vmap_meta_batch"))
            loss = learner._meta_batch_grads(eps)
    grads = [p.grad.clone() for p in learner.parameters()]
    preds = [learner.adapt(ep.support, steps=4).predict(ep.query) for ep in eps]
    return loss, grads, preds


def _assert_same(a, b):
    (l_a, g_a, p_a), (l_b, g_b, p_b) = a, b
    assert abs(l_a - l_b) < 1e-9
    assert len(g_a) == len(g_b) and float(g_b[0].abs().max()) > 0
    for x, y in zip(g_a, g_b):
        torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-6)
    for x, y in zip(p_a, p_b):
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("center", ["none", "support"])
@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil", "metasgd"])
def test_batched_gives_the_higher_and_vmap_meta_gradients(algorithm, center, monkeypatch):
    # unequal support sizes (2, 5, 3) in one meta-batch, float64, inner-gradient clip 1
    ref = _run("higher", algorithm, center, monkeypatch)
    _assert_same(ref, _run("batched", algorithm, center, monkeypatch))
    _assert_same(ref, _run("vmap", algorithm, center, monkeypatch))


def _first_step_grad_norms(learner, eps):
    norms = []
    for ep in eps:
        x_s, y_s, _, _ = learner._episode_data(ep)
        module = learner._adapted_module()
        loss = learner._loss(module, learner._inner_input(x_s, False), y_s)
        grads = torch.autograd.grad(loss, list(module.parameters()))
        norms.append(float(torch.sqrt(sum((g * g).sum() for g in grads))))
    return sorted(norms)


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_batched_clips_each_episode_by_its_own_gradient_norm(algorithm, monkeypatch):
    learner, ts = _learner(algorithm, "MLP", "func", center="support")
    norms = _first_step_grad_norms(learner, _episodes(ts))
    clip = 0.5 * (norms[0] + norms[-1])  # binds for some episodes and not for others
    assert norms[0] < clip < norms[-1]
    _assert_same(_run("higher", algorithm, "support", monkeypatch, clip),
                 _run("batched", algorithm, "support", monkeypatch, clip))


def test_models_that_are_not_a_plain_mlp_go_through_vmap(monkeypatch):
    learner, ts = _learner("maml", "MLP", "func", center="support")
    assert batched.mlp_layers(learner) is not None
    learner.model.body[1] = nn.Softmax(dim=-1)  # not elementwise: the batched path does not apply
    assert batched.mlp_layers(learner) is None
    eps = _episodes(ts)
    monkeypatch.setattr(batched, "mlp_meta_batch", _no("mlp_meta_batch"))
    monkeypatch.setattr(functional, "mlp_meta_batch", _no("mlp_meta_batch"))
    calls = []
    vmap = functional.vmap_meta_batch
    monkeypatch.setattr(functional, "vmap_meta_batch", lambda *a: calls.append(1) or vmap(*a))
    learner._meta_batch_grads(eps)
    assert calls == [1]
    subclass = type("WiderMLP", (type(learner.model),), {})
    learner2, _ = _learner("maml", "MLP", "func")
    learner2.model.__class__ = subclass  # a subclass may change forward: not batched either
    assert batched.mlp_layers(learner2) is None
    learner3, _ = _learner("maml", "MLP", "func", force_weight=0.5)
    assert batched.mlp_layers(learner3) is None
