"""The autonomous-lab loop: propose new candidates with BoTorch, measure them with a live oracle, log everything.

:func:`run_live_campaign` runs rounds until ``budget`` measurements are logged:

1. measure every logged proposal that has no measurement yet (a resumed campaign starts here);
2. round 0: ``n_init`` random designs; later rounds: a fresh candidate set from the oracle (random
   designs + moves from the best measured ones), scored by the strategy's acquisition, the best
   ``batch_size`` proposed (BoTorch ``optimize_acqf_discrete``, sequential greedy for ``q > 1``);
   with ``search_steps > 0`` the acquisition is first climbed by local search from the ``search_starts``
   best-scored candidates (:func:`~nanonb.active.local_search.local_search` with the oracle's
   ``neighbours`` moves) and every design visited joins the set it is maximized over (model-based
   strategies alike; ``"random"`` picks from the generated set);
3. log the round and its proposals (acquisition value, model mean/std) in one transaction, with the
   model checkpoint; go to 1.

Strategies: ``"random"`` (the same candidate generator, a random pick), ``"meta"`` (a fitted nanonb
learner, e.g. the shipped Bayesian last layer, adapted to the measured points, through
:func:`~nanonb.active.botorch_model.learner_model`) and ``"gp"`` (plain GP-BO: BoTorch
``SingleTaskGP`` on the same descriptors, refitted each round) and ``"metagp"`` (the same GP with the
meta-learned learner's zero-shot mean as its prior mean: :func:`meta_prior_gp`). Each round's random numbers come from
``(seed, round)``, so a campaign killed at any point and resumed from its log takes the same path as
an uninterrupted one.

Example
-------
>>> res = run_live_campaign(AlloyOracle("Cu", "Pt"), "meta", surrogate=load_pretrained(),
...                         budget=20, seed=0)   # doctest: +SKIP
>>> res.best_curve[-1]                            # eV/atom  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.acquisition.monte_carlo import qUpperConfidenceBound
from botorch.generation.sampling import MaxPosteriorSampling
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler

from ..uncertainty.decision import goal_sign
from .botorch_model import PredictiveModel, learner_model
from .local_search import design_key, local_search
from .store import CampaignStore

__all__ = ["LIVE_ACQUISITIONS", "LiveResult", "calls_to_target", "fit_gp", "meta_prior_gp", "run_live_campaign"]

#: BoTorch batch acquisitions for generated candidates (``"ts"``: Thompson sampling, ``MaxPosteriorSampling``).
LIVE_ACQUISITIONS = ("qlogei", "qlognei", "qucb", "ts")


@dataclass
class LiveResult:
    """A live campaign read back from its log: ``values`` in measurement order (target units),
    ``best_curve[i]`` the best after ``i + 1`` simulator calls, ``frame`` the log (one row per proposal).

    Example
    -------
    >>> res.best_curve[-1], calls_to_target(res.best_curve, target, "min")   # doctest: +SKIP
    """

    name: str
    strategy: str
    seed: int
    goal: str
    values: np.ndarray
    best_curve: np.ndarray
    frame: pd.DataFrame
    runtime_s: float

    @property
    def best_design(self) -> dict:
        """The best measured design."""
        m = self.frame.dropna(subset=["value"])
        i = m["value"].idxmin() if self.goal == "min" else m["value"].idxmax()
        return json.loads(m.loc[i, "candidate"])


def calls_to_target(best_curve: np.ndarray, target: float, goal: str, tol: float = 0.0) -> int | None:
    """Simulator calls until the best-so-far is within ``tol`` of ``target`` (``None``: never).

    Example
    -------
    >>> calls_to_target(np.array([0.0, -0.1, -0.2]), -0.195, "min", tol=0.005)
    3
    """
    s = goal_sign(goal)
    hit = np.flatnonzero(s * np.asarray(best_curve) >= s * target - tol)
    return int(hit[0]) + 1 if len(hit) else None


def fit_gp(x: np.ndarray, y_score: np.ndarray, bounds: np.ndarray, seed: int = 0, init: dict | None = None):
    """Plain GP-BO surrogate: BoTorch ``SingleTaskGP`` (its default RBF kernel, one length scale per input,
    log-normal priors; inputs scaled to the unit cube by ``bounds`` (2, d), outcome standardized), marginal
    likelihood maximized by ``fit_gpytorch_mll``.

    ``init`` (warm start): a state dict (name -> array) of an earlier fit, e.g. the previous round's
    checkpoint; its hyper-parameters (noise, constant mean, length scales: the model's parameters, not the
    data-dependent buffers such as the outcome standardization) are where the optimizer starts. A key the GP
    does not have, or a parameter of another shape (a fit on a different number of inputs), is an error.

    Example
    -------
    >>> gp = fit_gp(np.random.rand(6, 2), np.random.rand(6), np.array([[0, 0], [1, 1.0]]))   # doctest: +SKIP
    >>> gp2 = fit_gp(np.random.rand(7, 2), np.random.rand(7), np.array([[0, 0], [1, 1.0]]),
    ...              init=gp.state_dict())                                                    # doctest: +SKIP
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)  # fit_gpytorch_mll's retries draw from torch's generator
    tx = torch.as_tensor(x, dtype=torch.float64)
    ty = torch.as_tensor(y_score, dtype=torch.float64).reshape(-1, 1)
    gp = SingleTaskGP(tx, ty, input_transform=Normalize(tx.shape[-1], bounds=torch.as_tensor(bounds)),
                      outcome_transform=Standardize(1))
    if init:
        params, known = dict(gp.named_parameters()), set(gp.state_dict())
        unknown = sorted(set(init) - known)
        bad = sorted(k for k, v in init.items() if k in params and tuple(params[k].shape) != tuple(np.shape(v)))
        if unknown or bad:
            raise ValueError(f"fit_gp(init=...) does not match this GP ({tx.shape[-1]} inputs): unknown keys "
                             f"{unknown}, wrong shapes {bad}; pass the state dict of a fit on the same inputs")
        with torch.no_grad():
            for k, v in init.items():
                if k in params:
                    params[k].copy_(torch.as_tensor(np.asarray(v), dtype=params[k].dtype))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    return gp


