"""Hand-written gradients and Hessian-vector products of the batched MLP, against autograd and higher."""

import pytest
import torch
from test_learners_batched import _assert_same, _run
from torch import nn

from nanonb.learners import batched, mlp_backprop
from nanonb.learners.batched import _forward, masked_mse

ACTIVATIONS = [nn.Identity(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(0.7),
               nn.Softplus(beta=2.0, threshold=1.5)]


def _problem(seed=0, widths=(3, 5, 4, 1), n=6, t=3):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(t, a + 1, b, generator=g, dtype=torch.float64, requires_grad=True)
              for a, b in zip(widths[:-1], widths[1:])]
    x = torch.randn(t, n, widths[0], generator=g, dtype=torch.float64)
    y = torch.randn(t, n, generator=g, dtype=torch.float64)
    lengths = torch.tensor([n, n - 2, 1][:t])
    w = batched.row_weights(lengths, n, torch.float64)  # unequal padded episodes
    return params, x, y, w


def test_activation_derivatives_match_autograd():
    # 40 points: z = 0 (a kink of ReLU, LeakyReLU and ELU's second derivative) is not among them
    z = torch.linspace(-3, 3, 40, dtype=torch.float64, requires_grad=True)
    for act in ACTIVATIONS:
        a, d1 = mlp_backprop.activation(act, z)
        (g1,) = torch.autograd.grad(act(z).sum(), z, create_graph=True)
        torch.testing.assert_close(a, act(z))
        torch.testing.assert_close(torch.ones_like(z) if d1 is None else d1, g1)
        d2 = mlp_backprop.second_derivative(act, z)
        if g1.requires_grad:
            (g2,) = torch.autograd.grad(g1.sum(), z)
        else:
            g2 = torch.zeros_like(z)
        torch.testing.assert_close(torch.zeros_like(z) if d2 is None else d2, g2, msg=type(act).__name__)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_gradients_and_hessian_vector_products_match_autograd(act, center):
    params, x, y, w = _problem()
    layers = [(None, act), (None, act), (None, None)]
    loss = masked_mse(_forward(layers, params, x), y, w, center).sum()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    x1 = torch.nn.functional.pad(x, (0, 1), value=1.0)
    y3, w2 = y.unsqueeze(-1), (2 * w).unsqueeze(-1)
    mine, saved = mlp_backprop.support_gradients([act, act, None], params, x1, y3, w2, center, keep=True)
    for a, b in zip(mine, grads):
        torch.testing.assert_close(a, b)
    u = [torch.randn_like(p) for p in params]
    hvp = torch.autograd.grad(sum((g * v).sum() for g, v in zip(grads, u)), params, allow_unused=True)
    for a, b, p in zip(mlp_backprop.hessian_vector([act, act, None], params, saved, u, w2, center), hvp, params):
        torch.testing.assert_close(a, torch.zeros_like(p) if b is None else b)
    assert float(mine[0].detach().abs().max()) > 0


@pytest.mark.parametrize("center", ["none", "support"])
@pytest.mark.parametrize("algorithm", ["maml", "metasgd"])
@pytest.mark.parametrize("act", [nn.SiLU(), nn.Tanh(), nn.ELU()], ids=lambda a: type(a).__name__)
def test_inner_loop_node_gives_the_higher_meta_gradients(algorithm, center, act, monkeypatch):
    # no inner clipping: the one-node InnerLoop path (the library default); float64; support sizes 2, 5, 3
    calls = []
    apply = mlp_backprop.InnerLoop.apply
    monkeypatch.setattr(batched.InnerLoop, "apply", lambda *a: calls.append(1) or apply(*a))
    ref = _run("higher", algorithm, center, monkeypatch, no_clip=True, activation=act)
    assert not calls
    _assert_same(ref, _run("batched", algorithm, center, monkeypatch, no_clip=True, activation=act))
    assert calls, "the second-order, unclipped MLP meta-batch must take the InnerLoop path"


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])  # ANIL adapts only the linear head
def test_activations_without_written_derivatives_fall_back_to_autograd(algorithm, monkeypatch):
    monkeypatch.setattr(batched, "support_gradients", None)  # must not be reached
    monkeypatch.setattr(batched.InnerLoop, "apply", None)
    _assert_same(_run("higher", algorithm, "support", monkeypatch, no_clip=True, activation=nn.GELU()),
                 _run("batched", algorithm, "support", monkeypatch, no_clip=True, activation=nn.GELU()))
