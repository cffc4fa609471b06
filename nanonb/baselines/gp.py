"""Gaussian-process baseline on the support set, over the tasks' descriptors.

:class:`SupportGP` shares the learners' verbs: ``fit(meta_train)`` (descriptor standardization
statistics only) then ``adapt(support)`` returning an object with ``predict(task)`` in target units
(and ``return_std=True`` for the predictive standard deviation).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from ..tasks import Task, TaskSet


class _GPPredictor:
    def __init__(self, gp, mu: float, x_mean, x_std):
        self.gp, self.mu, self.x_mean, self.x_std = gp, mu, x_mean, x_std

    def predict(self, task: Task, return_std: bool = False):
        d = (np.asarray(task.descriptors) - self.x_mean) / self.x_std
        if self.gp is None:
            mean = np.full(len(d), self.mu)
            return (mean, np.full(len(d), np.nan)) if return_std else mean
        return self.gp.predict(d, return_std=return_std)


class SupportGP:
    """Gaussian process on the support set over the task descriptors.

    Kernel: constant × RBF with one length scale per descriptor (ARD) + white noise, targets
    normalized, hyper-parameters by marginal likelihood (3 restarts). Descriptors are standardized
    with meta-train statistics. With fewer than 2 support points it predicts the support mean.

    Example
    -------
    >>> gp = SupportGP(seed=0).fit(meta_train)                        # doctest: +SKIP
    >>> mean, std = gp.adapt(episode.support).predict(episode.query, return_std=True)  # doctest: +SKIP
    """

    kind = "baseline"
    name = "gp"

    def __init__(self, n_restarts: int = 2, seed: int = 0):
        self.n_restarts, self.seed = n_restarts, seed

    def fit(self, train: TaskSet, **_) -> SupportGP:
        d = np.vstack([TaskSet._descriptors(t) for t in train])
        self.x_mean, self.x_std = d.mean(0), d.std(0) + 1e-9
        return self

    def adapt(self, support: Task) -> _GPPredictor:
        if len(support) < 2:
            return _GPPredictor(None, float(support.targets.mean()), self.x_mean, self.x_std)
        d = (TaskSet._descriptors(support) - self.x_mean) / self.x_std
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(d.shape[1]), (1e-2, 1e3)) + WhiteKernel(
            1e-2, (1e-6, 1e0))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.n_restarts,
                                      random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(d, support.targets)
        return _GPPredictor(gp, float(support.targets.mean()), self.x_mean, self.x_std)
