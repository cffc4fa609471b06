"""Any fitted nanonb learner with ``predict_dist`` as a BoTorch model (a Gaussian posterior over candidates).

BoTorch acquisition functions (``qLogExpectedImprovement``, ``qUpperConfidenceBound``, noisy EI,
posterior sampling) and ``optimize_acqf`` only ask a model for ``posterior(X)``, a distribution over
the objective at the ``q`` points of each batch of ``X`` (shape ``(..., q, d)``). :class:`PredictiveModel`
supplies it from two functions of a flat array of inputs ``(m, d)``:

- ``mean_std(x) -> (mean, std)``: the marginals (any learner's ``adapt(support).predict_dist``);
  batches of ``q`` points then get a diagonal covariance (points independent);
- ``factor(x) -> (mean, F, noise_var)`` (optional): a joint posterior ``cov = F F^T + diag(noise_var)``.
  The Bayesian last layer has one: ``F = phi(x) L_w`` with the posterior weight covariance
  ``Sigma_w = L_w L_w^T``, so batch acquisitions see the correlations between candidates.

:func:`learner_model` builds one from a learner and the measured points; :func:`index_model` from
plain ``(mean, std)`` arrays (the pool campaigns: candidate ``i`` is input ``[i]``). A GPyTorch
learner (the deep kernel GP, :mod:`nanonb.learners.dkt`) is served by the same marginal path; BoTorch's
own ``SingleTaskGP`` is the plain GP-BO baseline.

Example
-------
>>> import numpy as np, torch
>>> m = index_model(np.array([0.0, 1.0]), np.array([1.0, 0.5]))
>>> m.posterior(torch.tensor([[[1.0]]], dtype=torch.float64)).mean.item()
1.0
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal

from ..learners.blr import blr_posterior
from ..tasks import Task

__all__ = ["PredictiveModel", "index_model", "learner_model"]

_JITTER = 1e-12


class PredictiveModel(Model):
    """A BoTorch :class:`~botorch.models.model.Model` over a learner's predictive distribution (target units).

    Parameters
    ----------
    mean_std:
        ``x (m, d) float64 array -> (mean (m,), std (m,))`` in target units.
    factor:
        Optional ``x -> (mean (m,), F (m, p), noise_var (m,))``: joint covariance ``F F^T + diag(noise_var)``.
    sign:
        ``+1`` (maximize the target) or ``-1`` (minimize): BoTorch maximizes, so the posterior is of ``sign * y``.

    Example
    -------
    >>> import numpy as np, torch
    >>> m = PredictiveModel(lambda x: (x[:, 0], np.ones(len(x))), sign=-1)
    >>> m.posterior(torch.tensor([[2.0], [3.0]], dtype=torch.float64)).mean.squeeze(-1).tolist()
    [-2.0, -3.0]
    """

    def __init__(self, mean_std: Callable, factor: Callable | None = None, sign: float = 1.0):
        super().__init__()
        self.mean_std, self.factor, self.sign = mean_std, factor, float(sign)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def posterior(self, X: torch.Tensor, output_indices=None, observation_noise=False, posterior_transform=None,
                  **kwargs) -> GPyTorchPosterior:
        """Gaussian posterior of ``sign * y`` at ``X`` (``(..., q, d)``); batches of ``q`` points are joint."""
        X = torch.as_tensor(X, dtype=torch.float64)
        *batch, q, d = X.shape
        x = X.detach().reshape(-1, d).numpy()
        if self.factor is not None and q > 1:
            mean, f, noise = self.factor(x)
            f_t = torch.as_tensor(np.asarray(f, dtype=np.float64)).reshape(*batch, q, -1)
            cov = f_t @ f_t.transpose(-1, -2)
            cov = cov + torch.diag_embed(torch.as_tensor(np.asarray(noise, dtype=np.float64)).reshape(*batch, q))
            cov = cov + _JITTER * torch.eye(q, dtype=torch.float64)
        else:
            mean, std = self.mean_std(x)
            var = torch.as_tensor(np.asarray(std, dtype=np.float64) ** 2).reshape(*batch, q).clamp_min(1e-24)
            cov = torch.diag_embed(var)
        mean_t = self.sign * torch.as_tensor(np.asarray(mean, dtype=np.float64)).reshape(*batch, q)
        post = GPyTorchPosterior(MultivariateNormal(mean_t, cov))
        return posterior_transform(post) if posterior_transform is not None else post


def index_model(mean: np.ndarray, std: np.ndarray, sign: float = 1.0) -> PredictiveModel:
    """A model over a fixed pool: input ``[i]`` (a float index) has mean ``mean[i]`` and s.d. ``std[i]``.

    Example
    -------
    >>> import torch
    >>> index_model(np.array([5.0, 7.0]), np.array([0.1, 0.2])).posterior(
    ...     torch.tensor([[0.0], [1.0]])).variance.squeeze(-1).tolist()
    [0.010000000000000002, 0.04000000000000001]
    """
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def mean_std(x):
        i = np.rint(x[:, 0]).astype(int)
        return mean[i], std[i]

    return PredictiveModel(mean_std, sign=sign)


def _bml_core(learner):
    """The BayesianMetaLearner inside ``learner`` (an OnDescriptors wrapper or the learner), or None."""
    inner = getattr(learner, "learner", learner)
    return inner if hasattr(inner, "_prior") and hasattr(inner, "features") else None


def _bml_factor(core, adapted) -> Callable:
    """``x -> (mean, F, noise_var)`` of one adapted Bayesian last layer (target units)."""
    mu0, chol, s2 = core._prior()
    with torch.no_grad():
        m_w, cov_w = blr_posterior(adapted.phi_s, adapted.y_s, mu0, chol, s2)
    a, b = core.var_factors
    cov_w = 0.5 * (cov_w + cov_w.T) * a
    l_w = torch.linalg.cholesky(cov_w + 1e-12 * torch.eye(len(cov_w), dtype=cov_w.dtype))
    y_std, y_mean = core.scaler.y_std, core.scaler.y_mean

    def factor(x):
        phi = core.features(np.asarray(x, dtype=np.float32))
        mean = (phi @ m_w).numpy() * y_std + y_mean
        return mean, (phi @ l_w).numpy() * y_std, np.full(len(x), b * float(s2.detach()) * y_std**2)

    return factor


def _mixture_factor(factors: list[Callable]) -> Callable:
    """The moment-matched joint Gaussian of an equal-weight mixture of joint Gaussians given by ``factors``.

    ``cov = mean_i (F_i F_i^T + diag(noise_i)) + mean_i (m_i - m)(m_i - m)^T``, as one factor
    ``[F_1, ..., F_M, m_1 - m, ..., m_M - m] / sqrt(M)`` (its diagonal is the mixture variance of
    :func:`nanonb.learners.bml_ensemble.mixture_moments`).
    """
    def factor(x):
        parts = [f(x) for f in factors]
        means = np.stack([np.asarray(p[0], dtype=np.float64) for p in parts])
        mean, scale = means.mean(0), 1.0 / np.sqrt(len(parts))
        cols = [np.asarray(p[1], dtype=np.float64) for p in parts] + [(means - mean).T]
        return mean, np.concatenate(cols, axis=1) * scale, np.mean([p[2] for p in parts], axis=0)

    return factor


def learner_model(learner, x_measured: np.ndarray, y_measured: np.ndarray, sign: float = 1.0,
                  joint: bool = True) -> PredictiveModel:
    """A fitted learner adapted to the measured points ``(x_measured, y_measured)``, as a BoTorch model.

    ``x_*`` are model inputs (e.g. the 12 cluster descriptors, shape ``(n, d)``), ``y_measured`` in
    target units. Any learner with ``adapt(Task).predict_dist(x)`` works (marginals); a Bayesian
    last layer (``"bml"``, bare or in :class:`~nanonb.learners.descriptors.OnDescriptors`) also gives
    the joint posterior of a batch when ``joint=True``, and so does an ensemble of them (``"bml-ens"``:
    the moment-matched Gaussian of the members' mixture).

    Example
    -------
    >>> model = learner_model(load_pretrained(), x, y, sign=-1)   # doctest: +SKIP
    """
    x_measured = np.asarray(x_measured, dtype=np.float32)
    y_measured = np.asarray(y_measured, dtype=np.float64)
    core = _bml_core(learner)
    inner = getattr(learner, "learner", learner)
    members = getattr(inner, "members", None)
    cores = [_bml_core(m) for m in members] if core is None and members else []
    ensemble = bool(cores) and all(c is not None for c in cores)
    target = core if core is not None else inner if ensemble else learner
    support = Task("measured", x_measured, y_measured) if len(y_measured) else None
    adapted = target.adapt(support)

    def mean_std(x):
        return adapted.predict_dist(np.asarray(x, dtype=np.float32))

    if not joint or (core is None and not ensemble):
        return PredictiveModel(mean_std, sign=sign)
    if ensemble:
        factor = _mixture_factor([_bml_factor(c, a) for c, a in zip(cores, adapted.adapted)])
    else:
        factor = _bml_factor(core, adapted)
    return PredictiveModel(mean_std, factor, sign=sign)
