"""Deep ensembles of meta-learners with a calibrated predictive distribution.

:class:`EnsembleMetaLearner` meta-trains independent :class:`~nanonb.learners.base.MetaLearner` s (different
seeds); mean and spread across the adapted members, plus a calibrated noise term (variance scale
and additive noise fitted by NLL on held-out tasks, :func:`nanonb.uncertainty.calibration.fit_noise_calibration`).
:meth:`EnsembleMetaLearner.from_learners` gives any already trained MetaLearner (one or several) a
calibrated predictive distribution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..tasks import Task, TaskSet
from ..uncertainty.calibration import calibration_tasks, fit_noise_calibration
from .base import MetaConfig, MetaLearner
from .inner import sgd_step
from .registry import make_learner, register_learner
from .training import Scaler, mse


class EnsemblePredictor:
    """Adapted ensemble: mean and calibrated spread of the members' predictions (target units).

    Example
    -------
    >>> mean, std = ens.adapt(episode.support).predict_dist(episode.query)   # doctest: +SKIP
    """

    def __init__(self, ens: EnsembleMetaLearner, adapted: list):
        self.ens, self.adapted = ens, adapted

    def member_predictions(self, inputs) -> np.ndarray:
        """``(n_members, n)`` predictions, target units."""
        return np.stack([np.asarray(a.predict(inputs), dtype=np.float64) for a in self.adapted])

    def predict(self, inputs) -> np.ndarray:
        return self.member_predictions(inputs).mean(0)

    def predict_dist(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        return self.ens._combine(self.member_predictions(inputs))


class _EnsembleTaskModel:
    """Per-task cache: ANIL members keep their body features, only the head is re-adapted."""

    def __init__(self, ens: EnsembleMetaLearner, task: Task):
        self.ens, self.task = ens, task
        self.cached = []
        for m in ens.members:
            if m.head_only:  # ANIL: the body runs once per task
                with torch.no_grad():
                    f = m.model(m.scaler.x(task, m.cutoff), output="features")
                self.cached.append((f, m.scaler.y(task.targets)))
            else:
                self.cached.append(None)

    @staticmethod
    def _anil_head(m: MetaLearner, f_s: torch.Tensor, y_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ANIL's inner loop (SGD on the head, MSE, :func:`~nanonb.learners.inner.sgd_step`) on cached features."""
        # WAVE2: a second ANIL inner loop (plain autograd on cached features; ANIL.adapt runs the higher
        # loop on inputs). One loop once ANIL can adapt from precomputed features.
        w = m.model.head.weight.detach().clone()
        b = m.model.head.bias.detach().clone()
        if len(f_s) == 0:
            return w, b
        for _ in range(m.config.inner_steps):
            w.requires_grad_(True)
            b.requires_grad_(True)
            loss = mse((f_s @ w.T + b).squeeze(-1), y_s)
            grads = torch.autograd.grad(loss, [w, b])
            w, b = (p.detach() for p in sgd_step([w, b], grads, m.config.inner_lr, clip=m.config.inner_grad_clip))
        return w, b

    def member_predictions(self, train_idx, test_idx) -> np.ndarray:
        """``(n_members, len(test_idx))`` predictions (target units) after adapting to ``train_idx``."""
        train_idx = np.asarray(train_idx, dtype=int)
        test_idx = np.asarray(test_idx, dtype=int)
        preds = []
        for m, c in zip(self.ens.members, self.cached):
            if c is not None:
                f, y = c
                w, b = self._anil_head(m, f[train_idx], y[train_idx])
                with torch.no_grad():
                    preds.append(m.scaler.y_inv((f[test_idx] @ w.T + b).squeeze(-1)))
            else:
                support = self.task.subset(train_idx) if len(train_idx) else None
                preds.append(m.adapt(support).predict(self.task.subset(test_idx)))
        return np.stack(preds)

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        return self.ens._combine(self.member_predictions(train_idx, test_idx))


