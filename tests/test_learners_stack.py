"""Tests for the stacked learner (weighted average of members on a common per-task scale)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nanonb.baselines.tabular import SupportRF
from nanonb.learners.registry import make_learner
from nanonb.learners.stack import StackLearner, combine
from nanonb.learners.tanimoto_gp import TanimotoGP
from nanonb.tasks import Task, TaskSet


class _Linear:
    """A stub learner: predicts ``a * x[:, 0] + b`` with std ``sd`` (counts its fits and adapts)."""

    def __init__(self, a, b, sd=None):
        self.a, self.b, self.sd, self.fits, self.adapts = a, b, sd, 0, 0

    def fit(self, meta_train):
        self.fits += 1
        return self

    def adapt(self, support):
        self.adapts += 1
        return self

    def predict(self, x):
        x = x.inputs if isinstance(x, Task) else x
        return self.a * np.asarray(x)[:, 0] + self.b


class _LinearDist(_Linear):
    def predict_dist(self, x):
        m = self.predict(x)
        return m, np.full(len(m), self.sd)


def test_zscore_stack_is_the_documented_combination():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    a, b = _LinearDist(2.0, 1.0, sd=0.5), _Linear(-10.0, 100.0)  # b ranks the points in reverse, on another scale
    stack = StackLearner([a, b], weights=[3, 1]).fit(TaskSet([Task("t", x, x[:, 0])]))
    assert (a.fits, b.fits) == (1, 1)
    mean, std = stack.adapt(None).predict_dist(x)
    pa, pb = a.predict(x), b.predict(x)
    za, zb = (pa - pa.mean()) / pa.std(), (pb - pb.mean()) / pb.std()
    level = 0.75 * pa.mean() + 0.25 * pb.mean()
    spread = 0.75 * pa.std() + 0.25 * pb.std()
    mu_a, mu_b = level + spread * za, level + spread * zb
    expect = 0.75 * mu_a + 0.25 * mu_b
    np.testing.assert_allclose(mean, expect)
    assert np.corrcoef(mean, 0.75 * za + 0.25 * zb)[0, 1] > 1 - 1e-12  # ranks = weighted mean z-score
    sd_a = 0.5 * spread / pa.std()
    np.testing.assert_allclose(std**2, 0.75 * (sd_a**2 + mu_a**2) + 0.25 * mu_b**2 - expect**2)
    # not the plain mean: the member on the bigger scale would dominate the ranking
    assert not np.allclose(mean, 0.75 * pa + 0.25 * pb)
    assert spearmanr(mean, x[:, 0]).statistic > 0 > spearmanr(0.75 * pa + 0.25 * pb, x[:, 0]).statistic


def test_mean_stack_is_plain_mean_with_mixture_variance():
    x = np.array([[0.0], [1.0], [2.0]])
    a, b = _LinearDist(1.0, 0.0, sd=1.0), _LinearDist(3.0, 1.0, sd=2.0)
    mean, std = make_learner("stack", members=[a, b], scale="mean").adapt(None).predict_dist(x)
    pa, pb = a.predict(x), b.predict(x)
    np.testing.assert_allclose(mean, (pa + pb) / 2)
    np.testing.assert_allclose(std**2, (1 + pa**2 + 4 + pb**2) / 2 - mean**2)


def test_constant_member_and_single_point():
    x = np.array([[0.0], [1.0], [2.0]])
    m, _ = combine([np.array([1.0, 2.0, 3.0]), np.full(3, 5.0)], [np.zeros(3)] * 2, [0.5, 0.5])
    assert m[0] < m[1] < m[2]  # the constant member carries no ranking and does not break the stack
    one, _ = StackLearner([_Linear(1.0, 0.0), _Linear(2.0, 4.0)]).adapt(None).predict_dist(x[1:2])
    np.testing.assert_allclose(one, [(1.0 + 6.0) / 2])  # one point: every z is 0, the mean level remains
    with pytest.raises(ValueError, match="weights"):
        StackLearner([_Linear(1, 0)], weights=[-1])
    with pytest.raises(ValueError, match="scale"):
        StackLearner([_Linear(1, 0)], scale="rank")


def test_stack_of_tanimoto_gp_and_support_rf_fits_adapts_predicts():
    rng = np.random.default_rng(0)
    tasks = []
    for i in range(5):
        fp = rng.poisson(0.8, size=(30, 12)).astype(float)
        y = fp @ rng.normal(size=12) / 3 + rng.normal(0, 0.1, 30)
        tasks.append(Task(f"t{i}", np.hstack([fp, rng.normal(size=(30, 2))]), y, groups=(f"s{i}",)))
    ts = TaskSet(tasks)
    gp, rf = TanimotoGP(range(12), n_iterations=3), SupportRF(n_estimators=10)
    stack = StackLearner([gp, rf]).fit(ts)
    support, query = ts[0].subset(range(10)), ts[0].subset(range(10, 30))
    mean, std = stack.adapt(support).predict_dist(query)
    assert mean.shape == std.shape == (20,) and np.isfinite(mean).all() and (std >= 0).all()
    expect, _ = combine([gp.adapt(support).predict(query), rf.adapt(support).predict(query)],
                        [gp.adapt(support).predict_dist(query)[1], np.zeros(20)], [0.5, 0.5])
    np.testing.assert_allclose(mean, expect)


def test_support_cv_drops_a_member_the_support_ranks_badly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    task = Task("t", x, x[:, 0] + 0.01 * rng.normal(size=40))
    sup, qry = task.subset(range(30)), task.subset(range(30, 40))
    good, bad = _Linear(1.0, 0.0), _Linear(-1.0, 5.0)  # bad ranks the task backwards
    fixed = StackLearner([good, bad])
    cv = StackLearner([good, bad], support_cv=3)
    assert np.allclose(cv.cv_weights(sup), [1.0, 0.0])
    before = good.adapts
    assert spearmanr(cv.adapt(sup).predict(qry), qry.targets).statistic > 0.95
    assert good.adapts - before == 1 + 3  # adapted to the support, and once per part
    assert np.ptp(fixed.adapt(sup).predict(qry)) < 1e-5  # equal weights: the two cancel, no ranking left
    assert np.allclose(cv.adapt(sup.subset(range(5))).weights, [0.5, 0.5])  # under 2 n points: fixed weights
    both_bad = StackLearner([bad, _Linear(-2.0, 0.0)], weights=[3, 1], support_cv=3)
    assert np.allclose(both_bad.cv_weights(sup), [0.75, 0.25])  # no member ranks the support: the fixed weights
    with pytest.raises(ValueError, match="support_cv"):
        StackLearner([good], support_cv=1)
