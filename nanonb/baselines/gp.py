"""The GP baselines: one front over the two cores of :mod:`nanonb.baselines.gp_core`.

Every GP baseline has the learners' verbs: ``fit(meta_train)`` then ``adapt(support)`` returning a
:class:`GPPredictor` with ``predict(task)`` (mean) and ``predict_dist(task) -> (mean, std)``, in the
task's target units.

- :class:`SupportGP`: a GP on the support over the meta-train-standardized descriptors
  (scikit-learn core :func:`~nanonb.baselines.gp_core.fit_gp`); ``for_task(task)`` is the per-task
  fast path of campaigns, with warm-started hyper-parameters for GP-BO.
- :class:`PooledNetResidualGP`: a GP (scikit-learn core) on the residuals of the
  :class:`~nanonb.baselines.nets.Pooled` network, over the same descriptors.
- :class:`TaskGP`: the case studies' per-task GP (numpy core :class:`~nanonb.baselines.gp_core.ExactGP`)
  on the descriptor columns that vary within the support.
- :class:`TaskResidualGP`: :class:`TaskGP` on the support residuals of a pooled tabular model.

Why two cores: see :mod:`nanonb.baselines.gp_core`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..scaling import clip_standardized, input_statistics
from ..tasks import Task, TaskSet
from .gp_core import ExactGP, fit_gp, varying_columns
from .nets import Pooled

__all__ = ["GPPredictor", "PooledNetResidualGP", "SupportGP", "TaskGP", "TaskResidualGP"]


def _const(n: int, mean: float, std: float) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, mean), np.full(n, std)


class GPPredictor:
    """An adapted GP baseline: ``predict(task)`` and ``predict_dist(task) -> (mean, std)`` (target units).

    ``mean_fn(task)`` and ``dist_fn(task)`` give the GP part; ``base(task)`` (a pooled model's
    prediction) is added to the mean when given. With ``std0``, a non-finite or zero std is
    replaced by ``std0`` and the std is at least ``1e-9 * std0``.

    Example
    -------
    >>> pred = SupportGP(n_restarts=0).fit(train).adapt(episode.support)    # doctest: +SKIP
    >>> mean, std = pred.predict_dist(episode.query)                         # doctest: +SKIP
    """

    def __init__(self, mean_fn: Callable, dist_fn: Callable, std0: float | None = None,
                 base: Callable | None = None):
        self.mean_fn, self.dist_fn, self.std0, self.base = mean_fn, dist_fn, std0, base

    @staticmethod
    def _check(task) -> None:
        if not isinstance(task, Task):
            raise TypeError("GP baselines predict Tasks (they read their descriptors), not raw arrays.")

    def _offset(self, task: Task, mean: np.ndarray) -> np.ndarray:
        if self.base is None:
            return np.asarray(mean, dtype=np.float64)
        return np.asarray(self.base(task), dtype=np.float64) + mean

    def predict(self, task: Task, return_std: bool = False):
        """Mean prediction for ``task`` (target units); ``return_std=True`` gives ``predict_dist``."""
        if return_std:
            return self.predict_dist(task)
        self._check(task)
        return self._offset(task, self.mean_fn(task))

    def predict_dist(self, task: Task) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation for ``task`` (target units, noise included)."""
        self._check(task)
        mean, std = self.dist_fn(task)
        if self.std0 is not None:
            std = np.where(np.isfinite(std) & (std > 0), std, self.std0)
            std = np.maximum(std, 1e-9 * self.std0)
        return self._offset(task, mean), std


