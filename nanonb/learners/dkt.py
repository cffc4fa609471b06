"""Deep kernel transfer (DKT): an exact GP per task on meta-learned features (GPyTorch).

Description
    Each task is an exact Gaussian process ``y = m(x) + f(x) + eps`` whose kernel acts on the output of a
    feature network ``phi`` (an MLP on the task's tabular inputs, e.g. the 12 cluster descriptors):
    ``k(x, x') = c^2 + s^2 k_base(phi(x), phi(x'))`` with ``k_base`` an RBF or Matern-5/2 kernel (one length
    scale per feature with ``ard``), ``c^2`` an optional constant (offset) kernel, optionally plus a linear
    kernel ``phi(x)^T V phi(x')`` (``linear=True``), and ``eps ~ N(0, sigma^2)``.
    The mean is a learned constant or a linear head on ``phi`` (``mean="net"``: a pooled-network-like trend
    that the GP corrects per task). The feature network, the mean and the kernel/likelihood hyper-parameters
    are shared by all tasks and meta-learned on episodes of the meta-train tasks (Patacchiola et al. 2020):
    ``objective="mll"`` maximizes the exact marginal likelihood of support + query, ``"predictive"`` the
    conditional likelihood ``log p(y_query | y_support)`` (the same quantity a test episode is scored on).
    ``adapt`` is exact GP conditioning on the support: no gradient steps. With ``adapt_kernel=True`` the
    base kernel's hyper-parameters (and noise) are then re-fitted on each support by a few Adam steps on its
    marginal likelihood, starting from, and pulled towards (Gaussian prior of width ``adapt_prior`` in
    log space), the meta-learned values: the ADKF-IFT idea (Chen et al. 2023) without the implicit gradient.

    Targets are divided by the pooled within-task standard deviation of meta-train and centred either on
    the support mean (``center="support"``: the offset, what varies most between tasks, is removed before
    the GP sees the data) or on the meta-train mean (``center="none"``, the default): the task offset is
    then a random variable with a meta-learned prior (the constant kernel) plus the learned mean, and
    conditioning on the support infers it.

    The defaults (``center="none"``, a linear kernel on 64 meta-learned features plus the offset kernel
    and no stationary kernel, ``kernel="none"``; predictive objective; 200 iterations) won a nested
    selection on meta-train tasks of the nanoalloys (``tools/measure_dkt.py``, leave-one-element-out inside
    meta-train) against Matern-5/2 deep kernels (16/32 features, with and without the linear term),
    support-centred targets and the joint marginal likelihood of the paper. The Bayesian offset uses what
    the descriptors say about a pair's level, which matters most at K = 1. On those data the Bayesian last
    layer (``BayesianMetaLearner``) is still better, on the validation elements and on held-out Pt pairs.

References
    Patacchiola, Turner, Crowley, O'Boyle, Storkey, "Bayesian meta-learning for the few-shot setting via
    deep kernels", NeurIPS 2020. Chen, Tripp, Hernandez-Lobato, "Meta-learning adaptive deep kernel
    Gaussian processes for molecular property prediction", ICLR 2023.

Example
    >>> dkt = DKT(n_iterations=300, seed=0).fit(meta_train)            # doctest: +SKIP
    >>> mean, std = dkt.adapt(episode.support).predict_dist(episode.query)  # target units  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gpytorch
import numpy as np
import torch
from torch import nn

from .._io import load_state, save_state, state_stem
from ..scaling import clip_standardized, input_statistics
from ..tasks import Task, TaskSet
from ._checks import all_finite, check_finite_tensors, nonfinite_error

_KERNELS = ("rbf", "matern52", "none")


@dataclass
class DKTConfig:
    """Hyper-parameters of :class:`DKT` (JSON-serializable).

    ``hidden`` / ``n_features``: the feature MLP's hidden widths and output size. ``kernel``: ``"rbf"``,
    ``"matern52"`` or ``"none"`` (only with ``linear=True``: then a Bayesian last layer as in ALPaCA);
    ``ard``: one length scale per feature. ``offset``: add a learned constant kernel (prior variance of a
    task offset). ``linear``: add a linear kernel on the features, one variance per feature (a Bayesian
    linear trend, so the trend itself adapts to each task). ``mean``: ``"constant"`` or ``"net"`` (linear
    head on the features). ``center``: ``"support"`` or ``"none"`` (see :class:`DKT`); ``"support"`` needs
    ``objective="predictive"`` (support-centred targets sum to zero, so their joint density is
    degenerate). Meta-training: ``n_iterations`` Adam steps (``lr``, ``weight_decay`` on the network) over
    ``meta_batch_size`` episodes with ``k`` support points drawn from ``k_support`` and ``k_query`` query
    points. ``noise_init`` is in standardized target units. ``adapt_*``: the per-task kernel refit of
    ``adapt_kernel=True``.
    """

    hidden: tuple[int, ...] = (64, 64)
    n_features: int = 64
    kernel: str = "none"
    ard: bool = True
    offset: bool = True
    linear: bool = True
    mean: str = "net"
    center: str = "none"
    objective: str = "predictive"
    n_iterations: int = 200
    lr: float = 3e-3
    weight_decay: float = 0.0
    meta_batch_size: int = 8
    k_support: tuple[int, int] = (0, 20)
    k_query: int = 30
    noise_init: float = 0.2
    adapt_kernel: bool = False
    adapt_steps: int = 20
    adapt_lr: float = 0.05
    adapt_prior: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)  # type: ignore[assignment]
        self.k_support = tuple(int(k) for k in self.k_support)  # type: ignore[assignment]
        checks = [
            (self.kernel in _KERNELS, f"kernel must be one of {_KERNELS}, not {self.kernel!r}"),
            (self.kernel != "none" or self.linear, "kernel='none' needs linear=True (the linear kernel is then the "
                                                   "only feature kernel: a Bayesian last layer, as in ALPaCA)"),
            (self.mean in ("constant", "net"), f"mean must be 'constant' or 'net', not {self.mean!r}"),
            (self.center in ("support", "none"), f"center must be 'support' or 'none', not {self.center!r}"),
            (self.objective in ("mll", "predictive"), f"objective must be 'mll' or 'predictive', not "
                                                      f"{self.objective!r}"),
            (not (self.center == "support" and self.objective == "mll"),
             "center='support' needs objective='predictive' (support-centred targets make the joint "
             "likelihood degenerate); use center='none' with objective='mll'"),
            (len(self.k_support) == 2 and 0 <= self.k_support[0] <= self.k_support[1],
             f"k_support must be (kmin, kmax) with 0 <= kmin <= kmax, got {self.k_support}"),
            (self.k_query >= 1 and self.n_features >= 1 and self.meta_batch_size >= 1,
             "k_query, n_features and meta_batch_size must be >= 1"),
            (self.noise_init > 0 and self.adapt_prior > 0, "noise_init and adapt_prior must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


class _DeepKernelGP(nn.Module):
    """Feature MLP + GPyTorch mean, kernel and Gaussian likelihood (float64)."""

    def __init__(self, n_in: int, cfg: DKTConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, cfg.n_features))
        self.features = nn.Sequential(*layers)
        self.mean_head = nn.Linear(cfg.n_features, 1) if cfg.mean == "net" else None
        self.mean_const = gpytorch.means.ConstantMean()
        ard = cfg.n_features if cfg.ard else None
        base = {"rbf": lambda: gpytorch.kernels.RBFKernel(ard_num_dims=ard),
                "matern52": lambda: gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=ard),
                "none": lambda: None}[cfg.kernel]()
        self.base = None if base is None else gpytorch.kernels.ScaleKernel(base)
        self.offset = gpytorch.kernels.ConstantKernel() if cfg.offset else None
        self.linear = gpytorch.kernels.LinearKernel(ard_num_dims=cfg.n_features) if cfg.linear else None
        if self.linear is not None:  # prior trend variance O(1) in standardized units, as ALPaCA's prior
            self.linear.variance = torch.full((1, cfg.n_features), 1.0 / cfg.n_features)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(1e-4))
        self.likelihood.noise = cfg.noise_init**2
        self.double()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        m = self.mean_const(z)
        return m if self.mean_head is None else m + self.mean_head(z).squeeze(-1)

    def cov(self, z1: torch.Tensor, z2: torch.Tensor | None = None) -> torch.Tensor:
        parts = [kern(z1, z2).to_dense() for kern in (self.base, self.offset, self.linear) if kern is not None]
        return sum(parts[1:], parts[0])

    @property
    def noise(self) -> torch.Tensor:
        return self.likelihood.noise.squeeze()

    def log_marginal(self, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(r)`` of the points ``(z, r)`` (sum, nats)."""
        k = self.cov(z) + self.noise * torch.eye(len(z), dtype=z.dtype)
        return gpytorch.distributions.MultivariateNormal(self.mean(z), k).log_prob(r)

    def hyper_parameters(self) -> list[nn.Parameter]:
        """The raw parameters of the base kernel (the linear one with ``kernel="none"``) and the likelihood
        (refitted by ``adapt_kernel``)."""
        kern = self.base if self.base is not None else self.linear
        return [*kern.parameters(), *self.likelihood.parameters()]