def meta_prior_gp(surrogate, x: np.ndarray, y: np.ndarray, bounds: np.ndarray, sign: float = 1.0, seed: int = 0,
                  init: dict | None = None):
    """GP-BO with the meta-learned model as its prior mean: a ``SingleTaskGP`` on the residuals
    ``y - m0(x)``, where ``m0`` is the learner's zero-shot mean (what it believes before any measurement
    of this task). Returns ``(model, gp)``; ``model`` is a BoTorch model of ``sign * y``; ``init``: warm
    start of the GP fit (:func:`fit_gp`).

    Example
    -------
    >>> model, gp = meta_prior_gp(load_pretrained(), x, y, bounds, sign=-1)   # doctest: +SKIP
    """
    m0 = learner_model(surrogate, x[:0], y[:0]).mean_std
    gp = fit_gp(x, sign * (y - m0(x)[0]), bounds, seed=seed, init=init)

    def mean_std(xq):
        with torch.no_grad():
            post = gp.posterior(torch.as_tensor(xq, dtype=torch.float64))
        return (m0(xq)[0] + sign * post.mean.reshape(-1).numpy(),
                post.variance.reshape(-1).clamp_min(0).sqrt().numpy())

    return PredictiveModel(mean_std, sign=sign), gp


def _acquisition(name: str, model, best_f: float, x_meas: torch.Tensor, seed: int):
    sampler = SobolQMCNormalSampler(torch.Size([128]), seed=seed)
    if name == "qlogei":
        return qLogExpectedImprovement(model, best_f=best_f, sampler=sampler)
    if name == "qlognei":
        return qLogNoisyExpectedImprovement(model, X_baseline=x_meas, sampler=sampler, prune_baseline=False)
    if name == "qucb":
        return qUpperConfidenceBound(model, beta=4.0, sampler=sampler)
    raise ValueError(f"unknown acquisition {name!r}; choose from {LIVE_ACQUISITIONS}")


