"""Tests of nanonb.uncertainty.metrics: NLL, coverage, calibration curve, sharpness."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from nanonb.uncertainty.metrics import calibration_curve, coverage, gaussian_nll, sharpness


def test_metrics_match_direct_formulas():
    rng = np.random.default_rng(0)
    y, mean, std = rng.normal(size=50), rng.normal(size=50), rng.uniform(0.5, 2, size=50)
    assert gaussian_nll(y, mean, std) == pytest.approx(-norm.logpdf(y, mean, std).mean(), rel=1e-12)
    z = np.abs(y - mean) / std
    assert coverage(y, mean, std, 0.9) == pytest.approx(np.mean(z <= norm.ppf(0.95)))
    assert sharpness(std) == pytest.approx(std.mean())
    curve = calibration_curve(y, mean, std, levels=[0.5, 0.9])
    assert list(curve["level"]) == [0.5, 0.9]
    assert curve["observed"].iloc[1] == pytest.approx(coverage(y, mean, std, 0.9))
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        gaussian_nll(y, mean, np.zeros(50))
    with pytest.raises(ValueError, match="same length"):
        coverage(y, mean[:3], std)
