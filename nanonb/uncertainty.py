"""Predictive uncertainty for few-shot learners: Bayesian meta-learning, ensembles, GP baselines, calibration.

Every method here has the verbs of :mod:`nanonb.learners` (``fit(train)``, ``adapt(support)``) and its
adapted predictor has ``predict(task)`` (mean) and ``predict_dist(task) -> (mean, std)``, both in the
task's target units (eV/atom, log10(mS/cm), z-score, ...). ``std`` is the standard deviation of the
*predictive* distribution of a new measurement (model uncertainty plus noise).

Two principled meta-learned approaches, side by side:

- :class:`BayesianMetaLearner` (ALPaCA, Harrison et al. 2018; the linear-kernel case of deep kernel
  transfer): a network body gives features ``phi(x)`` (plus a constant), the last layer is Bayesian
  linear regression ``y = w . phi(x) + eps`` with prior ``w ~ N(mu0, Sigma0)``, ``Sigma0 = L L^T`` and
  noise ``eps ~ N(0, sigma^2)``. ``mu0``, ``L``, ``sigma`` and the body are meta-learned across tasks by
  maximizing the log-likelihood of query points under the closed-form posterior predictive given
  the support. Adapting to a new task is exact Bayesian inference (no gradient steps).
- :class:`EnsembleMetaLearner`: a deep ensemble of independently meta-trained
  :class:`~nanonb.learners.base.MetaLearner` s (different seeds). Mean and spread across the adapted members,
  plus a calibrated noise term (variance scale and additive noise fitted by NLL on held-out tasks).
  :meth:`EnsembleMetaLearner.from_learners` gives any already trained MetaLearner (one or several)
  a calibrated predictive distribution.

The BML can be calibrated the same way (``calibrate=True``; ``calib_split="group"`` and
``calib_crossfit=True`` hold out whole groups, e.g. an element, for a copy and keep all tasks for
the final learner): two factors ``a var_f + b sigma^2`` fitted by NLL on unseen tasks.

Baselines: :class:`SupportGPDist` (the GP on the support of :class:`~nanonb.baselines.gp.SupportGP`,
over descriptors, with its predictive std) and :class:`ResidualGP` (a GP on the residuals of the
:class:`~nanonb.baselines.nets.Pooled` network over descriptors).

Calibration metrics (:func:`gaussian_nll`, :func:`coverage`, :func:`calibration_curve`,
:func:`sharpness`) and :func:`evaluate_uncertainty` over many held-out episodes.
:func:`flag_for_validation` turns a predictive distribution into a ranked candidate list in which
promising-but-uncertain candidates are flagged "validate experimentally".
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .learners.base import MetaConfig, MetaLearner
from .learners.registry import make_learner
from .learners.training import Scaler
from .models.registry import build_model
from .tasks import Task, TaskSet

#: Central-interval levels reported as ``coverage50``, ``coverage90``, ``coverage95``.
LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)
#: Grid of nominal levels for calibration curves.
CURVE_LEVELS: tuple[float, ...] = tuple(float(x) for x in np.round(np.arange(0.05, 1.0, 0.05), 2)) + (0.99,)


# ====================================================================== metrics
def _check(y, mean, std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, mean, std))
    if not (len(y) == len(mean) == len(std)):
        raise ValueError(f"y, mean and std must have the same length, got {len(y)}, {len(mean)}, {len(std)}")
    if len(y) == 0:
        raise ValueError("no points to score")
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError("std must be finite and > 0 everywhere (a predictive distribution needs a width)")
    return y, mean, std


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def gaussian_nll(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood (nats per point).

    ``0.5 log(2 pi std^2) + (y - mean)^2 / (2 std^2)``, averaged over points; ``y``, ``mean``, ``std``
    in the same units (the value shifts by ``log(c)`` if the units are scaled by ``c``, so compare
    methods only within one data set). Lower is better.
    """
    y, mean, std = _check(y, mean, std)
    return float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - mean) / std) ** 2))


