"""MAML (Finn et al., ICML 2017) and its first-order variant FOMAML, one class with a flag.

Every parameter of the network is adapted by ``inner_steps`` clipped SGD steps
(:mod:`nanonb.learners.inner`). The meta-gradient is the gradient of the query loss with respect
to the initial weights:

- ``first_order=False`` (``maml``): second order, through the inner SGD steps;
- ``first_order=True`` (``fomaml``): the query gradient at the adapted weights, applied to the
  initial weights (no backward pass through the inner loop; cheaper, often as good).

Example
-------
>>> learner = MAML(first_order=True, model="MLP", n_iterations=100)   # = make_learner("fomaml", ...)
>>> learner.name
'fomaml'
"""

from __future__ import annotations

from typing import Any

import torch

from .base import MetaConfig, MetaLearner


class MAML(MetaLearner):
    """Model-agnostic meta-learning on the whole network; ``first_order=True`` is FOMAML.

    Parameters: ``config`` a :class:`~nanonb.learners.base.MetaConfig` (or its fields as keywords),
    ``first_order`` the first-order flag (default: taken from ``config``, False for a new config).
    ``inner_lr`` is the SGD step on the standardized-target MSE (dimensionless); predictions are in
    the task's target unit (eV/atom, log10(mS/cm), ...).

    Example
    -------
    >>> import numpy as np
    >>> from nanonb import TaskSet
    >>> x = np.tile(np.linspace(0.0, 1.0, 8), 3)[:, None]          # 3 tasks x 8 points, one feature
    >>> ts = TaskSet.from_arrays(x, np.repeat([1.0, 2.0, 3.0], 8) * x[:, 0], np.repeat(["a", "b", "c"], 8))
    >>> learner = MAML(first_order=True, model="MLP", model_kwargs={"hidden": (8,)}, k_support=(1, 3),
    ...                k_query=4, n_iterations=5, meta_batch_size=2).fit(ts, progress=False)   # tiny
    >>> learner.name, learner.first_order
    ('fomaml', True)
    >>> ep = ts.episode("b", k_support=2, seed=0)
    >>> learner.adapt(ep.support, steps=10).predict(ep.query).shape   # 10 test-time inner steps
    (6,)
    """

    algorithm = "maml"

    def __init__(self, config: MetaConfig | None = None, first_order: bool | None = None, **overrides: Any):
        if first_order is not None:
            overrides["first_order"] = bool(first_order)
        super().__init__(config, **overrides)

    def _algorithm_name(self, cfg: dict) -> str:
        return "fomaml" if cfg.get("first_order") else "maml"

    @property
    def first_order(self) -> bool:
        return bool(self.config.first_order)

    def _episode_loss(self, ep) -> torch.Tensor:
        if not self.first_order:
            return super()._episode_loss(ep)
        # First order: the query gradient at the adapted weights is used as the meta-gradient.
        x_s, y_s, x_q, y_q = self._episode_data(ep)
        fmodel = self._inner_loop(x_s, y_s, self.config.inner_steps, None, track=False)
        loss = self._query_loss(fmodel, x_q, y_q, self._anchor(fmodel, x_s, y_s))
        grads = torch.autograd.grad(loss, list(fmodel.parameters()), allow_unused=True)
        for p, g in zip(self.model.parameters(), grads):
            if g is not None:
                p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()
        return loss.detach()
