"""The ``active`` benchmark protocol: uncertainty calibration and active learning on held-out tasks.

``python -m nanonb.bench active --data {nanoalloys,calisol,lnpdb} [--quick]`` runs
:func:`run_active_bench`; :class:`ActiveConfig` holds its settings (``--set key=value``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..active import ACQUISITIONS, GOALS, CampaignResult, campaign_summary, compare_strategies, refine
from ..baselines.gp import PooledNetResidualGP, SupportGP
from ..baselines.nets import Pooled
from ..baselines.pooled_mean_gp import PooledMeanGP
from ..baselines.tabular import PooledTrees, SupportRF
from ..data.calisol import calisol_taskset
from ..data.lnpdb import fingerprint_columns, lnpdb_taskset
from ..data.nanoalloys import load_nanoalloys
from ..evaluation import summarize
from ..learners.alpaca import BayesianMetaLearner
from ..learners.ensemble import EnsembleMetaLearner
from ..learners.stack import StackLearner
from ..learners.tanimoto_gp import TanimotoGP
from ..tasks import Task, TaskSet, descriptor_tasks, leakage_report
from ..threads import limit_threads
from ..uncertainty import calibration_summary, evaluate_uncertainty
from .memo import once_per_trainset
from .schema import apply_options, make_result, summary_to_rows


@dataclass
class ActiveConfig:
    """Configuration of ``python -m nanonb.bench active`` for one data set (see :func:`run_active_bench`).

    Iteration counts are meta-training steps, ``budget`` counts experiments, ``top_fraction`` is a
    fraction of the candidate pool. ``surrogates`` adds campaign strategies ``<name>-<acq>``, one per
    acquisition ``acq`` of ``surrogate_acquisitions``,
    with more surrogates (the first three need fingerprint columns ``fp_*``): ``"tanimoto-gp"`` (the meta-learned
    :class:`~nanonb.learners.tanimoto_gp.TanimotoGP`, ``gp_iterations`` steps), ``"stack"`` (its equal-weight
    z-score stack with a ``rf_trees``-tree random forest on the measured points,
    :class:`~nanonb.learners.stack.StackLearner`), ``"tanimoto-gp+pooled"`` (the same GP with a pooled
    ``gbm_iter``-tree gradient boosting model as its mean) and ``"gp+pooled"`` (GP-BO's own GP, same settings,
    with that pooled model times ``pooled_scale`` as its prior mean:
    :class:`~nanonb.baselines.pooled_mean_gp.PooledMeanGP`; ``"crossfit"`` learns the scale on meta-train;
    the default 1 and EI were chosen on LNPDB folds 1-4, never on fold 0's held-out studies) and
    ``"gp+pooled+trust"`` (the same with a per-campaign scale: prior mean ``pooled_scale``, prior variance
    ``pooled_trust``, ``"ml"`` = fitted by marginal likelihood, or a number; ``trust`` of ``PooledMeanGP``;
    the default 0.1 with EI was chosen among nine such variants on LNPDB folds 1-4, never on fold 0).

    Example
    -------
    >>> ActiveConfig.for_data("calisol", quick=True).budget
    8
    """

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
    surrogates: tuple[str, ...] = ()
    surrogate_acquisitions: tuple[str, ...] = ("ei",)
    gp_iterations: int = 150
    rf_trees: int = 100
    gbm_iter: int = 200
    pooled_scale: str | float = 1.0
    pooled_trust: str | float = 0.1
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
                      shots=(10, 30), budget=40,
                      surrogates=("tanimoto-gp", "stack", "tanimoto-gp+pooled", "gp+pooled", "gp+pooled+trust"))
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
                         "n_per_pair": 24, "gp_iterations": 3, "rf_trees": 10, "gbm_iter": 10})
        return cfg


def _load_split(cfg: ActiveConfig, progress: bool, data_dir=None, cache_dir=None) -> tuple[TaskSet, TaskSet, str]:
    if cfg.data == "nanoalloys":
        ts = load_nanoalloys(n_per_pair=cfg.n_per_pair, seed=0, cache_dir=cache_dir, progress=progress)
        if cfg.inputs == "descriptors":
            ts = descriptor_tasks(ts)
        train, test = ts.split_by_group("Pt")
        return train, test, "holdout-Pt"
    if data_dir is None and not os.environ.get("NANONB_DATA_DIR"):
        guess = Path(__file__).resolve().parents[3] / "shared" / "data"  # the checkout convention: ../shared/data
        data_dir = guess if guess.is_dir() else None
    if cfg.data == "calisol":
        ts = calisol_taskset(data_dir=data_dir)
    else:
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
       hyper-parameters) as baselines, ``bml-<acq>``, ``ensemble-<acq>`` and the ``surrogates``. Metrics
       ``experiments_to_top5`` and ``auc_best_so_far`` (``median`` over tasks x seeds, ``iqr`` in
       the row).
    4. Refinement: campaign data of half the campaign tasks fed back into the BML's meta-training
       (``refine_iterations`` more iterations), scored on the other half (and vice versa) against
       the same number of extra iterations without the new data; in ``refinement``.

    ``options`` override :class:`ActiveConfig` fields (``--set key=value``) by the one rule of
    :func:`nanonb.bench.schema.apply_options`: an unknown key is an error listing the valid keys.
    Mean errors and ``sharpness`` are in the data set's target units, ``nll`` in nats per point.

    Example
    -------
    >>> res = run_active_bench(quick=True, data="calisol", progress=False)   # doctest: +SKIP
    >>> res["config"]["goal"], res["config"]["split"]                        # doctest: +SKIP
    """
    # One torch and one BLAS thread whatever the caller set (nanonb.threads explains why): the numbers
    # do not depend on the caller. Every BLAS is loaded at import (module top), so the limit reaches it.
    with limit_threads(1):
        return _run_active(quick, seed, progress, data, config, data_dir, cache_dir, log, options)


def _run_active(quick, seed, progress, data, config, data_dir, cache_dir, log, options) -> dict:
    cfg = ActiveConfig(**asdict(config or ActiveConfig.for_data(data, quick=quick)))  # a copy: config stays as given
    apply_options(cfg, options, reserved={"seed": "--seed", "data": "--data"})
    cfg.seed = seed
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

    learners, ens, gp, rgp = _fit_methods(cfg, train, seed, progress, tick)
    bml = learners[0]

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

    t0 = time.perf_counter()
    camp_tasks, runs_df, runs = _campaigns(cfg, train, test, learners, ens, goal, seed, progress)
    tick("campaigns", t0)
    kinds = {"random": "baseline", "gp_bo": "baseline"}  # the extra surrogates are meta-learned (kind "meta")
    csum = campaign_summary(runs_df)
    rows += _rows_from_summary(csum, split, kinds, cfg.n_init)
    error_curves = (pd.concat([r.history.assign(strategy=r.strategy, task=r.task, seed=r.seed) for r in runs])
                    .groupby(["strategy", "n_measured"])[["mae_pool", "nll_pool"]].median().reset_index())

    # ---------------------------------------------------------------- refinement
    t0 = time.perf_counter()
    refinement = _refinement(bml, train, test, camp_tasks, runs, cfg, seed, progress)
    tick("refinement", t0)
    timings["total"] = time.perf_counter() - t_all
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


def _fit_methods(cfg: ActiveConfig, train: TaskSet, seed: int, progress: bool, tick: Callable) -> tuple:
    """``([bml, bml_cal?], ensemble, gp, pooled+gp)``, each fitted on ``train``."""
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
    pooled = Pooled(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), epochs=cfg.pooled_epochs,
                    batch_size=cfg.pooled_batch_size, seed=seed)
    rgp = PooledNetResidualGP(pooled, n_restarts=cfg.gp_restarts, seed=seed).fit(train, progress=progress)
    gp = SupportGP(n_restarts=cfg.gp_restarts, ard=None, maxiter=200, seed=seed).fit(train)
    tick("baselines (pooled network, GP settings)", t0)
    return learners, ens, gp, rgp


