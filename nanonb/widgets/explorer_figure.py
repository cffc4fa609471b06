"""The display of :class:`nanonb.widgets.explorer.AdaptationExplorer`: parity plot and MAE bars (blitted),
and the MAE readout table (:func:`readout_html`).

The artists are created once; a redraw moves them and only redraws the moving artists on top of a
cached background (~5x faster than a full draw), so a slider move costs tens of milliseconds. The
background holds what a slider does not move (axes, ticks, legend, the bar axis range); it depends
on the task, the method names and the bar axis range only, which keeps its value while the worst
baseline MAE stays between 1/3 and 1 of the range (:meth:`ExplorerFigure._bar_range`), so moving
``shots`` does not redraw it either. Backgrounds are kept per key (a revisited setting blits too).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ..plots import color
from .live import encode_png, figure_png

__all__ = ["ExplorerFigure", "readout_html"]


class ExplorerFigure:
    """Parity plot of the query points (left) and query MAE of every method (right, bars).

    The support-mean reference is a dotted line in the parity plot and a grey bar; the task's in-task
    ceiling (if given) is a dashed vertical line across the bars.

    ``model_name`` labels the adapted model; ``unit`` the display unit; ``scale`` converts targets
    to it (e.g. 1000 for eV -> meV); ``dpi`` in dots per inch. :meth:`draw` returns the PNG.

    Example
    -------
    >>> fig = ExplorerFigure("anil", unit="meV/atom", scale=1000.0, dpi=72)
    >>> png = fig.draw(ep, pred, std, pred_support, mae, base_mae, ceiling=0.015)  # doctest: +SKIP
    """

    def __init__(self, model_name: str, unit: str, scale: float = 1.0, dpi: int = 72):
        self.model_name, self.unit, self.scale = model_name, unit, scale
        self.fig = Figure(figsize=(9.6, 3.8), dpi=dpi)
        FigureCanvasAgg(self.fig)
        self.ax_parity, self.ax_bar = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        # fixed margins: tight_layout on every redraw would cost a second full draw
        self.fig.subplots_adjust(left=0.08, right=0.95, bottom=0.13, top=0.9, wspace=0.6)
        self.artists: dict[str, Any] | None = None
        self._bg_key = None
        self._bgs: dict[tuple, Any] = {}
        self._xmax: dict[str, float] = {}

    def _init_artists(self, n_bars: int) -> None:
        """Create the plot artists once; redraws only move them (clearing axes costs ~3x more)."""
        ax, bx = self.ax_parity, self.ax_bar
        ax.cla()
        bx.cla()
        c = color(self.model_name)
        a: dict[str, Any] = {}
        a["bands"] = LineCollection([], colors=c, alpha=0.35, linewidths=0.8, label="±1 s.d.")
        ax.add_collection(a["bands"])
        a["query"] = ax.scatter([], [], s=16, alpha=0.75, color=c, label=f"{self.model_name}: query")
        a["support"] = ax.scatter([], [], s=70, marker="*", color="k", zorder=3, label="support (fitted)")
        a["mean"] = ax.axhline(0.0, color="0.5", ls=":", lw=1, label="support mean")
        (a["diag"],) = ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel(f"true ({self.unit})")
        ax.set_ylabel(f"predicted ({self.unit})")
        # a figure text, not ax.set_title: Axes titles are re-positioned during a full draw, which
        # misplaces them when they are drawn alone on a blitted background
        box = ax.get_position()
        a["title"] = self.fig.text((box.x0 + box.x1) / 2, box.y1 + 0.02, "", ha="center", va="bottom", fontsize=10)
        ax.legend(handles=[a["query"], a["support"], a["mean"]], fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        ypos = np.arange(n_bars)[::-1]
        a["bars"] = bx.barh(ypos, np.ones(n_bars), alpha=0.85)
        a["labels"] = [bx.text(0, yp, "", va="center", fontsize=8, clip_on=False) for yp in ypos]
        a["ypos"] = ypos
        a["ceiling"] = bx.axvline(0.0, color="k", ls="--", lw=1.0, visible=False)
        a["ceiling_label"] = bx.text(0.0, 1.0, " in-task\n ceiling", transform=bx.get_xaxis_transform(),
                                     fontsize=7, va="top", ha="left", color="k", visible=False)
        bx.set_yticks(ypos)
        bx.set_xlabel(f"query MAE ({self.unit})")
        bx.set_title("lower is better", fontsize=10)
        bx.grid(axis="x", alpha=0.3)
        self.artists = a
        self._bg_key = None
        self._bgs = {}

    def draw(self, ep, pred, std, pred_support, mae: float, base_mae: dict[str, float],
             ceiling: float | None = None) -> bytes:
        """Show one adapted episode: predictions ``pred`` (± ``std`` or None) and ``pred_support`` in
        target units, the model's query ``mae``, ``base_mae`` (name -> MAE) and the task's in-task
        ``ceiling`` (MAE, target units, or None); returns the PNG."""
        names = [self.model_name] + list(base_mae)
        a = self.artists
        if a is None or len(a["bars"]) != len(names):
            self._init_artists(len(names))
            a = self.artists
        s = self.scale
        ax = self.ax_parity
        y = ep.query.targets * s
        allv = ep.task.targets * s
        lo, hi = float(allv.min()), float(allv.max())
        pad = 0.25 * (hi - lo + 1e-12)
        lo, hi = lo - pad, hi + pad

        def clip(v):
            return np.clip(np.nan_to_num(v, nan=hi, posinf=hi, neginf=lo), lo, hi)

        p = pred * s
        off = ~np.isfinite(p) | (p < lo) | (p > hi)
        pc = clip(p)
        a["query"].set_offsets(np.column_stack([y, pc]))
        a["support"].set_offsets(np.column_stack([ep.support.targets * s, clip(pred_support * s)]))
        if std is not None:
            e = np.asarray(std) * s
            a["bands"].set_segments([[(x, clip(v - d)), (x, clip(v + d))] for x, v, d in zip(y, p, e)])
        else:
            a["bands"].set_segments([])
        a["mean"].set_ydata([float(np.mean(ep.support.targets)) * s] * 2)
        a["diag"].set_data([lo, hi], [lo, hi])
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        title = f"{ep.task.name}: {len(ep.support_idx)} shots, MAE {mae * s:.1f} {self.unit}"
        if off.any():
            title += f" ({int(off.sum())} off-scale)"
        a["title"].set_text(title)
        vals = [mae * s] + [v * s for v in base_mae.values()]
        # bars are capped at 1.5x the worst baseline so that a diverged model does not flatten the rest;
        # the axis range depends on the baselines only, so it stays fixed while the inner-loop sliders move
        worst = max(v * s for v in base_mae.values())
        cap = 1.5 * worst
        shown = [min(v, cap) if np.isfinite(v) else cap for v in vals]
        cols = [color(self.model_name)] + [color(n) if n != "support mean" else "#bbbbbb" for n in base_mae]
        for bar, txt, v, sv, col in zip(a["bars"], a["labels"], vals, shown, cols):
            bar.set_width(sv)
            bar.set_color(col)
            txt.set_position((sv, bar.get_y() + bar.get_height() / 2))
            txt.set_text(" diverged" if not np.isfinite(v) else (f" {v:.1f}" if v < cap else f" {v:.3g} ▶"))
        has_ceiling = ceiling is not None and np.isfinite(ceiling)
        a["ceiling"].set_visible(has_ceiling)
        a["ceiling_label"].set_visible(has_ceiling)
        if has_ceiling:
            a["ceiling"].set_xdata([ceiling * s] * 2)
            a["ceiling_label"].set_x(ceiling * s)
        xmax = self._bar_range(ep.task.name, worst)
        return self._render(a, names, key=(ep.task.name, lo, hi, xmax, tuple(names)), xmax=xmax)

    def _bar_range(self, task: str, worst: float) -> float:
        """Upper end of the MAE axis: ``1.8 x`` the worst baseline MAE, kept per task while that MAE
        stays within ``[range / 3.6, range / 1.8]`` (so bars keep their scale across shots)."""
        xmax = self._xmax.get(task)
        if xmax is None or not (xmax / 3.6 <= worst <= xmax / 1.8):
            xmax = self._xmax[task] = 1.8 * worst
        return xmax

    def _render(self, a: dict, names: list[str], key: tuple, xmax: float) -> bytes:
        """Blit: the static background (axes, ticks, legend, baselines' scale) is drawn once per
        episode; a slider move only redraws the moving artists on top of it (~5x faster)."""
        canvas = self.fig.canvas
        dynamic = [a["bands"], a["mean"], a["query"], a["support"], a["title"], *a["bars"], *a["labels"],
                   a["ceiling"], a["ceiling_label"]]
        self.ax_bar.set_xlim(0, xmax)
        bg = self._bgs.get(key)
        if bg is None:
            self.ax_bar.set_yticks(a["ypos"], names, fontsize=8)
            visible = [art.get_visible() for art in dynamic]
            for art in dynamic:
                art.set_visible(False)
            canvas.draw()
            bg = canvas.copy_from_bbox(self.fig.bbox)
            if len(self._bgs) >= 32:
                self._bgs.clear()
            self._bgs[key] = bg
            for art, v in zip(dynamic, visible):
                art.set_visible(v)
        else:
            canvas.restore_region(bg)
        self._bg_key = key
        for art in dynamic:
            if art.get_visible():
                (art.axes or self.fig).draw_artist(art)
        return encode_png(canvas)

    def png(self) -> bytes:
        """A full (not blitted) render of the current figure."""
        return figure_png(self.fig)


def readout_html(r: dict, model_name: str, scale: float, unit: str) -> str:
    """The explorer's MAE table as HTML: the model, every baseline, the support mean and the in-task
    ceiling (errors of ``r`` in target units, shown times ``scale`` in ``unit``), with the verdict
    against the support mean and the share of the learnable gap closed.

    Example
    -------
    >>> r = {"mae": 0.017, "baseline_mae": {"support mean": 0.032}, "ceiling_mae": 0.015, "closed": 0.88,
    ...      "n_query": 75, "task": "Cu-Pt", "k": 5}
    >>> "closes 88 %" in readout_html(r, "bml", 1000.0, "meV/atom")
    True
    >>> "below the in-task ceiling" in readout_html({**r, "mae": 0.014, "closed": 1.06}, "bml", 1000.0, "meV/atom")
    True
    """
    s, u, name = scale, html.escape(unit), html.escape(model_name)
    settings = ""
    if r.get("inner_steps") is not None:
        lr = "learned" if r["inner_lr"] is None else f"{r['inner_lr']:.3g}"
        settings = f" ({r['inner_steps']} steps, lr {lr})"
    rows = [(f"<b>{name}</b>{settings}", r["mae"])] + [(html.escape(n), v) for n, v in r["baseline_mae"].items()]
    best = min(v for _, v in rows)
    cells = "".join(
        f"<tr><td style='padding:0 8px 0 0'>{label}</td>"
        f"<td style='text-align:right'>{'<b>' if v == best else ''}{v * s:.1f}{'</b>' if v == best else ''}"
        f"</td></tr>" for label, v in rows)
    if r.get("ceiling_mae") is not None:
        cells += ("<tr style='color:#555'><td style='padding:0 8px 0 0'><i>in-task ceiling</i> (GP, 80 % of "
                  f"the task)</td><td style='text-align:right'><i>{r['ceiling_mae'] * s:.1f}</i></td></tr>")
    verdict = "beats" if r["mae"] < r["baseline_mae"]["support mean"] else "does not beat"
    gap = ""
    if r.get("ceiling_mae") is not None and r["mae"] <= r["ceiling_mae"]:
        gap = " It is even below the in-task ceiling: on this episode it beats a GP fitted to 80 % of the task."
    elif r.get("closed") is not None and r["closed"] > 0:
        gap = f" It closes {100 * r['closed']:.0f} % of the gap between the support mean and the in-task ceiling."
    return (f"<div><b>MAE</b> on {r['n_query']} query points of {html.escape(r['task'])}, {r['k']} shots "
            f"({u}):<table>{cells}</table><span style='font-size:90%;color:#555'>{name} {verdict} the "
            f"support-mean reference on this episode.{gap}</span></div>")
