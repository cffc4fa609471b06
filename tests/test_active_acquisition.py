"""Tests of nanonb.active.acquisition: acquisition functions, goals, batches."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from nanonb.active.acquisition import (
    ACQUISITIONS,
    GOALS,
    expected_improvement,
    greedy_mean,
    max_variance,
    select_batch,
    thompson_sampling,
    upper_confidence_bound,
)


def test_each_acquisition_picks_the_analytic_optimum():
    mean = np.array([1.0, 2.5, 3.0, 0.9])
    std = np.array([2.0, 0.1, 0.1, 0.5])
    best = 2.9
    # greedy: largest mean
    assert select_batch("greedy", mean, std, best)[0] == 2
    np.testing.assert_array_equal(greedy_mean(mean, std), mean)
    # UCB (beta = 2): 1 + 4 = 5 beats 3.2
    np.testing.assert_allclose(upper_confidence_bound(mean, std), [5.0, 2.7, 3.2, 1.9])
    assert select_batch("ucb", mean, std, best)[0] == 0
    assert select_batch("ucb", mean, std, best, beta=0.0)[0] == 2
    # max variance: largest std
    assert select_batch("maxvar", mean, std, best)[0] == 0
    np.testing.assert_allclose(max_variance(mean, std), std**2)
    # thompson with a given (joint) sample: its argmax
    assert select_batch("thompson", mean, std, best, sampler=lambda n: np.array([[0, 0, 0, 9.0]] * n))[0] == 3


def test_expected_improvement_formula_and_choice():
    mean, std, best = np.array([0.9, 1.0, 1.3]), np.array([0.5, 0.01, 0.0]), 1.0
    ei = expected_improvement(mean, std, best)
    # closed form against numerical integration of E[max(s - best, 0)]
    for m, s, e in zip(mean[:2], std[:2], ei[:2]):
        ref = integrate.quad(lambda x, m=m, s=s: max(x - best, 0.0) * norm.pdf(x, m, s), m - 12 * s, m + 12 * s,
                             points=[best], limit=200)[0]
        assert e == pytest.approx(ref, rel=1e-6, abs=1e-12)
    assert ei[2] == pytest.approx(0.3)  # no uncertainty: the plain improvement
    # an uncertain slightly-worse point beats a certain equal one; greedy disagrees
    assert select_batch("ei", mean[:2], std[:2], best)[0] == 0
    assert select_batch("greedy", mean[:2], std[:2], best)[0] == 1


def test_goal_min_flips_the_direction():
    mean, std = np.array([-0.05, 0.02, -0.01]), np.array([0.01, 0.01, 0.01])
    assert select_batch("greedy", mean, std, best=0.0, goal="min")[0] == 0
    assert select_batch("greedy", mean, std, best=0.0, goal="max")[0] == 1
    ei_min = select_batch("ei", mean, std, best=-0.04, goal="min")
    assert ei_min[0] == 0
    assert GOALS == {"nanoalloys": "min", "calisol": "max", "lnpdb": "max"}
    with pytest.raises(ValueError, match="goal"):
        select_batch("ei", mean, std, 0.0, goal="lowest")
    with pytest.raises(ValueError, match="unknown acquisition"):
        select_batch("pi", mean, std, 0.0)


def test_thompson_frequencies_match_probability_of_being_best():
    rng = np.random.default_rng(0)
    mean, std = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    picks = [select_batch("thompson", mean, std, 0.0, rng=rng)[0] for _ in range(4000)]
    p1 = norm.cdf(1.0 / np.sqrt(2.0))  # P(x1 > x0) for independent N(0,1), N(1,1)
    assert np.mean(picks) == pytest.approx(p1, abs=0.025)
    assert thompson_sampling(mean, std, sample=np.array([3.0, 1.0]))[0] == 3.0


def test_batches_are_distinct_top_candidates():
    mean = np.array([5.0, 1.0, 4.0, 3.0, 2.0])
    std = np.ones(5)
    np.testing.assert_array_equal(select_batch("greedy", mean, std, 0.0, batch_size=3), [0, 2, 3])
    b = select_batch("thompson", mean, std, 0.0, batch_size=5, rng=np.random.default_rng(1))
    assert sorted(b.tolist()) == [0, 1, 2, 3, 4]
    assert set(ACQUISITIONS) == {"greedy", "ucb", "ei", "logei", "maxvar", "thompson"}


# ---------------------------------------------------------------- BoTorch replacements vs the hand-written formulas
def _old_ucb(mean, std, beta=2.0):
    return mean + beta * std


def _old_ei(mean, std, best):
    z = np.where(std > 0, (mean - best) / np.where(std > 0, std, 1.0), 0.0)
    return np.where(std > 0, (mean - best) * norm.cdf(z) + std * norm.pdf(z), np.maximum(mean - best, 0.0))


OLD = {"greedy": lambda m, s, b: m, "ucb": lambda m, s, b: _old_ucb(m, s), "ei": _old_ei,
       "logei": _old_ei, "maxvar": lambda m, s, b: s**2}


@pytest.mark.parametrize("case", range(12))
def test_botorch_acquisitions_pick_the_same_points_as_the_hand_written_ones(case):
    rng = np.random.default_rng(case)
    mean = rng.normal(size=30) if case else np.array([1.0, 2.5, 3.0, 0.9])
    std = rng.uniform(0.01, 1.0, size=len(mean)) if case else np.array([2.0, 0.1, 0.1, 0.5])
    best = float(np.max(mean[:3]))
    for name, old in OLD.items():
        for goal in ("max", "min"):
            sign = 1.0 if goal == "max" else -1.0
            ref = np.argsort(-old(sign * mean, std, sign * best), kind="stable")[:3]
            got = select_batch(name, mean, std, best, batch_size=3, goal=goal)
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} goal={goal}")
        if name in ("greedy", "ucb", "ei", "maxvar"):
            np.testing.assert_allclose(ACQUISITIONS[name](mean, std, best), old(mean, std, best), rtol=1e-6,
                                       atol=1e-8)
