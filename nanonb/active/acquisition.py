"""Acquisition functions: one signature, one registry, the goal's sign applied in one place.

Every acquisition function *maximizes* a utility of a goal-oriented score ``s``: ``s = y`` when the
goal is the largest value (``goal="max"``: CALiSol conductivity, LNP efficacy) and ``s = -y`` when it
is the smallest (``goal="min"``: nanoalloy mixing energy, where the most negative value is the most
stable alloy). :func:`select_batch` does the sign flip, so the functions below are written for
maximization with ``mean``/``std`` of ``s`` and ``best`` = the best ``s`` measured so far.
:data:`GOALS` holds the goal of each bundled data set.

The functions are BoTorch's analytic acquisitions (``PosteriorMean``, ``UpperConfidenceBound``,
``ExpectedImprovement``, ``LogExpectedImprovement``, ``PosteriorStandardDeviation``) evaluated on a
pool through :func:`~nanonb.active.botorch_model.index_model`; only Thompson sampling stays
hand-written (see its docstring). Batch (``q > 1``) BoTorch acquisitions on generated candidates live
in :mod:`nanonb.active.live`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from botorch.acquisition.analytic import (
    ExpectedImprovement,
    LogExpectedImprovement,
    PosteriorMean,
    PosteriorStandardDeviation,
    UpperConfidenceBound,
)
from botorch.exceptions.warnings import NumericsWarning

from ..uncertainty.decision import goal_sign
from .botorch_model import index_model

#: Optimization goal of the bundled data sets: "min" = most negative is best, "max" = largest is best.
GOALS: dict[str, str] = {"nanoalloys": "min", "calisol": "max", "lnpdb": "max"}


def _analytic(acq_cls, mean, std, **kwargs) -> np.ndarray:
    """Evaluate a BoTorch analytic acquisition on every candidate of a pool (``q = 1`` each)."""
    mean = np.asarray(mean, dtype=np.float64)
    x = torch.arange(len(mean), dtype=torch.float64).reshape(-1, 1, 1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericsWarning)  # plain EI is asked for on purpose ("logei" is there too)
        return acq_cls(index_model(mean, std), **kwargs)(x).numpy().astype(np.float64)


def greedy_mean(mean: np.ndarray, std: np.ndarray, best: float | None = None, **_) -> np.ndarray:
    """Pure exploitation: ``a(x) = mu(x)`` (units of the score); BoTorch ``PosteriorMean``.

    Example
    -------
    >>> greedy_mean(np.array([1.0, 2.0]), np.array([5.0, 0.1])).tolist()
    [1.0, 2.0]
    """
    return _analytic(PosteriorMean, mean, std)


def upper_confidence_bound(mean: np.ndarray, std: np.ndarray, best: float | None = None, beta: float = 2.0,
                           **_) -> np.ndarray:
    """Optimism under uncertainty: ``a(x) = mu(x) + beta sigma(x)`` (``beta = 2`` by default; score units).

    BoTorch ``UpperConfidenceBound`` writes ``mu + sqrt(beta') sigma``; it is called with ``beta' = beta**2``.

    Example
    -------
    >>> upper_confidence_bound(np.array([1.0, 2.0]), np.array([1.0, 0.1])).round(12).tolist()
    [3.0, 2.2]
    """
    return _analytic(UpperConfidenceBound, mean, std, beta=float(beta) ** 2)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, **_) -> np.ndarray:
    """Expected improvement over ``best``: ``E[max(s - best - xi, 0)]`` for ``s ~ N(mu, sigma^2)``.

    ``a(x) = (mu - best - xi) Phi(z) + sigma phi(z)`` with ``z = (mu - best - xi) / sigma``
    (``Phi``/``phi``: standard normal cdf/pdf); BoTorch ``ExpectedImprovement`` (which floors
    ``sigma`` at 1e-6, so ``sigma = 0`` gives ``max(mu - best - xi, 0)``). Units of the score.

    Example
    -------
    >>> expected_improvement(np.array([1.0, 0.0]), np.array([0.0, 1.0]), best=0.0).round(4).tolist()
    [1.0, 0.3989]
    """
    return _analytic(ExpectedImprovement, mean, std, best_f=float(best) + float(xi))


def log_expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, **_) -> np.ndarray:
    """``log EI`` (BoTorch ``LogExpectedImprovement``): the same ranking as EI, numerically stable far
    below ``best`` where EI underflows to 0 (log of score units).

    Example
    -------
    >>> int(np.argmax(log_expected_improvement(np.array([-30.0, -40.0]), np.ones(2), best=0.0)))
    0
    """
    return _analytic(LogExpectedImprovement, mean, std, best_f=float(best) + float(xi))


def max_variance(mean: np.ndarray, std: np.ndarray, best: float | None = None, **_) -> np.ndarray:
    """Pure exploration (uncertainty sampling): ``a(x) = sigma(x)^2`` (score units squared);
    BoTorch ``PosteriorStandardDeviation``, squared.

    Example
    -------
    >>> max_variance(np.array([1.0, 2.0]), np.array([0.5, 2.0])).round(12).tolist()
    [0.25, 4.0]
    """
    return _analytic(PosteriorStandardDeviation, mean, std) ** 2


def thompson_sampling(mean: np.ndarray, std: np.ndarray, best: float | None = None,
                      rng: np.random.Generator | None = None, sample: np.ndarray | None = None, **_) -> np.ndarray:
    """Thompson sampling: ``a(x) = s~(x)``, one draw from the predictive distribution.

Kept hand-written (BoTorch's ``MaxPosteriorSampling`` serves the live loop, :mod:`.live`): draws
come from a NumPy generator, so a campaign is reproducible from its seed, and a learner's own
weight-space sampler (cost independent of the pool size) can be plugged in.

    ``sample`` is a joint posterior draw when the model provides one (the Bayesian last layer
    does); otherwise independent marginal draws ``s~(x) = mu(x) + sigma(x) eps``, ``eps ~ N(0, 1)``.
    Units of the score.

    Example
    -------
    >>> thompson_sampling(np.zeros(3), np.zeros(3), rng=np.random.default_rng(0)).tolist()
    [0.0, 0.0, 0.0]
    """
    if sample is not None:
        return np.asarray(sample, dtype=np.float64)
    rng = rng if rng is not None else np.random.default_rng()
    return np.asarray(mean, dtype=np.float64) + np.asarray(std, dtype=np.float64) * rng.standard_normal(len(mean))


ACQUISITIONS: dict[str, Callable[..., np.ndarray]] = {
    "greedy": greedy_mean,
    "ucb": upper_confidence_bound,
    "ei": expected_improvement,
    "logei": log_expected_improvement,
    "maxvar": max_variance,
    "thompson": thompson_sampling,
}


def select_batch(acquisition: str | Callable, mean: np.ndarray, std: np.ndarray, best: float, batch_size: int = 1,
                 goal: str = "max", rng: np.random.Generator | None = None,
                 sampler: Callable[[int], np.ndarray] | None = None, **acq_kwargs) -> np.ndarray:
    """Positions (into ``mean``) of the ``batch_size`` candidates to measure next.

    ``mean``, ``std`` and ``best`` are in target units; the goal sign is applied here. Deterministic
    acquisitions take the top ``batch_size`` utilities (ties broken by position). Thompson sampling
    draws one sample per batch slot and takes its best not-yet-chosen candidate; ``sampler(n)``
    (optional) returns ``n`` joint samples of the target, shape ``(n, len(mean))``.

    Example
    -------
    >>> select_batch("ei", np.array([1.0, 3.0, 2.0]), np.full(3, 0.1), best=1.5, batch_size=2, goal="min").tolist()
    [0, 2]
    """
    sign = goal_sign(goal)
    name = acquisition if isinstance(acquisition, str) else getattr(acquisition, "__name__", "custom")
    fn = ACQUISITIONS.get(acquisition) if isinstance(acquisition, str) else acquisition
    if fn is None:
        raise ValueError(f"unknown acquisition {acquisition!r}; choose from {sorted(ACQUISITIONS)} or 'random'")
    mean_s, std = sign * np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    best_s = sign * best
    b = min(int(batch_size), len(mean_s))
    if b < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if name in ("thompson", "thompson_sampling"):
        rng = rng if rng is not None else np.random.default_rng()
        samples = sign * sampler(b) if sampler is not None else [None] * b
        chosen: list[int] = []
        for i in range(b):
            u = fn(mean_s, std, best_s, rng=rng, sample=samples[i], **acq_kwargs)
            u[chosen] = -np.inf
            chosen.append(int(np.argmax(u)))
        return np.asarray(chosen, dtype=int)
    u = fn(mean_s, std, best_s, **acq_kwargs)
    return np.argsort(-u, kind="stable")[:b]
