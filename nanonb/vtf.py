"""Physics-informed electrolyte conductivity: the Vogel–Tammann–Fulcher (VTF) law.

The ionic conductivity of a liquid electrolyte follows, to a good approximation,

.. math::

    \\ln k = \\ln A + \\alpha \\ln c + \\beta c - \\frac{B}{T - T_0}

with ``k`` in mS/cm, ``T`` in K, the pseudo-activation energy ``B`` in K, the ideal glass
transition temperature ``T0`` in K (``T0 < T``), and a concentration term (``c`` in mol/kg or mol/l
as given by the data set): ``alpha ln c`` is the dilute limit (``k`` proportional to the number of
carriers, ``alpha`` about 1) and ``beta c`` (``beta < 0``) the loss of mobility at high
concentration. Models here predict ``log10 k`` (``= ln k / ln 10``), the CALiSol-23 target.

Two things live here:

- :class:`VTFNet`, a ``head(body(x))`` network registered with :func:`nanonb.models.registry.register_model`
  (``make_learner(name, model="VTFNet", model_kwargs=vtf_model_kwargs(meta_train))``). The body is an MLP on
  the tabular electrolyte features with the temperature columns masked out (optionally more, e.g. the
  anion descriptors) ending in a linear layer that predicts how composition and concentration shift
  the five VTF parameters ``(ln A, B, T0, alpha, beta)``. The **head** (:class:`VTFHead`) holds the
  task-level VTF parameters (one offset each) that the inner loop adapts (ANIL adapts only those
  five numbers, MAML/FOMAML everything) and evaluates the VTF law at the point's temperature. The
  meta-learned initialisation is the prior over a task's VTF parameters; the SGD steps from it act as
  an implicit Gaussian prior (early stopping), there is no explicit penalty term.
  ``T0 = t0_max - softplus(.)`` stays below ``t0_max`` (by default 20 K below the coldest meta-train
  point) and the denominator is smoothly clamped to ``T - T0 >= 5 K``, so nothing blows up on colder
  held-out points. Everything is functional (no in-place parameter updates), so ``higher`` can
  differentiate through the inner loop.
- :func:`fit_vtf` and :class:`VTFFit`, the classical per-task VTF fit used as a baseline: a MAP
  (Tikhonov-regularised) least-squares fit of the five parameters on the support set. With five or
  ten points the five parameters are not identifiable from the data alone (``B`` and ``T0`` trade
  off, and ``alpha``/``beta`` are undetermined when the support has one concentration), so each
  parameter has a Gaussian prior whose mean and width come from VTF fits of the meta-train tasks
  (empirical Bayes: median and a robust spread over tasks). ``T0`` is bounded to ``[0, t0_max]``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .models.registry import register_model
from .tasks import Task, TaskSet

LN10 = math.log(10.0)
#: Names of the VTF parameters, in the order of :class:`VTFHead` outputs and :func:`fit_vtf`.
PARAM_NAMES = ("lnA", "B", "T0", "alpha", "beta")
#: Smallest allowed ``T - T0`` (K); the denominator is smoothly clamped above it.
MIN_GAP_K = 5.0
#: Concentrations are smoothly clamped above about this (same unit as ``c``) before ``ln c``.
C_FLOOR = 0.02


def _softplus_inv(y: float) -> float:
    return float(y + math.log(-math.expm1(-y))) if y < 30 else float(y)


def soft_gap(gap: torch.Tensor | np.ndarray, floor: float = MIN_GAP_K):
    """Smooth ``max(gap, floor)`` (K): ``floor + softplus(gap - floor)`` (close to ``gap`` above ~2 floor)."""
    if isinstance(gap, torch.Tensor):
        return floor + F.softplus(gap - floor)
    g = np.asarray(gap, dtype=np.float64) - floor
    return floor + np.logaddexp(0.0, g)


def soft_conc(c: torch.Tensor | np.ndarray, floor: float = C_FLOOR):
    """Smooth ``max(c, floor)`` so that ``ln c`` is defined for ``c <= 0`` (digitisation noise)."""
    if isinstance(c, torch.Tensor):
        return floor * F.softplus(c / floor) + 1e-6
    return floor * np.logaddexp(0.0, np.asarray(c, dtype=np.float64) / floor) + 1e-6


def vtf_log10k(params: dict | np.ndarray, T: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """Evaluate the VTF law: ``log10 k`` for temperature ``T`` (K) and concentration ``c``.

    ``params`` is a dict with keys :data:`PARAM_NAMES` (``alpha``/``beta`` optional, default 0) or
    an array in that order.
    """
    p = dict(zip(PARAM_NAMES, np.asarray(params, dtype=np.float64))) if not isinstance(params, dict) else params
    T = np.asarray(T, dtype=np.float64)
    lnk = p["lnA"] - p["B"] / soft_gap(T - p["T0"])
    if c is not None:
        lc = soft_conc(c)
        lnk = lnk + p.get("alpha", 0.0) * np.log(lc) + p.get("beta", 0.0) * np.asarray(c, dtype=np.float64)
    return lnk / LN10


# ---------------------------------------------------------------------- per-task VTF fit
@dataclass
class VTFPrior:
    """Gaussian prior of the VTF parameters (mean and standard deviation of each).

    Units: ``lnA`` (ln mS/cm), ``B`` (K), ``T0`` (K), ``alpha`` (1), ``beta`` (per concentration
    unit). ``t0_max`` (K) bounds ``T0`` from above.
    """

    mean: tuple[float, float, float, float, float] = (6.0, 600.0, 160.0, 0.5, -0.5)
    std: tuple[float, float, float, float, float] = (2.0, 300.0, 30.0, 1.0, 0.5)
    t0_max: float = 180.0

    def as_dict(self) -> dict:
        return asdict(self)


def fit_vtf(T: np.ndarray, y: np.ndarray, c: np.ndarray | None = None, prior: VTFPrior | None = None,
            fit_concentration: bool | None = None, weight: float = 1.0, noise: float = 0.05,
            loss: str = "linear") -> dict[str, float]:
    """MAP least-squares VTF fit of ``log10 k`` (``y``) against ``T`` (K) and ``c``.

    Minimises ``sum_i ((model_i - y_i) / noise)^2 + weight * sum_j ((p_j - mu_j) / sd_j)^2`` with
    ``scipy.optimize.least_squares`` (trust-region reflective, bounds ``B >= 1 K``,
    ``0 <= T0 <= prior.t0_max``, ``T0`` also kept 5 K below the coldest fitted point).

    Parameters
    ----------
    T, y, c:
        Temperatures (K), ``log10(k / mS/cm)`` and concentrations (None: no concentration term).
    prior:
        :class:`VTFPrior` (default: generic carbonate-electrolyte values). ``weight=0`` gives a plain
        unregularised fit (needs many points over a wide temperature range).
    fit_concentration:
        Fit ``alpha``/``beta`` (default: when ``c`` is given and varies by more than 1 %); otherwise
        they stay at the prior mean.
    noise:
        Assumed noise of ``log10 k`` (sets the balance between data and prior).
    loss:
        ``least_squares`` loss (``"linear"``, or ``"soft_l1"`` for robustness to outliers).

    Returns
    -------
    dict
        ``lnA``, ``B``, ``T0``, ``alpha``, ``beta`` and ``cost`` (final objective).
    """
    from scipy.optimize import least_squares

    prior = prior or VTFPrior()
    T = np.asarray(T, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(T) != len(y) or len(T) == 0:
        raise ValueError(f"fit_vtf needs matching non-empty T and y, got {len(T)} and {len(y)} values.")
    if c is not None:
        c = np.asarray(c, dtype=np.float64).reshape(-1)
        if len(c) != len(T):
            raise ValueError(f"c has {len(c)} values but T has {len(T)}.")
    if fit_concentration is None:
        fit_concentration = c is not None and (np.ptp(c) > 0.01 * max(np.abs(c).max(), 1e-9))
    mu = np.array(prior.mean, dtype=np.float64)
    sd = np.array(prior.std, dtype=np.float64)
    t0_hi = min(prior.t0_max, float(T.min()) - 2 * MIN_GAP_K)
    free = [0, 1, 2] + ([3, 4] if fit_concentration else [])
    lc = np.log(soft_conc(c)) if c is not None else None

    def full(theta):
        p = mu.copy()
        p[free] = theta
        return p

    def model(p):
        out = p[0] - p[1] / soft_gap(T - p[2])
        if c is not None:
            out = out + p[3] * lc + p[4] * c
        return out / LN10

    def resid(theta):
        p = full(theta)
        r_data = (model(p) - y) / noise
        r_prior = math.sqrt(weight) * (theta - mu[free]) / sd[free]
        return np.concatenate([r_data, r_prior])

    lo = np.array([-np.inf, 1.0, 0.0, -np.inf, -np.inf])[free]
    hi = np.array([np.inf, np.inf, max(t0_hi, 1.0), np.inf, np.inf])[free]
    x0 = np.clip(mu[free], lo + 1e-6, hi - 1e-6)
    # start ln A at the value that matches the mean of the data for the prior B, T0
    p0 = full(x0)
    x0[0] = float(np.mean(y * LN10 + p0[1] / soft_gap(T - p0[2])
                          - (p0[3] * lc + p0[4] * c if c is not None else 0.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = least_squares(resid, x0, bounds=(lo, hi), method="trf", loss=loss, x_scale="jac", max_nfev=200)
    p = full(sol.x)
    return {**dict(zip(PARAM_NAMES, p.tolist())), "cost": float(sol.cost)}


def _column(names: list[str] | None, wanted: tuple[str, ...], what: str) -> int:
    if not names:
        raise ValueError(f"The task set has no feature_names; VTF models need the {what} column "
                         f"(one of {wanted}). Build it with nanonb.data.calisol.calisol_taskset.")
    low = [n.lower() for n in names]
    for w in wanted:
        if w.lower() in low:
            return low.index(w.lower())
    raise ValueError(f"No {what} column among the features (looked for {wanted}); have {names[:10]}...")


@dataclass
class RawColumns:
    """How to recover temperature (K) and concentration from a task set's (standardized) inputs.

    ``raw = inputs[:, index] * std + mean`` for the loader's standardization (attributes
    ``feature_mean``/``feature_std`` of the task set; identity when absent).
    """

    t_index: int
    t_mean: float
    t_std: float
    c_index: int | None
    c_mean: float
    c_std: float

    @classmethod
    def of(cls, ts: TaskSet) -> RawColumns:
        names = ts.feature_names
        ti = _column(names, ("temperature_K", "temperature_k", "T"), "temperature (K)")
        try:
            ci: int | None = _column(names, ("salt_concentration", "c", "concentration"), "concentration")
        except ValueError:
            ci = None
        mean = getattr(ts, "feature_mean", None)
        std = getattr(ts, "feature_std", None)

        def ms(i):
            if i is None or mean is None or std is None:
                return 0.0, 1.0
            return float(mean[i]), float(std[i])

        (tm, tsd), (cm, csd) = ms(ti), ms(ci)
        t_raw = np.concatenate([t.inputs[:, ti] for t in ts]).astype(np.float64) * tsd + tm
        if t_raw.min() < 20.0:
            raise ValueError(
                f"The temperature column {names[ti]!r} does not look like kelvin (min {t_raw.min():.3g}): the task "
                "set is standardized but lacks feature_mean/feature_std. TaskSet.select() and the splits drop "
                "these attributes; copy them from the loader's task set (nanonb.casestudies.inherit_stats).")
        return cls(ti, tm, tsd, ci, cm, csd)

    def temperature(self, task: Task) -> np.ndarray:
        """Temperature in K of every point of ``task``."""
        return task.inputs[:, self.t_index].astype(np.float64) * self.t_std + self.t_mean

    def concentration(self, task: Task) -> np.ndarray | None:
        """Salt concentration (in the data set's units) of every point, or None."""
        if self.c_index is None:
            return None
        return task.inputs[:, self.c_index].astype(np.float64) * self.c_std + self.c_mean


def empirical_prior(train: TaskSet, min_points: int = 15, t0_margin: float = 20.0,
                    spread_floor: tuple[float, ...] = (0.3, 50.0, 10.0, 0.2, 0.1)) -> VTFPrior:
    """VTF prior from the meta-train tasks (empirical Bayes).

    Every task with at least ``min_points`` points and a temperature range of at least 30 K is fitted
    with a weak generic prior; the prior mean is the median of the per-task parameters and the std
    1.4826 × their median absolute deviation (at least ``spread_floor``). ``t0_max`` is the coldest
    meta-train temperature minus ``t0_margin`` K. Uses meta-train data only.
    """
    cols = RawColumns.of(train)
    t_min = min(float(cols.temperature(t).min()) for t in train)
    generic = VTFPrior(t0_max=t_min - t0_margin)
    fits = []
    for t in train:
        T = cols.temperature(t)
        if len(t) < min_points or np.ptp(T) < 30:
            continue
        f = fit_vtf(T, t.targets, cols.concentration(t), prior=generic, weight=1.0, noise=0.05, loss="soft_l1")
        fits.append([f[n] for n in PARAM_NAMES])
    if len(fits) < 3:
        return generic
    a = np.array(fits)
    med = np.median(a, axis=0)
    mad = 1.4826 * np.median(np.abs(a - med), axis=0)
    std = np.maximum(mad, np.array(spread_floor))
    med[2] = min(med[2], generic.t0_max - 1.0)
    return VTFPrior(tuple(med.tolist()), tuple(std.tolist()), generic.t0_max)


class _VTFPredictor:
    def __init__(self, params: dict, cols: RawColumns):
        self.params, self.cols = params, cols

    def predict(self, task: Task) -> np.ndarray:
        if not isinstance(task, Task):
            raise TypeError("VTFFit predictions need a Task (to read temperature and concentration).")
        return vtf_log10k(self.params, self.cols.temperature(task), self.cols.concentration(task))


class VTFFit:
    """Per-task VTF fit on the support set alone (baseline), with an empirical-Bayes prior.

    ``fit(meta_train)`` only estimates the prior (:func:`empirical_prior`) and finds the temperature
    and concentration columns; ``adapt(support)`` runs :func:`fit_vtf` on the support
    (``noise`` = 0.05 log10 units sets how strongly the prior pulls).
    """

    kind = "baseline"
    name = "vtf-fit"

    def __init__(self, noise: float = 0.05, prior: VTFPrior | None = None):
        self.noise = noise
        self.prior = prior
        self.cols: RawColumns | None = None

    def fit(self, train: TaskSet, **_) -> VTFFit:
        self.cols = RawColumns.of(train)
        if self.prior is None:
            self.prior = empirical_prior(train)
        return self

    def adapt(self, support: Task) -> _VTFPredictor:
        if self.cols is None:
            raise RuntimeError("VTFFit is not fitted: call fit(meta_train) first.")
        T, c = self.cols.temperature(support), self.cols.concentration(support)
        p = fit_vtf(T, support.targets, c, prior=self.prior, noise=self.noise)
        return _VTFPredictor(p, self.cols)


# ---------------------------------------------------------------------- VTF network
class VTFHead(nn.Module):
    """The per-task VTF parameters and the VTF law.

    Input: ``z = [q (5), T (K), c]`` (what :meth:`VTFNet.forward` returns for ``output="features"``),
    where ``q`` is the body's composition-dependent correction of the five parameters. The head holds
    the task-level parameters the inner loop adapts, one offset per VTF parameter (``theta``, 5
    numbers), giving ``p = theta + q``; their meta-learned initial values are the prior. Output:
    standardized ``log10 k``, ``(log10 k - y_mean) / y_std`` (the :class:`nanonb.learners.training.Scaler`
    convention). Parameterisation of ``p``:

    - ``ln A = lnA_ref + p0`` (ln mS/cm),
    - ``B = softplus(softplus^-1(B_ref) + 100 p1)`` (K, positive),
    - ``T0 = t0_max - softplus(softplus^-1(t0_max - T0_ref) + 20 p2)`` (K, below ``t0_max``),
    - ``alpha = alpha_ref + p3`` and ``beta = beta_ref + 0.5 p4``,

    so that a unit change of any ``p_j`` moves ``log10 k`` by a comparable amount (well-conditioned
    inner-loop steps). ``ln k = ln A + alpha ln c + beta c - B / max_soft(T - T0, 5 K)``.
    """

    n_params = len(PARAM_NAMES)

    def __init__(self, ref: tuple[float, ...], t0_max: float, y_mean: float, y_std: float):
        super().__init__()
        k = self.n_params
        self.theta = nn.Parameter(torch.zeros(k))
        lnA, B, T0, alpha, beta = (float(v) for v in ref)
        self.t0_max = float(t0_max)
        self.lnA_ref, self.alpha_ref, self.beta_ref = lnA, alpha, beta
        self.b_raw = _softplus_inv(max(B, 10.0))
        self.t0_raw = _softplus_inv(max(self.t0_max - T0, 1.0))
        self.y_mean, self.y_std = float(y_mean), float(y_std)

    def params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-point VTF parameters ``{lnA, B (K), T0 (K), alpha, beta}`` from head input ``z``."""
        p = self.theta + z[:, : self.n_params]
        return {
            "lnA": self.lnA_ref + p[:, 0],
            "B": F.softplus(self.b_raw + 100.0 * p[:, 1]),
            "T0": self.t0_max - F.softplus(self.t0_raw + 20.0 * p[:, 2]),
            "alpha": self.alpha_ref + p[:, 3],
            "beta": self.beta_ref + 0.5 * p[:, 4],
        }

    def log10k(self, z: torch.Tensor) -> torch.Tensor:
        """``log10 k`` (k in mS/cm) for head input ``z``."""
        q = self.params(z)
        T, c = z[:, self.n_params], z[:, self.n_params + 1]
        lnk = q["lnA"] + q["alpha"] * torch.log(soft_conc(c)) + q["beta"] * c - q["B"] / soft_gap(T - q["T0"])
        return lnk / LN10

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.log10k(z) - self.y_mean) / self.y_std


@register_model
class VTFNet(nn.Module):
    """``head(body(x))`` conductivity model with a VTF head (see :class:`VTFHead`).

    The body (an MLP on the inputs with the temperature columns masked, then a linear layer to 5
    outputs, initialised small) predicts how composition and concentration shift the VTF parameters;
    the head holds the task-level VTF parameters and evaluates the law at the point's temperature.

    Parameters
    ----------
    n_in:
        Number of input columns (model inputs, i.e. after :class:`nanonb.learners.training.Scaler`).
    t_index, t_scale, t_offset:
        Temperature column and its affine map to kelvin: ``T = x[:, t_index] * t_scale + t_offset``.
    c_index, c_scale, c_offset:
        Concentration column and its map to raw units (``c_index=None``: no concentration term).
    mask:
        Input columns hidden from the body (the temperature column always is; pass the ``1000/T``
        column too, so that temperature enters only through the VTF law, and optionally others).
    ref:
        Reference VTF parameters ``(lnA, B, T0, alpha, beta)`` of the initialisation.
    t0_max:
        Upper bound of ``T0`` (K).
    y_mean, y_std:
        Target standardization of the learner (``log10 k``), so the output matches its Scaler.
    hidden, activation:
        Body MLP widths and activation.

    Build the keyword arguments from a meta-train set with :func:`vtf_model_kwargs`.
    """

    def __init__(self, n_in: int, t_index: int = 0, t_scale: float = 1.0, t_offset: float = 0.0,
                 c_index: int | None = None, c_scale: float = 1.0, c_offset: float = 0.0,
                 mask: tuple[int, ...] | list[int] | None = None,
                 ref: tuple[float, ...] | list[float] = (6.0, 600.0, 160.0, 0.5, -0.5), t0_max: float = 180.0,
                 y_mean: float = 0.0, y_std: float = 1.0, hidden: tuple[int, ...] | list[int] = (64, 64),
                 activation: str = "SiLU", init_scale: float = 0.1):
        super().__init__()
        if not 0 <= t_index < n_in:
            raise ValueError(f"t_index={t_index} is not a column of an input with {n_in} features.")
        self.t_index, self.t_scale, self.t_offset = int(t_index), float(t_scale), float(t_offset)
        self.c_index = None if c_index is None else int(c_index)
        self.c_scale, self.c_offset = float(c_scale), float(c_offset)
        keep = torch.ones(n_in)
        for i in {self.t_index, *(mask or ())}:
            keep[int(i)] = 0.0
        self.register_buffer("keep", keep)
        layers: list[nn.Module] = []
        d = n_in
        for h in hidden:
            layers += [nn.Linear(d, h), getattr(nn, activation)()]
            d = h
        out = nn.Linear(d, VTFHead.n_params)
        with torch.no_grad():
            out.weight.mul_(init_scale)
            out.bias.zero_()
        self.body = nn.Sequential(*layers, out)
        self.head = VTFHead(tuple(ref), t0_max, y_mean, y_std)
        self.n_features = VTFHead.n_params + 2

    def _raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = x[:, self.t_index] * self.t_scale + self.t_offset
        if self.c_index is None:
            c = torch.ones_like(T)
        else:
            c = x[:, self.c_index] * self.c_scale + self.c_offset
        return T, c

    def forward(self, x: torch.Tensor, output: str = "target") -> torch.Tensor:
        """``"target"``: standardized ``log10 k`` ``(n,)``; ``"features"``: ``[q, T, c]`` ``(n, 7)``
        (the head's input); ``"log10k"``: ``log10 k``; ``"params"``: ``(n, 5)`` VTF parameters in
        :data:`PARAM_NAMES` order."""
        T, c = self._raw(x)
        q = self.body(x * self.keep)
        z = torch.cat([q, T[:, None], c[:, None]], dim=1)
        if output == "features":
            return z
        if output == "target":
            return self.head(z)
        if output == "log10k":
            return self.head.log10k(z)
        if output == "params":
            p = self.head.params(z)
            return torch.stack([p[n] for n in PARAM_NAMES], dim=1)
        raise ValueError(f"output must be 'target', 'features', 'log10k' or 'params', not {output!r}")


def vtf_model_kwargs(train: TaskSet, hidden: tuple[int, ...] = (64, 64), prior: VTFPrior | None = None,
                     activation: str = "SiLU", mask_prefixes: tuple[str, ...] = ()) -> dict:
    """Keyword arguments of :class:`VTFNet` for learners trained on ``train`` (JSON-serialisable).

    Reads ``train.feature_names`` (``temperature_K``, ``inv_temperature_1000_per_K``,
    ``salt_concentration``) and the loader's ``feature_mean``/``feature_std``, and composes them with
    the :class:`nanonb.learners.training.Scaler` that a learner fits on ``train`` (same statistics, so the model
    recovers T in K from its standardized input). The reference parameters are the empirical prior
    of the meta-train tasks (:func:`empirical_prior`). Columns whose names start with one of
    ``mask_prefixes`` (e.g. ``"anion_"``) are hidden from the body as well.
    """
    from .learners.training import Scaler

    if not train[0].is_tabular:
        raise ValueError("VTFNet needs tabular electrolyte features (e.g. calisol_taskset()).")
    cols = RawColumns.of(train)
    sc = Scaler.fit(train)
    xm, xs = np.asarray(sc.x_mean), np.asarray(sc.x_std)
    mask = [cols.t_index]
    try:
        mask.append(_column(train.feature_names, ("inv_temperature_1000_per_K",), "1000/T"))
    except ValueError:
        pass
    mask += [i for i, n in enumerate(train.feature_names) if any(n.startswith(p) for p in mask_prefixes)]
    prior = prior or empirical_prior(train)
    kw = {
        "n_in": int(train[0].inputs.shape[1]),
        "t_index": cols.t_index,
        "t_scale": float(xs[cols.t_index] * cols.t_std),
        "t_offset": float(xm[cols.t_index] * cols.t_std + cols.t_mean),
        "c_index": cols.c_index,
        "c_scale": float(xs[cols.c_index] * cols.c_std) if cols.c_index is not None else 1.0,
        "c_offset": float(xm[cols.c_index] * cols.c_std + cols.c_mean) if cols.c_index is not None else 0.0,
        "mask": mask,
        "ref": [float(v) for v in prior.mean],
        "t0_max": float(prior.t0_max),
        "y_mean": sc.y_mean,
        "y_std": sc.y_std,
        "hidden": list(hidden),
        "activation": activation,
    }
    return kw


def vtf_parameters(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-point VTF parameters of a (possibly ``higher``-patched) :class:`VTFNet` for model input ``x``."""
    with torch.no_grad():
        p = model(x, output="params").cpu().numpy().astype(np.float64)
    return {n: p[:, i] for i, n in enumerate(PARAM_NAMES)}
