"""A VTF network whose head adapts under a proper prior: :class:`VTFPriorLearner` (registered ``"vtf-prior"``).

The network (:class:`~nanonb.physics.vtfnet.VTFNet`, trained on all meta-train points pooled) gives every
point its VTF parameters ``p0(x) = (ln A, B, T0, alpha, beta)``: the meta-learned curve of a composition.
Adapting to a task's support adds five task offsets ``d`` with a Gaussian prior and takes the MAP estimate::

    minimise  sum_i ((vtf(p0(x_i) + d, T_i, c_i) - y_i) / noise)^2  +  sum_j ((d_j - m_j) / s_j)^2

(:func:`map_offsets`, ``scipy.optimize.least_squares``). The prior's mean ``m``, widths ``s`` and the noise
are empirical Bayes: offsets fitted on meta-train tasks with a wide temperature range, by a network that
did not see those tasks (two-fold cross-fitting), then their median and 1.4826 x median absolute deviation.
A support with one temperature cannot tell ``ln A`` from ``B`` and ``T0``: the data fix one level and the
prior keeps the temperature dependence of the meta-learned curve, instead of the free SGD steps of a
fine-tune (or a MAML inner loop) that may tilt the curve. ``predict_dist`` adds the Laplace variance of
``d`` (from the least-squares Jacobian) to the noise.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares

from .._io import save_state
from ..baselines.nets import Pooled, pooled_view
from ..physics.vtf import LN10, PARAM_NAMES, check_target_unit, soft_conc, soft_gap
from ..physics.vtfnet import vtf_model_kwargs
from ..tasks import Task, TaskSet
from ._checks import check_finite_tensors
from .registry import register_learner
from .training import Scaler

#: Floors of the prior widths of the offsets (ln mS/cm, K, K, 1, per concentration unit).
SPREAD_FLOOR = (0.1, 20.0, 5.0, 0.1, 0.05)


def vtf_curve(p: np.ndarray, T: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``log10 k`` (k in mS/cm) for per-point VTF parameters ``p`` ``(n, 5)`` at ``T`` (K) and ``c``.

    Example
    -------
    >>> vtf_curve(np.array([[6.0, 600.0, 160.0, 0.0, 0.0]]), np.array([298.15]), np.array([1.0])).round(2)
    array([0.72])
    """
    lnk = p[:, 0] + p[:, 3] * np.log(soft_conc(c)) + p[:, 4] * c - p[:, 1] / soft_gap(T - p[:, 2])
    return lnk / LN10


def map_offsets(p0: np.ndarray, T: np.ndarray, c: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                noise: float, t0_max: float) -> tuple[np.ndarray, np.ndarray]:
    """MAP task offsets ``d`` (5) of the VTF parameters and their Laplace covariance ``(5, 5)``.

    ``p0`` ``(n, 5)``: the network's parameters at the support points; ``T`` (K), ``c``, ``y`` (log10 mS/cm);
    Gaussian prior ``N(mean, std^2)`` per offset; ``noise`` in log10 units. ``B`` stays >= 1 K and ``T0``
    in ``[0, t0_max]``.

    Example
    -------
    >>> p0 = np.tile([6.0, 600.0, 160.0, 0.5, -0.5], (3, 1))
    >>> d, cov = map_offsets(p0, np.full(3, 300.0), np.ones(3), np.full(3, 0.9), np.zeros(5),
    ...                      np.array([1.0, 50.0, 10.0, 0.2, 0.2]), 0.05, 180.0)
    >>> bool(abs(d[1]) < 30.0), bool(abs(vtf_curve(p0 + d, np.full(1, 300.0), np.ones(1))[0] - 0.9) < 0.05)
    (True, True)
    """
    lo = np.array([-np.inf, 1.0 - p0[:, 1].min(), -p0[:, 2].min(), -np.inf, -np.inf])
    hi = np.array([np.inf, np.inf, max(t0_max - p0[:, 2].max(), lo[2] + 1e-3), np.inf, np.inf])

    def resid(d):
        return np.concatenate([(vtf_curve(p0 + d, T, c) - y) / noise, (d - mean) / std])

    x0 = np.clip(mean, lo + 1e-6, hi - 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale=std, max_nfev=200)
    J = sol.jac
    cov = np.linalg.pinv(J.T @ J)
    return sol.x, cov


