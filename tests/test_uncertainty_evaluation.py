"""Tests of nanonb.uncertainty.evaluation output as drawn by nanonb.plots.calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def test_calibration_plot_draws_one_line_per_method():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nanonb.plots import calibration

    curves = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "kind": "meta", "k": 5, "level": [0.1, 0.5, 0.9] * 2,
                           "observed": [0.1, 0.4, 0.8, 0.2, 0.6, 0.95], "n_tasks": 3})
    ax = calibration(curves)
    assert len(ax.lines) == 3  # two methods + the diagonal
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.2, 0.6, 0.95])
    with pytest.raises(ValueError, match="no calibration curve"):
        calibration(curves, k=10)
    plt.close("all")