class _DescriptorGP:
    """Shared front of the scikit-learn GPs: descriptor standardization, adapt, per-task fast path.

    Subclasses give ``_fit(d_s, y_s, warm, fixed) -> gp | None``, ``_predict(gp, y_s, d_q,
    return_std)``, ``_std0`` and, with ``residual = True``, ``_base(task)`` (the base model's
    prediction; the GP models ``y - base``)."""

    warm_start = False
    refit_every = 1
    residual = False

    def _fit_scaler(self, train: TaskSet) -> None:
        d = np.vstack([TaskSet._descriptors(t) for t in train])
        self.x_mean, self.x_std = input_statistics(d)  # the one input rule of every learner (nanonb.scaling)

    def _features(self, task: Task) -> np.ndarray:
        return clip_standardized((TaskSet._descriptors(task) - self.x_mean) / self.x_std)

    def adapt(self, support: Task | None) -> GPPredictor:
        """Fit the GP on ``support`` (``None`` or empty: the prior); returns a :class:`GPPredictor`."""
        base = self._base if self.residual else None
        if support is None or len(support) == 0:
            y_s = np.zeros(0)
            d_s = np.zeros((0, len(self.x_mean)))
        else:
            d_s = self._features(support)
            y_s = support.targets if base is None else support.targets - base(support)
        gp = self._fit(d_s, y_s)
        return GPPredictor(lambda task: self._predict(gp, y_s, self._features(task), False),
                           lambda task: self._predict(gp, y_s, self._features(task), True),
                           std0=self._std0, base=base)

    def for_task(self, task: Task) -> _DescriptorTaskModel:
        """Per-task fast path: ``for_task(task).predict_dist(train_idx, test_idx) -> (mean, std)``."""
        return _DescriptorTaskModel(self, task, base=self._base(task) if self.residual else None)


class _DescriptorTaskModel:
    """Per-task standardized descriptors. With the owner's ``warm_start``, hyper-parameter refits
    start from the previous call's kernel, and between refits (every ``refit_every`` calls) the GP
    is conditioned on the new data with the hyper-parameters kept fixed."""

    def __init__(self, owner: _DescriptorGP, task: Task, base: np.ndarray | None = None):
        self.owner, self.task = owner, task
        self.d = owner._features(task)
        self.base = np.zeros(len(task)) if base is None else base
        self.kernel = None
        self.calls = 0

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        train_idx, test_idx = np.asarray(train_idx, dtype=int), np.asarray(test_idx, dtype=int)
        r = self.task.targets[train_idx] - self.base[train_idx]
        warm = self.kernel if self.owner.warm_start else None
        fixed = warm is not None and self.calls % max(1, self.owner.refit_every) != 0
        gp = self.owner._fit(self.d[train_idx], r, warm, fixed)
        mean, std = self.owner._predict(gp, r, self.d[test_idx], True)
        if gp is not None and hasattr(gp, "kernel_"):
            self.kernel = gp.kernel_
            self.calls += 1
        return self.base[test_idx] + mean, std


