"""GP baselines with a predictive standard deviation, over task descriptors.

:class:`SupportGPDist` is the GP on the support of :class:`~nanonb.baselines.gp.SupportGP` with its
predictive std; :class:`ResidualGP` is a GP on the residuals of the :class:`~nanonb.baselines.nets.Pooled`
network. Both have ``fit(train)``, ``adapt(support).predict_dist(task) -> (mean, std)`` (target units)
and the per-task fast path ``for_task(task).predict_dist(train_idx, test_idx)`` used by campaigns
(with warm-started hyper-parameters for GP-BO). :func:`fit_gp` is the shared scikit-learn fit.
"""
# WAVE2: one of three GP stacks (with baselines/gp.py's SupportGP and baselines/gp_exact.py's ExactGP /
# TaskGP / ResidualGP); a later wave merges them into baselines/gp.py. Two classes are called ResidualGP.

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from ..tasks import Task, TaskSet
from .nets import Pooled

#: Above this many descriptor columns the GP baselines use one shared length scale instead of ARD.
ARD_MAX_DIMS = 100


def fit_gp(d: np.ndarray, y: np.ndarray, ard: bool | None = None, n_restarts: int = 2, normalize_y: bool = True,
           offset: bool = False, signal_var: float = 1.0, noise_bounds: tuple[float, float] = (1e-6, 1.0),
           warm_kernel=None, fixed: bool = False, maxiter: int = 200, seed: int = 0):
    """Fit a scikit-learn GP ``c RBF(d) + white`` (plus a constant ``c0`` with ``offset``) on ``(d, y)``.

    Hyper-parameters by marginal likelihood (L-BFGS-B, at most ``maxiter`` iterations per start,
    ``n_restarts`` extra random starts); ``warm_kernel`` (a fitted ``gp.kernel_``) starts the
    optimization there (used by GP-BO from round to round); ``fixed=True`` keeps the initial
    hyper-parameters. ``ard=None``: one length scale per column up to :data:`ARD_MAX_DIMS`
    columns, one shared length scale above (ARD with hundreds of length scales from a few
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
    ard = d.shape[1] <= ARD_MAX_DIMS if ard is None else ard
    if warm_kernel is not None:
        kernel = warm_kernel
    else:
        v = signal_var
        ls = np.ones(d.shape[1]) if ard else math.sqrt(d.shape[1])
        kernel = ConstantKernel(v, (v * 1e-3, v * 1e3)) * RBF(ls, (1e-2, 1e3)) + WhiteKernel(
            min(max(1e-2 * v, noise_bounds[0]), noise_bounds[1]), noise_bounds)
        if offset:
            kernel = ConstantKernel(v, (v * 1e-4, v * 1e2)) + kernel

    def optimizer(obj_func, initial_theta, bounds):
        res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                       options={"maxiter": maxiter})
        return res.x, res.fun

    gp = GaussianProcessRegressor(kernel, normalize_y=normalize_y, optimizer=None if fixed else optimizer,
                                  n_restarts_optimizer=0 if (fixed or warm_kernel is not None) else n_restarts,
                                  random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(d, y)
    return gp


class _GPDistPredictor:
    def __init__(self, gp_pred, mean0: float, std0: float, offset=None):
        self.gp_pred, self.mean0, self.std0, self.offset = gp_pred, mean0, std0, offset

    def predict_dist(self, task: Task) -> tuple[np.ndarray, np.ndarray]:
        n = len(task)
        base = np.zeros(n) if self.offset is None else np.asarray(self.offset(task), dtype=np.float64)
        if self.gp_pred is None:
            return base + self.mean0, np.full(n, self.std0)
        mean, std = self.gp_pred(task)
        std = np.where(np.isfinite(std) & (std > 0), std, self.std0)
        return base + mean, np.maximum(std, 1e-9 * self.std0)

    def predict(self, task: Task) -> np.ndarray:
        return self.predict_dist(task)[0]


class _DescriptorTaskModel:
    """Per-task standardized descriptors. With the owner's ``warm_start``, hyper-parameter refits
    start from the previous call's kernel, and between refits (every ``refit_every`` calls) the GP
    is conditioned on the new data with the hyper-parameters kept fixed."""

    def __init__(self, owner, task: Task, base: np.ndarray | None = None):
        self.owner, self.task = owner, task
        self.d = (TaskSet._descriptors(task) - owner.x_mean) / owner.x_std
        self.base = np.zeros(len(task)) if base is None else base
        self.kernel = None
        self.calls = 0

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        train_idx, test_idx = np.asarray(train_idx, dtype=int), np.asarray(test_idx, dtype=int)
        r = self.task.targets[train_idx] - self.base[train_idx]
        warm = self.kernel if self.owner.warm_start else None
        fixed = warm is not None and self.calls % max(1, getattr(self.owner, "refit_every", 1)) != 0
        mean, std, gp = self.owner._gp_dist(self.d[train_idx], r, self.d[test_idx], warm, fixed)
        if gp is not None and hasattr(gp, "kernel_"):
            self.kernel = gp.kernel_
            self.calls += 1
        return self.base[test_idx] + mean, std


class SupportGPDist:
    """A GP on the support over the task descriptors, with its predictive standard deviation.

    The model of :class:`~nanonb.baselines.SupportGP`: constant x RBF (one length scale per
    descriptor; a shared one above :data:`ARD_MAX_DIMS` columns) + white noise, normalized targets,
    hyper-parameters by marginal likelihood on the support, descriptors standardized with
    meta-train statistics. ``predict_dist`` includes the fitted noise. With fewer than 2 support
    points no kernel can be fitted: the prediction is the support mean (the meta-train mean for an
    empty support) with the median within-task standard deviation of the meta-train tasks.
    ``warm_start=True`` (used in GP-BO campaigns via :meth:`for_task`) starts each refit from the
    previous round's hyper-parameters instead of random restarts, and re-optimizes them every
    ``refit_every`` rounds (in between, the GP is conditioned on the new points with fixed
    hyper-parameters, as is common in Bayesian optimization).

    Example
    -------
    >>> gp = SupportGPDist(n_restarts=1).fit(train)                          # doctest: +SKIP
    >>> mean, std = gp.adapt(episode.support).predict_dist(episode.query)    # target units  # doctest: +SKIP
    """

    kind = "baseline"
    name = "gp"

    def __init__(self, n_restarts: int = 2, ard: bool | None = None, warm_start: bool = False, refit_every: int = 1,
                 seed: int = 0, name: str = "gp"):
        self.n_restarts, self.ard, self.warm_start, self.seed, self.name = n_restarts, ard, warm_start, seed, name
        self.refit_every = refit_every

    def fit(self, train: TaskSet, **_) -> SupportGPDist:
        d = np.vstack([TaskSet._descriptors(t) for t in train])
        self.x_mean, self.x_std = d.mean(0), d.std(0) + 1e-9
        self.y_mean = float(np.concatenate([t.targets for t in train]).mean())
        self.y_task_std = float(np.median([t.targets.std() for t in train if len(t) > 1]))
        return self

    def _gp_dist(self, d_s, y_s, d_q, warm=None, fixed: bool = False):
        if len(y_s) == 0:
            return np.full(len(d_q), self.y_mean), np.full(len(d_q), self.y_task_std), None
        if len(y_s) < 2:
            return np.full(len(d_q), float(y_s.mean())), np.full(len(d_q), self.y_task_std), None
        gp = fit_gp(d_s, y_s, ard=self.ard, n_restarts=self.n_restarts, warm_kernel=warm, fixed=fixed,
                    seed=self.seed)
        mean, std = gp.predict(d_q, return_std=True)
        std = np.where(np.isfinite(std) & (std > 0), std, self.y_task_std)
        return mean, np.maximum(std, 1e-9 * self.y_task_std), gp

    def adapt(self, support: Task | None) -> _GPDistPredictor:
        if support is None or len(support) == 0:
            return _GPDistPredictor(None, self.y_mean, self.y_task_std)
        d_s = (TaskSet._descriptors(support) - self.x_mean) / self.x_std
        y_s = support.targets

        def pred(task: Task):
            return self._gp_dist(d_s, y_s, (TaskSet._descriptors(task) - self.x_mean) / self.x_std)[:2]

        return _GPDistPredictor(pred, 0.0, self.y_task_std)

    def for_task(self, task: Task) -> _DescriptorTaskModel:
        return _DescriptorTaskModel(self, task)


class ResidualGP:
    """A GP on the residuals of the :class:`~nanonb.baselines.nets.Pooled` network, over descriptors.

    ``y = f_pooled(x) + g(d) + eps`` with ``g ~ GP(0, c0 + c1 RBF(d))`` (``c0``: a constant task
    offset, the typical error of a pooled model on an unseen system) and white noise ``eps``
    (variance at least ``1e-3`` of the residual scale). From 3 support points on, the kernel
    hyper-parameters are fitted by marginal likelihood on the support residuals; below that they
    stay at their initial values, set from the meta-train residual variance of the pooled model
    (in-sample residuals, so optimistic).

    Example
    -------
    >>> rgp = ResidualGP(Pooled(model="MLP", epochs=20), n_restarts=0).fit(train)   # doctest: +SKIP
    >>> mean, std = rgp.adapt(episode.support).predict_dist(episode.query)         # doctest: +SKIP
    """

    kind = "baseline"
    name = "pooled+gp"

    def __init__(self, pooled=None, n_restarts: int = 2, ard: bool | None = None, seed: int = 0,
                 name: str = "pooled+gp", **pooled_kwargs):
        self.pooled = pooled if pooled is not None else Pooled(seed=seed, **pooled_kwargs)
        self.n_restarts, self.ard, self.seed, self.name = n_restarts, ard, seed, name
        self.warm_start = False

    def fit(self, train: TaskSet, progress: bool = False, **_) -> ResidualGP:
        if self.pooled.model is None:
            self.pooled.fit(train, progress=progress)
        d = np.vstack([TaskSet._descriptors(t) for t in train])
        self.x_mean, self.x_std = d.mean(0), d.std(0) + 1e-9
        res = np.concatenate([t.targets - self._base(t) for t in train])
        self.res_var = float(max(np.mean(res**2), 1e-12))
        return self

    def _base(self, task: Task) -> np.ndarray:
        return np.asarray(self.pooled.adapt().predict(task), dtype=np.float64)

    def _gp_dist(self, d_s, r, d_q, warm=None, fixed: bool = False):
        v = self.res_var
        if len(r) == 0:
            return np.zeros(len(d_q)), np.full(len(d_q), math.sqrt(v)), None
        gp = fit_gp(d_s, r, ard=self.ard, n_restarts=self.n_restarts, normalize_y=False, offset=True,
                    signal_var=v / 3, noise_bounds=(v * 1e-3, v * 10), fixed=fixed or len(r) < 3, warm_kernel=warm,
                    seed=self.seed)
        mean, std = gp.predict(d_q, return_std=True)
        return mean, np.maximum(std, 1e-9 * math.sqrt(v)), gp

    def adapt(self, support: Task | None) -> _GPDistPredictor:
        if support is None or len(support) == 0:
            return _GPDistPredictor(None, 0.0, math.sqrt(self.res_var), offset=self._base)
        d_s = (TaskSet._descriptors(support) - self.x_mean) / self.x_std
        r = support.targets - self._base(support)

        def pred(task: Task):
            return self._gp_dist(d_s, r, (TaskSet._descriptors(task) - self.x_mean) / self.x_std)[:2]

        return _GPDistPredictor(pred, 0.0, math.sqrt(self.res_var), offset=self._base)

    def for_task(self, task: Task) -> _DescriptorTaskModel:
        return _DescriptorTaskModel(self, task, base=self._base(task))
