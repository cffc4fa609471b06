"""A GP with a Tanimoto kernel on molecular fingerprints, its hyper-parameters meta-learned across tasks.

Description
    Each task is ``y = a m(x) + b + f(x) + eps`` with ``f ~ GP(0, s_fp^2 T(fp, fp') + s_x^2 RBF_ARD(x, x') + c^2)``:
    ``T`` is the Tanimoto kernel on the fingerprint columns (:class:`TanimotoKernel`; counts or bits), the
    RBF acts on the other columns (descriptors, formulation, assay one-hots; z-scored on meta-train, columns
    constant there dropped), ``c^2`` is the prior variance of a task offset, and ``m`` an optional pooled
    model fitted on meta-train (``fit_mean``; its meta-train predictions are cross-fitted over groups, as in
    :func:`~nanonb.learners.dkt_mean.crossfit_residuals`). All hyper-parameters (``a``, ``b``, the scales,
    the length scales, the noise) are shared by the tasks and meta-learned by Adam on the conditional
    likelihood ``log p(y_query | y_support)`` of episodes of the meta-train tasks (the objective of deep
    kernel transfer, Patacchiola et al. 2020, with a fixed rather than a deep feature map). Adapting to a
    task is exact GP conditioning on its support.

    ``bayes_scale=True`` (with a pooled mean) gives each task its own scale of the pooled model,
    ``a_task ~ N(a, s_a^2)``: integrating it out adds ``s_a^2 m(x) m(x')`` to the covariance (``s_a``
    meta-learned with the rest), so a support can rescale, discount or even flip the pooled model for its
    task, where the shared ``a`` applies the pooled model alike to every task.

Example
    >>> gp = TanimotoGP(fp_columns=range(256), n_iterations=200).fit(meta_train)      # doctest: +SKIP
    >>> mean, std = gp.adapt(ep.support).predict_dist(ep.query)                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gpytorch
import numpy as np
import torch
from torch import nn

from ..tasks import Task, TaskSet
from .dkt import safe_cholesky
from .dkt_mean import crossfit_residuals

__all__ = ["TanimotoGP", "TanimotoKernel", "tanimoto"]


def tanimoto(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Tanimoto similarity ``<a, b> / (|a|^2 + |b|^2 - <a, b>)`` of every row pair, ``(n, m)``; 1 for two zero rows.

    For 0/1 fingerprints it is the usual bit Tanimoto; for count fingerprints the continuous Tanimoto
    (positive semi-definite for real vectors, Ralaivola et al. 2005).

    Example
    -------
    >>> x = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    >>> tanimoto(x, x)
    tensor([[1.0000, 0.3333],
            [0.3333, 1.0000]])
    """
    ab = a @ b.T
    aa = (a * a).sum(-1, keepdim=True)
    bb = (b * b).sum(-1, keepdim=True).T
    den = aa + bb - ab
    return torch.where(den > 0, ab / den.clamp_min(1e-12), torch.ones_like(ab))


class TanimotoKernel(gpytorch.kernels.Kernel):
    """GPyTorch kernel ``k(x, x') = tanimoto(x, x')`` (no hyper-parameters; wrap in a ``ScaleKernel``).

    Example
    -------
    >>> k = TanimotoKernel()
    >>> x = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    >>> k(x, x).to_dense().diagonal()
    tensor([1., 1.], dtype=torch.float64)
    """

    is_stationary = False

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params) -> torch.Tensor:
        if diag:
            return torch.diagonal(tanimoto(x1, x2), dim1=-2, dim2=-1)
        return tanimoto(x1, x2)


class _Hyper(nn.Module):
    """The shared hyper-parameters (log scales, log length scales, mean weight and bias, log noise; with
    ``bayes_scale`` also ``log_s_a``, the log prior standard deviation of the per-task scale of the pooled mean)."""

    def __init__(self, n_x: int, noise: float, bayes_scale: bool = False, s_a: float = 0.3):
        super().__init__()
        self.log_s_fp = nn.Parameter(torch.tensor(math.log(0.7), dtype=torch.float64))
        self.log_s_x = nn.Parameter(torch.tensor(math.log(0.5), dtype=torch.float64))
        self.log_ls = nn.Parameter(torch.full((n_x,), math.log(max(1.0, math.sqrt(n_x))), dtype=torch.float64))
        self.log_c = nn.Parameter(torch.tensor(math.log(0.3), dtype=torch.float64))
        self.log_noise = nn.Parameter(torch.tensor(math.log(noise), dtype=torch.float64))
        self.a = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
        if bayes_scale:  # only then: without it the parameters (and Adam's updates) are the same as before
            self.log_s_a = nn.Parameter(torch.tensor(math.log(s_a), dtype=torch.float64))
        self.tanimoto = TanimotoKernel()

    def cov(self, f1, x1, f2, x2, m1=None, m2=None) -> torch.Tensor:
        k = torch.exp(2 * self.log_s_fp) * self.tanimoto(f1, f2).to_dense()
        if x1.shape[1]:
            d = (x1[:, None, :] - x2[None, :, :]) / torch.exp(self.log_ls)
            k = k + torch.exp(2 * self.log_s_x) * torch.exp(-0.5 * (d**2).sum(-1))
        if hasattr(self, "log_s_a"):  # the per-task scale of the pooled mean, integrated out
            k = k + torch.exp(2 * self.log_s_a) * m1[:, None] * m2[None, :]
        return k + torch.exp(2 * self.log_c)

    def mean(self, m: torch.Tensor) -> torch.Tensor:
        return self.a * m + self.b

    @property
    def noise(self) -> torch.Tensor:
        return torch.exp(2 * self.log_noise) + 1e-4