class SupportGP(_DescriptorGP):
    """Gaussian process on the support set over the task descriptors, with its predictive std.

    Kernel: constant × RBF (one length scale per descriptor with ``ard=True``; ``ard=None``: ARD up
    to :data:`~nanonb.baselines.gp_core.ARD_MAX_DIMS` columns, one shared length scale above) +
    white noise, normalized targets, hyper-parameters by marginal likelihood on the support
    (``n_restarts`` random restarts; ``maxiter=None``: scikit-learn's optimizer, else L-BFGS-B
    capped at ``maxiter`` iterations). Descriptors are standardized with meta-train statistics.
    ``predict_dist`` includes the fitted noise. With fewer than 2 support points no kernel is
    fitted: the prediction is the support mean (the meta-train mean for an empty support) with the
    median within-task standard deviation of the meta-train tasks. ``warm_start=True`` (GP-BO
    campaigns via :meth:`for_task`) starts each refit from the previous round's hyper-parameters
    and re-optimizes them every ``refit_every`` rounds (in between, the GP is conditioned on the new
    points with fixed hyper-parameters, as is common in Bayesian optimization).

    Example
    -------
    >>> gp = SupportGP(n_restarts=0).fit(meta_train)                                   # doctest: +SKIP
    >>> mean, std = gp.adapt(episode.support).predict_dist(episode.query)  # target units  # doctest: +SKIP
    """

    kind = "baseline"

    def __init__(self, n_restarts: int = 2, ard: bool | None = True, warm_start: bool = False, refit_every: int = 1,
                 maxiter: int | None = None, seed: int = 0, name: str = "gp"):
        self.n_restarts, self.ard, self.warm_start, self.seed, self.name = n_restarts, ard, warm_start, seed, name
        self.refit_every, self.maxiter = refit_every, maxiter

    def fit(self, train: TaskSet, **_) -> SupportGP:
        """Meta-train statistics: descriptor mean/std, target mean and median within-task target std."""
        self._fit_scaler(train)
        self.y_mean = float(np.concatenate([t.targets for t in train]).mean())
        self.y_task_std = float(np.median([t.targets.std() for t in train if len(t) > 1]))
        return self

    @property
    def _std0(self) -> float:
        return self.y_task_std

    def _fit(self, d_s, y_s, warm=None, fixed: bool = False):
        if len(y_s) < 2:
            return None
        return fit_gp(d_s, y_s, ard=self.ard, n_restarts=self.n_restarts, warm_kernel=warm, fixed=fixed,
                      maxiter=self.maxiter, seed=self.seed)

    def _predict(self, gp, y_s, d_q, return_std: bool):
        if gp is None:
            mean, std = _const(len(d_q), self.y_mean if len(y_s) == 0 else float(y_s.mean()), self.y_task_std)
            return (mean, std) if return_std else mean
        if not return_std:
            return gp.predict(d_q)
        mean, std = gp.predict(d_q, return_std=True)
        std = np.where(np.isfinite(std) & (std > 0), std, self.y_task_std)
        return mean, np.maximum(std, 1e-9 * self.y_task_std)


class PooledNetResidualGP(_DescriptorGP):
    """A GP on the residuals of the :class:`~nanonb.baselines.nets.Pooled` network, over descriptors.

    ``y = f_pooled(x) + g(d) + eps`` with ``g ~ GP(0, c0 + c1 RBF(d))`` (``c0``: a constant task
    offset, the typical error of a pooled model on an unseen system) and white noise ``eps``
    (variance at least ``1e-3`` of the residual scale). From 3 support points on, the kernel
    hyper-parameters are fitted by marginal likelihood on the support residuals; below that they
    stay at their initial values, set from the meta-train residual variance of the pooled model
    (in-sample residuals, so optimistic). Target units throughout.

    Example
    -------
    >>> rgp = PooledNetResidualGP(Pooled(model="MLP", epochs=20), n_restarts=0).fit(train)  # doctest: +SKIP
    >>> mean, std = rgp.adapt(episode.support).predict_dist(episode.query)                # doctest: +SKIP
    """

    kind = "baseline"
    residual = True

    def __init__(self, pooled=None, n_restarts: int = 2, ard: bool | None = None, seed: int = 0,
                 name: str = "pooled+gp", **pooled_kwargs):
        self.pooled = pooled if pooled is not None else Pooled(seed=seed, **pooled_kwargs)
        self.n_restarts, self.ard, self.seed, self.name = n_restarts, ard, seed, name

    def fit(self, train: TaskSet, progress: bool = False, **_) -> PooledNetResidualGP:
        """Fit the pooled network (unless fitted), descriptor statistics and the residual variance."""
        if self.pooled.model is None:
            self.pooled.fit(train, progress=progress)
        self._fit_scaler(train)
        res = np.concatenate([t.targets - self._base(t) for t in train])
        self.res_var = float(max(np.mean(res**2), 1e-12))
        return self

    @property
    def _std0(self) -> float:
        return math.sqrt(self.res_var)

    def _base(self, task: Task) -> np.ndarray:
        return np.asarray(self.pooled.adapt().predict(task), dtype=np.float64)

    def _fit(self, d_s, r, warm=None, fixed: bool = False):
        if len(r) == 0:
            return None
        v = self.res_var
        return fit_gp(d_s, r, ard=self.ard, n_restarts=self.n_restarts, normalize_y=False, offset=True,
                      signal_var=v / 3, noise_bounds=(v * 1e-3, v * 10), fixed=fixed or len(r) < 3,
                      warm_kernel=warm, seed=self.seed)

    def _predict(self, gp, r, d_q, return_std: bool):
        if gp is None:
            mean, std = _const(len(d_q), 0.0, math.sqrt(self.res_var))
            return (mean, std) if return_std else mean
        if not return_std:
            return gp.predict(d_q)
        mean, std = gp.predict(d_q, return_std=True)
        return mean, np.maximum(std, 1e-9 * math.sqrt(self.res_var))


