"""Batched MAML for the tabular MLP: a meta-batch as stacked per-episode weights and ``bmm``, no ``torch.func``.

The ``func`` backend (:mod:`nanonb.learners.functional`) runs tabular meta-batches as one
``torch.func.vmap``; its transforms cost a fixed ~12 ms per meta-gradient, which dominates at the
library's default of 4 episodes. For the plain :class:`~nanonb.models.mlp.MLP` (``Linear`` +
elementwise activation body, ``Linear`` head) :func:`mlp_meta_batch` does the same computation on
stacked weights (the classic batched-MAML trick):

- the ``T`` episodes are padded to a common support and query size (:func:`pad_episodes`; padded rows
  have weight 0 in every mean, so they change no loss and no gradient);
- each layer's weight and bias are one ``(in + 1, out)`` matrix ``[W^T; b]``, and every adapted
  layer is a stacked ``(T, in + 1, out)`` tensor, starting as an ``expand`` of the meta-weights so
  autograd flows back to them; a layer is one ``torch.bmm`` of ``[h, 1]`` ``(T, n, in + 1)`` with it;
- an inner step takes each episode's support-loss gradient w.r.t. its stacked weights, written out by
  hand (:mod:`.mlp_backprop`; second order without clipping: the whole inner loop is one autograd
  node with hand-written Hessian-vector products), or as ONE ``torch.autograd.grad`` of the summed
  per-episode losses for other activations (the episodes' copies are independent, so row ``t`` is
  episode ``t``'s own gradient); :func:`nanonb.learners.inner.sgd_step` with ``batch_dims=1`` then applies the
  one clipped-SGD rule, clipping each episode by its own gradient norm (as the ``higher`` loop and the
  ``vmap`` path do); Meta-SGD's per-weight step sizes broadcast over the episode dimension; first
  order detaches the gradients (and builds no second-order graph);
- ANIL (``learner.head_only``) adapts only the head on body features computed once per batch.

The losses are the ones of :func:`~nanonb.learners.functional.vmap_meta_batch` (:func:`masked_mse`,
:func:`query_mse`, shared by both paths). ``tests/test_learners_batched.py`` checks, in float64, that
the meta-gradients equal those of ``higher`` and of the ``vmap`` path (``tests/test_learners_mlp_backprop.py``
for the hand-written parts).

Example
-------
>>> import torch
>>> x, w = pad([torch.ones(2), torch.ones(3)])      # zero rows appended; row weights 1/n
>>> x.tolist(), masked_mean(torch.tensor([[1.0, 3.0, 7.0], [1.0, 2.0, 3.0]]), w).tolist()
([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [2.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..models.mlp import MLP
from .inner import sgd_step
from .mlp_backprop import DERIVATIVES, InnerLoop, support_gradients

#: Activations applied elementwise (so they act on ``(T, n, width)`` as on ``(n, width)``).
ELEMENTWISE = (nn.ReLU, nn.SiLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.ELU, nn.LeakyReLU, nn.Softplus, nn.Identity,
               nn.Mish, nn.Hardtanh, nn.SELU, nn.CELU)


def pad(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors of different lengths (zero rows appended) and ``(B, n_max)`` row weights: ``1/n`` on
    the ``n`` real rows of each, 0 on padding (so a weighted sum is a mean over the real rows).

    Example
    -------
    >>> x, w = pad([torch.ones(2), torch.ones(4)])
    >>> x.shape, w.tolist()
    (torch.Size([2, 4]), [[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    """
    out = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)
    return out, row_weights(torch.tensor([len(t) for t in tensors], device=out.device), out.shape[1], out.dtype)


def row_weights(lengths: torch.Tensor, n_max: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, n_max)`` row weights of ``B`` padded rows of ``lengths`` real entries: ``1/n`` on the real rows,
    0 on padding (the one padding rule of :func:`pad` and :meth:`~nanonb.learners.task_cache.TaskTensors.padded`).

    Example
    -------
    >>> row_weights(torch.tensor([1, 2]), 2, torch.float32).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    mask = (torch.arange(n_max, device=lengths.device)[None, :] < lengths[:, None]).to(dtype)
    return mask / lengths[:, None].to(dtype)