def _campaigns(cfg: ActiveConfig, train: TaskSet, test: TaskSet, learners: list, ens, goal: str, seed: int,
               progress: bool) -> tuple[list[Task], pd.DataFrame, list[CampaignResult]]:
    """Campaign tasks (largest held-out tasks first), the per-campaign summary frame and the campaigns."""
    bml = learners[0]
    camp_tasks = sorted([t for t in test if len(t) >= cfg.min_task_size], key=lambda t: (-len(t), t.name))
    if cfg.max_tasks is not None:
        camp_tasks = camp_tasks[: cfg.max_tasks]
    if not camp_tasks:
        raise ValueError(f"no held-out task has >= {cfg.min_task_size} points for a campaign; lower min_task_size")
    bo_gp = SupportGP(n_restarts=1, ard=None, warm_start=True, refit_every=cfg.bo_refit_every, maxiter=200,
                      seed=seed, name="gp_bo").fit(train)
    strategies: dict[str, tuple] = {"random": (bml, "random"), "gp_bo": (bo_gp, "ei")}
    strategies.update({f"bml-{a}": (bml, a) for a in cfg.acquisitions})
    strategies.update({f"{n}-{a}": (m, a) for n, m in _surrogates(cfg, train, seed).items()
                       for a in cfg.surrogate_acquisitions})
    strategies.update({f"ensemble-{a}": (ens, a) for a in cfg.ensemble_acquisitions})
    if cfg.bml_calibrated:
        strategies.update({f"bml_cal-{a}": (learners[1], a) for a in cfg.calibrated_acquisitions})
    runs_df, runs = compare_strategies(strategies, camp_tasks, cfg.seeds, progress=progress, n_init=cfg.n_init,
                                       batch_size=cfg.batch_size, budget=cfg.budget, goal=goal,
                                       top_fraction=cfg.top_fraction, max_pool=cfg.max_pool)
    return camp_tasks, runs_df, runs


