"""The adapted Bayesian last layer: closed-form posterior predictive for one support set.

:class:`BayesianPredictor` is what :meth:`BayesianMetaLearner.adapt
<nanonb.learners.alpaca.BayesianMetaLearner.adapt>` returns; :class:`BMLTaskModel` is the per-task
fast path (features of every point computed once) used by evaluation and campaigns. Both turn the
learner's prior ``(mu0, L, sigma^2)`` into predictions with :mod:`nanonb.learners.blr`, in target units.
``learner`` is a fitted :class:`~nanonb.learners.alpaca.BayesianMetaLearner` (not imported here:
alpaca imports this module).
"""

from __future__ import annotations

import numpy as np
import torch

from ..tasks import Task
from ._checks import all_finite, nonfinite_error
from .blr import blr_posterior, blr_predict


class BayesianPredictor:
    """Closed-form posterior of the Bayesian last layer for one support set (target units).

    Example
    -------
    >>> pred = bml.adapt(episode.support)                              # doctest: +SKIP
    >>> mean, std = pred.predict_dist(episode.query)                   # doctest: +SKIP
    >>> draws = pred.sample(episode.query, n_samples=100, seed=0)      # (100, m)  # doctest: +SKIP
    """

    def __init__(self, learner, phi_s: torch.Tensor, y_s: torch.Tensor):
        self.learner, self.phi_s, self.y_s = learner, phi_s, y_s

    def _std_units(self, inputs, full_cov: bool):
        lr = self.learner
        phi_q = lr.features(inputs)
        mu0, chol, s2 = lr._prior()
        with torch.no_grad():
            mean, var = blr_predict(self.phi_s, self.y_s, phi_q, mu0, chol, s2, full_cov=full_cov)
        if not all_finite(mean, var):
            raise nonfinite_error(lr.name, [
                (all_finite(*lr.parameters()), "the meta-learned weights contain NaN/inf (a damaged file or a "
                 "diverged fit)"),
                (all_finite(self.phi_s, self.y_s), "the support set contains NaN/inf"),
                (all_finite(phi_q), "the query inputs contain NaN/inf"),
            ])
        return mean, lr._calibrated(var, s2)

    def predict(self, inputs: Task | np.ndarray | list) -> np.ndarray:
        """Posterior predictive mean (target units)."""
        return self.predict_dist(inputs)[0]

    def predict_dist(self, inputs: Task | np.ndarray | list, full_cov: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the posterior predictive in target units; ``full_cov=True``: ``(mean, cov)``."""
        mean, var = self._std_units(inputs, full_cov)
        sc = self.learner.scaler
        mean = mean.numpy() * sc.y_std + sc.y_mean
        if full_cov:
            return mean, var.numpy() * sc.y_std**2
        return mean, np.sqrt(var.numpy()) * sc.y_std

    def sample(self, inputs, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """Joint samples ``(n_samples, m)`` of new measurements at ``inputs`` (target units)."""
        mean, cov = self.predict_dist(inputs, full_cov=True)
        rng = np.random.default_rng(seed)
        return rng.multivariate_normal(mean, cov, size=n_samples, method="cholesky")


class BMLTaskModel:
    """Per-task cache of the features ``phi`` and standardized targets of one task.

    ``predict_dist(train_idx, test_idx)`` conditions on some points of the task and predicts others
    (see :func:`nanonb.uncertainty.evaluation.task_model`), in target units.

    Example
    -------
    >>> mean, std = bml.for_task(task).predict_dist([0, 1, 2], [3, 4])   # doctest: +SKIP
    """
    def __init__(self, learner, task: Task):
        self.learner = learner
        self.phi = learner.features(task)
        self.y = torch.as_tensor((task.targets - learner.scaler.y_mean) / learner.scaler.y_std, dtype=torch.float64)

    def raw(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray, float]:
        """Uncalibrated ``(mean, var_f, noise_var)`` in standardized units (``var = var_f + noise_var``)."""
        tr = torch.as_tensor(np.asarray(train_idx, dtype=int))
        te = torch.as_tensor(np.asarray(test_idx, dtype=int))
        with torch.no_grad():
            mu0, chol, s2 = self.learner._prior()
            m, v = blr_predict(self.phi[tr], self.y[tr], self.phi[te], mu0, chol, s2)
        return m.numpy(), np.maximum(v.numpy() - float(s2), 0.0), float(s2)

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        m, var_f, s2 = self.raw(train_idx, test_idx)
        a, b = self.learner.var_factors
        sc = self.learner.scaler
        return m * sc.y_std + sc.y_mean, np.sqrt(a * var_f + b * s2) * sc.y_std

    def sample(self, train_idx, test_idx, n_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Joint posterior samples of the latent function ``f = w . phi`` at ``test_idx`` (target units).

        Drawn in weight space (``w ~ N(mean_w, cov_w)``, ``p`` dimensions), so the cost does not
        grow with the number of candidates. Measurement noise is not added (Thompson sampling
        samples the objective, not a future measurement).
        """
        tr = torch.as_tensor(np.asarray(train_idx, dtype=int))
        te = torch.as_tensor(np.asarray(test_idx, dtype=int))
        mu0, chol, s2 = self.learner._prior()
        with torch.no_grad():
            mean_w, cov_w = blr_posterior(self.phi[tr], self.y[tr], mu0, chol, s2)
        cov_w = self.learner.var_factors[0] * cov_w.numpy()
        lc = np.linalg.cholesky(0.5 * (cov_w + cov_w.T) + 1e-12 * np.eye(len(cov_w)))
        rng = rng if rng is not None else np.random.default_rng()
        w = mean_w.numpy()[None, :] + rng.standard_normal((n_samples, len(lc))) @ lc.T
        sc = self.learner.scaler
        return (w @ self.phi[te].numpy().T) * sc.y_std + sc.y_mean
