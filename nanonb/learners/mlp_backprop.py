"""Hand-written backprop for the batched MLP of :mod:`.batched`: support gradients and Hessian-vector products.

The batched MAML path (:mod:`.batched`) runs a meta-batch as stacked per-episode layer matrices
``[W^T; b]`` of shape ``(T, in + 1, out)`` applied to inputs with a column of ones, ``[h, 1]``. For an
MLP with an elementwise activation ``s`` and the support loss ``L = sum_i w_i r_i^2`` (``r`` the
residuals, support-centred or not, ``w`` the row weights of :func:`.batched.pad`):

- **gradient** (:func:`support_gradients`): ``dL/df_i = 2 w_i r_i`` (centring drops out because
  ``sum_i w_i r_i = 0``); layer ``l`` gets ``[h_{l-1}, 1]^T delta_l`` and
  ``delta_{l-1} = (delta_l W_l) * s'(z_{l-1})``;
- **Hessian-vector product** (:func:`hessian_vector`): Pearlmutter's R-operator, i.e. the directional
  derivative of that gradient along ``U``: a forward pass of ``R{z}`` and a backward pass of
  ``R{delta}``, which brings in ``s''``.

:class:`InnerLoop` uses both: its forward runs the clipped-SGD inner steps of
:func:`nanonb.learners.inner.sgd_step` without a graph, and its backward maps the query-loss gradient
at the adapted weights back through the steps, ``v <- v - H (a * v)`` (``a`` the step size; Meta-SGD's
learned step sizes get ``-sum g * v``). This is the second-order MAML meta-gradient as one autograd
node instead of a graph of a few hundred small operations, whose bookkeeping dominated at the
library's default of 4 small episodes. ``tests/test_learners_mlp_backprop.py`` checks it in float64
against autograd (``torch.autograd.grad`` twice) and against ``higher`` for every activation here.

Example
-------
>>> import torch
>>> a, d1 = activation(torch.nn.Tanh(), torch.zeros(2))
>>> a.tolist(), d1.tolist()
([0.0, 0.0], [1.0, 1.0])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .inner import sgd_step

#: Activations whose first and second derivatives are written out here.
DERIVATIVES = (nn.Identity, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Softplus)


def activation(act: nn.Module, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(s(z), s'(z))`` of an activation in :data:`DERIVATIVES` (``None``: the derivative is 1).

    Example
    -------
    >>> activation(torch.nn.ReLU(), torch.tensor([-1.0, 2.0]))[1].tolist()
    [0.0, 1.0]
    """
    if isinstance(act, nn.Identity):
        return z, None
    if isinstance(act, nn.SiLU):
        s = torch.sigmoid(z)
        a = z * s
        return a, torch.addcmul(s, a, 1 - s)  # s + z s (1 - s)
    if isinstance(act, nn.Tanh):
        a = torch.tanh(z)
        return a, 1 - a * a
    if isinstance(act, nn.Sigmoid):
        a = torch.sigmoid(z)
        return a, a * (1 - a)
    if isinstance(act, nn.ReLU):
        return torch.relu(z), (z > 0).to(z.dtype)
    if isinstance(act, nn.LeakyReLU):
        return act(z), torch.where(z > 0, 1.0, act.negative_slope).to(z.dtype)
    if isinstance(act, nn.ELU):
        a = act(z)
        return a, torch.where(z > 0, torch.ones_like(a), a + act.alpha)
    if isinstance(act, nn.Softplus):
        bz = act.beta * z
        return act(z), torch.where(bz > act.threshold, torch.ones_like(z), torch.sigmoid(bz))
    raise TypeError(f"no hand-written derivative for {type(act).__name__}; use one of "
                    f"{[a.__name__ for a in DERIVATIVES]}")


