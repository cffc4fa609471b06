"""Variance calibration: fit scale factors of a predictive variance by NLL on held-out tasks.

A meta-learned predictive variance is often over- or under-confident on unseen tasks. Both
uncertainty learners correct it with two positive factors fitted by Gaussian NLL on calibration
episodes: :func:`fit_variance_mix` (``var = a v1 + b v2``, used by the Bayesian last layer with
``v1`` = function variance, ``v2`` = noise) and :func:`fit_noise_calibration` (``scale^2 var + noise^2``,
used by ensembles). :func:`calibration_tasks` picks the meta-train tasks to hold out for it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..tasks import Task, TaskSet


def fit_variance_mix(r2: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> tuple[float, float]:
    """``(a, b) > 0`` minimizing the Gaussian NLL of residuals ``r`` (``r2 = r^2``) under variance ``a v1 + b v2``.

    ``r2``, ``v1`` and ``v2`` in the same squared units (``a``, ``b`` are unitless); Nelder-Mead on
    ``log a, log b``. A component that is zero everywhere keeps its factor at 1.

    Example
    -------
    >>> r2 = np.random.default_rng(0).normal(0.0, 2.0, 20000) ** 2     # true variance 4
    >>> a, b = fit_variance_mix(r2, np.full(20000, 1.0), np.zeros(20000))
    >>> round(a, 1), b
    (4.0, 1.0)
    """
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


def fit_noise_calibration(y: np.ndarray, mean: np.ndarray, var_ep: np.ndarray) -> tuple[float, float]:
    """``(scale, noise)`` minimizing the Gaussian NLL of ``y`` under ``N(mean, scale^2 var_ep + noise^2)``.

    ``noise`` is in the units of ``y``; ``scale`` is unitless (it multiplies the std of ``var_ep``).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> var_ep = rng.uniform(0.5, 2.0, 20000)
    >>> y = rng.normal(0.0, np.sqrt(4.0 * var_ep + 0.25))
    >>> [round(v, 1) for v in fit_noise_calibration(y, np.zeros(20000), var_ep)]
    [2.0, 0.5]
    """
    a, b = fit_variance_mix((y - mean) ** 2, var_ep, np.ones_like(var_ep))
    return float(np.sqrt(a)), float(np.sqrt(b))


def calibration_tasks(train: TaskSet, fraction: float = 0.2, split: str = "random", seed: int = 0,
                      group_index: int | None = None) -> list[str]:
    """Names of meta-train tasks to hold out for calibration (see :class:`~nanonb.learners.alpaca.BayesConfig`).

    ``"random"``: ``round(fraction * n)`` tasks at random (at least 1). ``"group"``: whole groups
    (every task carrying a group label; with ``group_index`` only the label at that position, e.g.
    0 = the salt of an electrolyte) in random order until at least ``fraction`` of the tasks are
    held out; a group that would push the held-out share above one half is skipped.

    Example
    -------
    >>> tasks = [Task(f"t{i}", np.zeros((3, 1)), np.zeros(3), groups=(g,)) for i, g in enumerate("aabbcc")]
    >>> calibration_tasks(TaskSet(tasks), fraction=0.3, split="group", seed=0)   # one whole group
    ['t4', 't5']
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
