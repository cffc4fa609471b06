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
    (``first_order=True`` detaches the inner gradients).
    """

    algorithm = "metasgd"

    def _extra_parameters(self) -> None:
        self.inner_lrs = nn.ParameterList(
            [nn.Parameter(torch.full_like(p, self.config.inner_lr)) for p in self.model.parameters()])

    def _inner_optimizer(self, params: list, lr: float | None):
        if lr is not None:
            return super()._inner_optimizer(params, lr)
        opt = torch.optim.SGD([{"params": [p]} for p in params], lr=self.config.inner_lr)
        return opt, {"lr": list(self.inner_lrs)}

    def _after_outer_step(self) -> None:
        with torch.no_grad():
            for a in self.inner_lrs:
                a.clamp_(min=0.0)
