"""Meta-SGD (Li et al., 2017): MAML with a learned step size for every weight.

The inner learning rates ``inner_lrs`` (one tensor per network parameter, initialised at
``inner_lr``) are meta-learned together with the initial weights and clamped at 0 after every
meta-update. ``adapt(support, lr=...)`` replaces them by one fixed step size.

Example
-------
>>> learner = MetaSGD(model="MLP", model_kwargs={"n_in": 2}, inner_lr=0.01)   # = make_learner("metasgd", ...)
>>> len(learner.inner_lrs) == len(list(learner.model.parameters()))
True
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MetaLearner


class MetaSGD(MetaLearner):
    """Whole-network adaptation with learned per-weight inner step sizes (second order by default).

    Parameters: a :class:`~nanonb.learners.base.MetaConfig` or its fields as keywords
    (``first_order=True`` detaches the inner gradients). The step sizes act on the
    standardized-target MSE (dimensionless); predictions are in the task's target unit.

    Example
    -------
    >>> import numpy as np
    >>> from nanonb import TaskSet
    >>> x = np.tile(np.linspace(0.0, 1.0, 8), 3)[:, None]          # 3 tasks x 8 points, one feature
    >>> ts = TaskSet.from_arrays(x, np.repeat([1.0, 2.0, 3.0], 8) * x[:, 0], np.repeat(["a", "b", "c"], 8))
    >>> learner = MetaSGD(model="MLP", model_kwargs={"hidden": (8,)}, inner_lr=0.05, k_support=(1, 3),
    ...                   k_query=4, n_iterations=5, meta_batch_size=2).fit(ts, progress=False)   # tiny
    >>> all(bool((a >= 0).all()) for a in learner.inner_lrs)         # learned step sizes, kept >= 0
    True
    >>> ep = ts.episode("a", k_support=3, seed=0)
    >>> learner.adapt(ep.support).predict(ep.query).shape           # learned per-weight steps
    (5,)
    """

    algorithm = "metasgd"

    def _extra_parameters(self) -> None:
        self.inner_lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, self.config.inner_lr)) for p in self.model.parameters()])

    def _step_sizes(self, lr: float | None):
        return list(self.inner_lrs) if lr is None else lr

    def _after_outer_step(self) -> None:
        with torch.no_grad():
            for a in self.inner_lrs:
                a.clamp_(min=0.0)
