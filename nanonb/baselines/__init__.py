"""Honest baselines, reported next to every meta-learner on the same episodes.

- :mod:`.nets`: :class:`Scratch`, :class:`Pooled`, :class:`FineTune`, :class:`SupportMean`.
- :mod:`.gp`: :class:`SupportGP` (Gaussian process on the support set over task descriptors).
"""

from .gp import SupportGP
from .nets import FineTune, Pooled, Scratch, SupportMean

__all__ = ["FineTune", "Pooled", "Scratch", "SupportGP", "SupportMean"]
