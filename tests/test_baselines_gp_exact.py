"""Exact-GP baselines (:mod:`nanonb.baselines.gp_exact`) against scikit-learn and on synthetic tasks."""

from __future__ import annotations

import warnings

import numpy as np
from _tabular import _ConstantPooled, _linear_taskset

from nanonb.baselines.gp_exact import ExactGP, ResidualGP, TaskGP
from nanonb.tasks import Task, TaskSet


def test_exact_gp_matches_scikit_learn():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1] ** 2 + 0.01 * rng.normal(size=12)
    xq = rng.normal(size=(30, 3))
    ours = ExactGP(ard=True).fit(x, y)
    k = ConstantKernel(1.0, (1e-3, 1e2)) * RBF(np.ones(3), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-5, 1e0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianProcessRegressor(k, normalize_y=True, n_restarts_optimizer=0).fit(x, y)
    m1, s1 = ours.predict(xq, return_std=True)
    m2, s2 = ref.predict(xq, return_std=True)
    assert np.allclose(m1, m2, atol=1e-3)
    assert np.allclose(s1, s2, atol=1e-2)


def test_residual_gp_is_pooled_when_residuals_vanish_and_task_gp_fits_support():
    ts = _linear_taskset()
    t = ts[2]
    # targets exactly equal to the pooled model -> residual GP returns the pooled prediction
    exact = Task("exact", t.inputs, t.inputs[:, 0].astype(float))
    ep = TaskSet([exact]).episode(exact, 10, seed=0)
    pred = ResidualGP(_ConstantPooled()).adapt(ep.support).predict(ep.query)
    assert np.allclose(pred, ep.query.inputs[:, 0], atol=1e-6)
    ep = ts.episode(t, 20, seed=0)
    gp = TaskGP().fit(ts).adapt(ep.support)
    err = np.abs(gp.predict(ep.query) - ep.query.targets).mean()
    assert err < 0.3 * np.abs(ep.query.targets - ep.support.targets.mean()).mean()