def pad_episodes(learner, episodes: Sequence) -> tuple[torch.Tensor, ...]:
    """``(xs, ys, ws, xq, yq, wq)``: the episodes' support and query tensors padded by :func:`pad`, with
    their row weights ``ws`` / ``wq`` (shared by the ``vmap`` and the batched path).

    Example
    -------
    >>> xs, ys, ws, xq, yq, wq = pad_episodes(learner, episodes)   # doctest: +SKIP
    """
    cache = learner._task_tensors
    cached = cache.padded(episodes) if cache else None  # during fit: one indexing of the cached task rows
    if cached is not None:
        return cached
    data = [learner._episode_data(ep) for ep in episodes]
    xs, ws = pad([d[0] for d in data])
    xq, wq = pad([d[2] for d in data])
    ys = torch.nn.utils.rnn.pad_sequence([d[1] for d in data], batch_first=True)
    yq = torch.nn.utils.rnn.pad_sequence([d[3] for d in data], batch_first=True)
    return xs, ys, ws, xq, yq, wq


def masked_mean(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean of ``v`` over the real rows (row weights ``w`` from :func:`pad`) along the last dimension.

    Example
    -------
    >>> masked_mean(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[0.5, 0.5, 0.0]])).tolist()
    [2.0]
    """
    return (v * w).sum(-1)


def masked_mse(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor, center: bool) -> torch.Tensor:
    """:func:`~nanonb.learners.training.mse` over the real rows (weights ``w``; support-centred if ``center``).

    Example
    -------
    >>> masked_mse(torch.tensor([1.0, 5.0]), torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]), False).item()
    1.0
    """
    d = pred - y
    if center:
        d = d - masked_mean(d, w)[..., None]
    return masked_mean(d * d, w)


def query_mse(pred_q: torch.Tensor, yq: torch.Tensor, wq: torch.Tensor, pred_s: torch.Tensor | None,
              ys: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """Query MSE of adapted predictions, shifted by the support anchor ``mean_s y - mean_s f`` when
    ``pred_s`` (support predictions) is given (``center="support"``), else unshifted.

    Example
    -------
    >>> one, half = torch.ones(2), torch.full((2,), 0.5)
    >>> query_mse(one, 3 * one, half, one, 2 * one, half).item()   # anchor 2 - 1 = 1: (1 + 1 - 3)^2
    1.0
    """
    d = pred_q - yq
    if pred_s is not None:
        d = d + masked_mean(ys - pred_s, ws)[..., None]
    return masked_mean(d * d, wq)


def mlp_layers(learner) -> list[tuple[nn.Linear, nn.Module | None]] | None:
    """``[(linear, activation or None), ...]`` of the module the learner adapts, if the batched path applies.

    It applies when the learner's model is exactly an :class:`~nanonb.models.mlp.MLP` whose body is
    ``Linear`` + elementwise activation pairs and whose head is a ``Linear`` (all with biases), the
    adapted module is the whole model (MAML, FOMAML, Meta-SGD) or its head (ANIL, ``head_only``), and
    no force term is used. Otherwise ``None`` (the ``vmap`` path runs).

    Example
    -------
    >>> mlp_layers(make_learner("maml", model="MLP"))   # before fit: no model yet  # doctest: +SKIP
    """
    model = getattr(learner, "model", None)
    if type(model) is not MLP or learner.config.force_weight != 0:
        return None
    body = list(model.body)
    pairs = list(zip(body[0::2], body[1::2]))
    ok = (len(body) % 2 == 0 and isinstance(model.head, nn.Linear)
          and all(type(lin) is nn.Linear and isinstance(act, ELEMENTWISE) for lin, act in pairs))
    layers = pairs + [(model.head, None)]
    if not ok or any(lin.bias is None for lin, _ in layers):
        return None
    head_only = bool(getattr(learner, "head_only", False))
    module = learner._adapted_module()
    if module is not (model.head if head_only else model):
        return None
    layers = layers[-1:] if head_only else layers
    if [id(p) for p in module.parameters()] != [id(p) for lin, _ in layers for p in (lin.weight, lin.bias)]:
        return None
    return layers


def _layout(tensors, n_ep: int | None = None):
    """Each layer's weight ``(out, in)`` and bias ``(out,)`` as one ``(in + 1, out)`` matrix ``[W^T; b]``
    (the ``bmm`` layout), expanded to ``(n_ep, in + 1, out)`` when ``n_ep`` is given; a float step size
    passes unchanged."""
    if not isinstance(tensors, (list, tuple)):
        return tensors
    out = [torch.cat([w.t(), b.unsqueeze(0)], 0) for w, b in zip(tensors[0::2], tensors[1::2])]
    return out if n_ep is None else [t.expand(n_ep, *t.shape) for t in out]


def _forward(layers: list, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Batched MLP: ``x`` ``(T, n, d)``, layers ``(T, in + 1, out)`` from :func:`_layout` -> ``(T, n)``."""
    h = x
    for (_, act), p in zip(layers, params):
        h = torch.bmm(F.pad(h, (0, 1), value=1.0), p)
        if act is not None:
            h = act(h)
    return h.squeeze(-1)


