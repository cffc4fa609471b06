"""Gradient-based meta-learners, one algorithm per module, with one shared base and one inner-loop update.

- :mod:`.inner`: the pure inner-loop update (clipped SGD step, first-order flag).
- :mod:`.training`: :class:`Scaler` (standardization), :func:`pooled_train`, :func:`predict_energy_forces`.
- :mod:`.base`: :class:`MetaConfig`, :class:`MetaLearner` (fit / adapt / predict / save), :class:`AdaptedModel`.
- :mod:`.maml` (:class:`MAML`, FOMAML by flag) · :mod:`.anil` (:class:`ANIL`) · :mod:`.metasgd` (:class:`MetaSGD`).
- :mod:`.alpaca` (:class:`BayesianMetaLearner`, Bayesian last layer) · :mod:`.bml_ensemble` (:class:`BMLEnsemble`,
  several of them, one mixture) · :mod:`.ensemble` (:class:`EnsembleMetaLearner`).
- :mod:`.vtfprior` (:class:`~nanonb.learners.vtfprior.VTFPriorLearner`, a VTF head adapted under an
  empirical-Bayes prior; imported by :func:`make_learner` on first use of ``"vtf-prior"``, since it builds on
  the baselines, which import this package).
- :mod:`.registry`: :func:`make_learner` (name -> learner) and :func:`load` (saved files -> learner).
  ``bml``, ``bml-ens`` and ``ensemble`` register themselves; importing them here makes every name resolvable
  whatever the import order.
"""

from .alpaca import BayesConfig, BayesianMetaLearner
from .anil import ANIL
from .base import AdaptedModel, MetaConfig, MetaLearner
from .bml_ensemble import BMLEnsemble
from .ensemble import EnsembleMetaLearner
from .maml import MAML
from .metasgd import MetaSGD
from .registry import ALGORITHMS, LEARNERS, load, make_learner
from .training import Scaler, pooled_train, predict_energy_forces

__all__ = ["ANIL", "BayesConfig", "BayesianMetaLearner", "BMLEnsemble", "EnsembleMetaLearner", "AdaptedModel",
           "MetaConfig",
           "MetaLearner", "MAML", "MetaSGD", "ALGORITHMS", "LEARNERS", "load", "make_learner", "Scaler", "pooled_train",
           "predict_energy_forces"]
