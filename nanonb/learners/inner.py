"""The inner-loop update of every gradient-based learner: one clipped SGD step, pure and differentiable.

One adaptation step on a support set is::

    g      <- grad of the support loss w.r.t. the adapted parameters
    g      <- g.detach()                                   (first_order=True)
    scale  =  min(1, clip / (sqrt(sum_i |g_i|^2 + eps) + 1e-12))   (clip is not None)
    theta' =  theta - lr * scale * g

``scale`` is a differentiable function of ``g`` (no ``.item()``), so second-order meta-gradients
flow through the clipping as well. The formula lives only in :func:`clip_scale`; the ``higher``
loop of :class:`~nanonb.learners.base.MetaLearner` uses :func:`prepare_grads` as its
``grad_callback``, and functional or vectorised callers (plain ``torch.autograd`` loops, or
``torch.func.vmap`` over episodes with a leading batch dimension) use :func:`sgd_step`.

Functional callers (all reproduce their current numbers bitwise):

- a vectorised loop over ``n`` episodes (parameters with a leading episode dimension, gradients from
  ``torch.func.vmap(grad(loss))``): ``sgd_step(params, grads, lr, clip, batch_dims=1, eps=0.0)``;
- a plain in-place test-time loop: ``scale = float(clip_scale(squared_norm(grads), clip, eps=0.0))``
  then ``p.sub_(lr * scale * g)``;
- a head-only loop on cached features without clipping: ``w, b = sgd_step([w, b], [gw, gb], lr)``.

(``eps=0.0`` reproduces loops written as ``sqrt(sum |g|^2)``; the learners' own loop uses the default.)

Example
-------
>>> import torch
>>> w = torch.tensor([3.0, 4.0], requires_grad=True)
>>> g = torch.autograd.grad((w ** 2).sum(), [w])       # g = (6, 8), |g| = 10
>>> [round(v, 3) for v in sgd_step([w], g, lr=0.1, clip=1.0)[0].tolist()]
[2.94, 3.92]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: Added to the squared gradient norm before the square root (keeps the norm differentiable at 0).
NORM_EPS = 1e-12


def clip_scale(sq_norm: torch.Tensor, clip: float, eps: float = NORM_EPS) -> torch.Tensor:
    """Global-norm clipping factor ``min(1, clip / (sqrt(sq_norm + eps) + 1e-12))``.

    ``sq_norm`` is the squared global gradient norm: a scalar, or a vector with one entry per
    episode for batched (``vmap``-style) callers. Differentiable in ``sq_norm``.
    """
    norm = torch.sqrt(sq_norm + eps)
    return torch.clamp(clip / (norm + 1e-12), max=1.0)


def squared_norm(grads: Sequence[torch.Tensor | None], batch_dims: int = 0) -> torch.Tensor:
    """Sum of squares of all gradients (``None`` skipped); ``batch_dims`` leading dims are kept."""
    total = None
    for g in grads:
        if g is None:
            continue
        s = (g * g).reshape(*g.shape[:batch_dims], -1).sum(-1) if batch_dims else (g * g).sum()
        total = s if total is None else total + s
    return total


def prepare_grads(grads: Sequence[torch.Tensor | None], clip: float | None = None, first_order: bool = False,
                  eps: float = NORM_EPS) -> list[torch.Tensor | None]:
    """Detach (``first_order``) and clip (global norm ``clip``) a list of gradients; ``None`` entries kept.

    This is the ``grad_callback`` of the ``higher`` inner loop.
    """
    grads = [None if g is None else (g.detach() if first_order else g) for g in grads]
    if clip is not None:
        scale = clip_scale(sum((g * g).sum() for g in grads if g is not None), clip, eps)
        grads = [None if g is None else g * scale for g in grads]
    return grads


def sgd_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None], lr,
             clip: float | None = None, first_order: bool = False, batch_dims: int = 0,
             eps: float = NORM_EPS) -> list[torch.Tensor]:
    """One clipped SGD step ``theta - (lr * scale) * g``, out of place (differentiable).

    The ``higher`` loop of the learners applies the same step as ``theta - lr * (scale * g)``
    (:func:`prepare_grads` then ``higher``'s SGD); the two agree to float rounding.

    Parameters
    ----------
    params, grads:
        Parameters and their gradients (same order); a ``None`` gradient leaves its parameter as is.
    lr:
        Step size: a float, or a sequence with one tensor per parameter (Meta-SGD's learned rates).
    clip:
        Global-norm clip of the gradients (``None``: no clipping).
    first_order:
        Detach the gradients (no second-order terms through this step).
    batch_dims:
        Leading dimensions that index independent episodes (e.g. 1 under a manual batch of
        ``(n_episodes, *shape)`` parameters): the norm and the clip are taken per episode.
    eps:
        Added to the squared norm before the square root.
    """
    grads = [None if g is None else (g.detach() if first_order else g) for g in grads]
    lrs = list(lr) if isinstance(lr, (list, tuple)) else [lr] * len(params)
    if clip is not None:
        scale = clip_scale(squared_norm(grads, batch_dims), clip, eps)
        lrs = [a * scale.reshape(*scale.shape, *([1] * (p.dim() - batch_dims))) for a, p in zip(lrs, params)]
    return [p if g is None else p - a * g for p, g, a in zip(params, grads, lrs)]
