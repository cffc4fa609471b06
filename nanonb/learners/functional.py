"""The ``torch.func`` backend of the MAML family: a functional inner loop, and ``vmap`` over a meta-batch.

``MetaConfig.backend`` picks how :class:`~nanonb.learners.base.MetaLearner` runs its inner loop:

- ``"higher"``: the reference, ``higher.innerloop_ctx`` (a monkey-patched copy of the module);
- ``"func"``: this module. The adapted weights are plain tensors handed to the network through
  :func:`torch.func.functional_call` (:class:`FunctionalModule`); each step is
  :func:`nanonb.learners.inner.sgd_step`, the same clipped-SGD rule (clip, first order, per-weight
  step sizes) the ``higher`` loop applies through :func:`~nanonb.learners.inner.prepare_grads`.

Meta-batches of tabular tasks on the plain :class:`~nanonb.models.mlp.MLP` run as stacked per-episode
weights and ``bmm`` with hand-written gradients (:mod:`nanonb.learners.batched`,
:mod:`nanonb.learners.mlp_backprop`: no ``torch.func`` transform overhead, which dominated at a few
episodes per meta-batch). Other tabular models (a tensor
input) go through :func:`vmap_meta_batch`:
the episodes are padded to a common support and query size (padded rows have weight 0 in every
mean, so they change no gradient), the inner loop takes gradients with :func:`torch.func.grad`, and
:func:`torch.func.vmap` runs all episodes of the meta-batch as one batched computation; one
``backward`` then gives the summed meta-gradient. Graph inputs (variable numbers of atoms and edges)
run one episode at a time through :func:`inner_loop` (``vmap`` of padded graphs was slower).
All paths give the ``higher`` meta-gradients to float rounding (``tests/test_learners_functional.py``,
``tests/test_learners_batched.py``).

Example
-------
>>> import torch
>>> from nanonb.models import build_model
>>> net = build_model("MLP", n_in=2, hidden=(4,))
>>> fm = FunctionalModule(net, {n: p.detach() * 0 for n, p in net.named_parameters()})
>>> fm(torch.ones(3, 2)).tolist()                       # all-zero weights
[0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from .batched import masked_mse, mlp_layers, mlp_meta_batch, pad_episodes, query_mse
from .inner import sgd_step

BACKENDS = ("func", "higher")


class FunctionalModule:
    """A module evaluated with given parameter tensors (the ``func`` backend's adapted model).

    Plays the role of ``higher``'s patched module: calling it runs ``module.forward`` through
    :func:`torch.func.functional_call` with ``params`` (buffers come from ``module``), and
    :meth:`parameters` lists the adapted tensors in the module's parameter order.

    Example
    -------
    >>> fm = FunctionalModule(net, dict(net.named_parameters()))   # doctest: +SKIP
    >>> fm(x, output="features")                                   # doctest: +SKIP
    """

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor]):
        self.module, self.params = module, params

    def __call__(self, *args, **kwargs):
        return functional_call(self.module, self.params, args, kwargs)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())


def inner_loop(learner, x_s, y_s: torch.Tensor, steps: int, lr, track: bool) -> FunctionalModule:
    """``steps`` clipped SGD steps on the support loss, from the learner's meta-weights (functional).

    Same contract as the ``higher`` loop of :class:`~nanonb.learners.base.MetaLearner`: with
    ``track=True`` the adapted weights are differentiable functions of the meta-parameters (and of
    Meta-SGD's step sizes; first order detaches the inner gradients); with ``track=False`` they are
    detached leaves (what ``adapt`` and first-order MAML use).

    Example
    -------
    >>> fm = inner_loop(learner, x_s, y_s, steps=5, lr=None, track=True)   # doctest: +SKIP
    """
    module = learner._adapted_module()
    names = [n for n, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]
    sizes = learner._step_sizes(lr)
    if not track:
        params = [p.detach().requires_grad_(True) for p in params]
        sizes = [s.detach() for s in sizes] if isinstance(sizes, list) else sizes
    first_order = track and bool(learner.config.first_order)
    inp = learner._inner_input(x_s, track)
    for _ in range(steps):
        loss = learner._loss(FunctionalModule(module, dict(zip(names, params))), inp, y_s)
        grads = torch.autograd.grad(loss, params, create_graph=track and not first_order, allow_unused=True)
        params = sgd_step(params, grads, sizes, clip=learner.config.inner_grad_clip, first_order=first_order)
        if not track:
            params = [p.detach().requires_grad_(True) for p in params]
    return FunctionalModule(module, dict(zip(names, params)))


def can_vmap(learner, episodes: Sequence) -> bool:
    """Whether a meta-batch can run as one ``vmap``: tabular inputs (tensors), no force term."""
    return (bool(episodes) and all(len(ep.support_idx) and ep.task.is_tabular for ep in episodes)
            and learner.config.force_weight == 0)


def meta_batch(learner, episodes: Sequence) -> list[torch.Tensor]:
    """Query losses (detached) of a meta-batch; the summed meta-gradient is added to ``.grad``.

    Tabular episodes on a plain MLP run as one batched computation without ``torch.func``
    (:func:`nanonb.learners.batched.mlp_meta_batch`), other tabular models as one
    :func:`vmap_meta_batch`; graph episodes one at a time through :func:`inner_loop`.

    Example
    -------
    >>> losses = meta_batch(learner, [ep1, ep2, ep3, ep4])   # doctest: +SKIP
    """
    if can_vmap(learner, episodes):
        layers = mlp_layers(learner)
        if layers is not None:
            return mlp_meta_batch(learner, episodes, layers)
        return vmap_meta_batch(learner, episodes)
    losses = []
    for ep in episodes:
        x_s, y_s, x_q, y_q = learner._episode_data(ep)
        fm = inner_loop(learner, x_s, y_s, learner.config.inner_steps, None, track=True)
        loss = learner._query_loss(fm, x_q, y_q, learner._anchor(fm, x_s, y_s))
        loss.backward()
        losses.append(loss.detach())
    return losses


def vmap_meta_batch(learner, episodes: Sequence) -> list[torch.Tensor]:
    """One meta-batch of tabular episodes as a single ``vmap``-ed computation (see the module docstring).

    Example
    -------
    >>> losses = vmap_meta_batch(learner, episodes)   # doctest: +SKIP
    """
    cfg = learner.config
    xs, ys, ws, xq, yq, wq = pad_episodes(learner, episodes)
    module = learner._adapted_module()
    names = [n for n, _ in module.named_parameters()]
    meta = tuple(p for _, p in module.named_parameters())
    sizes = learner._step_sizes(None)
    first_order, center = bool(cfg.first_order), cfg.center == "support"

    def episode_loss(xs, ys, ws, xq, yq, wq):
        inp = learner._inner_input(xs, True)

        def support_loss(params):
            out = functional_call(module, dict(zip(names, params)), (inp,))
            return masked_mse(out.reshape(ys.shape), ys, ws, center)

        params = meta
        for _ in range(cfg.inner_steps):
            params = tuple(sgd_step(params, grad(support_loss)(params), sizes, clip=cfg.inner_grad_clip,
                                    first_order=first_order))
        fm = FunctionalModule(module, dict(zip(names, params)))
        pred_s = learner._query_pred(fm, xs).reshape(ys.shape) if center else None
        return query_mse(learner._query_pred(fm, xq).reshape(yq.shape), yq, wq, pred_s, ys, ws)

    losses = vmap(episode_loss)(xs, ys, ws, xq, yq, wq)
    losses.sum().backward()
    return list(losses.detach())
