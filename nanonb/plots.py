"""Matplotlib figures used by the CLI, the benchmarks and the notebooks.

Every function draws into a given ``ax`` (or makes one) and returns the figure or axes, so the
same code serves scripts (``fig.savefig``) and notebooks (inline, ipympl or widgets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from .evaluation import mae, spearman, top_recall

METHOD_COLORS = {
    "maml": "#1f77b4", "fomaml": "#17becf", "anil": "#2ca02c", "metasgd": "#9467bd",
    "scratch": "#d62728", "pooled": "#7f7f7f", "pooled+finetune": "#ff7f0e", "gp": "#8c564b",
    "bml": "#c51b7d", "dkt": "#bcbd22", "support mean": "#bbbbbb", "in-task ceiling": "#000000",
}


def _ax(ax=None, figsize=(5, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax


def color(method: str) -> str:
    return METHOD_COLORS.get(method, "#333333")


def parity(y_true: np.ndarray, y_pred: np.ndarray, ax=None, label: str | None = None, unit: str = "",
           yerr: np.ndarray | None = None, c: str | None = None, **kw):
    """Predicted vs true with the y = x line; ``yerr`` draws ±1 s.d. error bars.

    ``y_true``, ``y_pred`` (and ``yerr``) are in the target unit, named by ``unit`` in the axis labels
    (e.g. ``"eV/atom"``, ``"meV/atom"``, ``"log10 mS/cm"``). Returns the axes.

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> ax = parity([-0.10, -0.05, 0.02], [-0.09, -0.06, 0.03], ax=ax, unit="eV/atom",
    ...             yerr=[0.01, 0.02, 0.01], label="anil")
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('true (eV/atom)', 'predicted (eV/atom)')
    """
    ax = _ax(ax)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if yerr is not None:
        ax.errorbar(y_true, y_pred, yerr=yerr, fmt="none", ecolor=c or "0.6", alpha=0.4, lw=0.8)
    ax.scatter(y_true, y_pred, s=kw.pop("s", 14), alpha=kw.pop("alpha", 0.7), label=label, c=c, **kw)
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    pad = 0.05 * (hi - lo + 1e-12)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    u = f" ({unit})" if unit else ""
    ax.set_xlabel(f"true{u}")
    ax.set_ylabel(f"predicted{u}")
    return ax


def error_vs_shots(summary: pd.DataFrame, ax=None, metric_label: str = "MAE"):
    """Mean ± s.e.m. over tasks against the number of shots, one line per method.

    ``summary`` is :func:`nanonb.evaluation.summarize` output (columns ``method``, ``kind``, ``k``,
    ``mean``, ``sem``; baselines drawn dashed); ``metric_label`` names the metric and its unit, e.g.
    ``"MAE (meV/atom)"`` after ``summarize(df, "mae", scale=1000)``.

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> summary = pd.DataFrame({"method": ["anil", "anil", "pooled", "pooled"],
    ...                         "kind": ["meta", "meta", "baseline", "baseline"], "k": [1, 5, 1, 5],
    ...                         "mean": [30.0, 18.0, 35.0, 33.0], "sem": [3.0, 2.0, 4.0, 4.0]})   # meV/atom
    >>> ax = error_vs_shots(summary, ax=ax, metric_label="MAE (meV/atom)")
    >>> ax.get_xlabel(), [t.get_text() for t in ax.get_legend().get_texts()]
    ('shots K (support points)', ['anil', 'pooled'])
    """
    ax = _ax(ax)
    for method, g in summary.groupby("method", sort=False):
        g = g.sort_values("k")
        dashed = g["kind"].iloc[0] == "baseline"
        ls = ":" if method == "in-task ceiling" else "--" if dashed else "-"  # the ceiling: a reference line
        ax.errorbar(g["k"], g["mean"], yerr=g["sem"], marker="o", ms=4, capsize=3, label=method,
                    color=color(method), ls=ls)
    ax.set_xlabel("shots K (support points)")
    ax.set_ylabel(metric_label)
    ax.set_xticks(sorted(summary["k"].unique()))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: covers no curve
    ax.grid(alpha=0.3)
    return ax


def loss_curves(histories: Mapping[str, Mapping[str, Sequence]], ax=None, smooth: int = 10):
    """Meta-training loss (smoothed) and validation loss for several learners.

    ``histories`` maps a learner name to its ``history`` (``iteration``, ``train_loss`` and optionally
    ``val_iteration``, ``val_loss``): query MSE on standardized targets, so unitless and comparable
    across data sets. ``smooth`` is the moving-average window (iterations) of the training loss.

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> history = {"iteration": list(range(1, 21)), "train_loss": list(np.linspace(1.0, 0.2, 20)),
    ...            "val_iteration": [10, 20], "val_loss": [0.6, 0.3]}
    >>> ax = loss_curves({"anil": history}, ax=ax, smooth=5)
    >>> len(ax.lines), ax.get_yscale()                # train (smoothed) and val lines
    (2, 'log')
    """
    ax = _ax(ax)
    for name, h in histories.items():
        y = np.asarray(h["train_loss"], dtype=float)
        if len(y) >= smooth > 1:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = np.asarray(h["iteration"])[smooth - 1:]
        else:
            x = np.asarray(h["iteration"])
        ax.plot(x, y, color=color(name), alpha=0.6, lw=1, label=f"{name} train")
        if h.get("val_loss"):
            ax.plot(h["val_iteration"], h["val_loss"], "o-", color=color(name), ms=3, label=f"{name} val")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("query MSE (standardized)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def quickstart_figure(summary: pd.DataFrame, parity_data: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      unit: str = "meV/atom", title: str = ""):
    """Two panels: parity plot of a few methods on held-out tasks, and error vs shots."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, (yt, yp) in parity_data.items():
        parity(yt, yp, ax=a1, label=name, unit=unit, c=color(name), s=8)
    a1.legend(fontsize=8)
    a1.set_title("held-out tasks, one episode each")
    error_vs_shots(summary, ax=a2, metric_label=f"MAE ({unit})")
    a2.set_title("mean ± s.e.m. over held-out tasks")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- uncertainty and active learning
