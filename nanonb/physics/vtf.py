"""Physics-informed electrolyte conductivity: the Vogel–Tammann–Fulcher (VTF) law.

The ionic conductivity of a liquid electrolyte follows, to a good approximation,

.. math::

    \\ln k = \\ln A + \\alpha \\ln c + \\beta c - \\frac{B}{T - T_0}

with ``k`` in mS/cm, ``T`` in K, the pseudo-activation energy ``B`` in K, the ideal glass
transition temperature ``T0`` in K (``T0 < T``), and a concentration term (``c`` in mol/kg or mol/l
as given by the data set): ``alpha ln c`` is the dilute limit (``k`` proportional to the number of
carriers, ``alpha`` about 1) and ``beta c`` (``beta < 0``) the loss of mobility at high
concentration. Models here predict ``log10 k`` (``= ln k / ln 10``), the CALiSol-23 target.

This module holds the law (:func:`vtf_log10k`) and the classical per-task fit used as a baseline:
:func:`fit_vtf` and :class:`VTFFit`, a MAP (Tikhonov-regularised) least-squares fit of the five
parameters on the support set. With five or ten points the five parameters are not identifiable from
the data alone (``B`` and ``T0`` trade off, and ``alpha``/``beta`` are undetermined when the support
has one concentration), so each parameter has a Gaussian prior (:class:`VTFPrior`) whose mean and
width come from VTF fits of the meta-train tasks (:func:`empirical_prior`: median and a robust spread
over tasks). ``T0`` is bounded to ``[0, t0_max]``. :class:`RawColumns` recovers temperature (K) and
concentration from a task set's standardized inputs. The network with a VTF head,
:class:`nanonb.physics.vtfnet.VTFNet`, lives in :mod:`nanonb.physics.vtfnet`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import least_squares
from torch.nn import functional as F

from nanonb.tasks import Task, TaskSet
from nanonb.tasks.roles import is_log10_mS_per_cm

LN10 = math.log(10.0)
#: Names of the VTF parameters, in the order of :class:`VTFHead` outputs and :func:`fit_vtf`.
PARAM_NAMES = ("lnA", "B", "T0", "alpha", "beta")
#: Smallest allowed ``T - T0`` (K); the denominator is smoothly clamped above it.
MIN_GAP_K = 5.0
#: Concentrations are smoothly clamped above about this (same unit as ``c``) before ``ln c``.
C_FLOOR = 0.02
#: Temperatures (K) a VTF model accepts; outside, the column is not kelvin (°C, standardized, ...).
T_RANGE_K = (150.0, 500.0)


def _softplus_inv(y: float) -> float:
    return float(y + math.log(-math.expm1(-y))) if y < 30 else float(y)


def soft_gap(gap: torch.Tensor | np.ndarray, floor: float = MIN_GAP_K):
    """Smooth ``max(gap, floor)`` (K): ``floor + softplus(gap - floor)`` (close to ``gap`` above ~2 floor).

    Example
    -------
    >>> soft_gap(100.0).round(3).item(), soft_gap(-50.0).round(3).item()  # K
    (100.0, 5.0)
    """
    if isinstance(gap, torch.Tensor):
        return floor + F.softplus(gap - floor)
    g = np.asarray(gap, dtype=np.float64) - floor
    return floor + np.logaddexp(0.0, g)


def soft_conc(c: torch.Tensor | np.ndarray, floor: float = C_FLOOR):
    """Smooth ``max(c, floor)`` so that ``ln c`` is defined for ``c <= 0`` (digitisation noise).

    Example
    -------
    >>> round(float(soft_conc(1.0)), 6), float(soft_conc(-1.0)) > 0
    (1.000001, True)
    """
    if isinstance(c, torch.Tensor):
        return floor * F.softplus(c / floor) + 1e-6
    return floor * np.logaddexp(0.0, np.asarray(c, dtype=np.float64) / floor) + 1e-6


def vtf_log10k(params: dict | np.ndarray, T: np.ndarray, c: np.ndarray | None = None) -> np.ndarray:
    """Evaluate the VTF law: ``log10 k`` for temperature ``T`` (K) and concentration ``c``.

    ``params`` is a dict with keys :data:`PARAM_NAMES` (``alpha``/``beta`` optional, default 0) or
    an array in that order.

    Example
    -------
    >>> p = {"lnA": 6.0, "B": 600.0, "T0": 160.0}
    >>> vtf_log10k(p, [298.15]).round(3).tolist()  # log10(k / mS/cm) at 25 °C
    [0.72]
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

    Example
    -------
    >>> VTFPrior().as_dict()["t0_max"]  # K
    180.0
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

    Example
    -------
    >>> import numpy as np
    >>> T = np.linspace(250.0, 350.0, 30)
    >>> p = fit_vtf(T, vtf_log10k({"lnA": 6.0, "B": 600.0, "T0": 160.0}, T), weight=0.0)
    >>> round(p["B"]), round(p["T0"])  # K
    (600, 160)
    """
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

    Example
    -------
    >>> cols = RawColumns.of(calisol_train)        # doctest: +SKIP
    >>> cols.temperature(calisol_train[0])[:3]     # K  # doctest: +SKIP
    array([253.15, 263.15, 273.15])
    """

    t_index: int
    t_mean: float
    t_std: float
    c_index: int | None
    c_mean: float
    c_std: float

    @classmethod
    def of(cls, ts: TaskSet) -> RawColumns:
        """The columns of ``ts``: the roles it was built with (``ts.roles`` of ``TaskSet.from_frame(...,
        roles=...)``), else the names ``temperature_K`` / ``T`` and ``salt_concentration`` /
        ``concentration``; checks that the temperatures are kelvin (150 to 500 K)."""
        names = ts.feature_names
        roles = getattr(ts, "roles", None) or {}
        t_names = (roles["temperature"],) if "temperature" in roles else ("temperature_K", "temperature_k", "T")
        ti = _column(names, t_names, "temperature (K)")
        c_names = (roles["concentration"],) if "concentration" in roles else ("salt_concentration", "c",
                                                                               "concentration")
        try:
            ci: int | None = _column(names, c_names, "concentration")
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
        if t_raw.min() < T_RANGE_K[0] or t_raw.max() > T_RANGE_K[1]:
            scaled = mean is None and abs(float(np.mean(t_raw))) < 5.0 and 0.2 < float(np.std(t_raw)) < 5.0
            raise ValueError(
                f"The temperature column {names[ti]!r} holds {t_raw.min():.4g} to {t_raw.max():.4g}, not kelvin "
                f"(VTF models expect {T_RANGE_K[0]:g} to {T_RANGE_K[1]:g} K). "
                + ("It looks standardized: attach the statistics that undo it as ts.feature_mean / "
                   "ts.feature_std (raw = x * std + mean), as the nanonb loaders do. " if scaled else "")
                + f"If it is in °C, build the set with TaskSet.from_frame(..., roles={{'temperature': "
                f"{names[ti]!r}}}, units={{'temperature': 'degC'}}), which converts it to K.")
        return cls(ti, tm, tsd, ci, cm, csd)

    def _x(self, task: Task | np.ndarray) -> np.ndarray:
        x = task.inputs if isinstance(task, Task) else np.asarray(task, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] <= max(self.t_index, self.c_index or 0):
            raise ValueError(f"Expected a Task or an (n, n_features) array of the task set's inputs, got shape "
                             f"{x.shape}.")
        return x

    def temperature(self, task: Task | np.ndarray) -> np.ndarray:
        """Temperature in K of every point of ``task`` (a Task, or an array of its inputs)."""
        return self._x(task)[:, self.t_index].astype(np.float64) * self.t_std + self.t_mean

    def concentration(self, task: Task | np.ndarray) -> np.ndarray | None:
        """Salt concentration (in the data set's units) of every point, or None."""
        if self.c_index is None:
            return None
        return self._x(task)[:, self.c_index].astype(np.float64) * self.c_std + self.c_mean