def second_derivative(act: nn.Module, z: torch.Tensor) -> torch.Tensor | None:
    """``s''(z)`` of an activation in :data:`DERIVATIVES` (``None``: zero, as for ReLU and Identity).

    Example
    -------
    >>> second_derivative(torch.nn.Sigmoid(), torch.zeros(1)).tolist()   # s(1 - s)(1 - 2 s) at s = 1/2
    [0.0]
    """
    if isinstance(act, (nn.Identity, nn.ReLU, nn.LeakyReLU)):
        return None
    if isinstance(act, nn.SiLU):
        s = torch.sigmoid(z)
        return s * (1 - s) * (2 + z * (1 - 2 * s))
    if isinstance(act, nn.Tanh):
        a = torch.tanh(z)
        return -2 * a * (1 - a * a)
    if isinstance(act, nn.Sigmoid):
        a = torch.sigmoid(z)
        return a * (1 - a) * (1 - 2 * a)
    if isinstance(act, nn.ELU):
        return torch.where(z > 0, torch.zeros_like(z), act(z) + act.alpha)
    if isinstance(act, nn.Softplus):
        bz = act.beta * z
        s = torch.sigmoid(bz)
        return torch.where(bz > act.threshold, torch.zeros_like(z), act.beta * s * (1 - s))
    raise TypeError(f"no hand-written second derivative for {type(act).__name__}")


