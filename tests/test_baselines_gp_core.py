"""The GP cores (:mod:`nanonb.baselines.gp_core`): the numpy ExactGP against scikit-learn, fit_gp options."""

from __future__ import annotations

import warnings

import numpy as np

from nanonb.baselines.gp_core import ExactGP, fit_gp


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


def test_fit_gp_maxiter_none_is_scikit_learns_default_optimizer():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 2))
    y = np.cos(x[:, 0]) + 0.05 * rng.normal(size=10)
    ours = fit_gp(x, y, ard=True, n_restarts=1, maxiter=None, seed=3)
    k = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(2), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-6, 1e0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianProcessRegressor(k, normalize_y=True, n_restarts_optimizer=1, random_state=3).fit(x, y)
    assert np.array_equal(ours.predict(x), ref.predict(x))
