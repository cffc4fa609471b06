"""Exact Gaussian-process baselines on task descriptors (case studies): ExactGP, TaskGP, ResidualGP.

:class:`ExactGP` is a small numpy GP (constant × RBF + white noise, marginal-likelihood
hyper-parameters with analytic gradients); :class:`TaskGP` fits it on one support set,
:class:`ResidualGP` on the support residuals of a pooled model.
"""
# WAVE2: one GP stack — merge with baselines/gp.py (SupportGP) and baselines/gp_dist.py (whose
# ResidualGP is a different model under the same name).

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from ..tasks import Task, TaskSet

__all__ = ["ExactGP", "ResidualGP", "TaskGP"]


def _varying_columns(x: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    return np.flatnonzero(x.std(axis=0) > tol)


class ExactGP:
    """Small exact GP regressor (numpy): constant × RBF (ARD or isotropic) + white noise.

    Targets are normalised (mean 0, std 1); the log hyper-parameters maximise the marginal likelihood
    with L-BFGS-B and analytic gradients (bounds: signal variance [1e-3, 1e2], length scales
    [1e-2, 1e3], noise variance [1e-5, 1], as scikit-learn's defaults used here would give). About
    20× faster than ``sklearn.gaussian_process`` for the 5–30-point support sets of the case studies.
    Inputs in any (standardized) units; ``predict`` returns the mean (and std) in target units.

    Example
    -------
    >>> x = np.linspace(0, 1, 8)[:, None]
    >>> gp = ExactGP(ard=True).fit(x, np.sin(3 * x[:, 0]))
    >>> mean, std = gp.predict(x, return_std=True)
    """

    def __init__(self, ard: bool = True, n_restarts: int = 0, seed: int = 0):
        self.ard, self.n_restarts, self.seed = ard, n_restarts, seed

    def _unpack(self, theta: np.ndarray, d: int):
        s2 = np.exp(theta[0])
        ls = np.exp(theta[1: 1 + (d if self.ard else 1)])
        return s2, ls, np.exp(theta[-1])

    def _nll(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        x, y = self._x, self._y
        n, d = x.shape
        s2, ls, nv = self._unpack(theta, d)
        diff2 = (x[:, None, :] - x[None, :, :]) ** 2  # (n, n, d)
        scaled = diff2 / (ls**2 if self.ard else ls[0] ** 2)
        kf = s2 * np.exp(-0.5 * scaled.sum(-1))
        k = kf + (nv + 1e-8) * np.eye(n)
        try:
            chol = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
        nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(chol)).sum()) + 0.5 * n * np.log(2 * np.pi)
        kinv = np.linalg.solve(chol.T, np.linalg.solve(chol, np.eye(n)))
        w = np.outer(alpha, alpha) - kinv  # dNLL/dtheta = -0.5 tr(w dK/dtheta)
        g = np.empty_like(theta)
        g[0] = -0.5 * float((w * kf).sum())
        if self.ard:
            g[1:-1] = -0.5 * np.einsum("ij,ijd->d", w * kf, scaled)
        else:
            g[1] = -0.5 * float((w * kf * scaled.sum(-1)).sum())
        g[-1] = -0.5 * nv * float(np.trace(w))
        return nll, g

    def fit(self, x: np.ndarray, y: np.ndarray) -> ExactGP:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        self._x, self._y = x, (y - self.y_mean) / self.y_std
        d = x.shape[1]
        n_ls = d if self.ard else 1
        start = np.concatenate([[0.0], np.full(n_ls, 0.0 if self.ard else 0.5 * np.log(d)), [np.log(1e-2)]])
        bounds = [(np.log(1e-3), np.log(1e2))] + [(np.log(1e-2), np.log(1e3))] * n_ls + [(np.log(1e-5), 0.0)]
        rng = np.random.default_rng(self.seed)
        best = None
        for r in range(self.n_restarts + 1):
            x0 = start if r == 0 else np.array([rng.uniform(lo, hi) for lo, hi in bounds])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = minimize(self._nll, x0, jac=True, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
        self.theta = best.x
        s2, ls, nv = self._unpack(self.theta, d)
        self._ls = ls if self.ard else np.full(d, ls[0])
        self._s2 = s2
        k = self._kern(x, x) + (nv + 1e-8) * np.eye(len(x))
        self._chol = np.linalg.cholesky(k)
        self._alpha = np.linalg.solve(self._chol.T, np.linalg.solve(self._chol, self._y))
        return self

    def _kern(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a / self._ls, b / self._ls
        d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
        return self._s2 * np.exp(-0.5 * np.maximum(d2, 0.0))

    def predict(self, x: np.ndarray, return_std: bool = False):
        ks = self._kern(np.asarray(x, dtype=np.float64), self._x)
        mean = ks @ self._alpha * self.y_std + self.y_mean
        if not return_std:
            return mean
        v = np.linalg.solve(self._chol, ks.T)
        var = np.maximum(self._s2 - (v**2).sum(0), 1e-12)
        return mean, np.sqrt(var) * self.y_std


def _gp(x: np.ndarray, y: np.ndarray, ard: bool, n_restarts: int, seed: int) -> ExactGP:
    return ExactGP(ard=ard, n_restarts=n_restarts, seed=seed).fit(x, y)


class TaskGP:
    """Gaussian process on the support set alone (per-task GP from scratch).

    Inputs: the task descriptors (standardized features) restricted to the columns that vary within
    the support (for an electrolyte system: temperature, 1/T, concentration, solvent fractions).
    Kernel: constant × RBF (one length scale per column when ``ard``, else one) + white noise;
    ``normalize_y``; marginal-likelihood hyper-parameters with ``n_restarts`` restarts. With fewer than
    two support points or no varying column it predicts the support mean.

    Example
    -------
    >>> TaskGP(ard=True, n_restarts=1).adapt(support).predict(query)  # doctest: +SKIP
    """

    kind = "baseline"

    def __init__(self, ard: bool = True, n_restarts: int = 1, seed: int = 0, name: str = "gp"):
        self.ard, self.n_restarts, self.seed, self.name = ard, n_restarts, seed, name

    def fit(self, train: TaskSet, **_) -> TaskGP:
        return self

    def _residual_model(self, support: Task, y: np.ndarray):
        d = np.asarray(support.descriptors, dtype=np.float64)
        cols = _varying_columns(d)
        mean = float(y.mean()) if len(y) else 0.0
        if len(y) < 2 or cols.size == 0 or np.ptp(y) == 0:
            return lambda task: np.full(len(task), mean)
        gp = _gp(d[:, cols], y, self.ard and cols.size <= 12, self.n_restarts, self.seed)
        return lambda task: gp.predict(np.asarray(task.descriptors, dtype=np.float64)[:, cols])

    def adapt(self, support: Task):
        f = self._residual_model(support, support.targets)
        return _TaskPredictor(f)


class _TaskPredictor:
    def __init__(self, fn: Callable[[Task], np.ndarray]):
        self.fn = fn

    def predict(self, task: Task) -> np.ndarray:
        if not isinstance(task, Task):
            raise TypeError("This baseline predicts Tasks (it reads their descriptors), not raw arrays.")
        return np.asarray(self.fn(task), dtype=np.float64)


class ResidualGP(TaskGP):
    """GP on the support residuals around a pooled model: ``pooled(x) + GP(y - pooled)`` (target units).

    Example
    -------
    >>> ResidualGP(PooledTrees("gbm").fit(meta_train)).adapt(support).predict(query)  # doctest: +SKIP
    """

    def __init__(self, pooled, ard: bool = True, n_restarts: int = 1, seed: int = 0, name: str = "residual-gp"):
        super().__init__(ard=ard, n_restarts=n_restarts, seed=seed, name=name)
        self.pooled = pooled

    def fit(self, train: TaskSet, **kw) -> ResidualGP:
        if getattr(self.pooled, "model", None) is None:
            self.pooled.fit(train, **kw)
        return self

    def adapt(self, support: Task):
        base = self.pooled.adapt(None)
        f = self._residual_model(support, support.targets - base.predict(support))
        return _TaskPredictor(lambda task: base.predict(task) + f(task))