def support_gradients(acts: list, params: list[torch.Tensor], x1: torch.Tensor, y: torch.Tensor,
                      w2: torch.Tensor, center: bool, keep: bool = False):
    """Per-episode gradients of the weighted support MSE w.r.t. the stacked layer matrices.

    ``acts``: the activation after each layer (``None`` for the linear head); ``params``: ``(T, in + 1,
    out)`` matrices; ``x1``: ``(T, n, d + 1)`` inputs with their column of ones; ``y``: ``(T, n, 1)``
    targets; ``w2``: ``(T, n, 1)`` twice the row weights (``2 w``: the loss derivative is ``w2 * r``).
    Plain tensor operations, so autograd can differentiate through them. With ``keep``, also returns
    what :func:`hessian_vector` needs: each layer's input ``[h, 1]``, the hidden pre-activations ``z``,
    ``s'(z)`` and ``dL/dh``, and each layer's ``delta = dL/dz``.

    Example
    -------
    >>> p = [torch.tensor([[[2.0], [0.0]]])]                     # f = 2 x, one episode, linear
    >>> x1, y, w2 = torch.tensor([[[1.0, 1.0]]]), torch.tensor([[[0.0]]]), torch.tensor([[[2.0]]])
    >>> support_gradients([None], p, x1, y, w2, center=False)[0].tolist()   # d(2x)^2/dW = 2 f x
    [[[4.0], [4.0]]]
    """
    inputs, zs, d1s, h = [x1], [], [], x1
    for act, p in zip(acts, params):
        h = torch.bmm(h, p)
        if act is not None:
            zs.append(h)
            a, d = activation(act, h)
            d1s.append(d)
            h = F.pad(a, (0, 1), value=1.0)
            inputs.append(h)
    r = h - y
    if center:
        r = r - 0.5 * (r * w2).sum(1, keepdim=True)
    delta = w2 * r
    grads, deltas, backs = [None] * len(params), [None] * len(params), [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        deltas[i] = delta
        grads[i] = torch.bmm(inputs[i].mT, delta)
        if i:
            delta = backs[i - 1] = torch.bmm(delta, params[i][:, :-1].mT)
            if d1s[i - 1] is not None:
                delta = delta * d1s[i - 1]
    return (grads, (inputs, zs, d1s, backs, deltas)) if keep else grads


def hessian_vector(acts: list, params: list[torch.Tensor], saved: tuple, u: list[torch.Tensor], w2: torch.Tensor,
                   center: bool) -> list[torch.Tensor]:
    """Per-episode Hessian of the support loss at ``params`` times ``u`` (same shapes as ``params``).

    ``saved`` is the ``keep`` output of :func:`support_gradients` at ``params``; ``w2`` as there.

    Example
    -------
    >>> p, u = [torch.tensor([[[2.0], [0.0]]])], [torch.tensor([[[1.0], [0.0]]])]
    >>> x1, y, w2 = torch.tensor([[[1.0, 1.0]]]), torch.tensor([[[0.0]]]), torch.tensor([[[2.0]]])
    >>> _, saved = support_gradients([None], p, x1, y, w2, False, keep=True)
    >>> hessian_vector([None], p, saved, u, w2, False)[0].tolist()   # H = 2 [x, 1]^T [x, 1]
    [[[2.0], [2.0]]]
    """
    inputs, zs, d1s, backs, deltas = saved
    n = len(params)
    rz, rh = [], []
    for i in range(n):
        r = torch.bmm(inputs[i], u[i])
        if i:
            r = r + torch.bmm(rh[i - 1], params[i][:, :-1])
        rz.append(r)
        if i < n - 1:
            rh.append(r if d1s[i] is None else d1s[i] * r)
    rf = rz[-1]
    if center:
        rf = rf - 0.5 * (rf * w2).sum(1, keepdim=True)
    rdelta = w2 * rf
    out = [None] * n
    for i in range(n - 1, -1, -1):
        g = torch.bmm(inputs[i].mT, rdelta)
        if i:
            g[:, :-1] += torch.bmm(rh[i - 1].mT, deltas[i])  # [R h, 0]^T delta (no graph here)
        out[i] = g
        if i:
            back = torch.bmm(rdelta, params[i][:, :-1].mT) + torch.bmm(deltas[i], u[i][:, :-1].mT)
            rdelta = back if d1s[i - 1] is None else back * d1s[i - 1]
            d2 = second_derivative(acts[i - 1], zs[i - 1])
            if d2 is not None:
                rdelta = torch.addcmul(rdelta, backs[i - 1] * d2, rz[i - 1])
    return out


class InnerLoop(torch.autograd.Function):
    """Second-order inner loop of the batched MLP as one autograd node.

    ``InnerLoop.apply(spec, x1, y, w2, *params, *step_sizes)`` returns the adapted ``(T, in + 1, out)``
    matrices after ``spec["steps"]`` steps of :func:`~nanonb.learners.inner.sgd_step` (no clipping) on
    the support loss of :func:`support_gradients` (``x1``, ``y``, ``w2`` as there). ``spec``: ``acts``,
    ``steps``, ``center`` and ``lr`` (a float, or ``None`` when ``step_sizes`` holds Meta-SGD's learned
    ``(in + 1, out)`` step sizes, one per layer). The backward pass applies ``v <- v - H(a * v)`` step
    by step (:func:`hessian_vector`).

    Example
    -------
    >>> spec = {"acts": [None], "steps": 1, "center": False, "lr": 0.1}
    >>> p = torch.tensor([[[2.0], [0.0]]], requires_grad=True)
    >>> x1, y, w2 = torch.tensor([[[1.0, 1.0]]]), torch.tensor([[[0.0]]]), torch.tensor([[[2.0]]])
    >>> (q,) = InnerLoop.apply(spec, x1, y, w2, p)
    >>> q.sum().backward(); p.grad.flatten().tolist()            # (I - 0.1 H) 1, H = 2 [[1, 1], [1, 1]]
    [0.6000000238418579, 0.6000000238418579]
    """

    @staticmethod
    def forward(ctx, spec: dict, x1, y, w2, *tensors):
        n = len(spec["acts"])
        params, sizes = list(tensors[:n]), (list(tensors[n:]) if spec["lr"] is None else spec["lr"])
        trace = []
        for _ in range(spec["steps"]):
            grads, saved = support_gradients(spec["acts"], params, x1, y, w2, spec["center"], keep=True)
            trace.append((params, grads, saved))
            params = sgd_step(params, grads, sizes, batch_dims=1)
        ctx.spec, ctx.w2, ctx.trace, ctx.sizes = spec, w2, trace, sizes
        return tuple(params)

    @staticmethod
    def backward(ctx, *vs):
        spec, sizes = ctx.spec, ctx.sizes
        learned = spec["lr"] is None
        v = list(vs)  # unused outputs arrive as zeros (materialized gradients)
        g_sizes = [torch.zeros_like(a) for a in sizes] if learned else []
        for params, grads, saved in reversed(ctx.trace):
            if learned:  # theta' = theta - a * g: dJ/da = -sum_T g * v, dJ/dtheta = v - H (a * v)
                g_sizes = [ga - (g * vi).sum(0) for ga, g, vi in zip(g_sizes, grads, v)]
                hu = hessian_vector(spec["acts"], params, saved, [a * vi for a, vi in zip(sizes, v)], ctx.w2,
                                    spec["center"])
                v = [vi - h for vi, h in zip(v, hu)]
            else:  # a fixed float step: H (a v) = a (H v)
                hv = hessian_vector(spec["acts"], params, saved, v, ctx.w2, spec["center"])
                v = [torch.add(vi, h, alpha=-sizes) for vi, h in zip(v, hv)]
        ctx.trace = None
        return (None, None, None, None, *v, *g_sizes)
