"""Uncertainty triggers validation: rank candidates and flag the ones worth measuring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..tasks import Task
from .metrics import interval


def goal_sign(goal: str) -> float:
    """``+1`` for ``goal="max"`` (largest is best), ``-1`` for ``"min"`` (smallest is best).

    Multiplying targets by it turns any goal into maximization (the one place the goal's sign is
    applied, here and in :mod:`nanonb.active`).

    Example
    -------
    >>> goal_sign("min")
    -1.0
    """
    if goal not in ("max", "min"):
        raise ValueError(f"goal must be 'max' or 'min', not {goal!r}")
    return 1.0 if goal == "max" else -1.0


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

    Example
    -------
    >>> pred = bml.adapt(task.subset(measured))                                      # doctest: +SKIP
    >>> flag_for_validation(pred, task, measured_idx=measured, goal="min").head()    # doctest: +SKIP
    """
    sign = goal_sign(goal)
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
