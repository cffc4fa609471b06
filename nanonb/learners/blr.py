"""Closed-form Bayesian linear regression on features, differentiable (the math of ALPaCA).

Model: ``y = w . phi + eps``, ``w ~ N(mu0, L L^T)``, ``eps ~ N(0, noise_var)``. :func:`blr_predict`
gives the posterior predictive at query features given a support set, :func:`blr_posterior` the
posterior of ``w``; :func:`lower_cholesky` parametrizes ``L``. Pure torch functions of tensors:
no model, no task, usable by any Bayesian last layer
(:class:`~nanonb.learners.alpaca.BayesianMetaLearner`).
"""

from __future__ import annotations

import torch
from torch import nn


def lower_cholesky(raw: torch.Tensor, min_diag: float = 1e-5) -> torch.Tensor:
    """Lower-triangular factor with a positive diagonal: strict lower part of ``raw`` plus softplus(diag).

    ``min_diag`` (same units as ``raw``) keeps the factor invertible.

    Example
    -------
    >>> bool((torch.diagonal(lower_cholesky(-5.0 * torch.ones(3, 3))) > 0).all())
    True
    """
    return torch.tril(raw, -1) + torch.diag(nn.functional.softplus(torch.diagonal(raw)) + min_diag)


def blr_predict(phi_s: torch.Tensor, y_s: torch.Tensor, phi_q: torch.Tensor, mu0: torch.Tensor,
                chol0: torch.Tensor, noise_var: torch.Tensor | float, full_cov: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior predictive of Bayesian linear regression, differentiable (ALPaCA's closed form).

    Model: ``y = w . phi + eps``, ``w ~ N(mu0, L L^T)``, ``eps ~ N(0, noise_var)``. With
    ``w = mu0 + L v``, ``v ~ N(0, I)`` and ``A = Phi_s L``, the posterior of ``v`` given the support
    has precision ``P = I + A^T A / noise_var`` and mean ``P^-1 A^T (y_s - Phi_s mu0) / noise_var``,
    so for ``B = Phi_q L``::

        mean = Phi_q mu0 + B P^-1 A^T (y_s - Phi_s mu0) / noise_var
        var  = diag(B P^-1 B^T) + noise_var          (full_cov: B P^-1 B^T + noise_var I)

    Only ``P`` (size ``p x p``, eigenvalues >= 1) is factorized, so this is stable for any support
    size, including an empty support (``k = 0``: the prior predictive).

    Parameters
    ----------
    phi_s, y_s: support features ``(k, p)`` and targets ``(k,)``.
    phi_q: query features ``(m, p)``.
    mu0, chol0: prior mean ``(p,)`` and lower Cholesky factor ``(p, p)`` of the prior covariance.
    noise_var: observation noise variance (same units as ``y_s`` squared).

    Returns
    -------
    ``(mean (m,), var (m,))``, or ``(mean, cov (m, m))`` with ``full_cov=True``; ``mean`` in the units
    of ``y_s``, ``var`` in those units squared.

    Example
    -------
    >>> p = torch.ones(1, 1, dtype=torch.float64)              # one constant feature: y = w + eps
    >>> mean, var = blr_predict(p, torch.tensor([2.0], dtype=torch.float64), p,
    ...                         torch.zeros(1, dtype=torch.float64), torch.eye(1, dtype=torch.float64), 1.0)
    >>> round(float(mean[0]), 6), round(float(var[0]), 6)   # prior N(0, 1), one point at 2, noise 1
    (1.0, 1.5)
    """
    p = mu0.shape[0]
    a = phi_s @ chol0
    b = phi_q @ chol0
    prec = torch.eye(p, dtype=a.dtype) + a.T @ a / noise_var
    c = torch.linalg.cholesky(prec)
    r = y_s - phi_s @ mu0
    m_v = torch.cholesky_solve((a.T @ r / noise_var)[:, None], c)[:, 0]
    mean = phi_q @ mu0 + b @ m_v
    z = torch.linalg.solve_triangular(c, b.T, upper=False)
    if full_cov:
        return mean, z.T @ z + noise_var * torch.eye(len(mean), dtype=z.dtype)
    return mean, (z * z).sum(0) + noise_var


def blr_posterior(phi_s: torch.Tensor, y_s: torch.Tensor, mu0: torch.Tensor, chol0: torch.Tensor,
                  noise_var: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior ``N(mean_w, cov_w)`` of the last-layer weights given the support (see :func:`blr_predict`).

    ``mean_w = mu0 + L P^-1 A^T (y_s - Phi_s mu0) / noise_var``, ``cov_w = L P^-1 L^T``; equal to the
    textbook form ``cov_w = (Sigma0^-1 + Phi^T Phi / s2)^-1``, ``mean_w = cov_w (Sigma0^-1 mu0 + Phi^T y / s2)``.
    Returns ``(mean_w (p,), cov_w (p, p))`` in units of ``y_s`` per unit feature.

    Example
    -------
    >>> p = torch.ones(1, 1, dtype=torch.float64)
    >>> m, c = blr_posterior(p, torch.tensor([2.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
    ...                      torch.eye(1, dtype=torch.float64), 1.0)
    >>> round(float(m[0]), 6), round(float(c[0, 0]), 6)
    (1.0, 0.5)
    """
    p = mu0.shape[0]
    a = phi_s @ chol0
    prec = torch.eye(p, dtype=a.dtype) + a.T @ a / noise_var
    c = torch.linalg.cholesky(prec)
    m_v = torch.cholesky_solve((a.T @ (y_s - phi_s @ mu0) / noise_var)[:, None], c)[:, 0]
    pinv_lt = torch.cholesky_solve(chol0.T.contiguous(), c)
    return mu0 + chol0 @ m_v, chol0 @ pinv_lt
