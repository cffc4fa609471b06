"""Pareto fronts of several objectives, with uncertainty: which candidates are on the front only because of it.

Objectives are maximized (multiply a column by -1 to minimize it). A point *dominates* another when it
is at least as good on every objective and strictly better on one; the *front* is the set of points no
other point dominates (:func:`pareto_front`).

With uncertainty (:func:`pareto_with_uncertainty`), each candidate has a predicted mean and optimistic /
pessimistic bounds (``mean ± z * std``). A candidate on the front of the means is ``"on the front"``, and
``"confident"`` when even its pessimistic point is not dominated by any other candidate's optimistic
point (no other candidate could plausibly beat it). A candidate off the mean front whose optimistic point
no other candidate's mean dominates is on the front **only because of its uncertainty**: flagged
``"validate experimentally"`` (if it turned out at its optimistic bound, it would join the front).

Example
-------
>>> pts = np.array([[1.0, 5.0], [2.0, 4.0], [1.5, 3.0], [3.0, 1.0]])   # (conductivity, oxidation limit)
>>> pareto_front(pts).tolist()
[True, True, False, True]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = ["dominates", "pareto_front", "pareto_with_uncertainty"]


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether point ``a`` dominates point ``b`` (every objective maximized).

    Example
    -------
    >>> dominates(np.array([2.0, 3.0]), np.array([2.0, 1.0])), dominates(np.array([2.0, 1.0]), np.array([1.0, 3.0]))
    (True, False)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(a >= b) and np.any(a > b))


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` ``(n, m)`` (every column maximized).

    Duplicated points are all on the front when one of them is. O(n^2 m), fine for thousands of candidates.

    Example
    -------
    >>> pareto_front(np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.5]])).tolist()
    [True, True, False]
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"points must be 2-D (candidates x objectives), got shape {p.shape}")
    ge = (p[:, None, :] >= p[None, :, :]).all(-1)   # ge[i, j]: i at least as good as j everywhere
    gt = (p[:, None, :] > p[None, :, :]).any(-1)
    dominated = (ge & gt).any(0)
    return ~dominated


def _dominated_by(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``out[i]``: some row ``j != i`` of ``others`` dominates row ``i`` of ``points``."""
    ge = (others[:, None, :] >= points[None, :, :]).all(-1)   # ge[j, i]
    gt = (others[:, None, :] > points[None, :, :]).any(-1)
    dom = ge & gt
    np.fill_diagonal(dom, False)
    return dom.any(0)


def pareto_with_uncertainty(mean: np.ndarray, std: np.ndarray, level: float = 0.9,
                            names: list[str] | None = None) -> pd.DataFrame:
    """Fronts of means and of bounds, and the flag of each candidate (see the module docstring).

    Parameters
    ----------
    mean, std:
        ``(n, m)`` predicted means and standard deviations of the ``m`` objectives (all maximized), in
        the objectives' units (e.g. log10(mS/cm) and V vs Li/Li+).
    level:
        Central interval of the bounds (0.9: ``z = 1.645``).
    names:
        Objective names for the output columns (default ``obj0``, ``obj1``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per candidate: ``<name>_mean``, ``<name>_std``, ``on_mean_front``, ``possibly_on_front``
        (optimistic point not dominated by another mean), ``confident`` (pessimistic point not dominated
        by another optimistic point) and ``flag`` (``"confident"``, ``"on the front"``,
        ``"validate experimentally"`` or ``""``).

    Example
    -------
    >>> mean = np.array([[1.0, 5.0], [2.0, 4.0], [1.9, 3.9], [0.5, 0.5]])
    >>> std = np.array([[0.01, 0.01], [0.01, 0.01], [0.5, 0.5], [0.01, 0.01]])
    >>> pareto_with_uncertainty(mean, std)["flag"].tolist()
    ['confident', 'on the front', 'validate experimentally', '']
    """
    mean, std = np.atleast_2d(np.asarray(mean, dtype=np.float64)), np.atleast_2d(np.asarray(std, dtype=np.float64))
    if mean.shape != std.shape:
        raise ValueError(f"mean {mean.shape} and std {std.shape} must have the same shape")
    if (std < 0).any() or not np.isfinite(std).all():
        raise ValueError("std must be finite and non-negative")
    z = float(norm.ppf(0.5 + level / 2))
    names = list(names) if names is not None else [f"obj{j}" for j in range(mean.shape[1])]
    on_mean = pareto_front(mean)
    possible = ~_dominated_by(mean + z * std, mean)
    confident = on_mean & ~_dominated_by(mean - z * std, mean + z * std)
    flag = np.where(confident, "confident", np.where(on_mean, "on the front",
                    np.where(possible, "validate experimentally", "")))
    out = pd.DataFrame({f"{n}_{what}": arr[:, j] for j, n in enumerate(names)
                        for what, arr in (("mean", mean), ("std", std))})
    out["on_mean_front"], out["possibly_on_front"], out["confident"] = on_mean, possible, confident
    out["flag"] = flag
    return out