UNCERTAINTY_COLORS = {
    "bml": "#1f77b4", "ensemble": "#2ca02c", "gp": "#8c564b", "pooled+gp": "#ff7f0e",
    "random": "#7f7f7f", "gp_bo": "#8c564b",
}
_ACQ_STYLES = {"ei": "-", "ucb": "--", "greedy": ":", "thompson": "-.", "maxvar": (0, (1, 3))}


def _ucolor(name: str) -> str:
    base = name.split("-")[0].split(" ")[0]
    return UNCERTAINTY_COLORS.get(name, UNCERTAINTY_COLORS.get(base, color(name)))


def calibration(curves, ax=None, k: int | None = None, methods: Sequence[str] | None = None,
                title: str | None = None):
    """Calibration curve: observed vs expected coverage of central predictive intervals.

    ``curves`` is the frame of :func:`nanonb.uncertainty.calibration_summary` (columns ``method``,
    ``k``, ``level``, ``observed``; one line per method and shot count, or only shot count ``k``)
    or a mapping ``name -> frame with level, observed`` (e.g. from
    :func:`nanonb.uncertainty.calibration_curve`). Points below the diagonal: intervals too narrow
    (over-confident); above: too wide. Both axes are coverage fractions in [0, 1].

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> curves = pd.DataFrame({"method": "bml", "k": 5, "level": [0.5, 0.8, 0.9],
    ...                        "observed": [0.45, 0.74, 0.86]})
    >>> ax = calibration(curves, ax=ax, title="K = 5")
    >>> ax.get_xlabel(), len(ax.lines)                # the curve and the ideal diagonal
    ('expected coverage (nominal level)', 2)
    """
    ax = _ax(ax, figsize=(4.5, 4.5))
    if isinstance(curves, Mapping):
        items = [(name, None, c) for name, c in curves.items()]
    else:
        df = curves if k is None else curves[curves["k"] == k]
        if df.empty:
            raise ValueError(f"no calibration curve for k={k}; available k: {sorted(curves['k'].unique())}")
        ks = sorted(df["k"].unique())
        items = [(m, kk, g) for (m, kk), g in df.groupby(["method", "k"], sort=False)]
        if len(ks) == 1:
            items = [(m, None, g) for m, _, g in items]
    styles = ["-", "--", ":", "-."]
    kpos = {kk: i for i, kk in enumerate(sorted({kk for _, kk, _ in items if kk is not None}))}
    for name, kk, g in items:
        if methods is not None and name not in methods:
            continue
        g = g.sort_values("level")
        label = name if kk is None else f"{name} (K={kk})"
        ax.plot(g["level"], g["observed"], marker="o", ms=3, color=_ucolor(name), label=label,
                ls=styles[kpos.get(kk, 0) % len(styles)])
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="ideal")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("expected coverage (nominal level)")
    ax.set_ylabel("observed coverage")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return ax


