"""Honest baselines, reported next to every meta-learner on the same episodes.

- :mod:`.nets`: :class:`Scratch`, :class:`Pooled`, :class:`FineTune`, :class:`SupportMean`.
- :mod:`.gp`: the GP baselines (:class:`SupportGP`, :class:`PooledNetResidualGP`, :class:`TaskGP`,
  :class:`TaskResidualGP`) over the two cores of :mod:`.gp_core`.
"""

from .gp import SupportGP
from .nets import FineTune, Pooled, Scratch, SupportMean

__all__ = ["FineTune", "Pooled", "Scratch", "SupportGP", "SupportMean"]
