"""Pareto fronts on hand-made examples, with and without uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from nanonb.uncertainty.pareto import dominates, pareto_front, pareto_with_uncertainty


def test_front_of_a_hand_made_example():
    # (conductivity, oxidation limit): A and B trade off, C is dominated by B, D is the most conductive,
    # E duplicates A (both stay on the front), F is dominated by everything
    pts = np.array([[1.0, 5.0], [2.0, 4.0], [1.5, 3.0], [3.0, 1.0], [1.0, 5.0], [0.0, 0.0]])
    assert pareto_front(pts).tolist() == [True, True, False, True, True, False]
    assert dominates(pts[1], pts[2]) and not dominates(pts[0], pts[4])
    # minimizing the second objective instead: flip its sign
    assert pareto_front(pts * [1, -1]).tolist() == [False, False, False, True, False, True]


def test_front_only_because_of_uncertainty_is_flagged():
    # A and B are sure and on the front; C sits just behind B but is uncertain (it may well beat B);
    # D is far behind everything, E is sure and dominated by B
    mean = np.array([[1.0, 5.0], [2.0, 4.0], [1.99, 3.99], [0.5, 0.5], [1.5, 3.0]])
    std = np.array([[0.01, 0.01], [0.01, 0.01], [0.5, 0.5], [0.01, 0.01], [0.01, 0.01]])
    out = pareto_with_uncertainty(mean, std, names=["k", "ox"], n_samples=400)
    assert out["flag"].tolist() == ["confident", "on the front", "validate experimentally", "", ""]
    assert out["on_mean_front"].tolist() == [True, True, False, False, False]
    # C dominates B in about (1/2)^2 of the draws: B's probability drops to ~0.75, C's is ~0.7
    assert out["p_front"][1] == pytest.approx(0.75, abs=0.08) and out["p_front"][2] > 0.5
    assert out["p_front"][3] == 0.0 and out["p_front"][0] > 0.95
    assert list(out.columns[:4]) == ["k_mean", "k_std", "ox_mean", "ox_std"]
    # with no uncertainty nothing needs validation, and the mean front is confident
    sure = pareto_with_uncertainty(mean, np.zeros_like(mean))
    assert "validate experimentally" not in set(sure["flag"])
    assert (sure["flag"] == "confident").sum() == 2


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        pareto_with_uncertainty(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="non-negative"):
        pareto_with_uncertainty(np.zeros((3, 2)), -np.ones((3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        pareto_front(np.zeros(3))
