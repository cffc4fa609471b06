"""The case-study recipe shared by the ``calisol`` and ``lnpdb`` protocols.

Per fold, on that fold's meta-train tasks only: pooled networks (:func:`pooled_view`), nanonb
meta-learners (:class:`MetaSpec`, :func:`build_meta_learner`; MAML family on the MLP, initialised
from the pooled network, and on CALiSol also the physics-informed ``VTFNet``) evaluated with the
fast test-time inner loops of :mod:`nanonb.bench.adaptation`, and the baselines
(:func:`make_baselines`: per-task GP on the support, pooled gradient boosting zero-shot, pooled +
per-task offset or + linear recalibration, residual GP around the pooled model, pooled MLP +
fine-tuning, per-task VTF fit, random forest on the support, random ranking). Then every method on
the same seeded episodes (:func:`evaluate_episodes`), one result in the shared
schema (:func:`run_folds`, :func:`finish`).

Choices made before looking at any test fold (all per fold, on meta-train data only):

- Meta-learners start from the fold's pooled network (pre-training + meta-training), use FOMAML with
  inner-loop gradient clipping (MAML on the raw CALiSol targets diverged), and adapt at test time with
  more SGD steps than in meta-training (CALiSol: 100, LNPDB: 50). These settings were chosen on
  inner leave-group-out splits of fold 0's meta-train set (see :mod:`nanonb.bench.calisol` and
  :mod:`nanonb.bench.lnpdb`).
- Baseline settings are fixed library defaults (GBM 300 trees, RF 100 trees, GP marginal likelihood,
  fine-tuning as in :mod:`nanonb.baselines`), not tuned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch

from ..baselines.gp import TaskGP, TaskResidualGP
from ..baselines.nets import FineTune, Pooled, pooled_view
from ..baselines.tabular import PooledOffset, PooledRecalibration, PooledTrees, RandomRanker, SupportRF
from ..evaluation import Named, evaluate, summarize
from ..learners.registry import make_learner
from ..physics.vtf import VTFFit
from ..physics.vtfnet import vtf_model_kwargs
from ..tasks import Task, TaskSet, leakage_report
from ..threads import limit_threads
from .adaptation import FastMeta
from .fanout import fan_out
from .schema import make_result, summary_to_rows

__all__ = ["MetaSpec", "build_meta_learner", "check_disjoint", "drop_low_targets", "evaluate_episodes", "finish",
           "make_baselines", "merge_folds", "pooled_view", "run_folds"]


# ---------------------------------------------------------------------- meta-learners
@dataclass
class MetaSpec:
    """One nanonb meta-learner of a protocol.

    ``model`` is ``"MLP"`` or ``"VTFNet"``; ``init`` is ``"pooled"`` (start meta-training from the
    fold's pooled network of the same architecture: pre-training + meta-training) or ``"random"``.
    ``algorithm`` … ``inner_grad_clip`` are :class:`nanonb.learners.base.MetaConfig` settings; ``vtf_mask``
    lists feature-name prefixes hidden from the VTF body (e.g. ``("anion_",)``); ``adapt_steps`` and
    ``adapt_lr`` override the inner loop at test time (None: as in meta-training).

    Example
    -------
    >>> MetaSpec("fomaml-mlp", algorithm="fomaml", hidden=(64, 64), n_iterations=150, adapt_steps=100).init
    'pooled'
    """

    name: str
    algorithm: str = "fomaml"
    model: str = "MLP"
    init: str = "pooled"
    hidden: tuple[int, ...] = (64, 64)
    inner_lr: float = 0.05
    inner_steps: int = 10
    outer_lr: float = 1e-3
    meta_batch_size: int = 8
    k_support: tuple[int, int] = (3, 12)
    k_query: int = 32
    n_iterations: int = 500
    inner_grad_clip: float | None = 2.0
    vtf_mask: tuple[str, ...] = ()
    adapt_steps: int | None = None
    adapt_lr: float | None = None


def _fit_pooled(model: str, kw: dict, train: TaskSet, epochs: int, batch: int, seed: int, progress: bool) -> Pooled:
    return Pooled(model=model, model_kwargs=kw, epochs=epochs, batch_size=batch, seed=seed).fit(
        pooled_view(train), progress=progress)


def build_meta_learner(spec: MetaSpec, train: TaskSet, pooled_nets: dict, seed: int = 0, progress: bool = False,
                       pooled_epochs: int = 20, pooled_batch: int = 128) -> FastMeta:
    """Fit one meta-learner on the fold's meta-train set (pooled nets cached in ``pooled_nets``).

    Returns the learner wrapped for evaluation under ``spec.name`` (kind ``"meta"``), adapting with
    :func:`~nanonb.bench.adaptation.fast_adapt` / :func:`~nanonb.bench.adaptation.adapt_many` and
    ``spec.adapt_steps`` / ``spec.adapt_lr``.

    Example
    -------
    >>> m = build_meta_learner(MetaSpec("fomaml-mlp", n_iterations=150), meta_train, {}, seed=0)  # doctest: +SKIP
    """
    n_in = int(train[0].inputs.shape[1])
    if spec.model == "VTFNet":
        kw = vtf_model_kwargs(train, hidden=tuple(spec.hidden), mask_prefixes=tuple(spec.vtf_mask))
    elif spec.model == "MLP":
        kw = {"n_in": n_in, "hidden": list(spec.hidden)}
    else:
        raise ValueError(f"MetaSpec.model must be 'MLP' or 'VTFNet', not {spec.model!r}")
    learner = make_learner(spec.algorithm, model=spec.model, model_kwargs=kw, inner_lr=spec.inner_lr,
                           inner_steps=spec.inner_steps, outer_lr=spec.outer_lr,
                           meta_batch_size=spec.meta_batch_size, k_support=tuple(spec.k_support),
                           k_query=spec.k_query, n_iterations=spec.n_iterations, seed=seed,
                           **({} if spec.inner_grad_clip is None else {"inner_grad_clip": spec.inner_grad_clip}))
    if spec.init == "pooled":
        key = (spec.model, tuple(spec.hidden))
        if key not in pooled_nets:
            pooled_nets[key] = _fit_pooled(spec.model, kw, train, pooled_epochs, pooled_batch, seed, progress)
        learner.model.load_state_dict(pooled_nets[key].model.state_dict())
    elif spec.init != "random":
        raise ValueError(f"MetaSpec.init must be 'pooled' or 'random', not {spec.init!r}")
    torch.manual_seed(seed)
    learner.fit(train, progress=progress)
    kw = {k: v for k, v in {"steps": spec.adapt_steps, "lr": spec.adapt_lr}.items() if v is not None}
    return FastMeta(learner, spec.name, "meta", adapt_kwargs=kw)


# ---------------------------------------------------------------------- splits and meta-train data
def check_disjoint(train: TaskSet, test: TaskSet, key: Callable[[Task], str] | None) -> None:
    """Raise ``AssertionError`` if a test task shares its name (or, with ``key``, its group) with a meta-train task.

    Example
    -------
    >>> check_disjoint(train, test, key=lambda t: t.groups[0])  # doctest: +SKIP
    """
    if set(train.names) & set(test.names):
        raise AssertionError(f"tasks in both meta-train and meta-test: {sorted(set(train.names) & set(test.names))}")
    if key is not None:
        shared = {key(t) for t in train} & {key(t) for t in test}
        if shared:
            raise AssertionError(f"groups in both meta-train and meta-test: {sorted(shared)}")


def drop_low_targets(train: TaskSet, threshold: float | None) -> TaskSet:
    """Meta-train tasks without the points whose target is below ``threshold`` (None: unchanged).

    CALiSol-23 has 94 rows with log10 k < -3 (down to k = 1e-16 mS/cm; the loader flags them
    ``low_k_outlier``); their squared errors dominate every MSE-trained model. They are removed from
    meta-training only, for every method alike; meta-test episodes keep every point.

    Example
    -------
    >>> train = drop_low_targets(train, -3.0)  # log10(k / mS/cm) >= -3 only  # doctest: +SKIP
    """
    if threshold is None:
        return train
    tasks = []
    for t in train:
        keep = np.flatnonzero(t.targets >= threshold)
        if len(keep) >= 2:
            tasks.append(t if len(keep) == len(t) else t.subset(keep))
    return train.with_tasks(tasks)


# ---------------------------------------------------------------------- baselines
def _pooled_vtf(cfg, train: TaskSet, seed: int, pooled_nets: dict, progress: bool) -> Pooled:
    """The fold's pooled VTFNet (the same one the VTF meta-learner starts from, if it uses one)."""
    spec = next((m for m in cfg.meta if m.model == "VTFNet"), MetaSpec("vtf", model="VTFNet", hidden=(32, 32),
                                                                       vtf_mask=("anion_",)))
    key = ("VTFNet", tuple(spec.hidden))
    if key not in pooled_nets:
        kw = vtf_model_kwargs(train, hidden=tuple(spec.hidden), mask_prefixes=tuple(spec.vtf_mask))
        pooled_nets[key] = _fit_pooled("VTFNet", kw, train, cfg.pooled_epochs, cfg.pooled_batch, seed, progress)
    return pooled_nets[key]


def make_baselines(names: Sequence[str], cfg, train: TaskSet, seed: int, pooled_nets: dict, ard: bool,
                   progress: bool) -> list:
    """The fitted baselines ``names`` of one fold (``cfg``: a protocol config with the budgets).

    Pooled models are fitted once and shared (the pooled GBM behind the offset, recalibration and
    residual GP; the pooled MLP / VTFNet of ``pooled_nets``, also used by the meta-learners).

    Example
    -------
    >>> make_baselines(("gp", "pooled-gbm"), CalisolConfig(), train, 0, {}, True, False)  # doctest: +SKIP
    """
    out: list = []
    gbm = None
    mlp = None
    for name in names:
        if name in ("pooled-gbm", "pooled-gbm+offset", "pooled-gbm+recal", "residual-gp") and gbm is None:
            gbm = PooledTrees("gbm", max_iter=cfg.gbm_iter, seed=seed).fit(train)
        if name in ("pooled-mlp", "pooled-mlp+finetune") and mlp is None:
            key = ("MLP", tuple(cfg.hidden))
            if key not in pooled_nets:
                kw = {"n_in": int(train[0].inputs.shape[1]), "hidden": list(cfg.hidden)}
                pooled_nets[key] = _fit_pooled("MLP", kw, train, cfg.pooled_epochs, cfg.pooled_batch, seed, progress)
            mlp = pooled_nets[key]
        if name == "gp":
            out.append(TaskGP(ard=ard, n_restarts=cfg.gp_restarts, seed=seed))
        elif name == "pooled-gbm":
            out.append(gbm)
        elif name == "pooled-gbm+offset":
            out.append(PooledOffset(gbm))
        elif name == "pooled-gbm+recal":
            out.append(PooledRecalibration(gbm))
        elif name == "residual-gp":
            out.append(TaskResidualGP(gbm, ard=ard, n_restarts=cfg.gp_restarts, seed=seed))
        elif name == "pooled-mlp":
            out.append(Named(mlp, "pooled-mlp"))
        elif name == "pooled-mlp+finetune":
            out.append(Named(FineTune(mlp, steps=cfg.finetune_steps, lr=cfg.finetune_lr), "pooled-mlp+finetune"))
        elif name == "vtf-fit":
            out.append(VTFFit().fit(train))
        elif name == "pooled-vtf+finetune":
            out.append(Named(FineTune(_pooled_vtf(cfg, train, seed, pooled_nets, progress), steps=50, lr=3e-3),
                             "pooled-vtf+finetune"))
        elif name == "rf-support":
            out.append(SupportRF(n_estimators=cfg.rf_trees, seed=seed))
        elif name == "random":
            out.append(RandomRanker(seed=seed))
        else:
            raise ValueError(f"Unknown baseline {name!r}")
    return out


# ---------------------------------------------------------------------- evaluation
def evaluate_episodes(methods: Sequence, test: TaskSet, shots: Sequence[int], n_episodes: int,
                      metrics: Sequence[str], seed: int = 0, k_query_cap: int | None = None,
                      progress: bool = False, fold: int | str = 0) -> pd.DataFrame:
    """Every method on the same seeded episodes of every test task; one row per (method, task, k, episode).

    :func:`nanonb.evaluation.evaluate` with the case studies' settings: the query is the rest of the
    task or a seeded random ``k_query_cap`` of it, ``metrics`` from :data:`nanonb.evaluation.METRICS`
    (``mae`` in target units, ``spearman``, ``top10_recall``), a ``fold`` column, rows method by
    method within a (task, K). Meta-learners (:class:`~nanonb.bench.adaptation.FastMeta`) adapt to
    all episodes of one (task, K) in one vectorised call.

    Example
    -------
    >>> df = evaluate_episodes([gp, rf], test, shots=(10,), n_episodes=20,
    ...                        metrics=["spearman", "top10_recall"])          # doctest: +SKIP
    """
    return evaluate(methods, test, shots, n_episodes, k_query=k_query_cap, seed=seed, progress=progress,
                    metrics=metrics, columns={"fold": fold}, order="method", desc="episodes")


# ---------------------------------------------------------------------- protocol driver
def run_folds(protocol: str, splits: dict, cfg, metrics: Sequence[str], k_query_cap: int | None, ard: bool,
              seed: int, progress: bool, log: Callable, extra: Callable | None = None
              ) -> tuple[pd.DataFrame, dict, dict, dict]:
    """Fit and evaluate every method on every fold of ``splits`` (``{split: [(train, test), ...]}``).

    ``extra(train, log)`` (optional) returns ``(methods, record)``: more fitted methods of the fold (e.g.
    the nested selection of :func:`nanonb.bench.casestudy_gp.nested_select`) and a JSON-ready record
    stored as ``folds[tag]["selection"]``.

    Every fold runs with one torch thread and one BLAS thread (:func:`nanonb.threads.limit_threads` in
    :func:`_run_fold`, in this process or a worker; many tiny GP fits: threads only add contention),
    whatever the caller set. Returns ``(episodes frame, timings in s, leakage report per fold, fold info)``.

    Example
    -------
    >>> df, timings, leakage, folds = run_folds("calisol", splits, cfg, ["mae"], None, True, 0, False,
    ...                                         print)  # doctest: +SKIP
    """
    only = getattr(cfg, "fold_ids", None)
    jobs = [(split, i, train, test) for split, folds in splits.items()
            for i, (train, test) in enumerate(folds if cfg.max_folds is None else folds[: cfg.max_folds])
            if only is None or i in only]
    workers = getattr(cfg, "workers", 1)
    fold = partial(_run_fold, protocol, cfg, metrics, k_query_cap, ard, seed, progress and workers == 1, log, extra)
    done = fan_out(fold, jobs, workers, names=[f"{split}/{i}" for split, i, _, _ in jobs],
                   progress=progress and workers > 1, desc=f"{protocol} folds", log=log)
    frames, timings, leakage, fold_info = [], {}, {}, {}
    for (split, i, _, _), (df, times, leak, info) in zip(jobs, done):
        frames.append(df)
        timings.update(times)
        leakage[f"{split}/{i}"] = leak
        fold_info[f"{split}/{i}"] = info
    return pd.concat(frames, ignore_index=True), timings, leakage, fold_info


def _run_fold(protocol, cfg, metrics, k_query_cap, ard, seed, progress, log, extra, split, i, train, test):
    """One fold (a :func:`~nanonb.bench.fanout.fan_out` job): ``(episodes frame, timings, leakage, fold info)``."""
    with limit_threads(1):
        tag = f"{split}/{i}"
        train = drop_low_targets(train, cfg.train_min_target)
        t0 = time.perf_counter()
        pooled_nets: dict = {}
        methods, timings = [], {}
        for spec in cfg.meta:
            t1 = time.perf_counter()
            methods.append(build_meta_learner(spec, train, pooled_nets, seed=seed, progress=progress,
                                              pooled_epochs=cfg.pooled_epochs, pooled_batch=cfg.pooled_batch))
            timings[f"{tag} meta-train {spec.name}"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        methods += make_baselines(cfg.baselines, cfg, train, seed, pooled_nets, ard, progress)
        timings[f"{tag} fit baselines"] = time.perf_counter() - t1
        record = None
        if extra is not None:
            t1 = time.perf_counter()
            more, record = extra(train, log)
            methods += more
            timings[f"{tag} nested selection"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        df = evaluate_episodes(methods, test, cfg.shots, cfg.n_episodes, metrics, seed=seed,
                               k_query_cap=k_query_cap, progress=progress, fold=tag)
        timings[f"{tag} evaluation"] = time.perf_counter() - t1
        df.insert(0, "split", split)
        info = {"test_groups": sorted({t.groups[0] for t in test}), "n_train": len(train), "n_test": len(test)}
        if record is not None:
            info["selection"] = record
        log(f"  [{protocol}] {tag}: {len(train)} meta-train / {len(test)} test tasks "
            f"({', '.join(info['test_groups'])}) in {time.perf_counter() - t0:.1f} s")
        return df, timings, str(leakage_report(train, test)), info


def finish(protocol: str, df: pd.DataFrame, metrics, cfg, timings, leakage, fold_info, t_all, extra_cfg,
            episodes_path=None) -> dict:
    """The protocol's result: rows per split (:func:`nanonb.evaluation.summarize` per metric), the config
    (``asdict(cfg) | extra_cfg``), timings, leakage, folds and ``mean_adapt_predict_s`` (s per episode);
    the per-episode table is written to ``episodes_path`` (CSV) if given."""
    rows = []
    for split, g in df.groupby("split", sort=False):
        for metric in metrics:
            rows += summary_to_rows(summarize(g, metric), split)
    adapt = df.groupby("method", sort=False)["adapt_s"].mean().to_dict()
    if episodes_path is not None:
        df.to_csv(episodes_path, index=False)
    config = asdict(cfg) | extra_cfg
    return make_result(protocol, rows, time.perf_counter() - t_all, config, timings=timings, leakage=leakage,
                       folds=fold_info, mean_adapt_predict_s=adapt)


def merge_folds(results: list[dict], episodes: list[pd.DataFrame], metrics: Sequence[str], episodes_path=None) -> dict:
    """One result from runs of the same protocol on disjoint folds (``--set fold_ids=[i]``, run side by side).

    Rows are recomputed from the concatenated per-episode tables (as :func:`finish` does); timings,
    leakage and folds are merged; ``runtime_s`` is the sum; the config is the first run's with
    ``fold_ids`` the union.

    Example
    -------
    >>> res = merge_folds([json.load(open(p)) for p in paths],
    ...                   [pd.read_csv(e) for e in csvs], ["mae"])  # doctest: +SKIP
    """
    df = pd.concat(episodes, ignore_index=True)
    rows = []
    for split, g in df.groupby("split", sort=False):
        for metric in metrics:
            rows += summary_to_rows(summarize(g, metric), split)
    merged: dict = {"timings": {}, "leakage": {}, "folds": {}}
    for r in results:
        for key in merged:
            merged[key].update(r.get(key, {}))
    config = dict(results[0]["config"])
    config["fold_ids"] = sorted({i for r in results for i in (r["config"].get("fold_ids") or [])})
    if episodes_path is not None:
        df.to_csv(episodes_path, index=False)
    adapt = df.groupby("method", sort=False)["adapt_s"].mean().to_dict()
    return make_result(results[0]["protocol"], rows, float(sum(r["runtime_s"] for r in results)), config,
                       mean_adapt_predict_s=adapt, **merged)