#: The extra campaign surrogates of :class:`ActiveConfig` (``surrogates``); the Tanimoto ones need ``fp_*`` columns.
SURROGATES = ("tanimoto-gp", "stack", "tanimoto-gp+pooled", "gp+pooled", "gp+pooled+trust")


def _surrogates(cfg: ActiveConfig, train: TaskSet, seed: int) -> dict[str, object]:
    """The extra campaign surrogates of ``cfg.surrogates``, fitted on ``train`` (name -> learner)."""
    if not cfg.surrogates:
        return {}
    unknown = sorted(set(cfg.surrogates) - set(SURROGATES))
    if unknown:
        raise ValueError(f"unknown surrogates {unknown}; choose from {sorted(SURROGATES)}")
    unknown = sorted(set(cfg.surrogate_acquisitions) - set(ACQUISITIONS))
    if unknown:
        raise ValueError(f"unknown surrogate_acquisitions {unknown}; choose from {sorted(ACQUISITIONS)}")
    fp = fingerprint_columns(train.feature_names)
    tanimoto = [n for n in cfg.surrogates if not n.startswith("gp+pooled")]
    if tanimoto and not fp:
        raise ValueError(f"surrogates {tanimoto} need fingerprint columns (fp_*); {cfg.data} has none")

    # one pooled GBM per training set, shared by the two pooled-mean surrogates (deterministic: same predictions)
    gbm = once_per_trainset(lambda ts: PooledTrees("gbm", max_iter=cfg.gbm_iter, seed=seed).fit(ts))

    out: dict[str, object] = {}
    if {"tanimoto-gp", "stack"} & set(cfg.surrogates):
        gp = TanimotoGP(fp, n_iterations=cfg.gp_iterations, seed=seed, name="tanimoto-gp").fit(train)
        out.update({"tanimoto-gp": gp, "stack": StackLearner([gp, SupportRF(n_estimators=cfg.rf_trees, seed=seed)])})
    if "tanimoto-gp+pooled" in cfg.surrogates:
        out["tanimoto-gp+pooled"] = TanimotoGP(fp, fit_mean=gbm, n_iterations=cfg.gp_iterations, seed=seed,
                                               name="tanimoto-gp+pooled").fit(train)
    for name, trust in (("gp+pooled", None), ("gp+pooled+trust", cfg.pooled_trust)):
        if name in cfg.surrogates:  # GP-BO's GP and settings (see _campaigns), the pooled model as its mean
            out[name] = PooledMeanGP(gbm, scale=cfg.pooled_scale, n_restarts=1, ard=None, warm_start=True,
                                     refit_every=cfg.bo_refit_every, maxiter=200, seed=seed, name=name,
                                     trust=trust).fit(train)
    return {n: out[n] for n in cfg.surrogates}


def _refinement(bml, train: TaskSet, test: TaskSet, camp_tasks: list[Task], runs: list[CampaignResult],
                cfg: ActiveConfig, seed: int, progress: bool) -> dict:
    """Two-fold: feed back the campaigns of one half of the campaign tasks, score on the other half."""
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
