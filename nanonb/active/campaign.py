"""Simulated active-learning campaigns on held-out tasks whose labels are known but hidden.

A *campaign* (:func:`run_campaign`) simulates a lab loop on one task: measure ``n_init`` random
candidates, then repeatedly adapt the model to everything measured, score the unmeasured
candidates by the acquisition function, "measure" the best batch (reveal its labels) and record the
best value so far and the model's error on the unmeasured candidates. Candidates are existing data
points of the task, so every proposal satisfies the task's constraints (valid compositions,
physically made electrolytes, synthesizable lipids) by construction: the loop ranks, it never
invents inputs. :func:`compare_strategies` runs many, :func:`campaign_summary` and
:func:`best_so_far_curves` aggregate them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..tasks import Task, TaskSet
from ..uncertainty.decision import goal_sign
from ..uncertainty.evaluation import task_model
from ..uncertainty.metrics import gaussian_nll
from .acquisition import select_batch


@dataclass
class CampaignResult:
    """One simulated campaign. Indices refer to rows of the task.

    ``history`` has one row per round: ``round``, ``n_measured`` (after the round),
    ``best_so_far`` (target units), ``mae_pool`` / ``nll_pool`` (the model, adapted to the points
    measured before the round, on every unmeasured candidate; NaN without a model) and ``picked``.
    ``best_curve[i]`` is the best value after ``i + 1`` experiments. ``experiments_to_top`` counts
    experiments (initial random ones included) until the first top-``top_fraction`` candidate of
    the pool is measured; ``None`` if not within the budget. ``auc_best_so_far`` is the mean over
    experiments ``1..budget`` of the normalized best-so-far ``(s_best - s_min) / (s_max - s_min)``
    (pool extremes; 1 = the best candidate found by the first experiment).

    Example
    -------
    >>> r = run_campaign(task, bml, "ei", budget=20, goal="min")   # doctest: +SKIP
    >>> r.summary()["experiments_to_top"], r.acquired(task)         # doctest: +SKIP
    """

    task: str
    strategy: str
    seed: int
    goal: str
    candidates: np.ndarray
    measured: np.ndarray
    history: pd.DataFrame
    best_curve: np.ndarray
    threshold: float
    n_top: int
    experiments_to_top: int | None
    auc_best_so_far: float
    budget: int
    pool_best: float = float("nan")
    pool_worst: float = float("nan")
    runtime_s: float = 0.0

    def acquired(self, task: Task) -> Task:
        """The measured points as a task (same name, groups and units)."""
        if task.name != self.task:
            raise ValueError(f"this campaign ran on task {self.task!r}, not {task.name!r}")
        return task.subset(self.measured)

    def summary(self) -> dict:
        return {"strategy": self.strategy, "task": self.task, "seed": self.seed,
                "experiments_to_top": self.experiments_to_top, "found": self.experiments_to_top is not None,
                "auc_best_so_far": self.auc_best_so_far, "final_best": float(self.best_curve[-1]),
                "final_mae": float(self.history["mae_pool"].iloc[-1]), "budget": self.budget,
                "runtime_s": self.runtime_s}


def campaign_pool(task: Task, seed: int, n_init: int, max_pool: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pool and initial random points of a campaign: a function of ``seed`` only.

    Every strategy run with the same seed on the same task starts from the same points. Returns
    ``(pool, init)``, row indices of ``task``.

    Example
    -------
    >>> pool, init = campaign_pool(task, seed=0, n_init=3, max_pool=40)   # doctest: +SKIP
    """
    n = len(task)
    rng = np.random.default_rng([int(seed), 104729])
    pool = np.sort(rng.choice(n, size=max_pool, replace=False)) if max_pool is not None and n > max_pool else (
        np.arange(n))
    if not 1 <= n_init < len(pool):
        raise ValueError(f"n_init={n_init} must be in [1, {len(pool) - 1}] for a pool of {len(pool)} candidates")
    init = rng.choice(pool, size=n_init, replace=False)
    return pool, init


