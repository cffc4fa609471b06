"""ANIL, "almost no inner loop" (Raghu et al., ICLR 2020): adapt only the last (linear) layer.

The inner loop runs SGD on the head alone, on the body features of the support set; the
meta-gradient is second order through those steps and reaches the body through the features.
Cheap at test time (the body runs once per input) and robust with few shots. Force supervision does
not apply: the inner loop never sees atomic positions.

Example
-------
>>> learner = ANIL(model="MLP", inner_lr=0.1, n_iterations=150)   # = make_learner("anil", ...)
>>> learner.name, learner.head_only
('anil', True)
"""

from __future__ import annotations

import torch
from torch import nn

from .base import MetaLearner
from .training import mse


class ANIL(MetaLearner):
    """Meta-learned body, head adapted per task (second-order meta-gradient through the head steps).

    Parameters: a :class:`~nanonb.learners.base.MetaConfig` or its fields as keywords. ``inner_lr``
    is the SGD step on the standardized-target MSE (dimensionless); ``adapt(support).predict(x)``
    returns values in the task's target unit (eV/atom, log10(mS/cm), ...).

    Example
    -------
    >>> import numpy as np
    >>> from nanonb import TaskSet
    >>> x = np.tile(np.linspace(0.0, 1.0, 8), 3)[:, None]          # 3 tasks x 8 points, one feature
    >>> ts = TaskSet.from_arrays(x, np.repeat([1.0, 2.0, 3.0], 8) * x[:, 0], np.repeat(["a", "b", "c"], 8))
    >>> learner = ANIL(model="MLP", model_kwargs={"hidden": (8,)}, k_support=(1, 3), k_query=4,
    ...                n_iterations=5, meta_batch_size=2).fit(ts, progress=False)   # tiny, for show
    >>> ep = ts.episode("c", k_support=3, seed=0)
    >>> learner.adapt(ep.support).predict(ep.query).shape       # one prediction per query point
    (5,)
    >>> len(learner.history["train_loss"])                      # standardized query MSE per iteration
    5
    """

    algorithm = "anil"
    head_only = True

    def _adapted_module(self) -> nn.Module:
        return self.model.head

    def _inner_input(self, x, track: bool):
        feats = self.model(x, output="features")
        return feats if track else feats.detach()

    def _query_pred(self, fmodel, x_q):
        return fmodel(self.model(x_q, output="features")).squeeze(-1)

    def _query_loss(self, fmodel, x_q, y_q: torch.Tensor, anchor: torch.Tensor | float = 0.0) -> torch.Tensor:
        return mse(self._query_pred(fmodel, x_q) + anchor, y_q)
