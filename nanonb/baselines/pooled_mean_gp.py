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

Example
    >>> from nanonb.baselines.tabular import PooledTrees                                       # doctest: +SKIP
    >>> gp = PooledMeanGP(lambda ts: PooledTrees("gbm").fit(ts), warm_start=True).fit(meta_train)  # doctest: +SKIP
    >>> mean, std = gp.adapt(ep.support).predict_dist(ep.query)                               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..learners.dkt_mean import crossfit_residuals
from ..tasks import Task, TaskSet
from .gp import SupportGP

__all__ = ["PooledMeanGP", "within_task_slope"]


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
                 maxiter: int | None = 200, seed: int = 0, name: str = "pooled-mean-gp"):
        super().__init__(n_restarts=n_restarts, ard=ard, warm_start=warm_start, refit_every=refit_every,
                         maxiter=maxiter, seed=seed, name=name)
        if scale != "crossfit" and not isinstance(scale, (int, float)):
            raise ValueError(f"scale must be 'crossfit' or a number, not {scale!r}")
        self.fit_mean, self.scale, self.crossfit = fit_mean, scale, int(crossfit)
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
        return self

    def _base(self, task: Task) -> np.ndarray:
        if self.mean_model is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(meta_train) first.")
        return self.a * np.asarray(self.mean_model.predict(task), dtype=np.float64).reshape(-1)
