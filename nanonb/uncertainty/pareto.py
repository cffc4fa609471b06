"""Pareto fronts of several objectives, with uncertainty: which candidates are on the front only because of it.

Objectives are maximized (multiply a column by -1 to minimize it). A point *dominates* another when it
is at least as good on every objective and strictly better on one; the *front* is the set of points no
other point dominates (:func:`pareto_front`).

With uncertainty (:func:`pareto_with_uncertainty`), each candidate's objectives are Gaussian (predicted mean
and standard deviation, independent between candidates and objectives: an approximation when candidates
share ingredients). :func:`front_probability` estimates by Monte Carlo the probability ``p_front`` that a
candidate is on the front of the *true* values. Flags:

- ``"confident"``: on the front of the means, and ``p_front >= p_confident``;
- ``"on the front"``: on the front of the means, less sure;
- ``"validate experimentally"``: **not** on the front of the means, yet ``p_front >= p_validate``: it is on the
  front only because of its uncertainty, and a measurement would settle it;
- ``""``: neither.

Example
-------
>>> pts = np.array([[1.0, 5.0], [2.0, 4.0], [1.5, 3.0], [3.0, 1.0]])   # (conductivity, oxidation limit)
>>> pareto_front(pts).tolist()
[True, True, False, True]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["dominates", "front_probability", "pareto_front", "pareto_with_uncertainty"]


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


def front_probability(mean: np.ndarray, std: np.ndarray, n_samples: int = 200, seed: int = 0) -> np.ndarray:
    """Monte Carlo probability that each candidate is on the Pareto front (independent Gaussian objectives).

    Example
    -------
    >>> p = front_probability(np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([[0.01, 0.01], [0.01, 0.01]]))
    >>> p.tolist()
    [1.0, 0.0]
    """
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(mean))
    for _ in range(int(n_samples)):
        hits += pareto_front(rng.normal(mean, std))
    return hits / int(n_samples)


def pareto_with_uncertainty(mean: np.ndarray, std: np.ndarray, p_validate: float = 0.1, p_confident: float = 0.9,
                            names: list[str] | None = None, n_samples: int = 200, seed: int = 0) -> pd.DataFrame:
    """The front of the means, each candidate's probability of being on the front, and its flag.

    Parameters
    ----------
    mean, std:
        ``(n, m)`` predicted means and standard deviations of the ``m`` objectives (all maximized), in
        the objectives' units (e.g. log10(mS/cm) and V vs Li/Li+).
    p_validate, p_confident:
        Thresholds on ``p_front`` for the flags (see the module docstring).
    names:
        Objective names for the output columns (default ``obj0``, ``obj1``, ...).
    n_samples, seed:
        Monte Carlo draws of :func:`front_probability` and their seed.

    Returns
    -------
    pandas.DataFrame
        One row per candidate: ``<name>_mean``, ``<name>_std``, ``on_mean_front``, ``p_front`` and ``flag``
        (``"confident"``, ``"on the front"``, ``"validate experimentally"`` or ``""``).

    Example
    -------
    >>> mean = np.array([[1.0, 5.0], [2.0, 4.0], [1.99, 3.99], [0.5, 0.5]])
    >>> std = np.array([[0.01, 0.01], [0.01, 0.01], [0.5, 0.5], [0.01, 0.01]])
    >>> pareto_with_uncertainty(mean, std, n_samples=400)["flag"].tolist()
    ['confident', 'on the front', 'validate experimentally', '']
    """
    mean, std = np.atleast_2d(np.asarray(mean, dtype=np.float64)), np.atleast_2d(np.asarray(std, dtype=np.float64))
    if mean.shape != std.shape:
        raise ValueError(f"mean {mean.shape} and std {std.shape} must have the same shape")
    if (std < 0).any() or not np.isfinite(std).all():
        raise ValueError("std must be finite and non-negative")
    names = list(names) if names is not None else [f"obj{j}" for j in range(mean.shape[1])]
    on_mean = pareto_front(mean)
    p = front_probability(mean, std, n_samples, seed)
    flag = np.where(on_mean & (p >= p_confident), "confident", np.where(on_mean, "on the front",
                    np.where(p >= p_validate, "validate experimentally", "")))
    out = pd.DataFrame({f"{n}_{what}": arr[:, j] for j, n in enumerate(names)
                        for what, arr in (("mean", mean), ("std", std))})
    out["on_mean_front"], out["p_front"], out["flag"] = on_mean, p, flag
    return out