def _autograd_grads(layers: list, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                    center: bool, create_graph: bool) -> tuple[torch.Tensor, ...]:
    """The same gradients by ``torch.autograd.grad`` of the summed support losses (other activations)."""
    losses = masked_mse(_forward(layers, params, x), y, w, center)
    return torch.autograd.grad(losses.sum(), params, create_graph=create_graph)


def _inner_loop(layers: list, meta: list[torch.Tensor], sizes, inp_s: torch.Tensor, ys: torch.Tensor,
                ws: torch.Tensor, cfg) -> list[torch.Tensor]:
    """The adapted ``(T, in + 1, out)`` matrices after ``cfg.inner_steps`` steps from ``meta``.

    Three ways to the same numbers, fastest first: :class:`~.mlp_backprop.InnerLoop` (hand-written
    gradients and Hessian-vector products, one autograd node) for second order without clipping and
    with inputs that need no gradient; hand-written gradients inside an autograd graph
    (:func:`~.mlp_backprop.support_gradients`) otherwise; ``torch.autograd.grad`` (:func:`_autograd_grads`)
    for activations outside :data:`~.mlp_backprop.DERIVATIVES`. First order with fixed step sizes runs
    without a graph; the adapted weights then carry the identity to the meta-weights
    (``p + (m - m.detach())``, the first-order MAML gradient).
    """
    first_order, center, clip = bool(cfg.first_order), cfg.center == "support", cfg.inner_grad_clip
    acts = [act for _, act in layers]
    manual = all(act is None or isinstance(act, DERIVATIVES) for act in acts)
    if not manual:
        params = meta
        for _ in range(cfg.inner_steps):
            grads = _autograd_grads(layers, params, inp_s, ys, ws, center, create_graph=not first_order)
            params = sgd_step(params, grads, sizes, clip=clip, first_order=first_order, batch_dims=1)
        return params
    x1, y, w2 = F.pad(inp_s, (0, 1), value=1.0), ys.unsqueeze(-1), (2 * ws).unsqueeze(-1)
    learned = isinstance(sizes, list)
    if not first_order and clip is None and not x1.requires_grad and cfg.inner_steps > 0:
        spec = {"acts": acts, "steps": cfg.inner_steps, "center": center, "lr": None if learned else sizes}
        return list(InnerLoop.apply(spec, x1, y, w2, *meta, *(sizes if learned else [])))
    no_graph = first_order and not learned  # learned step sizes need the graph even then
    params = meta
    with torch.no_grad() if no_graph else torch.enable_grad():
        for _ in range(cfg.inner_steps):
            grads = support_gradients(acts, params, x1, y, w2, center)
            params = sgd_step(params, grads, sizes, clip=clip, first_order=first_order, batch_dims=1)
    return [p + (m - m.detach()) for p, m in zip(params, meta)] if no_graph else params


def mlp_meta_batch(learner, episodes: Sequence, layers: list) -> list[torch.Tensor]:
    """Query losses (detached) of a tabular meta-batch on an MLP; the summed meta-gradient goes to ``.grad``.

    ``layers`` from :func:`mlp_layers`. Same contract and numbers as
    :func:`~nanonb.learners.functional.vmap_meta_batch` (see the module docstring); the inner loop is
    :func:`_inner_loop`.

    Example
    -------
    >>> losses = mlp_meta_batch(learner, episodes, mlp_layers(learner))   # doctest: +SKIP
    """
    cfg = learner.config
    xs, ys, ws, xq, yq, wq = pad_episodes(learner, episodes)
    n_ep = len(episodes)
    sizes = _layout(learner._step_sizes(None))
    center = cfg.center == "support"
    inp_s, inp_q = learner._inner_input(xs, True), learner._inner_input(xq, True)
    meta = _layout([p for lin, _ in layers for p in (lin.weight, lin.bias)], n_ep)
    params = _inner_loop(layers, meta, sizes, inp_s, ys, ws, cfg)
    pred_s = _forward(layers, params, inp_s) if center else None
    losses = query_mse(_forward(layers, params, inp_q), yq, wq, pred_s, ys, ws)
    losses.sum().backward()
    return list(losses.detach())
