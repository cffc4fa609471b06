"""Active learning with few-shot uncertainty: acquisition functions, simulated campaigns, refinement.

Convention
----------
Every acquisition function *maximizes* a utility of a goal-oriented score ``s``: ``s = y`` when the
goal is the largest value (``goal="max"``: CALiSol conductivity, LNP efficacy) and ``s = -y`` when it
is the smallest (``goal="min"``: nanoalloy mixing energy, where the most negative value is the most
stable alloy). :func:`select_batch` does the sign flip, so the functions below are written for
maximization with ``mean``/``std`` of ``s`` and ``best`` = the best ``s`` measured so far.
:data:`GOALS` holds the goal of each bundled data set.

A *campaign* (:func:`run_campaign`) simulates a lab loop on one held-out task whose labels are known
but hidden: measure ``n_init`` random candidates, then repeatedly adapt the model to everything
measured, score the unmeasured candidates by the acquisition function, "measure" the best batch
(reveal its labels) and record the best value so far and the model's error on the unmeasured
candidates. Candidates are existing data points of the task, so every proposal satisfies the
task's constraints (valid compositions, physically made electrolytes, synthesizable lipids) by
construction: the loop ranks, it never invents inputs.

:func:`refine` feeds the acquired points back into the meta-training set (a new :class:`TaskSet`)
and continues meta-training (``fit`` continues from the current weights).
:func:`run_active_bench` is the ``python -m nanonb.bench active --data ...`` protocol.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .tasks import Task, TaskSet
from .uncertainty import gaussian_nll, task_model

#: Optimization goal of the bundled data sets: "min" = most negative is best, "max" = largest is best.
GOALS: dict[str, str] = {"nanoalloys": "min", "calisol": "max", "lnpdb": "max"}


# ====================================================================== acquisition functions
def greedy_mean(mean: np.ndarray, std: np.ndarray, best: float | None = None, **_) -> np.ndarray:
    """Pure exploitation: ``a(x) = mu(x)``."""
    return np.asarray(mean, dtype=np.float64)


def upper_confidence_bound(mean: np.ndarray, std: np.ndarray, best: float | None = None, beta: float = 2.0,
                           **_) -> np.ndarray:
    """Optimism under uncertainty: ``a(x) = mu(x) + beta sigma(x)`` (``beta = 2`` by default)."""
    return np.asarray(mean, dtype=np.float64) + beta * np.asarray(std, dtype=np.float64)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0, **_) -> np.ndarray:
    """Expected improvement over ``best``: ``E[max(s - best - xi, 0)]`` for ``s ~ N(mu, sigma^2)``.

    ``a(x) = (mu - best - xi) Phi(z) + sigma phi(z)`` with ``z = (mu - best - xi) / sigma``
    (``Phi``/``phi``: standard normal cdf/pdf); ``max(mu - best - xi, 0)`` where ``sigma = 0``.
    """
    from scipy.stats import norm

    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    imp = mean - best - xi
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, imp / np.where(std > 0, std, 1.0), 0.0)
    return np.where(std > 0, imp * norm.cdf(z) + std * norm.pdf(z), np.maximum(imp, 0.0))


def max_variance(mean: np.ndarray, std: np.ndarray, best: float | None = None, **_) -> np.ndarray:
    """Pure exploration (uncertainty sampling): ``a(x) = sigma(x)^2``."""
    return np.asarray(std, dtype=np.float64) ** 2


def thompson_sampling(mean: np.ndarray, std: np.ndarray, best: float | None = None,
                      rng: np.random.Generator | None = None, sample: np.ndarray | None = None, **_) -> np.ndarray:
    """Thompson sampling: ``a(x) = s~(x)``, one draw from the predictive distribution.

    ``sample`` is a joint posterior draw when the model provides one (the Bayesian last layer
    does); otherwise independent marginal draws ``s~(x) = mu(x) + sigma(x) eps``, ``eps ~ N(0, 1)``.
    """
    if sample is not None:
        return np.asarray(sample, dtype=np.float64)
    rng = rng if rng is not None else np.random.default_rng()
    return np.asarray(mean, dtype=np.float64) + np.asarray(std, dtype=np.float64) * rng.standard_normal(len(mean))


ACQUISITIONS: dict[str, Callable[..., np.ndarray]] = {
    "greedy": greedy_mean,
    "ucb": upper_confidence_bound,
    "ei": expected_improvement,
    "maxvar": max_variance,
    "thompson": thompson_sampling,
}


def _sign(goal: str) -> float:
    if goal not in ("max", "min"):
        raise ValueError(f"goal must be 'max' or 'min', not {goal!r}")
    return 1.0 if goal == "max" else -1.0


def select_batch(acquisition: str | Callable, mean: np.ndarray, std: np.ndarray, best: float, batch_size: int = 1,
                 goal: str = "max", rng: np.random.Generator | None = None,
                 sampler: Callable[[int], np.ndarray] | None = None, **acq_kwargs) -> np.ndarray:
    """Positions (into ``mean``) of the ``batch_size`` candidates to measure next.

    ``mean``, ``std`` and ``best`` are in target units; the goal sign is applied here. Deterministic
    acquisitions take the top ``batch_size`` utilities (ties broken by position). Thompson sampling
    draws one sample per batch slot and takes its best not-yet-chosen candidate; ``sampler(n)``
    (optional) returns ``n`` joint samples of the target, shape ``(n, len(mean))``.
    """
    sign = _sign(goal)
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


# ====================================================================== campaigns
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

    Every strategy run with the same seed on the same task starts from the same points.
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
        A fitted uncertainty method (:class:`~nanonb.uncertainty.BayesianMetaLearner`,
        :class:`~nanonb.uncertainty.EnsembleMetaLearner`, :class:`~nanonb.uncertainty.SupportGPDist`,
        ...). ``None`` only with ``acquisition="random"``; with ``"random"`` and a method, the
        method is still fitted each round to track its error on the unmeasured candidates.
    acquisition:
        ``"random"`` or a name in :data:`ACQUISITIONS` (or a function with their signature).
    n_init, batch_size, budget:
        Initial random experiments, experiments per round, total experiments.
    goal:
        ``"max"`` or ``"min"`` (see the module docstring).
    top_fraction:
        Defines success: measuring one of the ``ceil(top_fraction * pool)`` best candidates.
    """
    t0 = time.perf_counter()
    sign = _sign(goal)
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
    "gp_bo": (SupportGPDist(...).fit(train), "ei"), "bml-ei": (bml, "ei")}``. Returns one row per
    campaign (:meth:`CampaignResult.summary`) and the campaigns.
    """
    from tqdm.auto import tqdm

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
    n_runs, n_tasks, found_fraction``; statistics over all (task, seed) runs.
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


# ====================================================================== iterative refinement
def acquired_tasks(campaigns: Sequence[CampaignResult], tasks: TaskSet | Sequence[Task]) -> list[Task]:
    """One task per campaigned system holding the union of its measured points (sorted by index)."""
    by_name = {t.name: t for t in tasks}
    idx: dict[str, set[int]] = {}
    for c in campaigns:
        if c.task not in by_name:
            raise KeyError(f"campaign task {c.task!r} is not among the given tasks")
        idx.setdefault(c.task, set()).update(int(i) for i in c.measured)
    return [by_name[n].subset(sorted(ix)) for n, ix in idx.items()]


def augment_taskset(train: TaskSet, new_tasks: Sequence[Task], suffix: str = " [acquired]") -> TaskSet:
    """A new meta-training set: ``train`` plus ``new_tasks`` (renamed with ``suffix`` on a name clash)."""
    names = set(train.names)
    added = []
    for t in new_tasks:
        if t.name in names:
            t = copy.copy(t)
            t.name = t.name + suffix
        if t.name in names:
            raise ValueError(f"task {t.name!r} is already in the meta-training set")
        names.add(t.name)
        added.append(t)
    return TaskSet([*train.tasks, *added], name=train.name, feature_names=train.feature_names)


def refine(learner, train: TaskSet, campaigns: Sequence[CampaignResult], tasks: TaskSet | Sequence[Task],
           n_iterations: int = 200, progress: bool = False) -> TaskSet:
    """Feed the campaigns' measured points back into meta-training and continue ``learner.fit``.

    Returns the augmented meta-training set. ``learner`` (a MetaLearner, BayesianMetaLearner or
    EnsembleMetaLearner) keeps its weights and target scaling and trains ``n_iterations`` more
    iterations on the augmented set.
    """
    augmented = augment_taskset(train, acquired_tasks(campaigns, tasks))
    learner.fit(augmented, n_iterations=n_iterations, progress=progress)
    return augmented


# ====================================================================== bench protocol
@dataclass
class ActiveConfig:
    """Configuration of ``python -m nanonb.bench active`` for one data set (see :func:`run_active_bench`)."""

    data: str = "nanoalloys"
    fold: int = 0
    n_per_pair: int = 80
    inputs: str = "native"
    model: str = "InvariantGNN"
    model_kwargs: dict = field(default_factory=dict)
    bml_iterations: int = 600
    bml_lr: float = 2e-3
    bml_meta_batch: int = 4
    bml_k_support: tuple[int, int] = (0, 20)
    bml_k_query: int = 20
    bml_calibrated: bool = True
    calib_split: str = "group"
    calib_group_index: int | None = 0
    ens_members: int = 5
    ens_algorithm: str = "anil"
    ens_iterations: int = 200
    ens_inner_lr: float = 0.1
    ens_inner_steps: int = 5
    ens_meta_batch: int = 4
    pooled_epochs: int = 20
    pooled_batch_size: int = 64
    gp_restarts: int = 0
    shots: tuple[int, ...] = (5, 10)
    n_episodes: int = 5
    k_query: int | None = 50
    acquisitions: tuple[str, ...] = ("greedy", "ucb", "ei", "thompson", "maxvar")
    ensemble_acquisitions: tuple[str, ...] = ("ei",)
    calibrated_acquisitions: tuple[str, ...] = ("ei",)
    seeds: tuple[int, ...] = tuple(range(10))
    n_init: int = 3
    batch_size: int = 1
    budget: int = 30
    max_pool: int | None = 300
    max_tasks: int | None = 6
    min_task_size: int = 60
    top_fraction: float = 0.05
    bo_refit_every: int = 3
    refine_iterations: int = 200
    refine_acquisition: str = "ei"
    seed: int = 0

    @classmethod
    def for_data(cls, data: str, quick: bool = False) -> ActiveConfig:
        """Defaults per data set; ``quick`` shrinks everything to seconds (for tests)."""
        if data == "nanoalloys":
            cfg = cls(data=data, inputs="descriptors", model="MLP", model_kwargs={"hidden": [64, 64]},
                      bml_iterations=1000, bml_meta_batch=8, ens_iterations=300, budget=30, max_pool=None,
                      max_tasks=None, min_task_size=40, calib_group_index=None)
        elif data == "calisol":
            cfg = cls(data=data, fold=1, model="MLP", model_kwargs={"hidden": [64, 64]}, bml_iterations=1000,
                      bml_meta_batch=8, ens_iterations=300, budget=40)
        elif data == "lnpdb":
            cfg = cls(data=data, fold=0, model="MLP", model_kwargs={"hidden": [64, 64]}, bml_iterations=1000,
                      bml_meta_batch=8, bml_k_support=(0, 30), bml_k_query=30, ens_iterations=300,
                      shots=(10, 30), budget=40)
        else:
            raise ValueError(f"unknown data set {data!r}; choose from {sorted(GOALS)}")
        if quick:
            small = {"width": 8, "n_blocks": 1, "n_rbf": 8} if cfg.model == "InvariantGNN" else {"hidden": [16]}
            if data == "lnpdb":
                cfg.shots = (10,)
            cfg = cls(**{**asdict(cfg), "model_kwargs": small, "bml_iterations": 15, "ens_members": 2,
                         "ens_iterations": 5, "pooled_epochs": 1, "n_episodes": 1,
                         "acquisitions": ("ei", "thompson"), "seeds": (0,), "budget": 8, "max_pool": 40,
                         "shots": cfg.shots[:1],
                         "max_tasks": 2, "min_task_size": 20, "refine_iterations": 5, "k_query": 20,
                         "n_per_pair": 24})
        return cfg


def descriptor_tasks(ts: TaskSet) -> TaskSet:
    """The same tasks with the descriptors as (tabular) model inputs, e.g. an MLP on cluster descriptors.

    Targets, metadata, groups and descriptors are unchanged; only ``inputs`` is replaced.
    """
    tasks = []
    for t in ts:
        if t.descriptors is None:
            raise ValueError(f"task {t.name!r} has no descriptors to use as inputs")
        tasks.append(Task(t.name, np.asarray(t.descriptors, dtype=np.float32), t.targets, t.meta, t.groups,
                          t.descriptors, t.target_name, t.target_unit))
    names = getattr(ts, "feature_names", None)
    return TaskSet(tasks, name=f"{ts.name} (descriptor inputs)", feature_names=names)


def _load_split(cfg: ActiveConfig, progress: bool, data_dir=None, cache_dir=None) -> tuple[TaskSet, TaskSet, str]:
    if cfg.data == "nanoalloys":
        from .data.nanoalloys import load_nanoalloys

        ts = load_nanoalloys(n_per_pair=cfg.n_per_pair, seed=0, cache_dir=cache_dir, progress=progress)
        if cfg.inputs == "descriptors":
            ts = descriptor_tasks(ts)
        train, test = ts.split_by_group("Pt")
        return train, test, "holdout-Pt"
    if data_dir is None and not os.environ.get("NANONB_DATA_DIR"):
        guess = Path(__file__).resolve().parents[2] / "shared" / "data"  # the checkout convention
        data_dir = guess if guess.is_dir() else None
    if cfg.data == "calisol":
        from .data.calisol import calisol_taskset

        ts = calisol_taskset(data_dir=data_dir)
    else:
        from .data.lnpdb import lnpdb_taskset

        ts = lnpdb_taskset(data_dir=data_dir)
    train, test = ts.group_kfold(5)[cfg.fold]
    held = sorted({t.groups[0] for t in test})
    kind = "salt" if cfg.data == "calisol" else "study"
    return train, test, f"leave-{kind}-out fold {cfg.fold} ({', '.join(held)})"


def _rows_from_summary(summ: pd.DataFrame, split: str, kinds: Mapping[str, str], k: int) -> list[dict]:
    rows = []
    for r in summ.itertuples(index=False):
        rows.append({"split": split, "method": r.strategy, "kind": kinds.get(r.strategy, "meta"), "k": int(k),
                     "metric": r.metric, "mean": r.mean, "sem": r.sem, "median": r.median, "n_tasks": int(r.n_tasks),
                     "iqr": [r.q25, r.q75], "n_runs": int(r.n_runs), "found_fraction": r.found_fraction})
    return rows


def run_active_bench(quick: bool = False, seed: int = 0, progress: bool = True, data: str = "nanoalloys",
                     config: ActiveConfig | None = None, data_dir=None, cache_dir=None, log: Callable = print,
                     **options) -> dict:
    """Uncertainty calibration and active-learning benchmark on held-out tasks of one data set.

    1. Split: nanoalloys hold out every Pt pair; calisol a leave-salt-out fold; lnpdb a
       leave-study-out fold (``fold``).
    2. Fit the Bayesian meta-learner (``bml``), the ensemble (``ensemble``), and the baselines
       ``gp`` (GP on the support) and ``pooled+gp`` (GP on the residuals of a pooled network).
       Score ``nll``, ``coverage50/90/95``, ``sharpness`` and ``mae`` over ``n_episodes`` episodes
       per held-out task and shot count; calibration curves go to ``calibration``.
    3. Campaigns on held-out tasks with at least ``min_task_size`` points (at most ``max_tasks``,
       largest first), every seed: ``random`` and ``gp_bo`` (GP on descriptors + EI, warm-started
       hyper-parameters) as baselines, ``bml-<acq>`` and ``ensemble-<acq>``. Metrics
       ``experiments_to_top5`` and ``auc_best_so_far`` (``median`` over tasks x seeds, ``iqr`` in
       the row).
    4. Refinement: campaign data of half the campaign tasks fed back into the BML's meta-training
       (``refine_iterations`` more iterations), scored on the other half (and vice versa) against
       the same number of extra iterations without the new data; in ``refinement``.

    ``options`` override :class:`ActiveConfig` fields (``--set key=value``).
    """
    # load every BLAS before limiting it: threadpoolctl only limits libraries already loaded, and the
    # scipy L-BFGS-B used by the GPs runs ~8x slower with 2 BLAS threads on a busy 2-core machine
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    import sklearn.gaussian_process  # noqa: F401
    import torch
    from threadpoolctl import threadpool_limits

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors and matrices: one thread is fastest, and immune to busy CPUs
    try:
        with threadpool_limits(limits=1):
            return _run_active(quick, seed, progress, data, config, data_dir, cache_dir, log, options)
    finally:
        torch.set_num_threads(n_threads)


def _run_active(quick, seed, progress, data, config, data_dir, cache_dir, log, options) -> dict:
    from .bench import make_result, summary_to_rows
    from .evaluate import summarize
    from .uncertainty import (
        BayesianMetaLearner,
        EnsembleMetaLearner,
        ResidualGP,
        SupportGPDist,
        calibration_summary,
        evaluate_uncertainty,
    )

    cfg = config or ActiveConfig.for_data(data, quick=quick)
    known = set(asdict(cfg))
    unknown = sorted(set(options) - known - {"holdout"})
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for the active protocol; known: {sorted(known)}")
    cfg = ActiveConfig(**{**asdict(cfg), **{k: v for k, v in options.items() if k in known}, "seed": seed})
    cfg.shots, cfg.seeds = tuple(cfg.shots), tuple(cfg.seeds)
    goal = GOALS[cfg.data]
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    def tick(name, t0):
        timings[name] = time.perf_counter() - t0
        log(f"  {name}: {timings[name]:.1f} s")

    t0 = time.perf_counter()
    train, test, split = _load_split(cfg, progress, data_dir, cache_dir)
    tick("data", t0)
    log(f"active/{cfg.data}: {len(train)} meta-train tasks, {len(test)} held-out tasks ({split}); goal = {goal}")

    # ---------------------------------------------------------------- methods
    t0 = time.perf_counter()
    bml = BayesianMetaLearner(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), n_iterations=cfg.bml_iterations,
                              lr=cfg.bml_lr, meta_batch_size=cfg.bml_meta_batch, k_support=cfg.bml_k_support,
                              k_query=cfg.bml_k_query, seed=seed)
    bml.fit(train, progress=progress)
    tick("meta-train bml", t0)
    learners = [bml]
    if cfg.bml_calibrated:
        t0 = time.perf_counter()
        bml_cal = BayesianMetaLearner(bml.config, name="bml_cal", calibrate=True, calib_split=cfg.calib_split,
                                      calib_group_index=cfg.calib_group_index, calib_crossfit=True)
        bml_cal.fit(train, progress=progress)
        learners.append(bml_cal)
        tick("meta-train bml_cal (all tasks; variance factors from a copy trained without the calibration group)", t0)
    t0 = time.perf_counter()
    ens = EnsembleMetaLearner(n_members=cfg.ens_members, algorithm=cfg.ens_algorithm, model=cfg.model,
                              model_kwargs=dict(cfg.model_kwargs), n_iterations=cfg.ens_iterations,
                              inner_lr=cfg.ens_inner_lr, inner_steps=cfg.ens_inner_steps,
                              meta_batch_size=cfg.ens_meta_batch, seed=seed)
    ens.fit(train, progress=progress)
    tick("meta-train ensemble", t0)
    t0 = time.perf_counter()
    from .baselines.nets import Pooled

    pooled = Pooled(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), epochs=cfg.pooled_epochs,
                    batch_size=cfg.pooled_batch_size, seed=seed)
    rgp = ResidualGP(pooled, n_restarts=cfg.gp_restarts, seed=seed).fit(train, progress=progress)
    gp = SupportGPDist(n_restarts=cfg.gp_restarts, seed=seed).fit(train)
    tick("baselines (pooled network, GP settings)", t0)

    # ---------------------------------------------------------------- calibration on held-out tasks
    t0 = time.perf_counter()
    methods = [*learners, ens, gp, rgp]
    df = evaluate_uncertainty(methods, test, shots=cfg.shots, n_episodes=cfg.n_episodes, k_query=cfg.k_query,
                              seed=seed, progress=progress)
    tick("uncertainty evaluation", t0)
    rows = []
    for metric in ("nll", "coverage50", "coverage90", "coverage95", "sharpness", "mae"):
        rows += summary_to_rows(summarize(df, metric), split)
    curves = calibration_summary(df)

    # ---------------------------------------------------------------- campaigns
    t0 = time.perf_counter()
    camp_tasks = sorted([t for t in test if len(t) >= cfg.min_task_size], key=lambda t: (-len(t), t.name))
    if cfg.max_tasks is not None:
        camp_tasks = camp_tasks[: cfg.max_tasks]
    if not camp_tasks:
        raise ValueError(f"no held-out task has >= {cfg.min_task_size} points for a campaign; lower min_task_size")
    bo_gp = SupportGPDist(n_restarts=1, warm_start=True, refit_every=cfg.bo_refit_every, seed=seed,
                          name="gp_bo").fit(train)
    strategies: dict[str, tuple] = {"random": (bml, "random"), "gp_bo": (bo_gp, "ei")}
    strategies.update({f"bml-{a}": (bml, a) for a in cfg.acquisitions})
    strategies.update({f"ensemble-{a}": (ens, a) for a in cfg.ensemble_acquisitions})
    if cfg.bml_calibrated:
        strategies.update({f"bml_cal-{a}": (learners[1], a) for a in cfg.calibrated_acquisitions})
    kinds = {"random": "baseline", "gp_bo": "baseline"}
    runs_df, runs = compare_strategies(strategies, camp_tasks, cfg.seeds, progress=progress, n_init=cfg.n_init,
                                       batch_size=cfg.batch_size, budget=cfg.budget, goal=goal,
                                       top_fraction=cfg.top_fraction, max_pool=cfg.max_pool)
    tick("campaigns", t0)
    csum = campaign_summary(runs_df)
    rows += _rows_from_summary(csum, split, kinds, cfg.n_init)
    error_curves = (pd.concat([r.history.assign(strategy=r.strategy, task=r.task, seed=r.seed) for r in runs])
                    .groupby(["strategy", "n_measured"])[["mae_pool", "nll_pool"]].median().reset_index())

    # ---------------------------------------------------------------- refinement
    t0 = time.perf_counter()
    refinement = _refinement(bml, train, test, camp_tasks, runs, cfg, seed, progress)
    tick("refinement", t0)
    timings["total"] = time.perf_counter() - t_all
    from .tasks import leakage_report

    return make_result(
        "active", rows, timings["total"], asdict(cfg) | {"goal": goal, "split": split,
                                                          "unit": test[0].target_unit,
                                                          "campaign_tasks": [t.name for t in camp_tasks]},
        data=cfg.data, timings=timings, calibration=curves.to_dict(orient="records"),
        campaigns=runs_df.to_dict(orient="records"), model_error=error_curves.to_dict(orient="records"),
        refinement=refinement, learned={"bml_noise_std": bml.noise_std, "ensemble_scale": ens.scale,
                                        "ensemble_noise_std": ens.noise_std,
                                        "bml_cal_var_factors": list(learners[-1].var_factors),
                                        "calibration_tasks": {"bml_cal": learners[-1].calib_names,
                                                              "ensemble": ens.calib_names}},
        leakage=str(leakage_report(train, test)))


def _refinement(bml, train: TaskSet, test: TaskSet, camp_tasks: list[Task], runs: list[CampaignResult],
                cfg: ActiveConfig, seed: int, progress: bool) -> dict:
    """Two-fold: feed back the campaigns of one half of the campaign tasks, score on the other half."""
    from .evaluate import summarize
    from .uncertainty import evaluate_uncertainty

    names = [t.name for t in camp_tasks]
    halves = [names[0::2], names[1::2]]
    if not halves[1]:
        return {"note": "only one campaign task: no held-out task left to score the refinement on"}
    acq_runs = [r for r in runs if r.strategy == f"bml-{cfg.refine_acquisition}"]
    dfs = []
    control = bml.copy()
    control.name = "bml (more iterations, no new data)"
    control.fit(train, n_iterations=cfg.refine_iterations, progress=progress)
    for feed, score in (halves, halves[::-1]):
        refined = bml.copy()
        refined.name = "bml (+campaign data)"
        augmented = refine(refined, train, [r for r in acq_runs if r.task in feed], test, cfg.refine_iterations,
                           progress)
        if len(augmented) != len(train) + len(feed):
            raise RuntimeError("campaign data did not enter the meta-training set")
        dfs.append(evaluate_uncertainty([bml, control, refined], test.select(score), shots=cfg.shots,
                                        n_episodes=cfg.n_episodes, k_query=cfg.k_query, seed=seed + 1,
                                        progress=progress))
    df = pd.concat(dfs, ignore_index=True)
    out = {"fed_back_strategy": f"bml-{cfg.refine_acquisition}", "iterations": cfg.refine_iterations,
           "folds": [{"fed_back": a, "scored_on": b} for a, b in (halves, halves[::-1])]}
    for metric in ("nll", "mae", "coverage90"):
        s = summarize(df, metric)
        out[metric] = s[["method", "k", "mean", "sem", "median", "n_tasks"]].to_dict(orient="records")
    return out
