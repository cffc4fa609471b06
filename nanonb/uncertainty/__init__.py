"""Predictive uncertainty for few-shot learners: scores, variance calibration, evaluation, decisions.

Every uncertainty method (the learners :class:`~nanonb.learners.alpaca.BayesianMetaLearner` and
:class:`~nanonb.learners.ensemble.EnsembleMetaLearner`, the baselines in
:mod:`nanonb.baselines.gp`) has ``fit(train)``, ``adapt(support)`` and an adapted predictor with
``predict(task)`` (mean) and ``predict_dist(task) -> (mean, std)`` in the task's target units;
``std`` is the standard deviation of the *predictive* distribution of a new measurement (model
uncertainty plus noise). This package scores and uses such distributions; it imports no learner.

- :mod:`.metrics`: :func:`gaussian_nll`, :func:`coverage`, :func:`calibration_curve`,
  :func:`sharpness`, :func:`interval`.
- :mod:`.calibration`: :func:`fit_variance_mix`, :func:`fit_noise_calibration` (variance factors
  fitted by NLL on held-out tasks) and :func:`calibration_tasks` (which tasks to hold out).
- :mod:`.evaluation`: :func:`evaluate_uncertainty` over many held-out episodes,
  :func:`calibration_summary`, and the per-task fast path :func:`task_model`.
- :mod:`.decision`: :func:`flag_for_validation` turns a predictive distribution into a ranked
  candidate list in which promising-but-uncertain candidates are flagged "validate experimentally".
"""

from .calibration import calibration_tasks, fit_noise_calibration, fit_variance_mix
from .decision import flag_for_validation, goal_sign
from .evaluation import calibration_summary, evaluate_uncertainty, task_model
from .metrics import CURVE_LEVELS, LEVELS, calibration_curve, coverage, gaussian_nll, interval, interval_z, sharpness

__all__ = [
    "CURVE_LEVELS", "LEVELS", "calibration_curve", "calibration_summary", "calibration_tasks", "coverage",
    "evaluate_uncertainty", "fit_noise_calibration", "fit_variance_mix", "flag_for_validation", "gaussian_nll",
    "goal_sign", "interval", "interval_z", "sharpness", "task_model",
]
