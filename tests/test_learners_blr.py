"""Tests of nanonb.learners.blr: the closed-form posterior against textbook conditioning, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.learners.blr import blr_posterior, blr_predict, lower_cholesky
from nanonb.uncertainty.metrics import calibration_curve, coverage

torch.set_num_threads(1)


def _random_prior(p: int, rng: np.random.Generator):
    mu0 = rng.normal(size=p)
    chol = np.tril(rng.normal(size=(p, p)) * 0.5)
    chol[np.diag_indices(p)] = np.abs(chol[np.diag_indices(p)]) + 0.3
    return mu0, chol


@pytest.mark.parametrize("k", [0, 1, 4, 9])
def test_blr_predict_matches_explicit_gaussian_conditioning(k):
    rng = np.random.default_rng(k)
    p, m, s2 = 4, 6, 0.3**2
    mu0, chol = _random_prior(p, rng)
    phi_s, phi_q = rng.normal(size=(k, p)), rng.normal(size=(m, p))
    y_s = rng.normal(size=k)
    # joint Gaussian of (y_s, y_q) under the prior, then textbook conditioning
    sigma0 = chol @ chol.T
    phi = np.vstack([phi_s, phi_q])
    mean_joint = phi @ mu0
    cov_joint = phi @ sigma0 @ phi.T + s2 * np.eye(k + m)
    css, cqs, cqq = cov_joint[:k, :k], cov_joint[k:, :k], cov_joint[k:, k:]
    if k:
        gain = cqs @ np.linalg.inv(css)
        mean_ref = mean_joint[k:] + gain @ (y_s - mean_joint[:k])
        cov_ref = cqq - gain @ cqs.T
    else:
        mean_ref, cov_ref = mean_joint[k:], cqq
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    mean, cov = blr_predict(t(phi_s), t(y_s), t(phi_q), t(mu0), t(chol), s2, full_cov=True)
    np.testing.assert_allclose(mean.numpy(), mean_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov.numpy(), cov_ref, rtol=1e-9, atol=1e-10)
    _, var = blr_predict(t(phi_s), t(y_s), t(phi_q), t(mu0), t(chol), s2)
    np.testing.assert_allclose(var.numpy(), np.diag(cov_ref), rtol=1e-9)
    # weight-space posterior in the textbook (precision) form
    cov_w_ref = np.linalg.inv(np.linalg.inv(sigma0) + phi_s.T @ phi_s / s2)
    mean_w_ref = cov_w_ref @ (np.linalg.solve(sigma0, mu0) + phi_s.T @ y_s / s2)
    mean_w, cov_w = blr_posterior(t(phi_s), t(y_s), t(mu0), t(chol), s2)
    np.testing.assert_allclose(mean_w.numpy(), mean_w_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov_w.numpy(), cov_w_ref, rtol=1e-8, atol=1e-10)


def test_lower_cholesky_positive_diagonal():
    raw = torch.tensor([[-5.0, 3.0], [2.0, 0.0]])
    c = lower_cholesky(raw)
    assert c[0, 1] == 0 and c[1, 0] == 2.0
    assert (torch.diagonal(c) > 0).all()


def test_coverage_nominal_for_true_model_and_detects_overconfidence():
    """Tasks drawn from a known Bayesian linear model (fixed features): exact posterior is calibrated."""
    rng = np.random.default_rng(1)
    p, s2 = 4, 0.2**2
    mu0, chol = np.array([0.5, -1.0, 0.0, 0.3]), np.diag([1.0, 0.5, 0.8, 0.3])

    def feats(x):
        return np.stack([np.sin(x), np.cos(2 * x), x / 3, np.ones_like(x)], axis=1)

    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    ys, ms, ss, ss_bad = [], [], [], []
    for _ in range(1500):
        x = rng.uniform(-3, 3, size=8)
        w = mu0 + chol @ rng.normal(size=p)
        y = feats(x) @ w + np.sqrt(s2) * rng.normal(size=8)
        k = int(rng.integers(0, 6))
        m, v = blr_predict(t(feats(x[:k])), t(y[:k]), t(feats(x[k:])), t(mu0), t(chol), s2)
        mb, vb = blr_predict(t(feats(x[:k])), t(y[:k]), t(feats(x[k:])), t(mu0), t(0.3 * chol), s2 / 9)
        ys.append(y[k:])
        ms.append(m.numpy())
        ss.append(np.sqrt(v.numpy()))
        ss_bad.append(np.sqrt(vb.numpy()))
    y, m, s = np.concatenate(ys), np.concatenate(ms), np.concatenate(ss)
    for level in (0.5, 0.9, 0.95):
        assert coverage(y, m, s, level) == pytest.approx(level, abs=0.02)
    curve = calibration_curve(y, m, s)
    assert np.max(np.abs(curve["observed"] - curve["level"])) < 0.03
    # a too-narrow prior and noise must show up as under-coverage
    assert coverage(y, m, np.concatenate(ss_bad), 0.9) < 0.75
