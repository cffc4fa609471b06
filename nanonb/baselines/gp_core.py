"""The two GP cores of the GP baselines: :func:`fit_gp` (scikit-learn) and :class:`ExactGP` (numpy).

Both fit the same model, constant × RBF (one length scale per input column, or one shared) + white
noise, with hyper-parameters by marginal likelihood (L-BFGS-B), and both start from the same point
(signal variance 1, length scales 1 (ARD) or sqrt(d) (shared), noise variance 1e-2). They are kept
as two cores because they are two different algorithms whose numbers differ, and the benchmarks
depend on each: :func:`fit_gp` is scikit-learn's ``GaussianProcessRegressor`` (its restarts, its
bounds relative to the signal variance, an optional constant offset kernel and warm starts for
GP-BO), used by the descriptor GPs of :mod:`nanonb.baselines.gp` on the nanoalloys, forces, tb and
active protocols; :class:`ExactGP` is a hand-written exact GP (scipy L-BFGS-B with analytic
gradients, its own restarts and absolute bounds), about 20× faster on the 5–30-point supports of
the case studies (calisol, lnpdb). Merging them would change the reference benchmark numbers.
The front (``fit`` / ``adapt`` / ``predict`` / ``predict_dist``) is shared, in :mod:`nanonb.baselines.gp`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

__all__ = ["ARD_MAX_DIMS", "ExactGP", "fit_gp", "noise_kernel", "signal_kernel", "varying_columns"]

#: Above this many descriptor columns ``fit_gp(ard=None)`` uses one shared length scale instead of ARD.
ARD_MAX_DIMS = 100

def signal_kernel(n_cols: int, ard: bool | None = None, signal_var: float = 1.0):
    """``c RBF(d)``, the signal part of :func:`fit_gp`'s starting kernel on ``n_cols`` input columns.

    ``c`` starts at ``signal_var`` (bounds ``signal_var * [1e-3, 1e3]``, units of ``y`` squared); the length
    scales at 1 per column (ARD; ``ard=None``: ARD up to :data:`ARD_MAX_DIMS` columns) or one shared
    ``sqrt(n_cols)`` (bounds ``[1e-2, 1e3]``, standardized input units).

    Example
    -------
    >>> signal_kernel(2)
    1**2 * RBF(length_scale=[1, 1])
    """
    ard = n_cols <= ARD_MAX_DIMS if ard is None else ard
    ls = np.ones(n_cols) if ard else math.sqrt(n_cols)
    return ConstantKernel(signal_var, (signal_var * 1e-3, signal_var * 1e3)) * RBF(ls, (1e-2, 1e3))


def noise_kernel(signal_var: float = 1.0, noise_bounds: tuple[float, float] = (1e-6, 1.0)):
    """The white-noise part of :func:`fit_gp`'s starting kernel: ``1e-2 signal_var`` clipped into ``noise_bounds``.

    Example
    -------
    >>> noise_kernel()
    WhiteKernel(noise_level=0.01)
    """
    return WhiteKernel(min(max(1e-2 * signal_var, noise_bounds[0]), noise_bounds[1]), noise_bounds)


def fit_gp(d: np.ndarray, y: np.ndarray, ard: bool | None = None, n_restarts: int = 2, normalize_y: bool = True,
           offset: bool = False, signal_var: float = 1.0, noise_bounds: tuple[float, float] = (1e-6, 1.0),
           warm_kernel=None, fixed: bool = False, maxiter: int | None = 200, seed: int = 0, kernel=None):
    """Fit a scikit-learn GP ``c RBF(d) + white`` (plus a constant ``c0`` with ``offset``) on ``(d, y)``.

    Hyper-parameters by marginal likelihood (L-BFGS-B, at most ``maxiter`` iterations per start,
    ``n_restarts`` extra random starts); ``warm_kernel`` (a fitted ``gp.kernel_``) starts the
    optimization there (used by GP-BO from round to round); ``fixed=True`` keeps the initial
    hyper-parameters; ``maxiter=None`` uses scikit-learn's own optimizer (no iteration cap); ``kernel``
    (a scikit-learn kernel) replaces the default starting kernel (then ``ard``, ``offset``,
    ``signal_var`` and ``noise_bounds`` are not used).
    ``ard=None``: one length scale per column up to :data:`ARD_MAX_DIMS` columns, one shared
    length scale above (ARD with hundreds of length scales from a few
    points is slow and over-fits). ``signal_var`` and ``noise_bounds`` are in units of ``y``
    squared (of the normalized ``y`` with ``normalize_y``). Returns the fitted
    ``GaussianProcessRegressor`` (``predict(d_q, return_std=True)`` in units of ``y``).

    Example
    -------
    >>> d = np.linspace(0, 1, 8)[:, None]
    >>> gp = fit_gp(d, np.sin(6 * d[:, 0]), n_restarts=0)
    >>> mean, std = gp.predict(d, return_std=True)
    >>> bool(np.abs(mean - np.sin(6 * d[:, 0])).max() < 0.1)
    True
    """
    if warm_kernel is not None:
        kernel = warm_kernel
    elif kernel is None:
        v = signal_var
        kernel = signal_kernel(d.shape[1], ard, v) + noise_kernel(v, noise_bounds)
        if offset:
            kernel = ConstantKernel(v, (v * 1e-4, v * 1e2)) + kernel

    def optimizer(obj_func, initial_theta, bounds):
        res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                       options={"maxiter": maxiter})
        return res.x, res.fun

    opt = None if fixed else ("fmin_l_bfgs_b" if maxiter is None else optimizer)
    gp = GaussianProcessRegressor(kernel, normalize_y=normalize_y, optimizer=opt,
                                  n_restarts_optimizer=0 if (fixed or warm_kernel is not None) else n_restarts,
                                  random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(d, y)
    return gp


def varying_columns(x: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Indices of the columns of ``x`` whose standard deviation exceeds ``tol`` (units of ``x``).

    Example
    -------
    >>> varying_columns(np.array([[0.0, 1.0], [0.0, 2.0]])).tolist()
    [1]
    """
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
