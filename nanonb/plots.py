"""Matplotlib figures used by the CLI, the benchmarks and the notebooks.

Every function draws into a given ``ax`` (or makes one) and returns the figure or axes, so the
same code serves scripts (``fig.savefig``) and notebooks (inline, ipympl or widgets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

METHOD_COLORS = {
    "maml": "#1f77b4", "fomaml": "#17becf", "anil": "#2ca02c", "metasgd": "#9467bd",
    "scratch": "#d62728", "pooled": "#7f7f7f", "pooled+finetune": "#ff7f0e", "gp": "#8c564b",
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
    """Predicted vs true with the y = x line; ``yerr`` draws ±1 s.d. error bars."""
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
    """Mean ± s.e.m. over tasks against the number of shots, one line per method."""
    ax = _ax(ax)
    for method, g in summary.groupby("method", sort=False):
        g = g.sort_values("k")
        dashed = g["kind"].iloc[0] == "baseline"
        ax.errorbar(g["k"], g["mean"], yerr=g["sem"], marker="o", ms=4, capsize=3, label=method,
                    color=color(method), ls="--" if dashed else "-")
    ax.set_xlabel("shots K (support points)")
    ax.set_ylabel(metric_label)
    ax.set_xticks(sorted(summary["k"].unique()))
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return ax


def loss_curves(histories: Mapping[str, Mapping[str, Sequence]], ax=None, smooth: int = 10):
    """Meta-training loss (smoothed) and validation loss for several learners."""
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