def run_campaign(task: Task, method=None, acquisition: str | Callable = "ei", n_init: int = 3, batch_size: int = 1,
                 budget: int = 30, seed: int = 0, goal: str = "max", top_fraction: float = 0.05,
                 max_pool: int | None = None, strategy: str | None = None, acq_kwargs: Mapping | None = None
                 ) -> CampaignResult:
    """Simulate an active-learning campaign on ``task`` (labels hidden until "measured").

    Parameters
    ----------
    task:
        The held-out system; its points are the candidates (capped at ``max_pool``, a random
        subset fixed by ``seed``).
    method:
        A fitted uncertainty method (:class:`~nanonb.learners.alpaca.BayesianMetaLearner`,
        :class:`~nanonb.learners.ensemble.EnsembleMetaLearner`, :class:`~nanonb.baselines.gp.SupportGP`,
        ...). ``None`` only with ``acquisition="random"``; with ``"random"`` and a method, the
        method is still fitted each round to track its error on the unmeasured candidates.
    acquisition:
        ``"random"`` or a name in :data:`ACQUISITIONS` (or a function with their signature).
    n_init, batch_size, budget:
        Initial random experiments, experiments per round, total experiments.
    goal:
        ``"max"`` or ``"min"`` (see :mod:`nanonb.active.acquisition`).
    top_fraction:
        Defines success: measuring one of the ``ceil(top_fraction * pool)`` best candidates.

    Example
    -------
    >>> r = run_campaign(task, bml, "ei", n_init=3, budget=20, goal="min", seed=0)   # doctest: +SKIP
    >>> r.experiments_to_top, r.best_curve[-1]                                         # doctest: +SKIP
    """
    t0 = time.perf_counter()
    sign = goal_sign(goal)
    pool, init = campaign_pool(task, seed, n_init, max_pool)
    budget = min(int(budget), len(pool))
    if budget < n_init:
        raise ValueError(f"budget={budget} is smaller than n_init={n_init}")
    if acquisition != "random" and method is None:
        raise ValueError(f"acquisition {acquisition!r} needs a fitted method; only 'random' runs without one")
    rng = np.random.default_rng([int(seed), 7])
    tm = task_model(method, task) if method is not None else None
    y = task.targets
    measured = list(int(i) for i in init)
    rows = []
    rnd = 0
    while len(measured) < budget:
        rnd += 1
        rest = np.setdiff1d(pool, measured)
        mae = nll = float("nan")
        mean = std = None
        if tm is not None:
            mean, std = tm.predict_dist(np.asarray(measured), rest)
            mae = float(np.mean(np.abs(mean - y[rest])))
            nll = gaussian_nll(y[rest], mean, std)
        b = min(batch_size, budget - len(measured))
        if acquisition == "random":
            pick = rng.choice(rest, size=b, replace=False)
        else:
            sampler = None
            if acquisition == "thompson" and hasattr(tm, "sample"):
                def sampler(n, _rest=rest):
                    return tm.sample(np.asarray(measured), _rest, n, rng)
            best = float(sign * np.max(sign * y[measured]))
            pos = select_batch(acquisition, mean, std, best, b, goal, rng=rng, sampler=sampler, **(acq_kwargs or {}))
            pick = rest[pos]
        measured.extend(int(i) for i in pick)
        rows.append({"round": rnd, "n_measured": len(measured), "best_so_far": float(sign * np.max(sign * y[measured])),
                     "mae_pool": mae, "nll_pool": nll, "picked": [int(i) for i in pick]})
    measured_arr = np.asarray(measured, dtype=int)
    s_pool = sign * y[pool]
    n_top = max(1, int(math.ceil(top_fraction * len(pool))))
    thr_s = np.sort(s_pool)[::-1][n_top - 1]
    hits = np.flatnonzero(sign * y[measured_arr] >= thr_s)
    s_best = np.maximum.accumulate(sign * y[measured_arr])
    span = s_pool.max() - s_pool.min()
    auc = float(np.mean((s_best - s_pool.min()) / span)) if span > 0 else 1.0
    hist = pd.DataFrame(rows, columns=["round", "n_measured", "best_so_far", "mae_pool", "nll_pool", "picked"])
    name = strategy or (acquisition if isinstance(acquisition, str) else getattr(acquisition, "__name__", "custom"))
    return CampaignResult(task=task.name, strategy=name, seed=int(seed), goal=goal, candidates=pool,
                          measured=measured_arr, history=hist, best_curve=sign * s_best, threshold=float(sign * thr_s),
                          n_top=n_top, experiments_to_top=int(hits[0]) + 1 if len(hits) else None,
                          auc_best_so_far=auc, budget=budget, pool_best=float(sign * s_pool.max()),
                          pool_worst=float(sign * s_pool.min()), runtime_s=time.perf_counter() - t0)