@dataclass
class VTFPriorConfig:
    """Settings of :class:`VTFPriorLearner`: the pooled network (``hidden`` widths, ``epochs``, ``batch_size``,
    ``lr``, ``mask_prefixes`` of feature names hidden from its body, e.g. ``("anion_",)``), the empirical
    prior (tasks with ``>= min_points`` points spanning ``>= min_range_k`` K; ``cross_fit`` folds) and
    ``seed``.

    Example
    -------
    >>> VTFPriorConfig(hidden=(16,)).epochs
    40
    """

    hidden: tuple[int, ...] = (32, 32)
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    mask_prefixes: tuple[str, ...] = ()
    min_points: int = 10
    min_range_k: float = 30.0
    cross_fit: int = 2
    seed: int = 0
    algorithm: str = "vtf-prior"


class _Adapted:
    def __init__(self, learner: VTFPriorLearner, d: np.ndarray, cov: np.ndarray):
        self.learner, self.d, self.cov = learner, d, cov

    def predict(self, inputs: Task | np.ndarray) -> np.ndarray:
        """``log10(k / mS/cm)`` at ``inputs`` (a Task or an array of its inputs)."""
        p0, T, c = self.learner.curve_parameters(inputs)
        return vtf_curve(p0 + self.d, T, c)

    def predict_dist(self, inputs: Task | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` in log10(mS/cm): the Laplace variance of the offsets plus the noise."""
        p0, T, c = self.learner.curve_parameters(inputs)
        mean = vtf_curve(p0 + self.d, T, c)
        grads = np.empty((len(mean), 5))
        for j, h in enumerate((1e-3, 1e-1, 1e-2, 1e-3, 1e-3)):
            e = np.zeros(5)
            e[j] = h
            grads[:, j] = (vtf_curve(p0 + self.d + e, T, c) - mean) / h
        var = np.einsum("ni,ij,nj->n", grads, self.cov, grads) + self.learner.noise ** 2
        return mean, np.sqrt(np.maximum(var, 0.0))


@register_learner("vtf-prior")
class VTFPriorLearner:
    """Pooled VTF network + MAP adaptation of the VTF head under an empirical-Bayes prior (see the module).

    ``fit(meta_train)`` trains the network and estimates the prior; ``adapt(support)`` returns a predictor
    with ``predict`` / ``predict_dist`` (log10 mS/cm); ``adapt(None)`` is the meta-learned curve itself.
    Targets must be log10(mS/cm) (``Task.target_unit`` is checked).

    Example
    -------
    >>> learner = make_learner("vtf-prior", hidden=(32, 32), epochs=40).fit(meta_train)   # doctest: +SKIP
    >>> mean, std = learner.adapt(support).predict_dist(query)                           # doctest: +SKIP
    """

    kind = "meta"

    def __init__(self, config: VTFPriorConfig | None = None, **overrides):
        cfg = {**(asdict(config) if config is not None else {}), **overrides}
        cfg["hidden"], cfg["mask_prefixes"] = tuple(cfg.get("hidden", (32, 32))), tuple(cfg.get("mask_prefixes", ()))
        self.config = VTFPriorConfig(**cfg)
        self.name = "vtf-prior"
        self.net: Pooled | None = None
        self.model_kwargs: dict = {}
        self.prior_mean = np.zeros(5)
        self.prior_std = np.array([1.0, 100.0, 20.0, 0.5, 0.5])
        self.noise = 0.05
        self.t0_max = 180.0

    def _pooled(self, train: TaskSet, progress: bool) -> Pooled:
        cfg = self.config
        return Pooled(model="VTFNet", model_kwargs=self.model_kwargs, epochs=cfg.epochs, batch_size=cfg.batch_size,
                      lr=cfg.lr, seed=cfg.seed).fit(pooled_view(train), progress=progress)

    def fit(self, train: TaskSet, progress: bool = False, **_) -> VTFPriorLearner:
        """Train the pooled network on ``train`` and estimate the prior of the task offsets (empirical Bayes)."""
        check_target_unit(train)
        cfg = self.config
        self.model_kwargs = vtf_model_kwargs(train, hidden=cfg.hidden, mask_prefixes=cfg.mask_prefixes)
        self.t0_max = float(self.model_kwargs["t0_max"])
        wide = [t for t in train if len(t) >= cfg.min_points]
        fits, resid = [], []
        folds = cfg.cross_fit if len(train) >= 2 * max(cfg.cross_fit, 1) else 0
        for f in range(folds):  # offsets of tasks the network did not see
            held = {t.name for i, t in enumerate(train) if i % folds == f}
            self.net = self._pooled(train.select([n for n in train.names if n not in held]), progress)
            for t in wide:
                if t.name in held:
                    p0, T, c = self.curve_parameters(t)
                    if np.ptp(T) >= cfg.min_range_k:
                        d, _ = map_offsets(p0, T, c, t.targets, np.zeros(5), np.array([3.0, 300.0, 60.0, 2.0, 2.0]),
                                           0.05, self.t0_max)
                        fits.append(d)
                        resid.append(float(np.sqrt(np.mean((vtf_curve(p0 + d, T, c) - t.targets) ** 2))))
        self.net = self._pooled(train, progress)
        if len(fits) >= 3:
            a = np.array(fits)
            self.prior_mean = np.median(a, axis=0)
            self.prior_std = np.maximum(1.4826 * np.median(np.abs(a - self.prior_mean), axis=0), SPREAD_FLOOR)
            self.noise = max(float(np.median(resid)), 0.01)
        return self

    @torch.no_grad()
    def curve_parameters(self, inputs: Task | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's per-point VTF parameters ``(n, 5)`` (:data:`PARAM_NAMES`), ``T`` (K) and ``c``."""
        if self.net is None:
            raise RuntimeError("vtf-prior is not fitted: call fit(meta_train) first.")
        x = self.net.scaler.x(inputs if isinstance(inputs, Task) else np.asarray(inputs, dtype=np.float32), 0.0)
        model = self.net.model
        p = model(x, output="params").double().numpy()
        z = model(x, output="features").double().numpy()
        return p, z[:, len(PARAM_NAMES)], z[:, len(PARAM_NAMES) + 1]

    def adapt(self, support: Task | None) -> _Adapted:
        """MAP offsets on ``support`` (``None`` or empty: the prior mean, i.e. the meta-learned curve)."""
        if support is None or len(support) == 0:
            return _Adapted(self, self.prior_mean.copy(), np.diag(self.prior_std ** 2))
        p0, T, c = self.curve_parameters(support)
        d, cov = map_offsets(p0, T, c, support.targets, self.prior_mean, self.prior_std, self.noise, self.t0_max)
        return _Adapted(self, d, cov)

    def predict(self, inputs: Task | np.ndarray, support: Task | None = None) -> np.ndarray:
        """Predict ``inputs`` after adapting on ``support`` (log10 mS/cm)."""
        return self.adapt(support).predict(inputs)

    def predict_dist(self, inputs: Task | np.ndarray, support: Task | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` at ``inputs`` after adapting on ``support`` (log10 mS/cm)."""
        return self.adapt(support).predict_dist(inputs)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write ``<path>.json`` (config, prior, network arguments, scaler) and ``<path>.pt`` (weights)."""
        if self.net is None:
            raise RuntimeError("Nothing to save: fit the vtf-prior learner first.")
        meta = {"config": asdict(self.config), "algorithm": "vtf-prior", "model_kwargs": self.model_kwargs,
                "scaler": asdict(self.net.scaler), "prior_mean": self.prior_mean.tolist(),
                "prior_std": self.prior_std.tolist(), "noise": self.noise, "t0_max": self.t0_max,
                "nanonb_format": 1}
        return save_state(path, meta, {f"model.{k}": v for k, v in self.net.model.state_dict().items()})

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> VTFPriorLearner:
        """Restore what :meth:`save` wrote (``meta``: its JSON); NaN/inf weights are refused."""
        check_finite_tensors(tensors, self.name)
        self.model_kwargs = dict(meta["model_kwargs"])
        cfg = self.config
        self.net = Pooled(model="VTFNet", model_kwargs=self.model_kwargs, epochs=cfg.epochs, seed=cfg.seed)
        self.net.model = self.net._new_model(Task("x", np.zeros((1, self.model_kwargs["n_in"])), [0.0]))
        self.net.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.net.scaler = Scaler(**meta["scaler"])
        self.prior_mean, self.prior_std = np.array(meta["prior_mean"]), np.array(meta["prior_std"])
        self.noise, self.t0_max = float(meta["noise"]), float(meta["t0_max"])
        return self

    def __repr__(self) -> str:
        return f"VTFPriorLearner(hidden={self.config.hidden}, fitted={self.net is not None})"

