"""Tests for nanonb.physics.calibration: fit_calibration and the HuckelCalibration baseline."""

from __future__ import annotations

import numpy as np
import pytest
from _physics_helpers import toy_flake_taskset

from nanonb.physics.calibration import HuckelCalibration, fit_calibration


def test_fit_calibration_and_huckel_baseline():
    g = np.array([1.0, 2.0, 3.0])
    assert fit_calibration(g, 0.5 * g + 0.2) == pytest.approx((0.5, 0.2))
    assert fit_calibration(g, 0.5 * g - 0.2, nonnegative=True)[1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least two"):
        fit_calibration(g[:1], g[:1])
    one = fit_calibration(g[:1], np.array([2.0]), prior=(0.5, 0.2), ridge=1.0)  # one point + prior
    assert 0.5 < one[0] and 0.2 < one[1]  # moved from the prior towards the point
    ts = toy_flake_taskset()
    base = HuckelCalibration().fit(ts)
    t = ts["rect|BN"]  # y = 0.8 g + 0.3 exactly
    ep = ts.episode(t, 5, seed=0)
    assert np.abs(base.adapt(ep.support).predict(ep.query) - ep.query.targets).max() < 0.05
    zero = base.adapt(None).predict(ep.query)
    assert np.abs(zero - ep.query.targets).max() > 0.05  # the prior (slope ~0.7) is not the task
