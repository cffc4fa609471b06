"""A deep-kernel GP around a pooled (or physics) mean model: DKT on the residuals of a fitted curve.

Description
    Each task is ``y = m(x) + f(x) + eps``: ``m`` is a model fitted on all meta-train points (on the
    electrolytes the pooled Vogel–Tammann–Fulcher network, on the lipid nanoparticles a pooled gradient
    boosting model), ``f`` a Gaussian process whose kernel and noise are meta-learned across tasks by
    :class:`~nanonb.learners.dkt.DKT` (Patacchiola et al. 2020) on the residuals ``y - m(x)`` of the
    meta-train tasks. Adapting to a new task is exact GP conditioning of the residual on the support, so
    the prediction is the mean curve, shifted and bent by what the support says, with a predictive
    standard deviation.

    The residuals a model leaves on its own training points are smaller than on a new task, and a kernel
    meta-learned on them would trust the mean too much. With ``crossfit=n`` (n >= 2) the meta-train groups
    (``task.groups[0]``, e.g. the salt or the study) are cut into ``n`` parts and each part's residuals come
    from a mean model fitted without that part: residuals of held-out groups, as at test time. The mean
    used at test time is then fitted on the whole meta-train set.

Example
    >>> from nanonb.baselines.tabular import PooledTrees                            # doctest: +SKIP
    >>> gp = MeanDKT(lambda ts: PooledTrees("gbm").fit(ts), crossfit=2, kernel="rbf", hidden=(),
    ...              n_features=8, linear=False, mean="constant")                # doctest: +SKIP
    >>> mean, std = gp.fit(meta_train).adapt(ep.support).predict_dist(ep.query)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..scaling import clip_standardized, near_constant
from ..tasks import Task, TaskSet
from .dkt import DKT, DKTConfig, safe_cholesky

__all__ = ["MeanDKT", "MeanDKTPredictor", "crossfit_residuals"]


def _predict(model, inputs) -> np.ndarray:
    """``model.predict(inputs)`` (or ``model.adapt(None).predict``) as a float array."""
    if hasattr(model, "predict"):
        return np.asarray(model.predict(inputs), dtype=np.float64).reshape(-1)
    return np.asarray(model.adapt(None).predict(inputs), dtype=np.float64).reshape(-1)


def _residual(task: Task, base: np.ndarray) -> Task:
    return dataclasses.replace(task, targets=task.targets - base)


class _Columns:
    """Input map of the residual GP: meta-train z-scores of the columns that vary in meta-train, clipped.

    A column constant in meta-train (e.g. a solvent only the held-out salt uses) carries nothing a kernel
    could learn there, and its z-score on a test task would be astronomically large; such columns are
    dropped and the others clipped to ``+- CLIP_STD`` standard deviations (the shared rule of
    :mod:`nanonb.scaling`: :func:`~nanonb.scaling.near_constant`, :func:`~nanonb.scaling.clip_standardized`).
    """

    def __init__(self, train: TaskSet):
        x = np.vstack([np.asarray(t.inputs, dtype=np.float64) for t in train])
        self.keep = np.flatnonzero(~near_constant(x))
        self.mu, self.sd = x.mean(0)[self.keep], x.std(0)[self.keep]

    def __call__(self, inputs) -> np.ndarray:
        x = np.asarray(inputs.inputs if isinstance(inputs, Task) else inputs, dtype=np.float64)
        return clip_standardized((x[:, self.keep] - self.mu) / self.sd)

    def task(self, task: Task, targets: np.ndarray | None = None) -> Task:
        return dataclasses.replace(task, inputs=self(task), descriptors=None,
                                   targets=task.targets if targets is None else targets)


def _view(model, task: Task, features: Callable | None) -> Task:
    """``task`` with targets ``y - m(x)`` and, with ``features``, inputs ``[x, features(m, x)]``."""
    out = _residual(task, _predict(model, task))
    if features is None:
        return out
    x = np.hstack([np.asarray(task.inputs, dtype=np.float64), features(model, task)])
    return dataclasses.replace(out, inputs=x, descriptors=None)


def crossfit_residuals(fit_mean: Callable[[TaskSet], Any], train: TaskSet, n_parts: int, seed: int = 0,
                       features: Callable | None = None) -> TaskSet:
    """Meta-train tasks with targets ``y - m(x)``, ``m`` fitted without the task's group (``n_parts`` parts).

    Groups are ``task.groups[0]`` (the task name when a task has none), shuffled with ``seed`` and dealt
    into ``n_parts`` parts; each part's residuals come from ``fit_mean`` on the other parts. With fewer than
    two groups the residuals are in-sample. ``features(m, task)`` (optional) returns extra input columns
    computed from the same model ``m`` (e.g. its gradient with respect to a physics head's parameters).

    Example
    -------
    >>> from nanonb.baselines.tabular import PooledTrees
    >>> rng = np.random.default_rng(0)
    >>> ts = TaskSet([Task(f"t{i}", rng.normal(size=(12, 2)), rng.normal(size=12), groups=(f"g{i % 4}",))
    ...               for i in range(8)])
    >>> res = crossfit_residuals(lambda s: PooledTrees("gbm", max_iter=10).fit(s), ts, n_parts=2)
    >>> len(res), res.names == ts.names
    (8, True)
    """
    groups = sorted({(t.groups[0] if t.groups else t.name) for t in train})
    if n_parts < 2 or len(groups) < 2:
        model = fit_mean(train)
        return train.with_tasks([_view(model, t, features) for t in train])
    order = np.random.default_rng(seed).permutation(len(groups))
    part_of = {groups[g]: i % n_parts for i, g in enumerate(order)}
    key = [part_of[t.groups[0] if t.groups else t.name] for t in train]
    out: list[Task | None] = [None] * len(train)
    for p in range(min(n_parts, len(groups))):
        inside = [i for i, k in enumerate(key) if k == p]
        if not inside:
            continue
        model = fit_mean(train.with_tasks([t for i, t in enumerate(train) if key[i] != p]))
        for i in inside:
            out[i] = _view(model, train[i], features)
    return train.with_tasks(out)


class MeanDKTPredictor:
    """An adapted :class:`MeanDKT`: mean curve plus the residual GP conditioned on the support (target units)."""

    def __init__(self, learner: MeanDKT, support: Task | None):
        self.learner = learner
        dkt = learner.dkt
        if support is None or len(support) == 0:
            self.z_s = torch.zeros(0, dkt.config.n_features, dtype=torch.float64)
            self.r_s, self.center = torch.zeros(0, dtype=torch.float64), dkt.y_mean
            return
        res = support.targets - _predict(learner.mean_model, support)
        if not np.isfinite(res).all():
            raise ValueError(f"{learner.name}.adapt: the support {support.name!r} has NaN/inf targets or mean "
                             "predictions; remove those points.")
        self.z_s = dkt._embed(learner._x(support))
        r, self.center = dkt._standardize(res, len(res))
        self.r_s = torch.as_tensor(r)
        gp = dkt.gp
        with torch.no_grad():
            k_ss = gp.cov(self.z_s) + gp.noise * torch.eye(len(self.z_s), dtype=torch.float64)
            self.chol = safe_cholesky(k_ss, learner.name)
            a = (self.r_s - gp.mean(self.z_s)).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(a, self.chol).squeeze(-1)

    def predict_dist(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of a new measurement at ``inputs`` (a task or an ``(n, d)`` array)."""
        dkt = self.learner.dkt
        gp = dkt.gp
        base = _predict(self.learner.mean_model, inputs)
        z_q = dkt._embed(self.learner._x(inputs))
        with torch.no_grad():
            m = gp.mean(z_q)
            var = torch.diagonal(gp.cov(z_q, z_q)) + gp.noise
            if len(self.z_s):
                k_sq = gp.cov(self.z_s, z_q)
                m = m + k_sq.T @ self.alpha
                v = torch.linalg.solve_triangular(self.chol, k_sq, upper=False)
                var = (var - (v**2).sum(0)).clamp_min(1e-10)
        m, s = m.detach().numpy() * dkt.y_scale + self.center, np.sqrt(var.detach().numpy()) * dkt.y_scale
        if not (np.isfinite(m).all() and np.isfinite(s).all()):
            raise ValueError(f"{self.learner.name}: non-finite prediction (diverged kernel or NaN inputs).")
        return base + m, s

    def predict(self, inputs) -> np.ndarray:
        """Predictive mean at ``inputs`` (target units)."""
        return self.predict_dist(inputs)[0]


class MeanDKT:
    """A meta-learned deep-kernel GP on the residuals of a mean model fitted on meta-train.

    Parameters
    ----------
    fit_mean:
        ``fit_mean(meta_train)`` returns a fitted model with ``predict(task_or_x)`` (or
        ``adapt(None).predict``) in target units: the GP's mean function.
    crossfit:
        Number of group parts for out-of-group residuals (:func:`crossfit_residuals`); 0 or 1: residuals
        of the model on its own training points.
    name:
        Display name (default ``"dkt-mean"``).
    config, **overrides:
        The residual GP's :class:`~nanonb.learners.dkt.DKTConfig` (kernel, features, meta-training).

    features:
        Optional ``features(mean_model, task_or_x) -> (n, p)`` extra input columns for the kernel, computed
        from the fitted mean model (e.g. :func:`nanonb.bench.casestudy_gp.vtf_jacobian`: a linear kernel on
        them is a Bayesian, meta-learned version of fine-tuning the mean's physics parameters).

    ``fit`` returns ``self``; ``adapt(support)`` a :class:`MeanDKTPredictor`. Chosen settings are in
    ``settings()``.

    Example
    -------
    >>> from nanonb.baselines.tabular import PooledTrees
    >>> rng = np.random.default_rng(0)
    >>> ts = TaskSet([Task(f"t{i}", rng.normal(size=(15, 2)), rng.normal(size=15) + i % 3, groups=(f"g{i % 3}",))
    ...               for i in range(6)])
    >>> gp = MeanDKT(lambda s: PooledTrees("gbm", max_iter=10).fit(s), crossfit=0, kernel="rbf", hidden=(),
    ...              n_features=2, linear=False, mean="constant", n_iterations=5).fit(ts, progress=False)
    >>> mean, std = gp.adapt(ts[0].subset(range(5))).predict_dist(ts[0].subset(range(5, 15)))
    >>> mean.shape, bool((std > 0).all())
    ((10,), True)
    """

    kind = "meta"

    def __init__(self, fit_mean: Callable[[TaskSet], Any], crossfit: int = 2, name: str = "dkt-mean",
                 features: Callable | None = None, config: DKTConfig | None = None, **overrides: Any):
        self.fit_mean, self.crossfit, self.name, self.features = fit_mean, int(crossfit), name, features
        self.dkt = DKT(config, name=f"{name} (residual GP)", **overrides)
        self.mean_model = None

    def settings(self) -> dict:
        """The learner's settings as a JSON-ready dict (crossfit + the residual GP's config)."""
        return {"crossfit": self.crossfit, **dataclasses.asdict(self.dkt.config)}

    def fit(self, meta_train: TaskSet, progress: bool = False) -> MeanDKT:
        """Fit the mean on ``meta_train`` and meta-train the residual GP on (cross-fitted) residuals."""
        if not isinstance(meta_train, TaskSet) or len(meta_train) == 0:
            raise TypeError("MeanDKT.fit expects a non-empty TaskSet of meta-train tasks.")
        residuals = crossfit_residuals(self.fit_mean, meta_train, self.crossfit, seed=self.dkt.config.seed,
                                       features=self.features)
        self.columns = _Columns(residuals)
        self.mean_model = self.fit_mean(meta_train)
        self.dkt.fit(residuals.with_tasks([self.columns.task(t) for t in residuals]), progress=progress)
        return self

    def _x(self, inputs) -> np.ndarray:
        """The residual GP's input columns for ``inputs`` (raw inputs, plus ``features`` of the mean model)."""
        x = np.asarray(inputs.inputs if isinstance(inputs, Task) else inputs, dtype=np.float64)
        if self.features is not None:
            x = np.hstack([x, self.features(self.mean_model, inputs)])
        return self.columns(x)

    def adapt(self, support: Task | None) -> MeanDKTPredictor:
        """Condition the residual GP on ``support`` (``None``: the mean curve with the prior band)."""
        if self.mean_model is None:
            raise RuntimeError("This MeanDKT is not fitted yet: call fit(meta_train) first.")
        return MeanDKTPredictor(self, support)
