"""The in-task ceiling and the ``closed`` metric: how much of the learnable error a few-shot method closes.

The *in-task ceiling* of a held-out task is the error of a Gaussian process on the task's descriptors
trained on 80 % of the task itself (5-fold cross-validation): what a good model reaches with plenty of
data from that very task. Between the trivial support-mean reference and this ceiling lies the
*learnable* error; ``closed`` is the share of it a method removes:

    closed = (support-mean MAE - method MAE) / (support-mean MAE - ceiling MAE)

0 means no better than predicting the support mean, 1 means as good as the in-task GP (above 1 is
possible: the ceiling is a reference, not a bound).

Example
    >>> ceil = in_task_ceiling(meta_test)                       # {task name: MAE}, target units  # doctest: +SKIP
    >>> round(closed(support_mean_mae=0.032, method_mae=0.017, ceiling_mae=0.015), 3)
    0.882
"""

from __future__ import annotations

import warnings

import numpy as np

from ..tasks import Task, TaskSet


def _gp(n_dims: int, n_restarts: int, seed: int):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(n_dims), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1.0))
    return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=n_restarts, random_state=seed)


def task_ceiling(task: Task, n_splits: int = 5, n_restarts: int = 0, seed: int = 0) -> float:
    """Cross-validated MAE (target units) of a GP on ``task``'s descriptors trained on the other folds.

    Kernel: constant x RBF with one length scale per descriptor + white noise, normalized targets,
    hyper-parameters by marginal likelihood (``n_restarts`` extra random starts); descriptors
    standardized on the training folds. ``n_splits=5`` trains on 80 % of the task each time; the folds
    are a seeded shuffle.
    """
    from sklearn.model_selection import KFold

    if task.descriptors is None:
        raise ValueError(f"Task {task.name!r} has no descriptors; the ceiling GP needs them.")
    if n_splits < 2 or len(task) < 2 * n_splits:
        raise ValueError(f"Task {task.name!r} has {len(task)} points: too few for {n_splits}-fold cross-"
                         f"validation (need >= {2 * n_splits}); lower n_splits (>= 2).")
    d, y = np.asarray(task.descriptors, dtype=np.float64), task.targets
    err = np.zeros(len(y))
    for tr, te in KFold(n_splits, shuffle=True, random_state=seed).split(d):
        mu, sd = d[tr].mean(0), d[tr].std(0)
        sd[sd < 1e-12] = 1.0
        gp = _gp(d.shape[1], n_restarts, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit((d[tr] - mu) / sd, y[tr])
        err[te] = np.abs(gp.predict((d[te] - mu) / sd) - y[te])
    return float(err.mean())


def in_task_ceiling(tasks: TaskSet | list[Task], n_splits: int = 5, n_restarts: int = 0, seed: int = 0
                    ) -> dict[str, float]:
    """:func:`task_ceiling` of every task: ``{task name: MAE}`` in target units (e.g. eV/atom)."""
    return {t.name: task_ceiling(t, n_splits, n_restarts, seed) for t in tasks}


def closed(support_mean_mae, method_mae, ceiling_mae):
    """Share of the learnable error a method closes: ``(sm - method) / (sm - ceiling)``.

    Works on floats or arrays (e.g. one value per K or per task); all three in the same units. NaN
    where the support mean is already at or below the ceiling (nothing learnable to close).
    """
    sm, m, c = (np.asarray(v, dtype=np.float64) for v in (support_mean_mae, method_mae, ceiling_mae))
    gap = sm - c
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(gap > 0, (sm - m) / np.where(gap > 0, gap, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out
