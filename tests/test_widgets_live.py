"""LiveFigure (:mod:`nanonb.widgets.live`) and the SupportMean reference the widgets package exports."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from nanonb.tasks import TaskSet  # noqa: E402
from nanonb.widgets import LiveFigure, SupportMean  # noqa: E402
from nanonb.widgets.live import plain_text  # noqa: E402


def test_live_figure_and_support_mean():
    live = LiveFigure(figsize=(3, 2), dpi=50)
    live.ax.plot([0, 1], [0, 1])
    live.refresh()
    first = bytes(live.value)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    live.clear()
    live.ax.plot([0, 1], [1, 0], color="r")
    live.refresh()
    assert bytes(live.value) != first

    rng = np.random.default_rng(0)
    ts = TaskSet.from_arrays(rng.normal(size=(20, 2)), rng.normal(size=20), np.zeros(20))
    ep = ts.episode(0, 4, seed=0)
    pred = SupportMean().fit(ts).adapt(ep.support).predict(ep.query)
    assert pred.shape == (16,) and np.allclose(pred, ep.support.targets.mean())
    with pytest.raises(ValueError, match="at least one support point"):
        SupportMean().adapt(None)


def test_plain_text_of_html():
    assert plain_text("<div><b>MAE</b>&nbsp;on <i>3</i></div><br>x") == "MAE on 3 x"