@register_learner("ensemble")
class EnsembleMetaLearner:
    """Deep ensemble of independently meta-trained :class:`~nanonb.learners.base.MetaLearner` s.

    Member ``i`` is a MetaLearner with ``seed = config.seed + 1000 i`` (different initialization and
    episode stream). After adapting every member to the support, the predictive distribution is
    ``N(mean_i f_i, scale^2 var_i f_i + noise^2)``: the between-member variance (epistemic) times a
    calibration factor plus an additive noise variance. With ``noise="calibrate"`` the factor and
    the noise are fitted by Gaussian NLL on calibration tasks: ``val`` if given to :meth:`fit`, else
    a random ``calib_fraction`` of the meta-train tasks held out from the members' training (so the
    calibration sees tasks the members did not). ``noise="none"``: scale 1, noise 0 (raw spread).
    Means and standard deviations are in the tasks' target units.

    Example
    -------
    >>> ens = EnsembleMetaLearner(n_members=5, algorithm="anil", model="MLP", n_iterations=300)  # doctest: +SKIP
    >>> ens.fit(meta_train)                                                                     # doctest: +SKIP
    >>> mean, std = ens.adapt(episode.support).predict_dist(episode.query)                      # doctest: +SKIP
    """

    kind = "meta"

    def __init__(self, n_members: int = 5, config: MetaConfig | None = None, noise: str = "calibrate",
                 calib_fraction: float = 0.2, name: str = "ensemble", **overrides: Any):
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        if noise not in ("calibrate", "none"):
            raise ValueError(f"noise must be 'calibrate' or 'none', not {noise!r}")
        if noise == "none" and n_members < 2:
            raise ValueError("noise='none' needs n_members >= 2 (one member has no spread)")
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        self.config = MetaConfig(**cfg)
        self.n_members, self.noise, self.calib_fraction, self.name = n_members, noise, calib_fraction, name
        self.members = [make_learner(config=self.config, seed=self.config.seed + 1000 * i) for i in range(n_members)]
        self.scale, self.noise_std_z = 1.0, 0.0
        self.calib_names: list[str] = []
        self.fit_time_s = 0.0

    def __repr__(self) -> str:
        return (f"EnsembleMetaLearner({self.n_members} x {self.config.algorithm}, model={self.config.model}, "
                f"scale={self.scale:.3g}, noise={self.noise_std:.3g})")

    @property
    def scaler(self) -> Scaler:
        return self.members[0].scaler

    @property
    def noise_std(self) -> float:
        """Calibrated additive noise, target units."""
        return self.noise_std_z * self.scaler.y_std

    def _combine(self, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = preds.mean(0)
        var = preds.var(0, ddof=1) if len(preds) > 1 else np.zeros_like(mean)
        std = np.sqrt(self.scale**2 * var + (self.noise_std_z * self.scaler.y_std) ** 2)
        return mean, np.maximum(std, 1e-12 * self.scaler.y_std)

    def fit(self, train: TaskSet, val: TaskSet | None = None, n_iterations: int | None = None,
            progress: bool = True) -> EnsembleMetaLearner:
        """Meta-train every member (continues training if called again), then calibrate.

        Without ``val`` and with ``noise="calibrate"``, the calibration tasks are chosen once (at
        the first call) and kept out of the members' training in later calls as well.
        """
        t0 = time.perf_counter()
        cal = val
        if self.noise == "calibrate" and val is None:
            if not self.calib_names:
                try:
                    self.calib_names = calibration_tasks(train, self.calib_fraction, "random", self.config.seed)
                except ValueError as err:
                    raise ValueError(f"{err} Or use noise='none'.") from None
            names = [n for n in self.calib_names if n in train]
            cal = train.select(names) if names else None
            train = train.select([n for n in train.names if n not in set(self.calib_names)])
        for i, m in enumerate(self.members):
            if progress:
                print(f"{self.name}: member {i + 1}/{self.n_members}", flush=True)
            m.fit(train, n_iterations=n_iterations, progress=progress)
        if self.noise == "calibrate" and cal is not None:
            self.calibrate(cal)
        self.fit_time_s += time.perf_counter() - t0
        return self

    def calibrate(self, val: TaskSet, n_episodes: int = 5, seed: int = 4242) -> tuple[float, float]:
        """Fit the variance scale and additive noise by NLL on episodes of ``val`` tasks.

        Support sizes are drawn from the members' ``k_support`` range; queries are the rest of the
        task (at most 50 points). Returns ``(scale, noise_std)`` (noise in target units).
        """
        rng = np.random.default_rng(seed)
        kmin, kmax = self.config.k_support
        ys, means, vars_ = [], [], []
        sc = self.scaler
        for task in val:
            if len(task) < 3:
                continue
            tm = _EnsembleTaskModel(self, task)
            for _ in range(n_episodes):
                k = int(rng.integers(max(kmin, 1), min(kmax, len(task) - 2) + 1))
                perm = rng.permutation(len(task))
                s, q = perm[:k], perm[k: k + 50]
                p = (tm.member_predictions(s, q) - sc.y_mean) / sc.y_std  # k >= 1: never the zero-shot path
                ys.append((task.targets[q] - sc.y_mean) / sc.y_std)
                means.append(p.mean(0))
                vars_.append(p.var(0, ddof=1) if len(p) > 1 else np.zeros(len(q)))
        if not ys:
            raise ValueError("calibration needs tasks with at least 3 points")
        scale, noise = fit_noise_calibration(np.concatenate(ys), np.concatenate(means), np.concatenate(vars_))
        if self.n_members == 1:
            scale = 1.0
        self.scale, self.noise_std_z = scale, noise
        return scale, self.noise_std

    @classmethod
    def from_learners(cls, learners: Sequence[MetaLearner], val: TaskSet | None = None,
                      name: str = "ensemble") -> EnsembleMetaLearner:
        """Give already meta-trained :class:`~nanonb.learners.base.MetaLearner` s a predictive distribution.

        The learners (e.g. a saved or shipped one, or several seeds) become the members. With
        ``val`` (tasks none of them was trained on) the variance scale and noise are calibrated
        there; a single learner then predicts ``N(mean, noise^2)`` with a calibrated homoscedastic
        noise. Without ``val`` the raw member spread is used (at least two learners needed).
        """
        learners = list(learners)
        if not learners:
            raise ValueError("from_learners needs at least one fitted MetaLearner")
        if any(m.model is None or not m.history["iteration"] for m in learners):
            raise ValueError("every learner must be meta-trained (fit or nanonb.learners.registry.load) first")
        ens = cls(n_members=len(learners), config=learners[0].config, noise="calibrate" if val is not None else "none",
                  name=name)
        ens.members = learners
        if val is not None:
            ens.calibrate(val)
        return ens

    def adapt(self, support: Task | None) -> EnsemblePredictor:
        """Adapt every member to ``support`` (meta-weights untouched)."""
        return EnsemblePredictor(self, [m.adapt(support) for m in self.members])

    def for_task(self, task: Task) -> _EnsembleTaskModel:
        return _EnsembleTaskModel(self, task)
