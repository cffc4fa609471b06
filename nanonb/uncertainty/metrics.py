"""Scores of a predictive distribution ``N(mean, std^2)`` against measured values.

Every function takes ``y``, ``mean`` and ``std`` in the same (target) units: :func:`gaussian_nll`
(nats per point), :func:`coverage` of central intervals, :func:`calibration_curve` (observed vs
nominal coverage over a grid of levels) and :func:`sharpness` (mean std). :func:`interval` gives the
central interval itself. Pure numpy/scipy: no model, no task.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

#: Central-interval levels reported as ``coverage50``, ``coverage90``, ``coverage95``.
LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)
#: Grid of nominal levels for calibration curves.
CURVE_LEVELS: tuple[float, ...] = tuple(float(x) for x in np.round(np.arange(0.05, 1.0, 0.05), 2)) + (0.99,)


def _check(y, mean, std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (y, mean, std))
    if not (len(y) == len(mean) == len(std)):
        raise ValueError(f"y, mean and std must have the same length, got {len(y)}, {len(mean)}, {len(std)}")
    if len(y) == 0:
        raise ValueError("no points to score")
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError("std must be finite and > 0 everywhere (a predictive distribution needs a width)")
    return y, mean, std


def interval_z(level: float) -> float:
    """Half-width of the central ``level`` interval in standard deviations: ``Phi^-1((1 + level) / 2)``.

    Example
    -------
    >>> round(interval_z(0.95), 3)
    1.96
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2.0))


def gaussian_nll(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean Gaussian negative log-likelihood (nats per point).

    ``0.5 log(2 pi std^2) + (y - mean)^2 / (2 std^2)``, averaged over points; ``y``, ``mean``, ``std``
    in the same units (the value shifts by ``log(c)`` if the units are scaled by ``c``, so compare
    methods only within one data set). Lower is better.

    Example
    -------
    >>> round(gaussian_nll([0.0], [0.0], [1.0]), 4)   # 0.5 log(2 pi)
    0.9189
    """
    y, mean, std = _check(y, mean, std)
    return float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * ((y - mean) / std) ** 2))


def interval(mean: np.ndarray, std: np.ndarray, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of a Gaussian: ``mean -/+ z std`` with ``z = Phi^-1((1 + level) / 2)``.

    Bounds in the units of ``mean`` and ``std``.

    Example
    -------
    >>> lo, hi = interval([1.0], [0.5], level=0.9)
    >>> round(float(lo[0]), 3), round(float(hi[0]), 3)
    (0.178, 1.822)
    """
    z = interval_z(level)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return mean - z * std, mean + z * std


def coverage(y: np.ndarray, mean: np.ndarray, std: np.ndarray, level: float = 0.9) -> float:
    """Fraction of points inside their central ``level`` interval (nominal value: ``level``).

    Example
    -------
    >>> coverage([0.0, 3.0], [0.0, 0.0], [1.0, 1.0], level=0.9)   # |3| > 1.645
    0.5
    """
    y, mean, std = _check(y, mean, std)
    return float(np.mean(np.abs(y - mean) <= interval_z(level) * std))


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                      levels: Sequence[float] = CURVE_LEVELS) -> pd.DataFrame:
    """Observed vs expected coverage of central intervals over a grid of ``levels``.

    Returns a frame with columns ``level`` (expected) and ``observed``. A calibrated model lies on
    the diagonal; below it = over-confident (intervals too narrow), above = under-confident.

    Example
    -------
    >>> calibration_curve([0.0, 2.0], [0.0, 0.0], [1.0, 1.0], levels=(0.5, 0.99))["observed"].tolist()
    [0.5, 1.0]
    """
    y, mean, std = _check(y, mean, std)
    a = np.abs(y - mean) / std
    return pd.DataFrame({"level": list(levels), "observed": [float(np.mean(a <= interval_z(p))) for p in levels]})


def sharpness(std: np.ndarray) -> float:
    """Mean predictive standard deviation (target units); smaller is sharper, at equal calibration.

    Example
    -------
    >>> sharpness([0.1, 0.3])
    0.2
    """
    return float(np.mean(np.asarray(std, dtype=np.float64)))