def check_target_unit(ts: TaskSet) -> None:
    """Refuse targets that are not log10(mS/cm), the unit of every VTF prior here (``lnA`` in ln mS/cm).

    Reads ``Task.target_unit``: an empty unit passes with a warning; another unit raises with the fix
    (declare the unit in ``TaskSet.from_frame(..., units={"target": ...})``, which converts conductivities).

    Example
    -------
    >>> t = Task("a", np.array([[300.0]]), [-2.0], target_unit="log10(S/cm)")
    >>> check_target_unit(TaskSet([t]))                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Task 'a' has targets in 'log10(S/cm)', but VTF models predict log10(k / mS/cm). Build the tasks ...
    """
    units = {t.target_unit for t in ts}
    bad = [t for t in ts if t.target_unit and not is_log10_mS_per_cm(t.target_unit)]
    if bad:
        raise ValueError(
            f"Task {bad[0].name!r} has targets in {bad[0].target_unit!r}, but VTF models predict log10(k / mS/cm). "
            f"Build the tasks with TaskSet.from_frame(..., units={{'target': {bad[0].target_unit!r}}}), which "
            "converts conductivities to log10(mS/cm).")
    if "" in units:
        warnings.warn("The tasks declare no target unit; VTF models assume log10(k / mS/cm) (declare it with "
                      "TaskSet.from_frame(..., units={'target': ...}) or Task(target_unit=...)).", UserWarning,
                      stacklevel=3)


def empirical_prior(train: TaskSet, min_points: int = 15, t0_margin: float = 20.0,
                    spread_floor: tuple[float, ...] = (0.3, 50.0, 10.0, 0.2, 0.1)) -> VTFPrior:
    """VTF prior from the meta-train tasks (empirical Bayes).

    Every task with at least ``min_points`` points and a temperature range of at least 30 K is fitted
    with a weak generic prior; the prior mean is the median of the per-task parameters and the std
    1.4826 × their median absolute deviation (at least ``spread_floor``). ``t0_max`` is the coldest
    meta-train temperature minus ``t0_margin`` K. Uses meta-train data only.

    Example
    -------
    >>> prior = empirical_prior(calisol_train)    # doctest: +SKIP
    >>> dict(zip(PARAM_NAMES, prior.mean))        # ln(mS/cm), K, K, 1, per unit c  # doctest: +SKIP
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

    def predict(self, task: Task | np.ndarray) -> np.ndarray:
        """``log10(k / mS/cm)`` for a Task or an ``(n, n_features)`` array of inputs (same columns as the tasks)."""
        return vtf_log10k(self.params, self.cols.temperature(task), self.cols.concentration(task))


class VTFFit:
    """Per-task VTF fit on the support set alone (baseline), with an empirical-Bayes prior.

    ``fit(meta_train)`` only estimates the prior (:func:`empirical_prior`) and finds the temperature
    and concentration columns; ``adapt(support)`` runs :func:`fit_vtf` on the support
    (``noise`` = 0.05 log10 units sets how strongly the prior pulls).

    Example
    -------
    >>> base = VTFFit().fit(calisol_train)                      # doctest: +SKIP
    >>> base.adapt(support).predict(query)                      # log10(k / mS/cm)  # doctest: +SKIP
    """

    kind = "baseline"
    name = "vtf-fit"

    def __init__(self, noise: float = 0.05, prior: VTFPrior | None = None):
        self.noise = noise
        self.prior = prior
        self.cols: RawColumns | None = None

    def fit(self, train: TaskSet, **_) -> VTFFit:
        check_target_unit(train)
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