def campaign_curves(curves: pd.DataFrame, ax=None, strategies: Sequence[str] | None = None, band: bool = True,
                    ylabel: str = "best so far (0 = worst, 1 = best candidate)"):
    """Best-so-far against the number of experiments: median over tasks and seeds, IQR band.

    ``curves`` is :func:`nanonb.active.best_so_far_curves` output (columns ``strategy``,
    ``experiment``, ``best``): ``best`` is the best value measured so far, by default normalised per
    campaign from 0 (the pool's worst candidate) to 1 (its best), so unitless; else in target units
    (then set ``ylabel``).

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> curves = pd.DataFrame({"strategy": ["random"] * 6 + ["bml-ei"] * 6, "experiment": [1, 2, 3] * 4,
    ...                        "best": [0.2, 0.4, 0.5, 0.3, 0.5, 0.6, 0.3, 0.7, 0.9, 0.4, 0.8, 1.0]})
    >>> ax = campaign_curves(curves, ax=ax)           # median over tasks/seeds, IQR band
    >>> [line.get_label() for line in ax.lines]
    ['random', 'bml-ei']
    """
    ax = _ax(ax, figsize=(5.5, 4))
    for name, g in curves.groupby("strategy", sort=False):
        if strategies is not None and name not in strategies:
            continue
        q = g.groupby("experiment")["best"].quantile([0.25, 0.5, 0.75]).unstack()
        acq = name.split("-", 1)[1] if "-" in name else ""
        ls = _ACQ_STYLES.get(acq, "-") if name not in ("random", "gp_bo") else ("--" if name == "random" else "-")
        ax.plot(q.index, q[0.5], color=_ucolor(name), ls=ls, lw=1.6, label=name)
        if band:
            ax.fill_between(q.index, q[0.25], q[0.75], color=_ucolor(name), alpha=0.08)
    ax.set_xlabel("experiments (initial random points included)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return ax


def predictive_intervals(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, level: float = 0.9, ax=None,
                         unit: str = "", label: str | None = None):
    """Parity plot with central ``level`` intervals; points outside their interval are drawn in red.

    ``y_true``, ``mean`` and ``std`` (one predictive s.d. per point) are in the target unit, named by
    ``unit`` (e.g. ``"eV/atom"``); Gaussian intervals ``mean ± z * std``. The legend gives the share of
    points inside.

    Example
    -------
    >>> from matplotlib.backends.backend_agg import FigureCanvasAgg
    >>> from matplotlib.figure import Figure
    >>> ax = FigureCanvasAgg(Figure()).figure.subplots()       # headless Agg figure, no pyplot state
    >>> ax = predictive_intervals([0.0, 0.1, 0.2, 0.5], mean=[0.02, 0.1, 0.15, 0.2],
    ...                           std=[0.05, 0.05, 0.05, 0.05], level=0.9, ax=ax, unit="eV/atom")
    >>> [t.get_text() for t in ax.get_legend().get_texts()]      # 3 of 4 inside their 90 % interval
    ['inside 90% interval (75%)', 'outside']
    """
    ax = _ax(ax)
    y_true, mean, std = (np.asarray(a, dtype=float) for a in (y_true, mean, std))
    half = norm.ppf(0.5 + level / 2) * std
    inside = np.abs(y_true - mean) <= half
    ax.errorbar(y_true, mean, yerr=half, fmt="none", ecolor="0.7", alpha=0.6, lw=0.8)
    ax.scatter(y_true[inside], mean[inside], s=12, c="#1f77b4",
               label=f"{label + ': ' if label else ''}inside {100 * level:g}% interval ({inside.mean():.0%})")
    ax.scatter(y_true[~inside], mean[~inside], s=14, c="#d62728", label="outside")
    lo, hi = float(min(y_true.min(), mean.min())), float(max(y_true.max(), mean.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    u = f" ({unit})" if unit else ""
    ax.set_xlabel(f"true{u}")
    ax.set_ylabel(f"predicted mean{u}")
    ax.legend(fontsize=7)
    return ax


_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


def plot_conductivity_episode(ep, preds: dict, cols, ax=None):
    """log10 k against T (K): query (grey), support (black) and each method's query predictions.

    ``cols`` is a :class:`nanonb.physics.vtf.RawColumns` of the task set (to read T in K). The legend gives
    each method's query MAE (log10 units).

    Example
    -------
    >>> ep, preds = episode_predictions(methods, test, "LiPF6|EC+DMC", k=5)    # doctest: +SKIP
    >>> plot_conductivity_episode(ep, preds, RawColumns.of(test))              # doctest: +SKIP
    """
    ax = _ax(ax, figsize=(6, 4))
    tq, ts_ = cols.temperature(ep.query), cols.temperature(ep.support)
    ax.scatter(tq, ep.query.targets, s=14, c="0.75", label="measured (query)", zorder=1)
    for i, (name, p) in enumerate(preds.items()):
        ax.scatter(tq, p, s=10, marker="x", c=_PALETTE[i % len(_PALETTE)], zorder=2,
                   label=f"{name}: MAE {mae(p, ep.query.targets):.3f}")
    ax.scatter(ts_, ep.support.targets, s=60, c="k", marker="o", label=f"support (K={len(ep.support)})", zorder=3)
    ax.set_xlabel("temperature (K)")
    ax.set_ylabel("log10 k (k in mS/cm)")
    ax.set_title(ep.task.name, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def plot_ranking_episode(ep, preds: dict, axes=None):
    """Predicted vs measured efficacy (z-scores), one panel per method; the true top 10 % of the query in red.

    Example
    -------
    >>> ep, preds = episode_predictions(methods, test, "study_7", k=10)  # doctest: +SKIP
    >>> plot_ranking_episode(ep, preds)                                 # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(1, len(preds), figsize=(3.2 * len(preds), 3.2), squeeze=False)[1][0]
    y = ep.query.targets
    n_top = max(1, int(round(0.1 * len(y))))
    top = y >= np.sort(y)[-n_top]
    for ax, (name, p) in zip(axes, preds.items()):
        ax.scatter(y[~top], p[~top], s=8, c="0.6")
        ax.scatter(y[top], p[top], s=12, c="#d62728", label="true top 10 %")
        ax.set_title(f"{name}\nSpearman {spearman(p, y):.2f}, top-10 % {top_recall(p, y):.2f}", fontsize=9)
        ax.set_xlabel("measured efficacy (z)")
    axes[0].set_ylabel("predicted")
    return axes
