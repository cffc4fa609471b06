"""The GP baselines of :mod:`nanonb.baselines.gp` (one front over the two cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tabular import _ConstantPooled, _linear_taskset
from synthetic import tabular_taskset

from nanonb.baselines.gp import PooledNetResidualGP, SupportGP, TaskGP, TaskResidualGP
from nanonb.tasks import Task, TaskSet

torch.set_num_threads(1)


def test_gp_baselines_return_positive_std_for_any_support_size():
    ts = tabular_taskset(n_tasks=6, n=30)
    gp = SupportGP(n_restarts=0, ard=None, maxiter=200).fit(ts)
    rgp = PooledNetResidualGP(model="MLP", model_kwargs={"hidden": (8,)}, epochs=2, n_restarts=0).fit(ts)
    task = ts[0]
    for method in (gp, rgp):
        for k in (0, 1, 2, 8):
            sup = task.subset(range(k)) if k else None
            m, s = method.adapt(sup).predict_dist(task.subset(range(10, 30)))
            assert m.shape == s.shape == (20,)
            assert np.all(np.isfinite(m)) and np.all(s > 0)
    # with enough points the support GP learns the linear task well
    m, s = gp.adapt(task.subset(range(20))).predict_dist(task.subset(range(20, 30)))
    assert np.mean(np.abs(m - task.targets[20:])) < 0.5 * task.targets.std()
    # predict is the mean of predict_dist; raw arrays are refused
    pred = gp.adapt(task.subset(range(8)))
    assert np.array_equal(pred.predict(task.subset(range(10, 30))), pred.predict_dist(task.subset(range(10, 30)))[0])
    with pytest.raises(TypeError, match="Tasks"):
        pred.predict(task.inputs)


def test_for_task_fast_path_matches_adapt():
    ts = tabular_taskset(n_tasks=6, n=30)
    gp = SupportGP(n_restarts=0).fit(ts)
    task = ts[1]
    m1, s1 = gp.for_task(task).predict_dist(np.arange(8), np.arange(10, 20))
    m2, s2 = gp.adapt(task.subset(range(8))).predict_dist(task.subset(range(10, 20)))
    assert np.allclose(m1, m2) and np.allclose(s1, s2)


def test_task_residual_gp_is_pooled_when_residuals_vanish_and_task_gp_fits_support():
    ts = _linear_taskset()
    t = ts[2]
    # targets exactly equal to the pooled model -> residual GP returns the pooled prediction
    exact = Task("exact", t.inputs, t.inputs[:, 0].astype(float))
    ep = TaskSet([exact]).episode(exact, 10, seed=0)
    pred = TaskResidualGP(_ConstantPooled()).adapt(ep.support).predict(ep.query)
    assert np.allclose(pred, ep.query.inputs[:, 0], atol=1e-6)
    ep = ts.episode(t, 20, seed=0)
    gp = TaskGP().fit(ts).adapt(ep.support)
    err = np.abs(gp.predict(ep.query) - ep.query.targets).mean()
    assert err < 0.3 * np.abs(ep.query.targets - ep.support.targets.mean()).mean()
    mean, std = gp.predict_dist(ep.query)
    assert np.array_equal(mean, gp.predict(ep.query)) and np.all(std > 0)


def test_gp_uses_the_shared_input_rule_for_a_near_constant_column():
    """A column constant in meta-train (up to 1e-12) but not on a new task must not swamp the kernel."""
    ts = tabular_taskset(n_tasks=6, n=30)
    with_col = TaskSet([Task(t.name, np.hstack([t.inputs, np.full((len(t), 1), 5.0)]), t.targets, groups=t.groups)
                        for t in ts])
    new = ts[0]
    shifted = Task(new.name, np.hstack([new.inputs, np.full((len(new), 1), 5.001)]), new.targets)
    plain = SupportGP(n_restarts=0, ard=None, maxiter=200).fit(ts)
    gp = SupportGP(n_restarts=0, ard=None, maxiter=200).fit(with_col)
    z = gp._features(shifted)
    assert np.all(np.abs(z) <= 10.0)  # standardized inputs are clipped at +-10 std, as for every learner
    m0, _ = plain.adapt(new.subset(range(10))).predict_dist(new.subset(range(10, 30)))
    m1, _ = gp.adapt(shifted.subset(range(10))).predict_dist(shifted.subset(range(10, 30)))
    assert np.allclose(m0, m1, atol=1e-6 * new.targets.std())