def _bounds(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(axis=0), x.max(axis=0)
    return np.stack([lo, np.where(hi > lo, hi, lo + 1.0)])


def _scorer(model, acq_fn) -> Callable[[np.ndarray], np.ndarray]:
    """Score of each design alone (``q = 1``): the acquisition, or the posterior mean where there is none (TS)."""
    def score(x: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(x, dtype=torch.float64).unsqueeze(-2)
        with torch.no_grad():
            if acq_fn is None:
                return model.posterior(t).mean.reshape(-1).numpy()
            return np.concatenate([acq_fn(c).reshape(-1).numpy() for c in t.split(512)])
    return score


def _propose(strategy, surrogate, acquisition, x_meas, y_meas, x_cand, q, sign, rng, seed, search=None, init=None):
    """``(positions into the pool, acq values, model means, model stds, checkpoint tensors, designs added)``:
    the pool is ``x_cand`` followed by what ``search(score, x_cand)`` (the local search) added."""
    if strategy == "random":
        return rng.choice(len(x_cand), size=q, replace=False), None, None, None, {}, []
    if strategy == "meta":
        model = learner_model(surrogate, x_meas, y_meas, sign=sign)
        ckpt = {"x_support": x_meas, "y_support": y_meas}
    elif strategy == "gp":
        bounds = _bounds(np.vstack([x_meas, x_cand]))
        model = fit_gp(x_meas, sign * y_meas, bounds, seed=seed, init=init)
        ckpt = {k: v for k, v in model.state_dict().items()}
    elif strategy == "metagp":
        model, gp = meta_prior_gp(surrogate, x_meas, y_meas, _bounds(np.vstack([x_meas, x_cand])), sign, seed,
                                  init=init)
        ckpt = {k: v for k, v in gp.state_dict().items()}
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from 'random', 'meta', 'gp', 'metagp'")
    tm = torch.as_tensor(x_meas, dtype=torch.float64)
    acq_fn = None if acquisition == "ts" else _acquisition(acquisition, model, float(np.max(sign * y_meas)), tm, seed)
    added: list[dict] = []
    if search is not None:
        added, x_added = search(_scorer(model, acq_fn), x_cand)
        if added:
            x_cand = np.vstack([x_cand, x_added])
    tc = torch.as_tensor(x_cand, dtype=torch.float64)
    torch.manual_seed(seed)
    if acq_fn is None:
        with torch.no_grad():
            picked = MaxPosteriorSampling(model, replacement=False)(tc, num_samples=q)
        acq = None
    else:
        picked, acq = optimize_acqf_discrete(acq_fn, q=q, choices=tc)
        acq = np.atleast_1d(acq.detach().numpy())
    pos: list[int] = []
    for row in picked.detach().numpy().reshape(q, -1):
        match = [int(i) for i in np.flatnonzero(np.all(np.isclose(x_cand, row, rtol=0, atol=1e-9), axis=1))
                 if int(i) not in pos]
        pos.append(match[0])
    with torch.no_grad():
        post = model.posterior(tc[pos].unsqueeze(-2))
    mean = sign * post.mean.reshape(-1).numpy()
    std = post.variance.reshape(-1).clamp_min(0).sqrt().numpy()
    return np.asarray(pos), acq, mean, std, ckpt, added


def run_live_campaign(oracle, strategy: str = "meta", surrogate=None, budget: int = 30, n_init: int = 3,
                      batch_size: int = 1, n_candidates: int = 128, seed: int = 0, acquisition: str = "qlogei",
                      store: CampaignStore | None = None, name: str | None = None, max_rounds: int | None = None,
                      checkpoints: bool = True, on_round: Callable | None = None, search_steps: int = 0,
                      search_starts: int = 8, search_neighbours: int = 16, warm_start: bool = False) -> LiveResult:
    """Run (or resume) a live campaign with ``oracle`` until ``budget`` measurements are logged.

    Parameters
    ----------
    oracle:
        E.g. :class:`~nanonb.active.oracle.AlloyOracle` (EMT) or :class:`~nanonb.active.oracle.CSVDropOracle`.
    strategy, surrogate:
        ``"random"``, ``"meta"`` (``surrogate``: a fitted learner on the oracle's descriptors) or ``"gp"``.
    budget, n_init, batch_size, n_candidates:
        Simulator calls in all, random first designs, proposals per round, candidates scored per round.
    acquisition:
        One of :data:`LIVE_ACQUISITIONS` (BoTorch).
    search_steps, search_starts, search_neighbours:
        Acquisition local search (model-based strategies; needs ``oracle.neighbours``): up to
        ``search_steps`` hill-climbing steps from the ``search_starts`` best-scored candidates,
        ``search_neighbours`` moves scored per chain and step; 0 steps: pick among the generated set only.
    warm_start:
        ``"gp"``/``"metagp"``: start each round's GP fit from the hyper-parameters of the previous round's
        checkpoint in the log (:func:`fit_gp` ``init``; a resumed campaign reads the same one); the first fit,
        and every fit with ``checkpoints=False``, starts cold.
    store, name:
        The log (default: in memory) and the campaign's name in it; the same name resumes it.
    max_rounds:
        Stop after this many *new* rounds (a dashboard's "run next round" uses 1).
    on_round:
        Called as ``on_round(result_so_far)`` after each round's measurements.

    Example
    -------
    >>> store = CampaignStore("lab.sqlite")                                             # doctest: +SKIP
    >>> run_live_campaign(AlloyOracle("Cu", "Pt"), "gp", budget=20, store=store)       # doctest: +SKIP
    """
    t0 = time.perf_counter()
    store = store if store is not None else CampaignStore(":memory:")
    name = name or f"{oracle.name}/{strategy}-{acquisition}/seed{seed}"
    cfg = {"strategy": strategy, "acquisition": acquisition, "budget": int(budget), "n_init": int(n_init),
           "batch_size": int(batch_size), "n_candidates": int(n_candidates), "seed": int(seed),
           "surrogate": getattr(surrogate, "name", None), **oracle.config()}
    if search_steps > 0:
        if not hasattr(oracle, "neighbours"):
            raise ValueError(f"search_steps > 0 needs an oracle with neighbours(rng, design, n); {oracle.name} has"
                             " none")
        cfg |= {"search_steps": int(search_steps), "search_starts": int(search_starts),
                "search_neighbours": int(search_neighbours)}
    if warm_start:
        cfg["warm_start"] = True
    cid = store.campaign(name, cfg)
    sign = goal_sign(oracle.goal)
    new_rounds = 0
    while True:
        pending = store.pending(cid)
        if pending:
            for pid, value in oracle.measure_batch(pending):
                store.measure(pid, value, source=oracle.source)
            if on_round is not None:
                on_round(_result(store, cid, name, strategy, seed, oracle.goal, t0))
        frame = store.to_frame(cid)
        if len(frame) >= budget or (max_rounds is not None and new_rounds >= max_rounds):
            break
        rnd = store.n_rounds(cid)
        rng = np.random.default_rng([int(seed), rnd, 2718])
        if rnd == 0:
            designs = oracle.initial(rng, min(n_init, budget))
            props = [{"candidate": d} for d in designs]
            n_scored = len(designs)
        else:
            seen = set(frame["candidate"])
            order = np.argsort(-sign * frame["value"].to_numpy(), kind="stable")
            incumbents = [json.loads(frame["candidate"].iloc[i]) for i in order]
            cands = [d for d in oracle.candidates(rng, incumbents, n_candidates)
                     if design_key(d) not in seen]
            cands = list({design_key(d): d for d in cands}.values())
            x_cand = oracle.describe(cands)
            x_meas = np.array([json.loads(s) for s in frame["descriptors"]])
            q = min(batch_size, budget - len(frame), len(cands))
            search = None
            if search_steps > 0:
                pool_keys = seen | {design_key(d) for d in cands}

                def search(score, x, cands=cands, pool_keys=pool_keys, rng=rng):
                    s = score(x)
                    top = np.argsort(-s, kind="stable")[:search_starts]
                    return local_search(score, oracle.neighbours, oracle.describe, [cands[i] for i in top], s[top],
                                        pool_keys, rng, search_steps, search_neighbours)
            init = _warm_start(store, cid, rnd) if warm_start and strategy in ("gp", "metagp") else None
            pos, acq, mean, std, ckpt, added = _propose(strategy, surrogate, acquisition, x_meas,
                                                        frame["value"].to_numpy(), x_cand, q, sign, rng,
                                                        seed * 10007 + rnd, search, init)
            cands = cands + added
            props = [{"candidate": cands[p], "acq_value": None if acq is None else acq[min(j, len(acq) - 1)],
                      "model_mean": None if mean is None else mean[j], "model_std": None if std is None else std[j]}
                     for j, p in enumerate(pos)]
            designs = [cands[p] for p in pos]
            n_scored = len(cands)
            if checkpoints and ckpt:
                store.checkpoint(cid, rnd, {"strategy": strategy, "n_measured": len(frame),
                                            "surrogate": cfg["surrogate"]}, ckpt)
        for p, x in zip(props, oracle.describe(designs)):
            p["descriptors"] = x
        store.add_round(cid, rnd, props, n_candidates=n_scored)
        new_rounds += 1
    return _result(store, cid, name, strategy, seed, oracle.goal, t0)


def _warm_start(store, cid, rnd) -> dict | None:
    """The previous round's checkpoint tensors (``None`` for round 1 or when it has none)."""
    try:
        return store.load_checkpoint(cid, rnd - 1)[1] if rnd > 1 else None
    except KeyError:
        return None


def _result(store, cid, name, strategy, seed, goal, t0) -> LiveResult:
    frame = store.to_frame(cid)
    vals = frame["value"].dropna().to_numpy(float)
    s = goal_sign(goal)
    best = s * np.maximum.accumulate(s * vals) if len(vals) else vals
    return LiveResult(name=name, strategy=strategy, seed=int(seed), goal=goal, values=vals, best_curve=best,
                      frame=frame, runtime_s=time.perf_counter() - t0)
