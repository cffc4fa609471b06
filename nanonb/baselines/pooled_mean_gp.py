"""GP-BO's GP with a pooled model as its prior mean: ``y = a m(x) + GP``, ``m`` fitted on meta-train only.

Description
    The per-task GP of :class:`~nanonb.baselines.gp.SupportGP` (the same standardized descriptors, kernel,
    normalized targets and, for campaigns, warm-started hyper-parameters) fitted to the residuals
    ``y - a m(x)`` of a pooled model ``m`` trained on all meta-train points (on LNPDB a pooled gradient
    boosting model). Far from the measured points the prediction falls back to ``a m(x)`` plus the mean
    support residual, so the first proposals of a campaign follow the pooled model's zero-shot ranking.
    This is the tabular analogue of the nanoalloy campaign's ``metagp`` strategy.

    Tasks may be normalized separately (every LNPDB study, and every assay inside a pooled study, is a
    z-score of its own): the per-task offset is absorbed by the GP's target normalization (the support mean
    of the residuals), and the scale ``a`` is learned on meta-train: ``scale="crossfit"`` regresses each
    meta-train task's centred targets on the centred predictions of a pooled model fitted without that
    task's group (:func:`~nanonb.learners.dkt_mean.crossfit_residuals`, ``crossfit`` parts), pooled over
    tasks and floored at 0; a number fixes ``a``. In-sample predictions would overstate ``a``: a pooled
    model fits its own training points far better than a new study.

    One ``a`` for every study trusts the pooled model as much where it misleads as where it helps.
    ``trust`` lets each campaign learn its own scale: a Gaussian prior ``a ~ N(a0, tau^2)`` around the
    meta-train scale ``a0`` is the same model as the GP with the linear kernel
    ``tau^2 m~(x) m~(x')`` added to its covariance (``m~``: the pooled prediction standardized with its
    meta-train mean and std, appended to the descriptors), so the posterior of ``a`` given the measured
    points follows from the GP's own algebra: where the measurements contradict the pooled model the
    posterior scale shrinks (or turns negative) and the prediction follows the data. ``trust="ml"``
    fits ``tau^2`` (in units of the support's normalized residual variance, bounds
    :data:`TRUST_BOUNDS`) by marginal likelihood with the other hyper-parameters, per campaign; a
    number fixes it. ``trust=None`` (default) is the fixed scale above.

Example
    >>> from nanonb.baselines.tabular import PooledTrees                                       # doctest: +SKIP
    >>> gp = PooledMeanGP(lambda ts: PooledTrees("gbm").fit(ts), warm_start=True).fit(meta_train)  # doctest: +SKIP
    >>> mean, std = gp.adapt(ep.support).predict_dist(ep.query)                               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct, Hyperparameter, Kernel

from ..learners.dkt_mean import crossfit_residuals
from ..tasks import Task, TaskSet
from .gp import SupportGP
from .gp_core import fit_gp, noise_kernel, signal_kernel

__all__ = ["TRUST_BOUNDS", "LastColumnSplit", "PooledMeanGP", "within_task_slope"]

#: Bounds of the fitted prior variance ``tau^2`` of the per-campaign scale (``trust="ml"``; normalized units).
TRUST_BOUNDS = (1e-4, 1e2)


def within_task_slope(preds: list[np.ndarray], targets: list[np.ndarray]) -> float:
    """Least-squares slope of targets on predictions after centring both within each task (floored at 0).

    Example
    -------
    >>> within_task_slope([np.array([0.0, 1.0]), np.array([5.0, 7.0])], [np.array([1.0, 3.0]), np.array([0.0, 4.0])])
    2.0
    """
    num = den = 0.0
    for p, y in zip(preds, targets):
        p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
        pc = p - p.mean()
        num += float(pc @ (y - y.mean()))
        den += float(pc @ pc)
    return max(0.0, num / den) if den > 0 else 0.0


class LastColumnSplit(Kernel):
    """A scikit-learn kernel on the last input column only (``last=True``) or on all the others (``last=False``).

    Wraps ``kernel`` (its hyper-parameters are this kernel's, prefixed ``kernel__``); a sum of two
    such kernels puts one kernel on the descriptors and another on an appended column.

    Example
    -------
    >>> x = np.array([[0.0, 2.0], [1.0, 3.0]])
    >>> LastColumnSplit(DotProduct(sigma_0=0.0, sigma_0_bounds="fixed"), last=True)(x).tolist()
    [[4.0, 6.0], [6.0, 9.0]]
    """

    def __init__(self, kernel: Kernel, last: bool = True):
        self.kernel, self.last = kernel, last

    def _cols(self, x):
        return None if x is None else (x[:, -1:] if self.last else x[:, :-1])

    @property
    def hyperparameters(self):
        return [Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements)
                for h in self.kernel.hyperparameters]

    @property
    def theta(self):
        return self.kernel.theta

    @theta.setter
    def theta(self, theta):
        self.kernel.theta = theta

    @property
    def bounds(self):
        return self.kernel.bounds

    def __call__(self, X, Y=None, eval_gradient=False):
        return self.kernel(self._cols(np.asarray(X)), self._cols(None if Y is None else np.asarray(Y)),
                           eval_gradient=eval_gradient)

    def diag(self, X):
        return self.kernel.diag(self._cols(np.asarray(X)))

    def is_stationary(self):
        return self.kernel.is_stationary()

    def __eq__(self, other):
        return type(self) is type(other) and self.last == other.last and self.kernel == other.kernel

    def __repr__(self):
        return f"{'last' if self.last else 'rest'}[{self.kernel}]"


class PooledMeanGP(SupportGP):
    """:class:`~nanonb.baselines.gp.SupportGP` on the residuals of ``a m(x)`` (module docstring).

    Parameters
    ----------
    fit_mean:
        ``fit_mean(meta_train)`` returns a model with ``predict(task)`` (target units).
    scale:
        ``"crossfit"`` (``a`` learned on cross-fitted meta-train predictions) or a fixed number.
    crossfit:
        Group parts for the cross-fitted predictions.
    trust:
        ``None`` (the fixed scale ``a``), ``"ml"`` (a per-campaign scale with prior mean ``a`` and prior
        variance fitted by marginal likelihood) or a number (that prior variance, fixed); module docstring.
    n_restarts, ard, warm_start, refit_every, maxiter, seed, name:
        As in :class:`~nanonb.baselines.gp.SupportGP`.

    Example
    -------
    >>> from nanonb.baselines.tabular import PooledTrees
    >>> rng = np.random.default_rng(0)
    >>> def task(i):
    ...     x = rng.normal(size=(30, 3))
    ...     return Task(f"t{i}", x, 2 * x[:, 0] + 0.1 * rng.normal(size=30), descriptors=x, groups=(f"g{i}",))
    >>> gp = PooledMeanGP(lambda ts: PooledTrees("gbm", max_iter=50).fit(ts)).fit(TaskSet([task(i) for i in range(4)]))
    >>> bool(gp.a > 0.5)
    True
    >>> new = task(9)
    >>> mean, std = gp.adapt(new.subset(range(3))).predict_dist(new.subset(range(3, 30)))
    >>> bool(np.corrcoef(mean, new.targets[3:])[0, 1] > 0.8)
    True
    """

    residual = True

    def __init__(self, fit_mean: Callable[[TaskSet], object], scale: str | float = "crossfit", crossfit: int = 2,
                 n_restarts: int = 1, ard: bool | None = None, warm_start: bool = False, refit_every: int = 1,
                 maxiter: int | None = 200, seed: int = 0, name: str = "pooled-mean-gp",
                 trust: str | float | None = None):
        super().__init__(n_restarts=n_restarts, ard=ard, warm_start=warm_start, refit_every=refit_every,
                         maxiter=maxiter, seed=seed, name=name)
        if scale != "crossfit" and not isinstance(scale, (int, float)):
            raise ValueError(f"scale must be 'crossfit' or a number, not {scale!r}")
        if trust is not None and trust != "ml" and not (isinstance(trust, (int, float)) and trust > 0):
            raise ValueError(f"trust must be None, 'ml' or a positive number, not {trust!r}")
        self.fit_mean, self.scale, self.crossfit, self.trust = fit_mean, scale, int(crossfit), trust
        self.mean_model = None
        self.a = float("nan")

    def fit(self, train: TaskSet, **_) -> PooledMeanGP:
        """Descriptor and target statistics, the scale ``a`` and the pooled model (fitted on ``train``)."""
        super().fit(train)
        if self.scale == "crossfit":
            res = crossfit_residuals(self.fit_mean, train, self.crossfit, seed=self.seed)
            self.a = within_task_slope([t.targets - r.targets for t, r in zip(train, res)], [t.targets for t in train])
        else:
            self.a = float(self.scale)
        self.mean_model = self.fit_mean(train)
        if self.trust is not None:
            m = np.concatenate([self._pooled(t) for t in train])
            self.m_mean, self.m_std = float(m.mean()), float(m.std()) or 1.0
        return self

    def _pooled(self, task: Task) -> np.ndarray:
        if self.mean_model is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(meta_train) first.")
        return np.asarray(self.mean_model.predict(task), dtype=np.float64).reshape(-1)

    def _base(self, task: Task) -> np.ndarray:
        return self.a * self._pooled(task)

    def _features(self, task: Task) -> np.ndarray:
        d = super()._features(task)
        if self.trust is None:
            return d
        return np.column_stack([d, (self._pooled(task) - self.m_mean) / self.m_std])

    def _fit(self, d_s, y_s, warm=None, fixed: bool = False):
        if self.trust is None or len(y_s) < 2:
            return super()._fit(d_s, y_s, warm, fixed)
        tau2 = (1.0, TRUST_BOUNDS) if self.trust == "ml" else (float(self.trust), "fixed")
        kernel = (LastColumnSplit(signal_kernel(d_s.shape[1] - 1, self.ard), last=False)  # fit_gp's start
                  + LastColumnSplit(ConstantKernel(*tau2) * DotProduct(0.0, "fixed"), last=True)
                  + noise_kernel())
        return fit_gp(d_s, y_s, n_restarts=self.n_restarts, warm_kernel=warm, fixed=fixed, maxiter=self.maxiter,
                      seed=self.seed, kernel=kernel)

    def posterior_scale(self, support: Task) -> float:
        """Posterior mean of the scale on the pooled prediction given ``support`` (target units per pooled unit).

        ``a`` itself without ``trust`` or with fewer than 2 support points; else ``a`` plus the posterior
        mean of the linear kernel's weight, ``tau^2 m~_s' K^-1 r``, converted to target units.
        """
        if self.trust is None or len(support) < 2:
            return self.a
        d_s = self._features(support)
        gp = self._fit(d_s, support.targets - self._base(support))
        lin = gp.kernel_.k1.k2.kernel.k1.constant_value
        w = lin * float(gp.X_train_[:, -1] @ gp.alpha_.reshape(-1))  # normalized residual per standardized m
        return self.a + w * float(np.atleast_1d(gp._y_train_std)[0]) / self.m_std
