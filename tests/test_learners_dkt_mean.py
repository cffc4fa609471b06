"""Tests for MeanDKT (deep-kernel GP on the residuals of a pooled mean model) and its cross-fitted residuals."""

from __future__ import annotations

import numpy as np
from _tabular import _linear_taskset

from nanonb.baselines.tabular import PooledTrees
from nanonb.learners.dkt_mean import MeanDKT, crossfit_residuals
from nanonb.tasks import Task, TaskSet


class _GroupMemory:
    """A 'mean model' that remembers the mean target of every training group and predicts the largest seen."""

    def __init__(self, train: TaskSet):
        self.seen = sorted({t.groups[0] for t in train})
        self.level = max(float(t.targets.mean()) for t in train)

    def predict(self, task_or_x):
        n = len(task_or_x)
        return np.full(n, self.level)


def _levels_taskset():
    tasks = [Task(f"t{i}", np.zeros((5, 1)), np.full(5, float(i)), groups=(f"g{i}",)) for i in range(6)]
    return TaskSet(tasks)


def test_crossfit_residuals_come_from_models_that_never_saw_the_group():
    ts = _levels_taskset()
    seen_by: list[list[str]] = []

    def fit(train):
        m = _GroupMemory(train)
        seen_by.append(m.seen)
        return m

    res = crossfit_residuals(fit, ts, n_parts=2, seed=0)
    assert len(seen_by) == 2 and all(len(s) == 3 for s in seen_by)
    for t, r in zip(ts, res):
        model_level = t.targets[0] - r.targets[0]
        # the level predicted for a task is the largest level among the *other* part's groups
        other = [s for s in seen_by if t.groups[0] not in s]
        assert len(other) == 1
        assert model_level == max(float(g[1:]) for g in other[0])
    # in-sample residuals (n_parts=0) use one model on every task
    ins = crossfit_residuals(fit, ts, n_parts=0)
    assert {round(t.targets[0] - r.targets[0], 6) for t, r in zip(ts, ins)} == {5.0}


def test_mean_dkt_uses_the_support_to_correct_the_mean():
    ts = _linear_taskset(n_tasks=9, n=40, d=3, seed=1)  # y = w.x + task offset (sd 2)
    gp = MeanDKT(lambda s: PooledTrees("gbm", max_iter=30).fit(s), crossfit=2, kernel="rbf", hidden=(), n_features=3,
                 linear=True, mean="constant", n_iterations=60, seed=0).fit(TaskSet(ts.tasks[:6]))
    errs_mean, errs_gp = [], []
    for t in ts.tasks[6:]:
        sup, qry = t.subset(range(10)), t.subset(range(10, 40))
        m, s = gp.adapt(sup).predict_dist(qry)
        errs_gp.append(np.abs(m - qry.targets).mean())
        errs_mean.append(np.abs(gp.mean_model.predict(qry) - qry.targets).mean())
        assert (s > 0).all() and m.shape == (30,)
    assert np.mean(errs_gp) < 0.5 * np.mean(errs_mean)
    prior_m, prior_s = gp.adapt(None).predict_dist(ts.tasks[6])
    assert np.allclose(prior_m - gp.mean_model.predict(ts.tasks[6]), prior_m[0] - gp.mean_model.predict(ts.tasks[6])[0])


def test_columns_constant_in_meta_train_are_dropped_and_test_values_clipped():
    ts = _linear_taskset(n_tasks=4, n=20, d=3, seed=2)
    tasks = [Task(t.name, np.hstack([t.inputs, np.zeros((len(t), 1))]), t.targets, groups=t.groups) for t in ts]
    gp = MeanDKT(lambda s: PooledTrees("gbm", max_iter=10).fit(s), crossfit=0, kernel="rbf", hidden=(), n_features=2,
                 linear=False, mean="constant", n_iterations=5).fit(TaskSet(tasks))
    assert gp.columns.keep.tolist() == [0, 1, 2]
    x = np.array(tasks[0].inputs, dtype=np.float64)
    x[:, 3] = 1e6  # constant in meta-train: dropped
    x[:, 0] = 1e9  # far outside meta-train: clipped
    z = gp._x(x)
    assert z.shape == (20, 3) and np.abs(z).max() <= 10.0
    m, s = gp.adapt(Task("new", x[:5], tasks[0].targets[:5])).predict_dist(x[5:])
    assert np.isfinite(m).all() and np.isfinite(s).all()
