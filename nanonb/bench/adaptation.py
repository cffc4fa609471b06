"""Fast test-time adaptation of a fitted meta-learner (the case studies' 100-step inner loops).

:func:`fast_adapt` and :func:`adapt_many` give the result of ``learner.adapt(support, steps, lr)``
(SGD from the meta-weights with the learner's inner-loop gradient clipping, the head only for
ANIL) without the patched-module loop: one copy of the network, or all episodes of one (task, K)
at once with ``torch.func.vmap``. :class:`FastMeta` (a :class:`nanonb.evaluation.Named`) wraps a learner
so that the episode loop uses them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from ..evaluation import Named
from ..learners.base import MetaLearner
from ..learners.inner import sgd_step
from ..learners.metasgd import MetaSGD
from ..tasks import Task

__all__ = ["FastMeta", "adapt_many", "fast_adapt"]


class _FastAdapted:
    """Predictor of :func:`fast_adapt` (target units, like :class:`nanonb.learners.base.AdaptedModel`)."""

    def __init__(self, learner: MetaLearner, model: torch.nn.Module, head_only: bool):
        self.learner, self.model, self.head_only = learner, model, head_only

    @torch.no_grad()
    def predict(self, inputs) -> np.ndarray:
        x = self.learner.scaler.x(inputs, self.learner.cutoff)
        out = self.model.head(self.model(x, output="features")) if self.head_only else self.model(x)
        return self.learner.scaler.y_inv(out.squeeze(-1) if out.dim() > 1 else out)


def fast_adapt(learner: MetaLearner, support: Task, steps: int | None = None, lr: float | None = None):
    """Same result as ``learner.adapt(support, steps, lr)``, without ``higher`` (test time only).

    Plain SGD on a copy of the network (the head only for ANIL) with the learner's inner-loop
    gradient clipping; about 5× faster than the patched-module loop, which matters for the 100-step
    test-time adaptation used here. Meta-SGD (learned per-weight steps) falls back to ``adapt``.
    ``steps``/``lr``: inner-loop SGD steps and step size on the standardized targets.

    Example
    -------
    >>> fast_adapt(learner, ep.support, steps=100, lr=0.05).predict(ep.query)  # doctest: +SKIP
    """
    cfg = learner.config
    if isinstance(learner, MetaSGD) and lr is None:
        return learner.adapt(support, steps=steps, lr=lr)
    steps = cfg.inner_steps if steps is None else steps
    lr = cfg.inner_lr if lr is None else lr
    model = copy.deepcopy(learner.model)
    head_only = learner.head_only
    if support is None or len(support) == 0 or steps == 0:
        return _FastAdapted(learner, model, head_only)
    module = model.head if head_only else model
    x, y = learner.scaler.x(support, learner.cutoff), learner.scaler.y(support.targets)
    inp = model(x, output="features").detach() if head_only else x
    params = list(module.parameters())
    clip = getattr(cfg, "inner_grad_clip", None)
    for _ in range(steps):
        out = module(inp)
        out = out.squeeze(-1) if out.dim() > 1 else out
        grads = torch.autograd.grad(((out - y) ** 2).mean(), params, allow_unused=True)
        with torch.no_grad():  # the learners' clipped SGD step (eps=0.0: the norm as published)
            for p, new in zip(params, sgd_step(params, grads, lr, clip=clip, eps=0.0)):
                p.copy_(new)
    return _FastAdapted(learner, model, head_only)


def adapt_many(learner: MetaLearner, supports: Sequence[Task], queries: Sequence[Task], steps: int | None = None,
               lr: float | None = None) -> list[np.ndarray]:
    """Adapt to many same-size support sets at once and predict their (same-size) queries.

    The inner loop of ``learner.adapt`` (SGD from the meta-weights with the learner's inner-loop
    gradient clipping, on the head only for ANIL), vectorised over episodes with ``torch.func.vmap``:
    the 20 episodes of one (task, K) cost about as much as one. Returns predictions in target units,
    equal to ``[learner.adapt(s, steps, lr).predict(q) for s, q in zip(supports, queries)]`` up to
    float rounding. Meta-SGD with learned step sizes is not vectorised (falls back to ``adapt``).

    Example
    -------
    >>> preds = adapt_many(learner, [ep.support for ep in eps], [ep.query for ep in eps], steps=100)  # doctest: +SKIP
    """
    cfg = learner.config
    if (isinstance(learner, MetaSGD) and lr is None) or len({len(s) for s in supports}) > 1 or len(
            {len(q) for q in queries}) > 1 or len(supports[0]) == 0:
        return [learner.adapt(s, steps=steps, lr=lr).predict(q) for s, q in zip(supports, queries)]
    steps = cfg.inner_steps if steps is None else steps
    lr = cfg.inner_lr if lr is None else lr
    clip = getattr(cfg, "inner_grad_clip", None)
    model = learner.model
    head_only = learner.head_only
    module = model.head if head_only else model
    sc = learner.scaler
    xs = torch.stack([sc.x(s, learner.cutoff) for s in supports])
    ys = torch.stack([sc.y(s.targets) for s in supports])
    xq = torch.stack([sc.x(q, learner.cutoff) for q in queries])
    with torch.no_grad():
        if head_only:
            xs, xq = vmap(lambda x: model(x, output="features"))(xs), vmap(lambda x: model(x, output="features"))(xq)
    buffers = dict(module.named_buffers())
    n = len(supports)
    params = {k: v.detach().unsqueeze(0).expand(n, *v.shape).clone() for k, v in module.named_parameters()}

    def out(p, x):
        o = functional_call(module, (p, buffers), (x,))
        return o.squeeze(-1) if o.dim() > 1 else o

    def loss(p, x, y):
        return ((out(p, x) - y) ** 2).mean()

    g_fn = vmap(grad(loss))
    keys = list(params)
    for _ in range(steps):  # the learners' clipped SGD step, one norm per episode (eps=0.0: the norm as published)
        g = g_fn(params, xs, ys)
        params = dict(zip(keys, sgd_step([params[k] for k in keys], [g[k] for k in keys], lr, clip=clip,
                                         batch_dims=1, eps=0.0)))
    with torch.no_grad():
        pred = vmap(out)(params, xq)
    return [sc.y_inv(p) for p in pred]


class FastMeta(Named):
    """A fitted :class:`MetaLearner` evaluated with :func:`fast_adapt` / :func:`adapt_many` (kind ``"meta"``).

    Example
    -------
    >>> m = FastMeta(learner, "fomaml-mlp", "meta", {"steps": 100, "lr": 0.05})  # doctest: +SKIP
    >>> m.adapt(support).predict(query)                                         # doctest: +SKIP
    """

    def adapt(self, support: Task):
        return fast_adapt(self.method, support, **self.adapt_kwargs)

    def predict_many(self, supports: Sequence[Task], queries: Sequence[Task]) -> list[np.ndarray]:
        return adapt_many(self.method, supports, queries, **self.adapt_kwargs)