def safe_cholesky(k: torch.Tensor, name: str = "GP") -> torch.Tensor:
    """Cholesky factor of a support covariance ``k``, adding diagonal jitter (1e-8 .. 1e-2 of its mean
    diagonal) only if the plain factorization fails.

    Near-duplicate support points under a large meta-learned signal variance (or a linear kernel of rank
    below the support size) make ``k`` numerically indefinite even with the noise term; the jitter is far
    below the noise of these data. ``name`` (the learner) goes into the error message.

    Example
    -------
    >>> k = torch.ones(3, 3, dtype=torch.float64)                  # rank 1: plain Cholesky fails
    >>> bool(torch.isfinite(safe_cholesky(k)).all())
    True
    """
    scale = float(torch.diagonal(k).mean())
    eye = torch.eye(len(k), dtype=k.dtype)
    for jitter in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):
        chol, info = torch.linalg.cholesky_ex(k + jitter * scale * eye)
        if int(info) == 0:
            return chol
    raise ValueError(f"{name}: the support covariance is not positive definite even with 1e-2 jitter; "
                     "the meta-learned kernel is degenerate (refit with another seed or kernel).")


def _posterior(gp: _DeepKernelGP, z_s: torch.Tensor, r_s: torch.Tensor, z_q: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive mean and variance of new measurements at ``z_q`` given ``(z_s, r_s)`` (incl. noise)."""
    m_q = gp.mean(z_q)
    var_q = torch.diagonal(gp.cov(z_q, z_q)) + gp.noise
    if len(z_s) == 0:
        return m_q, var_q
    k_ss = gp.cov(z_s) + gp.noise * torch.eye(len(z_s), dtype=z_s.dtype)
    chol = safe_cholesky(k_ss)
    k_sq = gp.cov(z_s, z_q)
    a = torch.cholesky_solve((r_s - gp.mean(z_s)).unsqueeze(-1), chol).squeeze(-1)
    v = torch.linalg.solve_triangular(chol, k_sq, upper=False)
    return m_q + k_sq.T @ a, (var_q - (v**2).sum(0)).clamp_min(1e-10)


class DKTPredictor:
    """An adapted DKT: the GP conditioned on one support set. Predictions in the task's target units."""

    def __init__(self, learner: DKT, gp: _DeepKernelGP, z_s: torch.Tensor, r_s: torch.Tensor, center: float):
        self.learner, self.gp, self.z_s, self.r_s, self.center = learner, gp, z_s, r_s, center

    def predict_dist(self, inputs: Task | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of new measurements at ``inputs`` (a task or an ``(n, d)`` array), target units."""
        z_q = self.learner._embed(inputs)
        with torch.no_grad():
            m, v = _posterior(self.gp, self.z_s, self.r_s, z_q)
        if not all_finite(m, v):
            raise nonfinite_error(self.learner.name, [
                (all_finite(*self.learner.gp.parameters()), "the meta-learned weights contain NaN/inf (a damaged "
                 "file or a diverged fit)"),
                (all_finite(*self.gp.parameters()), "the per-task kernel refit diverged: lower adapt_lr"),
                (all_finite(self.z_s, self.r_s), "the support set contains NaN/inf")])
        s = self.learner.y_scale
        return m.numpy() * s + self.center, np.sqrt(v.numpy()) * s

    def predict(self, inputs: Task | np.ndarray) -> np.ndarray:
        """Predictive mean at ``inputs`` (target units)."""
        return self.predict_dist(inputs)[0]


class DKT:
    """Deep kernel transfer: meta-learned deep-kernel GP, exact conditioning on each support set.

    Parameters are those of :class:`DKTConfig` (pass a config and/or keyword overrides). ``fit`` returns
    ``self``; ``adapt(support)`` returns a :class:`DKTPredictor` with ``predict`` / ``predict_dist``
    (mean and standard deviation of a new measurement, in the task's target units, e.g. eV/atom).
    Seeded: the same config and data give the same numbers.

    Example
    -------
    >>> dkt = DKT(kernel="matern52", n_features=32, n_iterations=200, seed=0)  # doctest: +SKIP
    >>> dkt.fit(meta_train)                                                  # doctest: +SKIP
    >>> mean, std = dkt.adapt(ep.support).predict_dist(ep.query)             # doctest: +SKIP
    >>> DKT(adapt_kernel=True).fit(meta_train).name                          # doctest: +SKIP
    'dkt-adapt'
    """

    kind = "meta"

    def __init__(self, config: DKTConfig | None = None, name: str | None = None, **overrides: Any):
        cfg = asdict(config) if config is not None else {}
        unknown = set(overrides) - set(DKTConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"Unknown DKT option(s) {sorted(unknown)}; valid: {sorted(DKTConfig.__dataclass_fields__)}")
        cfg.update(overrides)
        self.config = DKTConfig(**cfg)
        self.name = name or ("dkt-adapt" if self.config.adapt_kernel else "dkt")
        self.gp: _DeepKernelGP | None = None
        self.n_in: int | None = None
        self.x_mean = self.x_std = None
        self.y_mean, self.y_scale = 0.0, 1.0
        self.history: dict[str, list] = {"iteration": [], "loss": []}
        self.fit_time_s = 0.0

    def __repr__(self) -> str:
        return f"DKT({self.name!r}, {asdict(self.config)})"

    # ---------------------------------------------------------------- data handling
    def _check_tabular(self, inputs: Task | np.ndarray, what: str) -> np.ndarray:
        x = inputs.inputs if isinstance(inputs, Task) else inputs
        if not isinstance(x, np.ndarray):
            raise TypeError(f"DKT needs tabular inputs (an (n, d) array or a tabular Task) for {what}, got "
                            f"{type(x).__name__}; for structures use descriptor inputs "
                            "(nanonb.active.descriptor_tasks).")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or (self.n_in is not None and x.shape[1] != self.n_in):
            raise ValueError(f"{what}: inputs must have shape (n, {self.n_in}), got {x.shape}.")
        if not np.isfinite(x).all():
            raise ValueError(f"{what}: inputs contain NaN/inf.")
        return x

    def _embed(self, inputs: Task | np.ndarray, grad: bool = False) -> torch.Tensor:
        if self.gp is None:
            raise RuntimeError("This DKT is not fitted yet: call fit(meta_train) first.")
        x = torch.as_tensor(clip_standardized((self._check_tabular(inputs, "predict") - self.x_mean) / self.x_std))
        with torch.set_grad_enabled(grad):
            return self.gp.embed(x)

    def _standardize(self, y: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        center = float(np.mean(y[:k])) if (self.config.center == "support" and k > 0) else self.y_mean
        return (y - center) / self.y_scale, center

    # ---------------------------------------------------------------- training
    def _episode_loss(self, x: torch.Tensor, y: np.ndarray, k: int) -> torch.Tensor:
        r, _ = self._standardize(y, k)
        r_t = torch.as_tensor(r)
        z = self.gp.embed(x)
        if self.config.objective == "mll":
            return -self.gp.log_marginal(z, r_t) / len(r)
        lp = self.gp.log_marginal(z, r_t) - (self.gp.log_marginal(z[:k], r_t[:k]) if k > 0 else 0.0)
        return -lp / (len(r) - k)

    def fit(self, meta_train: TaskSet, progress: bool = True) -> DKT:
        """Meta-train on ``meta_train`` (tabular tasks); continues from the current weights if fitted.

        Each iteration draws ``meta_batch_size`` tasks, a support size in ``k_support`` and ``k_query``
        query points per task, and takes an Adam step on the mean negative (conditional) log likelihood.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if not isinstance(meta_train, TaskSet) or len(meta_train) == 0:
            raise TypeError("fit expects a non-empty TaskSet of meta-train tasks.")
        xs = [self._check_tabular(t, f"task {t.name!r}") for t in meta_train]
        kmin = max(cfg.k_support[0], 1 if cfg.center == "support" else 0)
        eligible = [i for i, t in enumerate(meta_train) if len(t) >= kmin + 1]
        if not eligible:
            raise ValueError(f"No meta-train task has more than {kmin} points; lower k_support={cfg.k_support}.")
        if self.gp is None:
            self.n_in = xs[0].shape[1]
            self.x_mean, self.x_std = input_statistics(np.vstack(xs))
            self.y_mean = float(np.mean([t.targets.mean() for t in meta_train]))
            within = np.concatenate([t.targets - t.targets.mean() for t in meta_train])
            self.y_scale = float(within.std()) if within.std() > 0 else 1.0
            torch.manual_seed(cfg.seed)
            self.gp = _DeepKernelGP(self.n_in, cfg)
        net = [p for n, p in self.gp.named_parameters() if n.startswith(("features", "mean_head"))]
        hyp = [p for n, p in self.gp.named_parameters() if not n.startswith(("features", "mean_head"))]
        opt = torch.optim.AdamW([{"params": net, "weight_decay": cfg.weight_decay},
                                 {"params": hyp, "weight_decay": 0.0}], lr=cfg.lr)
        start = len(self.history["iteration"])
        rng = np.random.default_rng(cfg.seed + 7919 * start)
        xt = [torch.as_tensor(clip_standardized((x - self.x_mean) / self.x_std)) for x in xs]
        t0 = time.perf_counter()
        bar = tqdm(range(cfg.n_iterations), desc=f"meta-train {self.name}", disable=not progress, leave=False)
        self.gp.train()
        for it in bar:
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            for _ in range(cfg.meta_batch_size):
                i = eligible[int(rng.integers(len(eligible)))]
                n = len(meta_train[i])
                k = int(rng.integers(kmin, min(cfg.k_support[1], n - 1) + 1))
                idx = rng.permutation(n)[: k + min(cfg.k_query, n - k)]
                loss = loss + self._episode_loss(xt[i][idx], meta_train[i].targets[idx], k)
            loss = loss / cfg.meta_batch_size
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.gp.parameters(), 10.0)
            opt.step()
            self.history["iteration"].append(start + it + 1)
            self.history["loss"].append(float(loss.detach()))
            if it % 20 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        self.gp.eval()
        self.fit_time_s += time.perf_counter() - t0
        return self

    # ---------------------------------------------------------------- adaptation
    def adapt(self, support: Task | None) -> DKTPredictor:
        """Condition the GP on ``support`` (``None`` or empty: the prior around the meta-train mean)."""
        if self.gp is None:
            raise RuntimeError("This DKT is not fitted yet: call fit(meta_train) first.")
        if support is None or len(support) == 0:
            empty = torch.zeros(0, self.config.n_features, dtype=torch.float64)
            return DKTPredictor(self, self.gp, empty, torch.zeros(0, dtype=torch.float64), self.y_mean)
        z_s = self._embed(support)
        if not all_finite(support.targets):
            raise ValueError(f"{self.name}.adapt: the support set {support.name!r} contains NaN/inf targets; remove "
                             "or fill those points.")
        r, center = self._standardize(support.targets, len(support))
        r_s = torch.as_tensor(r)
        gp = self.gp
        if self.config.adapt_kernel and len(support) >= 2:
            gp = self._refit_kernel(z_s, r_s)
        return DKTPredictor(self, gp, z_s, r_s, center)

    def _refit_kernel(self, z_s: torch.Tensor, r_s: torch.Tensor) -> _DeepKernelGP:
        """A copy of the GP with base-kernel and noise hyper-parameters fitted on the support (MAP)."""
        cfg = self.config
        gp = copy.deepcopy(self.gp)
        params = gp.hyper_parameters()
        init = [p.detach().clone() for p in params]
        opt = torch.optim.Adam(params, lr=cfg.adapt_lr)
        for _ in range(cfg.adapt_steps):
            opt.zero_grad(set_to_none=True)
            prior = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, init)) / (2 * cfg.adapt_prior**2)
            (-gp.log_marginal(z_s, r_s) + prior).backward()
            opt.step()
        gp.eval()
        return gp

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``<path>.json`` (config, scalers, history) and ``<path>.pt`` (tensors only), atomically.

        ``path`` may end in ``.pt`` / ``.json``; other dots stay in the name (:func:`nanonb._io.state_stem`).
        """
        if self.gp is None:
            raise RuntimeError(f"Nothing to save: this {self.name} learner is not fitted yet; fit it first "
                               "(dkt.fit(meta_train)), then save.")
        meta = {"learner": "DKT", "config": asdict(self.config), "name": self.name, "n_in": self.n_in,
                "x_mean": self.x_mean.tolist(), "x_std": self.x_std.tolist(), "y_mean": self.y_mean,
                "y_scale": self.y_scale, "history": self.history, "fit_time_s": self.fit_time_s,
                "nanonb_format": 1}
        return save_state(path, meta, {k: v.detach().clone() for k, v in self.gp.state_dict().items()})

    @classmethod
    def load(cls, path: str | Path) -> DKT:
        """Load a DKT written by :meth:`save` (``torch.load(weights_only=True)``); NaN/inf weights are refused."""
        path = state_stem(path)
        meta, tensors = load_state(path)
        if meta.get("learner") != "DKT":
            raise ValueError(f"{path}.json is not a saved DKT (learner={meta.get('learner')!r}).")
        dkt = cls(DKTConfig(**meta["config"]), name=meta["name"])
        dkt.n_in = int(meta["n_in"])
        dkt.x_mean, dkt.x_std = np.asarray(meta["x_mean"]), np.asarray(meta["x_std"])
        dkt.y_mean, dkt.y_scale = float(meta["y_mean"]), float(meta["y_scale"])
        dkt.history, dkt.fit_time_s = meta["history"], meta.get("fit_time_s", 0.0)
        dkt.gp = _DeepKernelGP(dkt.n_in, dkt.config)
        params = dict(dkt.gp.named_parameters())  # not the constraint bounds: their upper bound is inf
        check_finite_tensors({k: v for k, v in tensors.items() if k in params}, dkt.name, f"{path}.pt")
        dkt.gp.load_state_dict(tensors)
        dkt.gp.eval()
        return dkt

