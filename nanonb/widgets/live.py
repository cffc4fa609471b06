"""Matplotlib figures as ipywidgets: :class:`LiveFigure` (redrawn in place) and PNG rendering helpers.

The figure is drawn with matplotlib's Agg canvas into an ``ipywidgets.Image`` (PNG), which renders
in JupyterLab, Notebook 7 and Voilà without any extra front-end extension.
"""

from __future__ import annotations

import html
import io
import re

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage

__all__ = ["LiveFigure", "encode_png", "figure_png", "plain_text"]


def figure_png(fig, dpi: float | None = None) -> bytes:
    """Render a matplotlib ``Figure`` with Agg into PNG bytes (one draw, fast zlib level).

    Example
    -------
    >>> png = figure_png(Figure(figsize=(2, 2)), dpi=50)
    >>> png[:4]
    b'\\x89PNG'
    """
    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return encode_png(canvas)


def encode_png(canvas) -> bytes:
    """PNG of an Agg canvas's current pixel buffer (no redraw)."""
    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    PILImage.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def plain_text(html_text: str) -> str:
    """Text of a small HTML snippet: tags dropped, entities unescaped, whitespace collapsed.

    Example
    -------
    >>> plain_text("<b>MAE</b>&nbsp;<i>3.0</i>")
    'MAE 3.0'
    """
    text = re.sub(r"<(?:br|/tr|/div)[^>]*>", " ", html_text)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()).replace("⚠ ", "")


class LiveFigure(widgets.Image):
    """A matplotlib figure shown as an ``ipywidgets.Image`` that can be redrawn in place.

    Draw on :attr:`fig` / :attr:`ax` (a ``matplotlib.figure.Figure``, not pyplot, so nothing is shown
    twice), then call :meth:`refresh`. Unlike printing or ``plt.show()`` inside an ``Output``
    widget, updates never leak into the cell's outputs, so they work the same in JupyterLab,
    Voilà, nbconvert and nbval.

    ``figsize`` in inches, ``dpi`` in dots per inch, ``ncols`` axes side by side (:attr:`axes`).

    Example
    -------
    >>> live = LiveFigure(figsize=(6, 3))   # display(live) in a notebook
    >>> _ = live.ax.plot([0, 1], [1, 0]); live.refresh()
    """

    def __init__(self, figsize: tuple[float, float] = (6.0, 3.2), dpi: int = 80, ncols: int = 1, **kwargs):
        super().__init__(format="png", **kwargs)
        self.fig = Figure(figsize=figsize, dpi=dpi)
        axes = self.fig.subplots(1, ncols)
        self.axes = list(np.atleast_1d(axes))
        self.ax = self.axes[0]

    def clear(self) -> None:
        """Clear every axes (keeps the layout)."""
        for a in self.axes:
            a.cla()

    def refresh(self, tight: bool = True) -> None:
        """Re-render the figure into the widget."""
        if tight:
            self.fig.tight_layout()
        self.value = figure_png(self.fig)

