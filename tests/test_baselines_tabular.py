"""Tabular baselines (:mod:`nanonb.baselines.tabular`) on synthetic tasks."""

from __future__ import annotations

import numpy as np
import pytest
from _tabular import _ConstantPooled, _linear_taskset

from nanonb.baselines.tabular import (
    PooledOffset,
    PooledRecalibration,
    PooledTrees,
    RandomRanker,
    SupportExtraTrees,
    SupportRF,
)
from nanonb.evaluation import spearman


def test_offset_baseline_equals_pooled_plus_mean_support_residual():
    ts = _linear_taskset()
    ep = ts.episode(ts[0], 5, seed=1)
    pooled = _ConstantPooled()
    pred = PooledOffset(pooled).adapt(ep.support).predict(ep.query)
    expected = ep.query.inputs[:, 0] + np.mean(ep.support.targets - ep.support.inputs[:, 0])
    assert np.allclose(pred, expected)


def test_recalibration_solves_the_ridge_problem_and_recovers_a_line():
    p = np.linspace(-1, 1, 10)
    a, b = PooledRecalibration.solve(p, 0.5 - 2.0 * p, lam=1e-9)
    assert (a, b) == pytest.approx((0.5, -2.0), abs=1e-6)
    a0, b0 = PooledRecalibration.solve(p, 0.5 - 2.0 * p, lam=1e9)  # strong prior: identity slope
    assert b0 == pytest.approx(1.0, abs=1e-6)
    ts = _linear_taskset()
    ep = ts.episode(ts[1], 8, seed=2)
    pred = PooledRecalibration(_ConstantPooled(), lam=0.0).adapt(ep.support).predict(ep.query)
    a, b = PooledRecalibration.solve(ep.support.inputs[:, 0].astype(float), ep.support.targets, 0.0)
    assert np.allclose(pred, a + b * ep.query.inputs[:, 0])


def test_support_rf_and_pooled_trees_learn_something():
    ts = _linear_taskset(n=80)
    train, test = ts.select(ts.names[:4]), ts.select(ts.names[4:])
    pooled = PooledTrees("gbm", max_iter=50).fit(train)
    ep = test.episode(test[0], 30, seed=0)
    corr = spearman(pooled.adapt(None).predict(ep.query), ep.query.targets)
    assert corr > 0.7  # shared slope transfers; only the offset is task specific
    rf = SupportRF(n_estimators=30).fit(train).adapt(ep.support)
    assert spearman(rf.predict(ep.query), ep.query.targets) > 0.5
    et = SupportExtraTrees(n_estimators=30).fit(train).adapt(ep.support)
    assert spearman(et.predict(ep.query), ep.query.targets) > 0.5
    assert SupportExtraTrees.name == "et-support"
    assert not np.allclose(et.predict(ep.query), rf.predict(ep.query))  # a different forest, not the RF again




def test_random_ranker_is_seeded_by_the_support():
    ts = _linear_taskset()
    ep = ts.episode(ts[0], 5, seed=0)
    a = RandomRanker(seed=1).adapt(ep.support).predict(ep.query)
    assert np.array_equal(a, RandomRanker(seed=1).adapt(ep.support).predict(ep.query))
    assert not np.array_equal(a, RandomRanker(seed=2).adapt(ep.support).predict(ep.query))
    with pytest.raises(ValueError, match="gbm"):
        PooledTrees("svm")
