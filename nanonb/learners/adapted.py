"""A gradient-based learner adapted to one task: :class:`AdaptedModel` (what ``MetaLearner.adapt`` returns).

Example
-------
>>> from nanonb.learners.adapted import AdaptedModel
>>> AdaptedModel.predict.__doc__ is None or "target" in (AdaptedModel.__doc__ or "")
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..tasks import Task
from ._checks import all_finite, nonfinite_error


class AdaptedModel:
    """A model adapted to one task's support set. ``predict`` returns values in target units.

    ``fmodel`` is the ``higher``-patched adapted module (the head only when ``head_only``).

    Example
    -------
    >>> adapted = learner.adapt(episode.support)        # doctest: +SKIP
    >>> adapted.predict(episode.query)                  # target units  # doctest: +SKIP
    """

    def __init__(self, learner: Any, fmodel: nn.Module, head_only: bool, lr: float | None = None,
                 steps: int = 0, offset: float = 0.0):
        self.learner = learner
        self.fmodel = fmodel
        self.head_only = head_only
        self.lr, self.steps = lr, steps
        #: Added to the network output (standardized units): the support anchor of ``center="support"``.
        self.offset = float(offset)

    @torch.no_grad()
    def predict(self, inputs: Task | np.ndarray | list) -> np.ndarray:
        x = self.learner.inputs(inputs)
        if self.head_only:
            out = self.fmodel(self.learner.model(x, output="features")).squeeze(-1)
        else:
            out = self.fmodel(x)
        if not bool(torch.isfinite(out).all()):
            raise self._nonfinite(x)
        return self.learner.scaler.y_inv(out.reshape(-1) + self.offset)

    def _nonfinite(self, x) -> FloatingPointError:
        """The error for a NaN/inf prediction, with the first cause found (weights, adaptation, inputs)."""
        lr = self.learner
        inner = "learned per-weight steps" if self.lr is None else f"lr={self.lr}"
        return nonfinite_error(lr.name, [
            (all_finite(*lr.parameters()), "the meta-learned weights contain NaN/inf (a damaged file or a "
             "diverged fit)"),
            (all_finite(*self.fmodel.parameters()), f"adaptation diverged ({self.steps} steps, {inner}): lower the "
             "step size (adapt(lr=...), inner_lr) or the steps, or set inner_grad_clip"),
            (all_finite(x if torch.is_tensor(x) else getattr(x, "pos", None)), "the query inputs contain NaN/inf"),
        ])

    def features(self, inputs) -> torch.Tensor:
        """Body features of the adapted model (used by Bayesian last layers)."""
        x = self.learner.inputs(inputs)
        with torch.no_grad():
            if self.head_only:
                return self.learner.model(x, output="features")
            return self.fmodel(x, output="features")
