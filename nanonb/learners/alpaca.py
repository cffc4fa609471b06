"""ALPaCA: a meta-learned Bayesian last layer with a closed-form posterior (Harrison et al. 2018).

A network body gives features ``phi(x)`` (plus a constant), the last layer is Bayesian linear
regression ``y = w . phi(x) + eps`` with prior ``w ~ N(mu0, Sigma0)``, ``Sigma0 = L L^T`` and noise
``eps ~ N(0, sigma^2)`` (the linear-kernel case of deep kernel transfer). ``mu0``, ``L``, ``sigma``
and the body are meta-learned across tasks by maximizing the log-likelihood of query points under
the closed-form posterior predictive given the support (:mod:`nanonb.learners.blr`). Adapting to a
new task is exact Bayesian inference (no gradient steps).

The predictive variance can be calibrated (``calibrate=True``; ``calib_split="group"`` and
``calib_crossfit=True`` hold out whole groups, e.g. an element, for a copy and keep all tasks for the
final learner): two factors ``a var_f + b sigma^2`` fitted by NLL on unseen tasks
(:func:`nanonb.uncertainty.calibration.fit_variance_mix`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._io import load_state, save_state
from ..models.registry import build_model
from ..tasks import Task, TaskSet
from ..uncertainty.calibration import calibration_tasks, fit_variance_mix
from ..uncertainty.metrics import gaussian_nll
from ._checks import all_finite, check_finite_tensors, check_int, check_k_range, check_positive
from .alpaca_posterior import BayesianPredictor, BMLTaskModel
from .blr import blr_posterior, blr_predict, lower_cholesky
from .registry import register_learner
from .training import Scaler


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

    Example
    -------
    >>> cfg = BayesConfig(model="MLP", n_iterations=300, k_support=(0, 10))
    >>> BayesianMetaLearner(cfg, calibrate=True, calib_split="group").config.calib_split
    'group'
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
        """Validate every field up front (errors name the field, the value and the fix)."""
        own = "BayesConfig"
        self.k_support = check_k_range(own, self.k_support, 0)  # type: ignore[assignment]
        for name, minimum in (("n_iterations", 0), ("meta_batch_size", 1), ("k_query", 1), ("min_query", 1),
                              ("val_every", 1), ("val_episodes", 1), ("calib_episodes", 1)):
            setattr(self, name, check_int(own, name, getattr(self, name), minimum))
        check_positive(own, "lr", self.lr, hint=" It is the Adam step size, e.g. lr=0.002.")
        for name in ("noise_init", "prior_scale_init", "grad_clip"):
            check_positive(own, name, getattr(self, name))
        if not 0 < self.calib_fraction < 1:
            raise ValueError(f"BayesConfig.calib_fraction must be in (0, 1), got {self.calib_fraction!r}; e.g. 0.2.")
        if self.calib_split not in ("random", "group"):
            raise ValueError(f"calib_split must be 'random' or 'group', not {self.calib_split!r}")


@register_learner("bml")
class BayesianMetaLearner:
    """ALPaCA: meta-learned features with a Bayesian linear last layer and a closed-form posterior.

    Features ``phi(x) = [body(x), 1]`` from a :mod:`nanonb.models` network (``model(x,
    output="features")``); last layer ``y = w . phi + eps`` with ``w ~ N(mu0, L L^T)``,
    ``eps ~ N(0, sigma^2)``. Meta-training (Adam on the body, ``mu0``, ``L`` and ``log sigma``)
    maximizes the mean log predictive density of query points given the support, over episodes
    with ``k_support`` support sizes drawn at random, in standardized target units
    (:class:`~nanonb.learners.training.Scaler`, meta-train statistics). ``adapt(support)`` is exact
    conditioning: no gradient steps, deterministic, and ``support=None`` gives the prior predictive.

    Example
    -------
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
        cfg = self.config
        n_iter = cfg.n_iterations if n_iterations is None else int(n_iterations)
        kmin, kmax = cfg.k_support
        train, cal = self._hold_out_calibration(train, progress) if cfg.calibrate and val is None else (train, val)
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

    def _hold_out_calibration(self, train: TaskSet, progress: bool) -> tuple[TaskSet, TaskSet | None]:
        """``(training tasks, calibration tasks or None)`` for ``calibrate=True`` without ``val``.

        The calibration tasks are chosen once (first call) by :func:`calibration_tasks`. Without
        ``calib_crossfit`` they leave the training set; with it, an auxiliary copy trained without
        them fits ``var_factors`` on them (first call only) and this learner keeps every task.
        """
        cfg = self.config
        first = not self.calib_names
        if first:
            self.calib_names = calibration_tasks(train, cfg.calib_fraction, cfg.calib_split, cfg.seed,
                                                 cfg.calib_group_index)
        names = [n for n in self.calib_names if n in train]
        cal = train.select(names) if names else None
        rest = train.select([n for n in train.names if n not in set(self.calib_names)])
        if not cfg.calib_crossfit:
            return rest, cal
        if first and cal is not None:
            aux = BayesianMetaLearner(self.config, name=f"{self.name} (calibration copy)", calibrate=False)
            aux.fit(rest, progress=progress)
            self.var_factors = aux.calibrate(cal)
            self.history["calibration_copy_tasks"] = rest.names
        return train, None

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
        self.var_factors = fit_variance_mix(np.concatenate(r2), np.concatenate(v1), np.concatenate(v2))
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
        phi = self.features(support)
        if not all_finite(y, phi):
            what = "targets" if not all_finite(y) else ("inputs" if all_finite(*self.model.parameters()) else
                                                          "features (the network weights contain NaN/inf)")
            raise ValueError(f"{self.name}.adapt: the support set {support.name!r} gives NaN/inf {what}; "
                             "remove or fill those points (or reload good weights).")
        return BayesianPredictor(self, phi, y)

    def for_task(self, task: Task) -> BMLTaskModel:
        """Features of every point of ``task`` computed once; ``predict_dist(train_idx, test_idx)``."""
        return BMLTaskModel(self, task)

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
        """Write ``<path>.pt`` (tensors only) and ``<path>.json`` (config, scaler, history) via :mod:`nanonb._io`."""
        if self.model is None:
            raise RuntimeError(f"Nothing to save: this {self.name} learner is not fitted yet; fit it first "
                               "(learner.fit(meta_train)), then save.")
        return save_state(path, self.state_meta(), self._state())

    def state_meta(self) -> dict:
        """The JSON half of :meth:`save`: config, scaler, history and calibration (tensors: ``_state()``)."""
        return {"config": asdict(self.config), "name": self.name, "scaler": asdict(self.scaler),
                "history": self.history, "fit_time_s": self.fit_time_s, "var_factors": list(self.var_factors),
                "calib_names": self.calib_names, "algorithm": "bml", "nanonb_format": 1}

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> BayesianMetaLearner:
        """Restore weights, scaler, history and calibration written by :meth:`save` (``meta``: its JSON).

        Weights with NaN/inf are refused (``ValueError``).
        """
        check_finite_tensors(tensors, meta.get("name", self.name))
        self._load_state(tensors)
        self.name = meta.get("name", self.name)
        self.scaler = Scaler(**meta["scaler"])
        self.history = meta["history"]
        self.fit_time_s = meta.get("fit_time_s", 0.0)
        self.var_factors = tuple(meta.get("var_factors", (1.0, 1.0)))
        self.calib_names = list(meta.get("calib_names", []))
        return self

    @classmethod
    def load(cls, path: str | Path) -> BayesianMetaLearner:
        """Load a learner written by :meth:`save` (``torch.load(weights_only=True)``); as
        :func:`nanonb.learners.registry.load`, which also resolves it."""
        meta, tensors = load_state(path)
        return cls(BayesConfig(**meta["config"])).load_state(meta, tensors)

    def copy(self) -> BayesianMetaLearner:
        return copy.deepcopy(self)