class TanimotoGPPredictor:
    """A :class:`TanimotoGP` conditioned on one support (target units)."""

    def __init__(self, gp: TanimotoGP, support: Task | None):
        self.gp = gp
        h = gp.hyper
        if support is None or len(support) == 0:
            self.f_s = None
            return
        self.f_s, self.x_s, self.m_s = gp._split(support)
        with torch.no_grad():
            k = h.cov(self.f_s, self.x_s, self.f_s, self.x_s, self.m_s, self.m_s) + h.noise * torch.eye(
                len(support), dtype=torch.float64)
            self.chol = safe_cholesky(k, gp.name)
            r = torch.as_tensor(support.targets, dtype=torch.float64) - h.mean(self.m_s)
            self.alpha = torch.cholesky_solve(r.unsqueeze(-1), self.chol).squeeze(-1)

    @torch.no_grad()
    def predict_dist(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of a new measurement at ``inputs`` (a task or an ``(n, d)`` array)."""
        h = self.gp.hyper
        f_q, x_q, m_q = self.gp._split(inputs)
        mean = h.mean(m_q)
        var = torch.exp(2 * h.log_s_fp) + torch.exp(2 * h.log_c) + h.noise + (
            torch.exp(2 * h.log_s_x) if x_q.shape[1] else 0.0) + torch.zeros_like(mean)
        if hasattr(h, "log_s_a"):
            var = var + torch.exp(2 * h.log_s_a) * m_q**2
        if self.f_s is not None:
            k_sq = h.cov(self.f_s, self.x_s, f_q, x_q, self.m_s, m_q)
            mean = mean + k_sq.T @ self.alpha
            v = torch.linalg.solve_triangular(self.chol, k_sq, upper=False)
            var = (var - (v**2).sum(0)).clamp_min(1e-10)
        return mean.detach().numpy(), np.sqrt(var.detach().numpy())

    def predict(self, inputs) -> np.ndarray:
        """Predictive mean at ``inputs`` (target units)."""
        return self.predict_dist(inputs)[0]


class TanimotoGP:
    """Meta-learned GP: Tanimoto kernel on fingerprint columns + ARD RBF on the rest, optional pooled mean.

    Parameters
    ----------
    fp_columns:
        Indices of the fingerprint columns of the task inputs (non-negative counts or bits).
    fit_mean:
        Optional ``fit_mean(meta_train)`` returning a model with ``predict(task_or_x)``: the GP mean is
        ``a m(x) + b`` (``a``, ``b`` meta-learned); without it the mean is the constant ``b``.
    bayes_scale:
        With ``fit_mean``: a per-task scale ``a_task ~ N(a, s_a^2)`` of the pooled mean, integrated out
        (``s_a^2 m(x) m(x')`` added to the covariance; ``s_a``, dimensionless, meta-learned from
        ``scale_sd_init``). False (default): one shared ``a``, as before.
    crossfit:
        Group parts for the out-of-group mean predictions on meta-train (see :class:`MeanDKT`).
    n_iterations, lr, meta_batch_size, k_support, k_query:
        Meta-training: Adam steps, step size, episodes per step, support sizes drawn, query points.
    noise_init:
        Initial noise standard deviation (target units; LNPDB targets are z-scores).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> ts = TaskSet([Task(f"t{i}", np.hstack([rng.integers(0, 3, (20, 8)), rng.normal(size=(20, 2))]),
    ...                    rng.normal(size=20)) for i in range(4)])
    >>> gp = TanimotoGP(fp_columns=range(8), n_iterations=5).fit(ts)
    >>> mean, std = gp.adapt(ts[0].subset(range(5))).predict_dist(ts[0].subset(range(5, 20)))
    >>> mean.shape, bool((std > 0).all())
    ((15,), True)
    """

    kind = "meta"

    def __init__(self, fp_columns: Sequence[int], fit_mean: Callable[[TaskSet], object] | None = None,
                 crossfit: int = 2, n_iterations: int = 200, lr: float = 0.03, meta_batch_size: int = 8,
                 k_support: tuple[int, int] = (5, 30), k_query: int = 30, noise_init: float = 0.7, seed: int = 0,
                 name: str = "tanimoto-gp", bayes_scale: bool = False, scale_sd_init: float = 0.3):
        if bayes_scale and fit_mean is None:
            raise ValueError("bayes_scale needs a pooled mean (fit_mean): it is the per-task scale of that mean")
        self.bayes_scale, self.scale_sd_init = bool(bayes_scale), float(scale_sd_init)
        self.fp_columns = np.asarray(list(fp_columns), dtype=int)
        self.fit_mean, self.crossfit, self.name = fit_mean, int(crossfit), name
        self.n_iterations, self.lr, self.meta_batch_size = int(n_iterations), float(lr), int(meta_batch_size)
        self.k_support, self.k_query, self.noise_init, self.seed = tuple(k_support), int(k_query), noise_init, seed
        self.mean_model = None
        self.hyper: _Hyper | None = None
        self.history: list[float] = []

    def settings(self) -> dict:
        """The learner's settings, JSON-ready."""
        return {"n_fp": len(self.fp_columns), "pooled_mean": self.fit_mean is not None, "crossfit": self.crossfit,
                "n_iterations": self.n_iterations, "lr": self.lr, "k_support": list(self.k_support),
                **({"bayes_scale": True} if self.bayes_scale else {})}

    def _split(self, inputs, base: np.ndarray | None = None):
        x = np.asarray(inputs.inputs if isinstance(inputs, Task) else inputs, dtype=np.float64)
        f = torch.as_tensor(x[:, self.fp_columns])
        rest = np.clip((x[:, self.x_keep] - self.x_mu) / self.x_sd, -10, 10)
        if base is None:
            base = (np.zeros(len(x)) if self.mean_model is None
                    else np.asarray(self.mean_model.predict(inputs), dtype=np.float64).reshape(-1))
        return f, torch.as_tensor(rest), torch.as_tensor(base)

    def fit(self, meta_train: TaskSet, progress: bool = False) -> TanimotoGP:
        """Meta-learn the hyper-parameters on episodes of ``meta_train``; returns ``self``."""
        x = np.vstack([np.asarray(t.inputs, dtype=np.float64) for t in meta_train])
        other = np.setdiff1d(np.arange(x.shape[1]), self.fp_columns)
        sd = x[:, other].std(0)
        self.x_keep = other[sd > 1e-6]
        self.x_mu, self.x_sd = x[:, self.x_keep].mean(0), sd[sd > 1e-6]
        if self.fit_mean is not None:
            res = crossfit_residuals(self.fit_mean, meta_train, self.crossfit, seed=self.seed)
            bases = [t.targets - r.targets for t, r in zip(meta_train, res)]
            self.mean_model = self.fit_mean(meta_train)
        else:
            bases = [np.zeros(len(t)) for t in meta_train]
        data = [(*self._split(t, b), torch.as_tensor(t.targets, dtype=torch.float64))
                for t, b in zip(meta_train, bases)]
        torch.manual_seed(self.seed)
        self.hyper = _Hyper(len(self.x_keep), self.noise_init, self.bayes_scale, self.scale_sd_init)
        opt = torch.optim.Adam(self.hyper.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        eligible = [i for i, t in enumerate(meta_train) if len(t) > self.k_support[0] + 1]
        for _ in range(self.n_iterations):
            opt.zero_grad(set_to_none=True)
            loss = 0.0
            for _ in range(self.meta_batch_size):
                i = eligible[int(rng.integers(len(eligible)))]
                n = len(meta_train[i])
                k = int(rng.integers(self.k_support[0], min(self.k_support[1], n - 1) + 1))
                idx = torch.as_tensor(rng.permutation(n)[: k + min(self.k_query, n - k)])
                loss = loss + self._episode_nll(*(d[idx] for d in data[i]), k)
            loss = loss / self.meta_batch_size
            loss.backward()
            opt.step()
            self.history.append(float(loss.detach()))
        return self

    def _episode_nll(self, f, x, m, y, k: int) -> torch.Tensor:
        """Mean negative ``log p(y_query | y_support)`` of one episode (first ``k`` points = support)."""
        h = self.hyper
        kk = h.cov(f, x, f, x, m, m) + h.noise * torch.eye(len(y), dtype=torch.float64)
        r = y - h.mean(m)
        full = gpytorch.distributions.MultivariateNormal(torch.zeros_like(r), kk).log_prob(r)
        sup = (gpytorch.distributions.MultivariateNormal(torch.zeros(k, dtype=r.dtype), kk[:k, :k]).log_prob(r[:k])
               if k > 0 else 0.0)
        return -(full - sup) / (len(y) - k)

    def adapt(self, support: Task | None) -> TanimotoGPPredictor:
        """Condition on ``support`` (``None``: the prior predictive around the mean)."""
        if self.hyper is None:
            raise RuntimeError("This TanimotoGP is not fitted yet: call fit(meta_train) first.")
        return TanimotoGPPredictor(self, support)