def interval(mean: np.ndarray, std: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of a Gaussian: ``mean -/+ z std`` with ``z = Phi^-1((1 + level) / 2)``."""
    z = _z(level)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return mean - z * std, mean + z * std


def coverage(y: np.ndarray, mean: np.ndarray, std: np.ndarray, level: float = 0.9) -> float:
    """Fraction of points inside their central ``level`` interval (nominal value: ``level``)."""
    y, mean, std = _check(y, mean, std)
    return float(np.mean(np.abs(y - mean) <= _z(level) * std))


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                      levels: Sequence[float] = CURVE_LEVELS) -> pd.DataFrame:
    """Observed vs expected coverage of central intervals over a grid of ``levels``.

    Returns a frame with columns ``level`` (expected) and ``observed``. A calibrated model lies on
    the diagonal; below it = over-confident (intervals too narrow), above = under-confident.
    """
    y, mean, std = _check(y, mean, std)
    a = np.abs(y - mean) / std
    return pd.DataFrame({"level": list(levels), "observed": [float(np.mean(a <= _z(p))) for p in levels]})


def sharpness(std: np.ndarray) -> float:
    """Mean predictive standard deviation (target units); smaller is sharper, at equal calibration."""
    return float(np.mean(np.asarray(std, dtype=np.float64)))


# ====================================================================== closed-form Bayesian linear regression
def lower_cholesky(raw: torch.Tensor, min_diag: float = 1e-5) -> torch.Tensor:
    """Lower-triangular factor with a positive diagonal: strict lower part of ``raw`` plus softplus(diag)."""
    return torch.tril(raw, -1) + torch.diag(nn.functional.softplus(torch.diagonal(raw)) + min_diag)


def blr_predict(phi_s: torch.Tensor, y_s: torch.Tensor, phi_q: torch.Tensor, mu0: torch.Tensor,
                chol0: torch.Tensor, noise_var: torch.Tensor | float, full_cov: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior predictive of Bayesian linear regression, differentiable (ALPaCA's closed form).

    Model: ``y = w . phi + eps``, ``w ~ N(mu0, L L^T)``, ``eps ~ N(0, noise_var)``. With
    ``w = mu0 + L v``, ``v ~ N(0, I)`` and ``A = Phi_s L``, the posterior of ``v`` given the support
    has precision ``P = I + A^T A / noise_var`` and mean ``P^-1 A^T (y_s - Phi_s mu0) / noise_var``,
    so for ``B = Phi_q L``::

        mean = Phi_q mu0 + B P^-1 A^T (y_s - Phi_s mu0) / noise_var
        var  = diag(B P^-1 B^T) + noise_var          (full_cov: B P^-1 B^T + noise_var I)

    Only ``P`` (size ``p x p``, eigenvalues >= 1) is factorized, so this is stable for any support
    size, including an empty support (``k = 0``: the prior predictive).

    Parameters
    ----------
    phi_s, y_s: support features ``(k, p)`` and targets ``(k,)``.
    phi_q: query features ``(m, p)``.
    mu0, chol0: prior mean ``(p,)`` and lower Cholesky factor ``(p, p)`` of the prior covariance.
    noise_var: observation noise variance (same units as ``y_s`` squared).

    Returns
    -------
    ``(mean (m,), var (m,))``, or ``(mean, cov (m, m))`` with ``full_cov=True``.
    """
    p = mu0.shape[0]
    a = phi_s @ chol0
    b = phi_q @ chol0
    prec = torch.eye(p, dtype=a.dtype) + a.T @ a / noise_var
    c = torch.linalg.cholesky(prec)
    r = y_s - phi_s @ mu0
    m_v = torch.cholesky_solve((a.T @ r / noise_var)[:, None], c)[:, 0]
    mean = phi_q @ mu0 + b @ m_v
    z = torch.linalg.solve_triangular(c, b.T, upper=False)
    if full_cov:
        return mean, z.T @ z + noise_var * torch.eye(len(mean), dtype=z.dtype)
    return mean, (z * z).sum(0) + noise_var


def blr_posterior(phi_s: torch.Tensor, y_s: torch.Tensor, mu0: torch.Tensor, chol0: torch.Tensor,
                  noise_var: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior ``N(mean_w, cov_w)`` of the last-layer weights given the support (see :func:`blr_predict`).

    ``mean_w = mu0 + L P^-1 A^T (y_s - Phi_s mu0) / noise_var``, ``cov_w = L P^-1 L^T``; equal to the
    textbook form ``cov_w = (Sigma0^-1 + Phi^T Phi / s2)^-1``, ``mean_w = cov_w (Sigma0^-1 mu0 + Phi^T y / s2)``.
    """
    p = mu0.shape[0]
    a = phi_s @ chol0
    prec = torch.eye(p, dtype=a.dtype) + a.T @ a / noise_var
    c = torch.linalg.cholesky(prec)
    m_v = torch.cholesky_solve((a.T @ (y_s - phi_s @ mu0) / noise_var)[:, None], c)[:, 0]
    pinv_lt = torch.cholesky_solve(chol0.T.contiguous(), c)
    return mu0 + chol0 @ m_v, chol0 @ pinv_lt


# ====================================================================== task models (shared fast path)
class _GenericTaskModel:
    """``predict_dist(train_idx, test_idx)`` on one task via ``method.adapt(...).predict_dist(...)``."""

    def __init__(self, method, task: Task):
        self.method, self.task = method, task

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        train_idx = np.asarray(train_idx, dtype=int)
        support = self.task.subset(train_idx) if len(train_idx) else None
        mean, std = self.method.adapt(support).predict_dist(self.task.subset(test_idx))
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def task_model(method, task: Task):
    """An object with ``predict_dist(train_idx, test_idx) -> (mean, std)`` for repeated use on one task.

    Uses ``method.for_task(task)`` when the method has it (features or base predictions computed
    once per task: much faster for campaigns and many episodes), else adapts from scratch each call.
    Indices refer to points of ``task``; ``train_idx`` may be empty (zero-shot).
    """
    if hasattr(method, "for_task"):
        return method.for_task(task)
    return _GenericTaskModel(method, task)


# ====================================================================== Bayesian meta-learner (ALPaCA)
@dataclass
class BayesConfig:
    """Hyper-parameters of a :class:`BayesianMetaLearner` (JSON-serializable).

    ``k_support`` is the range of support sizes sampled during meta-training (0 = prior predictive
    also trained), ``k_query`` the number of query points per episode (at least ``min_query``).
    ``noise_init`` and ``prior_scale_init`` are in standardized target units. ``lr`` is the Adam
    step on the body and the prior/noise parameters.

    ``calibrate=True`` fits two variance factors (see :meth:`BayesianMetaLearner.calibrate`) on
    ``val`` if given, else on calibration tasks held out from the meta-train set: a random
    ``calib_fraction`` of the tasks (``calib_split="random"``) or whole groups (``"group"``: all
    tasks sharing a group label, e.g. an element, drawn at random until ``calib_fraction`` is
    reached), which mimics a held-out-group test split. With ``calib_crossfit=True`` an auxiliary
    learner trained without the calibration tasks is calibrated on them and its factors are used
    by this learner, which trains on all tasks (twice the training cost, no data lost); otherwise
    this learner itself trains without them.
    """

    model: str = "InvariantGNN"
    model_kwargs: dict = field(default_factory=dict)
    n_iterations: int = 500
    lr: float = 2e-3
    meta_batch_size: int = 4
    k_support: tuple[int, int] = (0, 20)
    k_query: int = 20
    min_query: int = 3
    noise_init: float = 0.3
    prior_scale_init: float = 1.0
    val_every: int = 50
    val_episodes: int = 4
    grad_clip: float = 10.0
    keep_best: bool = False
    calibrate: bool = False
    calib_fraction: float = 0.2
    calib_split: str = "random"
    calib_group_index: int | None = None
    calib_crossfit: bool = False
    calib_episodes: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        self.k_support = tuple(int(k) for k in self.k_support)  # type: ignore[assignment]
        if self.k_support[0] < 0 or self.k_support[1] < self.k_support[0]:
            raise ValueError(f"k_support must be (kmin, kmax) with 0 <= kmin <= kmax, got {self.k_support}")
        if self.min_query < 1:
            raise ValueError(f"min_query must be >= 1, got {self.min_query}")
        if self.calib_split not in ("random", "group"):
            raise ValueError(f"calib_split must be 'random' or 'group', not {self.calib_split!r}")


class BayesianPredictor:
    """Closed-form posterior of the Bayesian last layer for one support set (target units)."""

    def __init__(self, learner: BayesianMetaLearner, phi_s: torch.Tensor, y_s: torch.Tensor):
        self.learner, self.phi_s, self.y_s = learner, phi_s, y_s

    def _std_units(self, inputs, full_cov: bool):
        lr = self.learner
        phi_q = lr.features(inputs)
        mu0, chol, s2 = lr._prior()
        with torch.no_grad():
            mean, var = blr_predict(self.phi_s, self.y_s, phi_q, mu0, chol, s2, full_cov=full_cov)
        return mean, lr._calibrated(var, s2)

    def predict(self, inputs: Task | np.ndarray | list) -> np.ndarray:
        """Posterior predictive mean (target units)."""
        return self.predict_dist(inputs)[0]

    def predict_dist(self, inputs: Task | np.ndarray | list, full_cov: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the posterior predictive in target units; ``full_cov=True``: ``(mean, cov)``."""
        mean, var = self._std_units(inputs, full_cov)
        sc = self.learner.scaler
        mean = mean.numpy() * sc.y_std + sc.y_mean
        if full_cov:
            return mean, var.numpy() * sc.y_std**2
        return mean, np.sqrt(var.numpy()) * sc.y_std

    def sample(self, inputs, n_samples: int = 1, seed: int | None = None) -> np.ndarray:
        """Joint samples ``(n_samples, m)`` of new measurements at ``inputs`` (target units)."""
        mean, cov = self.predict_dist(inputs, full_cov=True)
        rng = np.random.default_rng(seed)
        return rng.multivariate_normal(mean, cov, size=n_samples, method="cholesky")


class _BMLTaskModel:
    def __init__(self, learner: BayesianMetaLearner, task: Task):
        self.learner = learner
        self.phi = learner.features(task)
        self.y = torch.as_tensor((task.targets - learner.scaler.y_mean) / learner.scaler.y_std, dtype=torch.float64)

    def raw(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray, float]:
        """Uncalibrated ``(mean, var_f, noise_var)`` in standardized units (``var = var_f + noise_var``)."""
        tr = torch.as_tensor(np.asarray(train_idx, dtype=int))
        te = torch.as_tensor(np.asarray(test_idx, dtype=int))
        with torch.no_grad():
            mu0, chol, s2 = self.learner._prior()
            m, v = blr_predict(self.phi[tr], self.y[tr], self.phi[te], mu0, chol, s2)
        return m.numpy(), np.maximum(v.numpy() - float(s2), 0.0), float(s2)

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
        m, var_f, s2 = self.raw(train_idx, test_idx)
        a, b = self.learner.var_factors
        sc = self.learner.scaler
        return m * sc.y_std + sc.y_mean, np.sqrt(a * var_f + b * s2) * sc.y_std

    def sample(self, train_idx, test_idx, n_samples: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Joint posterior samples of the latent function ``f = w . phi`` at ``test_idx`` (target units).

        Drawn in weight space (``w ~ N(mean_w, cov_w)``, ``p`` dimensions), so the cost does not
        grow with the number of candidates. Measurement noise is not added (Thompson sampling
        samples the objective, not a future measurement).
        """
        tr = torch.as_tensor(np.asarray(train_idx, dtype=int))
        te = torch.as_tensor(np.asarray(test_idx, dtype=int))
        mu0, chol, s2 = self.learner._prior()
        with torch.no_grad():
            mean_w, cov_w = blr_posterior(self.phi[tr], self.y[tr], mu0, chol, s2)
        cov_w = self.learner.var_factors[0] * cov_w.numpy()
        lc = np.linalg.cholesky(0.5 * (cov_w + cov_w.T) + 1e-12 * np.eye(len(cov_w)))
        rng = rng if rng is not None else np.random.default_rng()
        w = mean_w.numpy()[None, :] + rng.standard_normal((n_samples, len(lc))) @ lc.T
        sc = self.learner.scaler
        return (w @ self.phi[te].numpy().T) * sc.y_std + sc.y_mean


class BayesianMetaLearner:
    """ALPaCA: meta-learned features with a Bayesian linear last layer and a closed-form posterior.

    Features ``phi(x) = [body(x), 1]`` from a :mod:`nanonb.models` network (``model(x,
    output="features")``); last layer ``y = w . phi + eps`` with ``w ~ N(mu0, L L^T)``,
    ``eps ~ N(0, sigma^2)``. Meta-training (Adam on the body, ``mu0``, ``L`` and ``log sigma``)
    maximizes the mean log predictive density of query points given the support, over episodes
    with ``k_support`` support sizes drawn at random, in standardized target units
    (:class:`~nanonb.learners.training.Scaler`, meta-train statistics). ``adapt(support)`` is exact
    conditioning: no gradient steps, deterministic, and ``support=None`` gives the prior predictive.

    >>> bml = BayesianMetaLearner(model="MLP", n_iterations=300)   # doctest: +SKIP
    >>> bml.fit(meta_train)                                        # doctest: +SKIP
    >>> mean, std = bml.adapt(episode.support).predict_dist(episode.query)  # doctest: +SKIP
    """

    kind = "meta"

    def __init__(self, config: BayesConfig | None = None, name: str = "bml", **overrides: Any):
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        self.config = BayesConfig(**cfg)
        self.name = name
        self.model: nn.Module | None = None
        self.scaler = Scaler()
        self.cutoff = 0.0
        self.history: dict[str, list] = {"iteration": [], "train_nll": [], "noise_std": [],
                                         "val_iteration": [], "val_nll": []}
        self.fit_time_s = 0.0
        self.var_factors: tuple[float, float] = (1.0, 1.0)
        self.calib_names: list[str] = []
        if not (self.config.model == "MLP" and "n_in" not in self.config.model_kwargs):
            self._build()

    def __repr__(self) -> str:
        return f"BayesianMetaLearner({self.name!r}, model={self.config.model}{self.config.model_kwargs})"

    # ---------------------------------------------------------------- parameters
    def _build(self, n_in: int | None = None) -> None:
        if n_in is not None:
            self.config.model_kwargs = {**self.config.model_kwargs, "n_in": int(n_in)}
        torch.manual_seed(self.config.seed)
        self.model = build_model(self.config.model, **self.config.model_kwargs)
        self.cutoff = getattr(self.model, "cutoff", 0.0)
        p = int(self.model.n_features) + 1
        s = self.config.prior_scale_init / math.sqrt(p)
        self.mu0 = nn.Parameter(torch.zeros(p))
        raw = torch.zeros(p, p)
        raw.diagonal().fill_(math.log(math.expm1(s)))
        self.chol_raw = nn.Parameter(raw)
        self.log_noise = nn.Parameter(torch.tensor(math.log(self.config.noise_init)))

    def parameters(self) -> list[nn.Parameter]:
        return [*self.model.parameters(), self.mu0, self.chol_raw, self.log_noise]

    def _prior(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mu0, L, sigma^2)`` in float64 (standardized target units)."""
        return (self.mu0.double(), lower_cholesky(self.chol_raw.double()), torch.exp(2 * self.log_noise.double()))

    def _calibrated(self, var: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """Predictive (co)variance with the calibration factors: ``a var_f + b sigma^2``."""
        a, b = self.var_factors
        if a == 1.0 and b == 1.0:
            return var
        eye = torch.eye(len(var), dtype=var.dtype) if var.dim() == 2 else 1.0
        return a * (var - s2 * eye) + b * s2 * eye

    @property
    def noise_std(self) -> float:
        """Learned observation noise, in target units."""
        return float(torch.exp(self.log_noise.detach())) * self.scaler.y_std

    def _features_grad(self, inputs) -> torch.Tensor:
        f = self.model(self.scaler.x(inputs, self.cutoff), output="features").double()
        return torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], dim=1)

    def features(self, inputs: Task | np.ndarray | list) -> torch.Tensor:
        """``phi(x) = [body(x), 1]`` as a float64 tensor ``(n, p)`` (no gradient)."""
        if self.model is None:
            raise RuntimeError("This learner is not fitted yet: call fit(meta_train) first.")
        with torch.no_grad():
            return self._features_grad(inputs)

    # ---------------------------------------------------------------- training
    def _episode_nll(self, phi: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        mu0, chol, s2 = self._prior()
        mean, var = blr_predict(phi[:k], y[:k], phi[k:], mu0, chol, s2)
        return (0.5 * torch.log(2 * math.pi * var) + 0.5 * (y[k:] - mean) ** 2 / var).mean()

    def fit(self, train: TaskSet, val: TaskSet | None = None, n_iterations: int | None = None,
            progress: bool = True, callback=None) -> BayesianMetaLearner:
        """Meta-train on ``train`` (continues from the current weights if called again).

        Each iteration draws ``meta_batch_size`` tasks, a support size ``k`` in ``k_support``
        (capped so that ``min_query`` points stay for the query) and minimizes the mean query NLL
        under the support posterior predictive. ``val`` (optional) is scored every ``val_every``
        iterations (mean query NLL at k = 5, standardized units); with ``keep_best`` the best
        validation state is restored at the end.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        n_iter = cfg.n_iterations if n_iterations is None else int(n_iterations)
        kmin, kmax = cfg.k_support
        cal = val
        if cfg.calibrate and val is None:
            first = not self.calib_names
            if first:
                self.calib_names = calibration_tasks(train, cfg.calib_fraction, cfg.calib_split, cfg.seed,
                                                     cfg.calib_group_index)
            names = [n for n in self.calib_names if n in train]
            cal = train.select(names) if names else None
            rest = train.select([n for n in train.names if n not in set(self.calib_names)])
            if not cfg.calib_crossfit:
                train = rest
            elif first and cal is not None:
                aux = BayesianMetaLearner(self.config, name=f"{self.name} (calibration copy)", calibrate=False)
                aux.fit(rest, progress=progress)
                self.var_factors = aux.calibrate(cal)
                self.history["calibration_copy_tasks"] = rest.names
            cal = None if cfg.calib_crossfit else cal
        eligible = [t for t in train if len(t) >= kmin + cfg.min_query]
        if not eligible:
            raise ValueError(f"No meta-train task has >= {kmin + cfg.min_query} points (k_support={cfg.k_support}, "
                             f"min_query={cfg.min_query}); lower them.")
        if self.model is None:
            if not train[0].is_tabular:
                raise ValueError("model='MLP' needs tabular tasks; use model='InvariantGNN' for structures")
            self._build(n_in=train[0].inputs.shape[1])
        if not self.history["iteration"]:
            self.scaler = Scaler.fit(train)
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)
        start = len(self.history["iteration"])
        rng = np.random.default_rng(cfg.seed + 7919 * start)
        best = (float("inf"), None)
        t0 = time.perf_counter()
        bar = tqdm(range(n_iter), desc=f"meta-train {self.name}", disable=not progress, leave=False)
        for it in bar:
            episodes = []
            for _ in range(cfg.meta_batch_size):
                task = eligible[int(rng.integers(len(eligible)))]
                n = len(task)
                k = int(rng.integers(kmin, min(kmax, n - cfg.min_query) + 1))
                q = min(cfg.k_query, n - k)
                idx = rng.permutation(n)[: k + q]
                episodes.append((task.subset(idx), k))
            # one forward pass for all episodes of the meta-batch
            if episodes[0][0].is_tabular:
                inputs = np.vstack([e.inputs for e, _ in episodes])
            else:
                inputs = [s for e, _ in episodes for s in e.inputs]
            phi = self._features_grad(inputs)
            opt.zero_grad(set_to_none=True)
            loss, off = 0.0, 0
            for e, k in episodes:
                n = len(e)
                y = torch.as_tensor((e.targets - self.scaler.y_mean) / self.scaler.y_std, dtype=torch.float64)
                loss = loss + self._episode_nll(phi[off: off + n], y, k)
                off += n
            loss = loss / len(episodes)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.parameters(), cfg.grad_clip)
            opt.step()
            step = start + it + 1
            self.history["iteration"].append(step)
            self.history["train_nll"].append(float(loss.detach()))
            self.history["noise_std"].append(self.noise_std)
            if val is not None and (step % cfg.val_every == 0 or it == n_iter - 1):
                v = self.validation_nll(val)
                self.history["val_iteration"].append(step)
                self.history["val_nll"].append(v)
                bar.set_postfix(val_nll=f"{v:.3f}")
                if cfg.keep_best and v < best[0]:
                    best = (v, copy.deepcopy(self._state()))
            if callback is not None:
                callback(self, step)
        if cfg.keep_best and best[1] is not None:
            self._load_state(best[1])
        if cfg.calibrate and cal is not None:
            self.calibrate(cal)
        self.fit_time_s += time.perf_counter() - t0
        return self

    def calibrate(self, val: TaskSet, n_episodes: int | None = None, seed: int = 4242) -> tuple[float, float]:
        """Fit the variance factors ``(a, b)`` of ``var = a var_f + b sigma^2`` by NLL on ``val`` tasks.

        ``var_f`` is the posterior variance of the function and ``sigma^2`` the learned noise.
        Episodes: support sizes drawn from ``k_support`` (as in training), query = the rest of the
        task (at most 50 points), ``n_episodes`` (default ``calib_episodes``) per task. The tasks
        should be unseen in meta-training, else the factors come out optimistic. Returns ``(a, b)``.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        kmin, kmax = cfg.k_support
        r2, v1, v2 = [], [], []
        for task in val:
            if len(task) < kmin + 2:
                continue
            tm = self.for_task(task)
            for _ in range(cfg.calib_episodes if n_episodes is None else n_episodes):
                k = int(rng.integers(kmin, min(kmax, len(task) - 1) + 1))
                perm = rng.permutation(len(task))
                m, var_f, s2 = tm.raw(perm[:k], perm[k: k + 50])
                r2.append((m - tm.y.numpy()[perm[k: k + 50]]) ** 2)
                v1.append(var_f)
                v2.append(np.full(len(m), s2))
        if not r2:
            raise ValueError("calibration needs tasks with at least k_support[0] + 2 points")
        self.var_factors = _fit_variance_mix(np.concatenate(r2), np.concatenate(v1), np.concatenate(v2))
        return self.var_factors

    def validation_nll(self, val: TaskSet, k: int = 5, seed: int = 12345) -> float:
        """Mean query NLL (standardized units) after conditioning on ``k`` points, fixed episodes."""
        out = []
        for i, task in enumerate(val):
            if len(task) <= k:
                continue
            tm = self.for_task(task)
            for e in range(self.config.val_episodes):
                ep = val.episode(task, k, min(50, len(task) - k), seed=seed + 1000 * i + e)
                m, s = tm.predict_dist(ep.support_idx, ep.query_idx)
                sc = self.scaler
                out.append(gaussian_nll((ep.query.targets - sc.y_mean) / sc.y_std, (m - sc.y_mean) / sc.y_std,
                                        s / sc.y_std))
        return float(np.mean(out)) if out else float("nan")

    # ---------------------------------------------------------------- inference
    def adapt(self, support: Task | None) -> BayesianPredictor:
        """Condition the Bayesian last layer on ``support`` (``None`` or empty: the prior)."""
        if self.model is None:
            raise RuntimeError("This learner is not fitted yet: call fit(meta_train) first.")
        if support is None or len(support) == 0:
            p = self.mu0.shape[0]
            return BayesianPredictor(self, torch.zeros(0, p, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
        y = torch.as_tensor((support.targets - self.scaler.y_mean) / self.scaler.y_std, dtype=torch.float64)
        return BayesianPredictor(self, self.features(support), y)

    def for_task(self, task: Task) -> _BMLTaskModel:
        """Features of every point of ``task`` computed once; ``predict_dist(train_idx, test_idx)``."""
        return _BMLTaskModel(self, task)

    def posterior(self, support: Task) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and covariance of the last-layer weights (standardized target units)."""
        pred = self.adapt(support)
        mu0, chol, s2 = self._prior()
        with torch.no_grad():
            m, c = blr_posterior(pred.phi_s, pred.y_s, mu0, chol, s2)
        return m.numpy(), c.numpy()

    # ---------------------------------------------------------------- persistence
    def _state(self) -> dict[str, torch.Tensor]:
        sd = {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        sd.update({"mu0": self.mu0.detach().clone(), "chol_raw": self.chol_raw.detach().clone(),
                   "log_noise": self.log_noise.detach().clone()})
        return sd

    def _load_state(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in sd.items() if k.startswith("model.")})
        with torch.no_grad():
            self.mu0.copy_(sd["mu0"])
            self.chol_raw.copy_(sd["chol_raw"])
            self.log_noise.copy_(sd["log_noise"])

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.pt`` (tensors only) and ``<path>.json`` (config, scaler, history)."""
        path = Path(path).with_suffix("")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self._state(), path.with_suffix(".pt"))
        meta = {"config": asdict(self.config), "name": self.name, "scaler": asdict(self.scaler),
                "history": self.history, "fit_time_s": self.fit_time_s, "var_factors": list(self.var_factors),
                "calib_names": self.calib_names, "nanonb_format": 1}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BayesianMetaLearner:
        """Load a learner written by :meth:`save` (``torch.load(weights_only=True)``)."""
        path = Path(path).with_suffix("")
        meta = json.loads(path.with_suffix(".json").read_text())
        learner = cls(BayesConfig(**meta["config"]), name=meta.get("name", "bml"))
        learner._load_state(torch.load(path.with_suffix(".pt"), weights_only=True))
        learner.scaler = Scaler(**meta["scaler"])
        learner.history = meta["history"]
        learner.fit_time_s = meta.get("fit_time_s", 0.0)
        learner.var_factors = tuple(meta.get("var_factors", (1.0, 1.0)))
        learner.calib_names = list(meta.get("calib_names", []))
        return learner

    def copy(self) -> BayesianMetaLearner:
        return copy.deepcopy(self)


def calibration_tasks(train: TaskSet, fraction: float = 0.2, split: str = "random", seed: int = 0,
                      group_index: int | None = None) -> list[str]:
    """Names of meta-train tasks to hold out for calibration (see :class:`BayesConfig`).

    ``"random"``: ``round(fraction * n)`` tasks at random (at least 1). ``"group"``: whole groups
    (every task carrying a group label; with ``group_index`` only the label at that position, e.g.
    0 = the salt of an electrolyte) in random order until at least ``fraction`` of the tasks are
    held out; a group that would push the held-out share above one half is skipped.
    """
    rng = np.random.default_rng(seed)
    n = len(train)
    if split == "random":
        n_cal = max(1, int(round(fraction * n)))
        if n_cal >= n:
            raise ValueError(f"{n} meta-train task(s) are too few to hold out calibration tasks; pass val= instead.")
        return sorted(train.tasks[i].name for i in rng.permutation(n)[:n_cal])
    if split != "group":
        raise ValueError(f"split must be 'random' or 'group', not {split!r}")
    def labels(t: Task) -> tuple[str, ...]:
        if group_index is None:
            return t.groups
        return (t.groups[group_index],) if len(t.groups) > group_index else ()

    groups = sorted({g for t in train for g in labels(t)})
    held: set[str] = set()
    for gi in rng.permutation(len(groups)):
        new = held | {t.name for t in train if groups[gi] in labels(t)}
        if len(new) > max(1, n // 2):
            continue
        held = new
        if len(held) >= fraction * n:
            break
    if not held:
        raise ValueError("no group can be held out for calibration without emptying the meta-train set")
    return sorted(held)


# ====================================================================== deep ensemble of meta-learners
def _fit_variance_mix(r2: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> tuple[float, float]:
    """``(a, b) > 0`` minimizing the Gaussian NLL of residuals ``r`` (``r2 = r^2``) under variance ``a v1 + b v2``.

    A component that is zero everywhere keeps its factor at 1.
    """
    from scipy.optimize import minimize

    m2 = max(float(np.mean(r2)), 1e-300)
    use = [float(np.mean(v)) > 0 for v in (v1, v2)]
    if not any(use):
        raise ValueError("both variance components are zero: nothing to calibrate")
    x0 = np.array([np.log(0.5 * m2 / float(np.mean(v))) if u else 0.0 for v, u in zip((v1, v2), use)])

    def nll(theta):
        t = np.clip(theta, -200.0, 200.0)
        v = (np.exp(t[0]) * v1 if use[0] else 0.0) + (np.exp(t[1]) * v2 if use[1] else 0.0) + 1e-300
        return float(np.mean(0.5 * np.log(v) + 0.5 * r2 / v))

    res = minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-9, "maxiter": 4000})
    theta = np.clip(res.x, -200.0, 200.0)
    return (float(np.exp(theta[0])) if use[0] else 1.0), (float(np.exp(theta[1])) if use[1] else 1.0)


def _fit_noise_calibration(y: np.ndarray, mean: np.ndarray, var_ep: np.ndarray) -> tuple[float, float]:
    """(scale, noise) minimizing the Gaussian NLL of ``y`` under ``N(mean, scale^2 var_ep + noise^2)``."""
    a, b = _fit_variance_mix((y - mean) ** 2, var_ep, np.ones_like(var_ep))
    return float(np.sqrt(a)), float(np.sqrt(b))


class EnsemblePredictor:
    """Adapted ensemble: mean and calibrated spread of the members' predictions (target units)."""

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
            if m.config.algorithm == "anil":
                with torch.no_grad():
                    f = m.model(m.scaler.x(task, m.cutoff), output="features")
                self.cached.append((f, m.scaler.y(task.targets)))
            else:
                self.cached.append(None)

    @staticmethod
    def _anil_head(m: MetaLearner, f_s: torch.Tensor, y_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exactly MetaLearner's ANIL inner loop (SGD on the head, MSE) on cached features."""
        w = m.model.head.weight.detach().clone()
        b = m.model.head.bias.detach().clone()
        if len(f_s) == 0:
            return w, b
        for _ in range(m.config.inner_steps):
            w.requires_grad_(True)
            b.requires_grad_(True)
            loss = ((f_s @ w.T + b).squeeze(-1) - y_s).pow(2).mean()
            gw, gb = torch.autograd.grad(loss, [w, b])
            w = (w - m.config.inner_lr * gw).detach()
            b = (b - m.config.inner_lr * gb).detach()
        return w, b

    def predict_dist(self, train_idx, test_idx) -> tuple[np.ndarray, np.ndarray]:
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
        return self.ens._combine(np.stack(preds))


class EnsembleMetaLearner:
    """Deep ensemble of independently meta-trained :class:`~nanonb.learners.base.MetaLearner` s.

    Member ``i`` is a MetaLearner with ``seed = config.seed + 1000 i`` (different initialization and
    episode stream). After adapting every member to the support, the predictive distribution is
    ``N(mean_i f_i, scale^2 var_i f_i + noise^2)``: the between-member variance (epistemic) times a
    calibration factor plus an additive noise variance. With ``noise="calibrate"`` the factor and
    the noise are fitted by Gaussian NLL on calibration tasks: ``val`` if given to :meth:`fit`, else
    a random ``calib_fraction`` of the meta-train tasks held out from the members' training (so the
    calibration sees tasks the members did not). ``noise="none"``: scale 1, noise 0 (raw spread).
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
                n_cal = max(1, int(round(self.calib_fraction * len(train))))
                if n_cal >= len(train):
                    raise ValueError(f"{len(train)} meta-train task(s) are too few to hold out calibration tasks; "
                                     "pass val= or use noise='none'.")
                order = np.random.default_rng(self.config.seed).permutation(len(train))
                self.calib_names = sorted(train.tasks[i].name for i in order[:n_cal])
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
                preds = []
                for m, c in zip(self.members, tm.cached):
                    if c is not None:
                        w, b = tm._anil_head(m, c[0][s], c[1][s])
                        with torch.no_grad():
                            preds.append(m.scaler.y_inv((c[0][q] @ w.T + b).squeeze(-1)))
                    else:
                        preds.append(m.adapt(task.subset(s)).predict(task.subset(q)))
                p = (np.stack(preds) - sc.y_mean) / sc.y_std
                ys.append((task.targets[q] - sc.y_mean) / sc.y_std)
                means.append(p.mean(0))
                vars_.append(p.var(0, ddof=1) if len(p) > 1 else np.zeros(len(q)))
        if not ys:
            raise ValueError("calibration needs tasks with at least 3 points")
        scale, noise = _fit_noise_calibration(np.concatenate(ys), np.concatenate(means), np.concatenate(vars_))
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


# ====================================================================== GP baselines with predictive std
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
    squared (of the normalized ``y`` with ``normalize_y``).
    """
    from scipy.optimize import minimize
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

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

    The model of :class:`~nanonb.baselines.gp.SupportGP`: constant x RBF (one length scale per
    descriptor; a shared one above :data:`ARD_MAX_DIMS` columns) + white noise, normalized targets,
    hyper-parameters by marginal likelihood on the support, descriptors standardized with
    meta-train statistics. ``predict_dist`` includes the fitted noise. With fewer than 2 support
    points no kernel can be fitted: the prediction is the support mean (the meta-train mean for an
    empty support) with the median within-task standard deviation of the meta-train tasks.
    ``warm_start=True`` (used in GP-BO campaigns via :meth:`for_task`) starts each refit from the
    previous round's hyper-parameters instead of random restarts, and re-optimizes them every
    ``refit_every`` rounds (in between, the GP is conditioned on the new points with fixed
    hyper-parameters, as is common in Bayesian optimization).
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
    """

    kind = "baseline"
    name = "pooled+gp"

    def __init__(self, pooled=None, n_restarts: int = 2, ard: bool | None = None, seed: int = 0,
                 name: str = "pooled+gp", **pooled_kwargs):
        from .baselines.nets import Pooled

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


# ====================================================================== evaluation over episodes
def evaluate_uncertainty(methods: Sequence, test: TaskSet, shots: Sequence[int] = (5, 10), n_episodes: int = 10,
                         k_query: int | None = None, seed: int = 0, levels: Sequence[float] = CURVE_LEVELS,
                         progress: bool = True) -> pd.DataFrame:
    """Score predictive distributions on held-out tasks, the same episodes for every method.

    Returns one row per (method, task, k, episode) with ``nll`` (nats/point, target units),
    ``coverage50/90/95`` (fraction of query points inside the central interval), ``sharpness``
    (mean std, target units), ``mae``, ``rmse``, ``n_query``, ``adapt_s`` and one ``cal_<level>``
    column per calibration level (observed coverage). Aggregate with
    :func:`nanonb.evaluate.summarize` (per-task mean, then mean/median over tasks) and
    :func:`calibration_summary`.
    """
    from tqdm.auto import tqdm

    from .evaluate import episode_seed

    rows = []
    jobs = [(t, k, e) for t in test for k in shots if k < len(t) for e in range(n_episodes)]
    models: dict[tuple[str, str], Any] = {}
    for task, k, e in tqdm(jobs, desc="evaluating uncertainty", disable=not progress, leave=False):
        kq = None if k_query is None else min(k_query, len(task) - k)
        ep = test.episode(task, k, kq, seed=episode_seed(seed, task.name, k, e))
        y = ep.query.targets
        for m in methods:
            key = (m.name, task.name)
            t0 = time.perf_counter()
            if key not in models:
                models = {kk: v for kk, v in models.items() if kk[1] == task.name}  # keep one task cached
                models[key] = task_model(m, task)
            mean, std = models[key].predict_dist(ep.support_idx, ep.query_idx)
            dt = time.perf_counter() - t0
            row = {"method": m.name, "kind": m.kind, "task": task.name, "k": k, "episode": e,
                   "nll": gaussian_nll(y, mean, std), "sharpness": sharpness(std),
                   "mae": float(np.mean(np.abs(mean - y))), "rmse": float(np.sqrt(np.mean((mean - y) ** 2))),
                   "n_query": len(y), "adapt_s": dt}
            for lev in LEVELS:
                row[f"coverage{int(round(100 * lev))}"] = coverage(y, mean, std, lev)
            a = np.abs(y - mean) / std
            for lev in levels:
                row[f"cal_{lev:g}"] = float(np.mean(a <= _z(lev)))
            rows.append(row)
    return pd.DataFrame(rows)


def calibration_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Calibration curves from :func:`evaluate_uncertainty` rows.

    Observed coverage per nominal level: mean over episodes within a task, then over tasks. Long
    frame with columns ``method, kind, k, level, observed, n_tasks``.
    """
    cols = [c for c in df.columns if c.startswith("cal_")]
    if not cols:
        raise ValueError("no cal_<level> columns: pass the output of evaluate_uncertainty")
    per_task = df.groupby(["method", "kind", "k", "task"], sort=False)[cols].mean().reset_index()
    g = per_task.groupby(["method", "kind", "k"], sort=False)
    out = []
    for (method, kind, k), sub in g:
        for c in cols:
            out.append({"method": method, "kind": kind, "k": int(k), "level": float(c[4:]),
                        "observed": float(sub[c].mean()), "n_tasks": len(sub)})
    return pd.DataFrame(out)


# ====================================================================== uncertainty triggers validation
def flag_for_validation(predictor, task: Task, measured_idx: Sequence[int] | None = None, best: float | None = None,
                        goal: str = "max", level: float = 0.9, include_meta: bool = True) -> pd.DataFrame:
    """Rank the candidates of ``task`` by predicted value and flag those worth measuring.

    Parameters
    ----------
    predictor:
        An adapted predictor with ``predict_dist(task) -> (mean, std)`` (target units).
    task:
        The candidates (e.g. every not-yet-made composition of a system).
    measured_idx:
        Indices of ``task`` already measured: they are excluded from the candidates and, if
        ``best`` is not given, the best of their targets is the current best.
    best:
        Current best value (target units). If neither it nor ``measured_idx`` is given, the best
        predicted mean among candidates is used (only the "uncertain" rules can then fire).
    goal:
        ``"max"`` (e.g. conductivity, LNP efficacy) or ``"min"`` (e.g. nanoalloy mixing energy: the
        most negative is the most stable alloy).
    level:
        Central interval used for the bounds (0.9: 5 %/95 % bounds).

    Returns
    -------
    DataFrame sorted best-predicted first, with ``index`` (row in ``task``), ``rank``, ``mean``,
    ``std``, ``lower``, ``upper``, ``prob_improvement`` (Gaussian probability of beating ``best``),
    ``flag`` and ``reason`` (plus the task's metadata columns with ``include_meta``). Flags, in
    goal-aware terms ("better" = larger for ``max``, smaller for ``min``):

    - ``"confident"``: even the pessimistic bound beats the current best;
    - ``"validate experimentally"``: the mean beats the current best but the interval reaches
      below it (predicted improvement is uncertain), or the mean does not beat it but the
      optimistic bound does (promising but uncertain);
    - ``""``: even the optimistic bound does not beat the current best.
    """
    from scipy.stats import norm

    if goal not in ("max", "min"):
        raise ValueError(f"goal must be 'max' or 'min', not {goal!r}")
    sign = 1.0 if goal == "max" else -1.0
    n = len(task)
    measured = np.asarray([] if measured_idx is None else measured_idx, dtype=int)
    cand = np.setdiff1d(np.arange(n), measured)
    if len(cand) == 0:
        raise ValueError("every point of the task is already measured: nothing to rank")
    mean, std = predictor.predict_dist(task.subset(cand))
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    lo, hi = interval(mean, std, level)
    s_mean, s_pess, s_opt = sign * mean, np.minimum(sign * lo, sign * hi), np.maximum(sign * lo, sign * hi)
    if best is None:
        best = float(sign * np.max(sign * task.targets[measured])) if len(measured) else float(sign * s_mean.max())
    b = sign * best
    pct = f"{100 * level:g}%"
    unit = f" {task.target_unit}" if task.target_unit else ""
    better = "above" if goal == "max" else "below"
    flags, reasons = [], []
    for i in range(len(cand)):
        bound_opt = hi[i] if goal == "max" else lo[i]
        bound_pess = lo[i] if goal == "max" else hi[i]
        if s_pess[i] > b:
            flags.append("confident")
            reasons.append(f"whole {pct} interval is {better} the current best {best:.4g}{unit}")
        elif s_mean[i] > b:
            flags.append("validate experimentally")
            reasons.append(f"mean {mean[i]:.4g} beats the current best {best:.4g}{unit} but the pessimistic "
                           f"{pct} bound {bound_pess:.4g} does not: improvement uncertain")
        elif s_opt[i] > b:
            flags.append("validate experimentally")
            reasons.append(f"mean {mean[i]:.4g} does not beat the current best {best:.4g}{unit} but the optimistic "
                           f"{pct} bound {bound_opt:.4g} does: promising but uncertain")
        else:
            flags.append("")
            reasons.append(f"optimistic {pct} bound {bound_opt:.4g} does not beat the current best {best:.4g}{unit}")
    out = pd.DataFrame({"index": cand, "mean": mean, "std": std, "lower": lo, "upper": hi,
                        "prob_improvement": norm.cdf((s_mean - b) / std), "flag": flags, "reason": reasons})
    if include_meta and task.meta is not None and len(task.meta.columns):
        out = pd.concat([out, task.meta.iloc[cand].reset_index(drop=True)], axis=1)
    out = out.iloc[np.argsort(-s_mean, kind="stable")].reset_index(drop=True)
    out.insert(1, "rank", np.arange(1, len(out) + 1))
    return out