def compare_strategies(strategies: Mapping[str, tuple], tasks: Sequence[Task] | TaskSet, seeds: Sequence[int],
                       progress: bool = True, **campaign_kwargs) -> tuple[pd.DataFrame, list[CampaignResult]]:
    """Run every strategy on every task and seed (same initial points per task and seed).

    ``strategies`` maps a name to ``(method, acquisition)``, e.g. ``{"random": (None, "random"),
    "gp_bo": (SupportGP(...).fit(train), "ei"), "bml-ei": (bml, "ei")}``. Returns one row per
    campaign (:meth:`CampaignResult.summary`) and the campaigns.

    Example
    -------
    >>> runs_df, runs = compare_strategies({"random": (None, "random"), "bml-ei": (bml, "ei")},
    ...                                    test, seeds=(0, 1), budget=20, goal="min")   # doctest: +SKIP
    """
    jobs = [(name, t, s) for t in tasks for s in seeds for name in strategies]
    runs: list[CampaignResult] = []
    for name, t, s in tqdm(jobs, desc="campaigns", disable=not progress, leave=False):
        method, acq = strategies[name]
        runs.append(run_campaign(t, method, acq, seed=s, strategy=name, **campaign_kwargs))
    return pd.DataFrame([r.summary() for r in runs]), runs


def campaign_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: experiments to a top candidate and area under the best-so-far curve.

    Unfinished campaigns count as ``budget + 1`` experiments (censored: medians stay valid while
    fewer than half the runs fail). Columns: ``strategy, metric, mean, sem, median, q25, q75,
    n_runs, n_tasks, found_fraction``; statistics over all (task, seed) runs (experiments, or
    the unitless normalized area).

    Example
    -------
    >>> campaign_summary(runs_df)   # runs_df from compare_strategies   # doctest: +SKIP
    """
    out = []
    for name, g in runs.groupby("strategy", sort=False):
        e = np.where(g["found"], g["experiments_to_top"].fillna(0), g["budget"] + 1).astype(float)
        for metric, v in (("experiments_to_top5", e), ("auc_best_so_far", g["auc_best_so_far"].to_numpy(float))):
            out.append({"strategy": name, "metric": metric, "mean": float(np.mean(v)),
                        "sem": float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
                        "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                        "q75": float(np.quantile(v, 0.75)), "n_runs": len(v), "n_tasks": int(g["task"].nunique()),
                        "found_fraction": float(g["found"].mean())})
    return pd.DataFrame(out)


def best_so_far_curves(runs: Sequence[CampaignResult], normalize: bool = True) -> pd.DataFrame:
    """Long frame ``strategy, task, seed, experiment, best``.

    ``normalize=True``: ``best`` is ``(y_best - y_worst) / (y_top - y_worst)`` with the pool's worst
    and top values (0 = worst candidate, 1 = the pool's best, whatever the goal); else target units.

    Example
    -------
    >>> nanonb.plots.campaign_curves(best_so_far_curves(runs))   # doctest: +SKIP
    """
    rows = []
    for r in runs:
        curve = r.best_curve
        if normalize:
            span = r.pool_best - r.pool_worst
            curve = (curve - r.pool_worst) / span if span != 0 else np.ones_like(curve)
        rows += [{"strategy": r.strategy, "task": r.task, "seed": r.seed, "experiment": i + 1, "best": float(v)}
                 for i, v in enumerate(curve)]
    return pd.DataFrame(rows)