class TaskGP:
    """Gaussian process on the support set alone (per-task GP from scratch, numpy core).

    Inputs: the task descriptors (standardized features) restricted to the columns that vary within
    the support (for an electrolyte system: temperature, 1/T, concentration, solvent fractions).
    Kernel: constant × RBF (one length scale per column when ``ard`` and at most 12 columns, else
    one) + white noise; normalized targets; marginal-likelihood hyper-parameters with
    ``n_restarts`` restarts (:class:`~nanonb.baselines.gp_core.ExactGP`). With fewer than two
    support points, no varying column or constant targets it predicts the support mean (std NaN).
    Target units throughout.

    Example
    -------
    >>> TaskGP(ard=True, n_restarts=1).adapt(support).predict(query)  # doctest: +SKIP
    """

    kind = "baseline"

    def __init__(self, ard: bool = True, n_restarts: int = 1, seed: int = 0, name: str = "gp"):
        self.ard, self.n_restarts, self.seed, self.name = ard, n_restarts, seed, name

    def fit(self, train: TaskSet, **_) -> TaskGP:
        """Nothing to learn from meta-train; returns ``self``."""
        return self

    def _gp_on(self, support: Task, y: np.ndarray) -> GPPredictor:
        d = np.asarray(support.descriptors, dtype=np.float64)
        cols = varying_columns(d)
        mean = float(y.mean()) if len(y) else 0.0
        if len(y) < 2 or cols.size == 0 or np.ptp(y) == 0:
            return GPPredictor(lambda task: np.full(len(task), mean),
                               lambda task: _const(len(task), mean, math.nan))
        gp = ExactGP(ard=self.ard and cols.size <= 12, n_restarts=self.n_restarts, seed=self.seed).fit(d[:, cols], y)

        def x(task: Task) -> np.ndarray:
            return np.asarray(task.descriptors, dtype=np.float64)[:, cols]

        return GPPredictor(lambda task: gp.predict(x(task)), lambda task: gp.predict(x(task), return_std=True))

    def adapt(self, support: Task) -> GPPredictor:
        """Fit the GP on ``support``; returns a :class:`GPPredictor`."""
        return self._gp_on(support, support.targets)


class TaskResidualGP(TaskGP):
    """:class:`TaskGP` on the support residuals of a pooled model: ``pooled(x) + GP(y - pooled)`` (target units).

    The case studies' residual GP (``pooled`` is e.g. a fitted
    :class:`~nanonb.baselines.tabular.PooledTrees`), as opposed to :class:`PooledNetResidualGP`
    (a scikit-learn GP with a task-offset kernel on the residuals of the pooled network).

    Example
    -------
    >>> TaskResidualGP(PooledTrees("gbm").fit(meta_train)).adapt(support).predict(query)  # doctest: +SKIP
    """

    def __init__(self, pooled, ard: bool = True, n_restarts: int = 1, seed: int = 0, name: str = "residual-gp"):
        super().__init__(ard=ard, n_restarts=n_restarts, seed=seed, name=name)
        self.pooled = pooled

    def fit(self, train: TaskSet, **kw) -> TaskResidualGP:
        """Fit the pooled model unless it is fitted already; returns ``self``."""
        if getattr(self.pooled, "model", None) is None:
            self.pooled.fit(train, **kw)
        return self

    def adapt(self, support: Task) -> GPPredictor:
        """Fit the GP on the pooled model's support residuals; returns a :class:`GPPredictor`."""
        base = self.pooled.adapt(None)
        pred = self._gp_on(support, support.targets - base.predict(support))
        pred.base = base.predict
        return pred
