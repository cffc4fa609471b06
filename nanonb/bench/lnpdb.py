"""The ``lnpdb`` protocol: few-shot ranking of lipid-nanoparticle formulations by delivery efficacy (LNPDB).

Studies with >= 30 formulations (38 tasks). Leave-study-out 5-fold GroupKFold; 20 episodes per
study with K = 10 and K = 30; query = the rest, capped at 1000 points drawn with the episode's
seed; metrics ``spearman`` (rank correlation on the query; 0 when a method predicts a constant)
and ``top10_recall`` (:func:`nanonb.evaluation.top_recall`). Methods and the per-fold recipe:
:mod:`nanonb.bench.casestudy`. The test-time inner loop (50 SGD steps at lr 0.05) was chosen on an
inner leave-study-out split of fold 0's meta-train set (3 episodes per task).

Example
-------
``NANONB_DATA_DIR=../shared/data python -m nanonb.bench lnpdb --out results/lnpdb.json``
(``--set key=value`` overrides a :class:`LNPDBConfig` field).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..data.lnpdb import lnpdb_taskset
from ..tasks import Task, TaskSet
from .casestudy import MetaSpec, check_disjoint, finish, run_folds
from .casestudy_gp import lnpdb_candidates, nested_select
from .schema import apply_options

__all__ = ["LNPDBConfig", "lnpdb_splits", "run_lnpdb"]


def _study(t: Task) -> str:
    return t.groups[0]


def lnpdb_splits(ts: TaskSet, n_folds: int = 5) -> dict[str, list]:
    """Leave-study-out folds ``{"leave-study-out": ts.group_kfold(n_folds)}``, checked disjoint.

    Example
    -------
    >>> folds = lnpdb_splits(lnpdb_taskset(), n_folds=5)["leave-study-out"]  # doctest: +SKIP
    """
    folds = ts.group_kfold(n_folds, key=_study)
    for tr, te in folds:
        check_disjoint(tr, te, _study)
    return {"leave-study-out": folds}


def _default_lnpdb_meta() -> list[MetaSpec]:
    # Test-time steps (50 at lr 0.05) chosen on an inner leave-study-out split of fold 0's meta-train set.
    return [MetaSpec("fomaml-mlp", algorithm="fomaml", model="MLP", init="pooled", hidden=(64, 64), inner_lr=0.05,
                     inner_steps=10, inner_grad_clip=2.0, n_iterations=150, k_support=(5, 35), k_query=64,
                     adapt_steps=50, adapt_lr=0.05)]


@dataclass
class LNPDBConfig:
    """Configuration of :func:`run_lnpdb` (every field can be overridden with ``--set key=value``).

    ``k_query_cap``: most query points per episode; budgets as in
    :class:`nanonb.bench.calisol.CalisolConfig` (``rf_trees``: trees of the support random forest);
    ``candidates``: the learners of the nested selection (:func:`nanonb.bench.casestudy_gp.lnpdb_candidates`);
    ``stack_gp_weights``: the Tanimoto GP's weight in each stack candidate (0.5: ``stack``, else ``stack-gp<w>``);
    ``select_folds``: how many of the 3 inner leave-study-out splits the nested selection scores on (1: the first).
    ``fold_ids``: run only these outer folds (None: all; merge runs on disjoint folds with
    :func:`nanonb.bench.casestudy.merge_folds`), as in CALiSol.

    Example
    -------
    >>> LNPDBConfig.quick().k_query_cap
    200
    """

    min_points: int = 30
    n_folds: int = 5
    shots: tuple[int, ...] = (10, 30)
    n_episodes: int = 20
    k_query_cap: int = 1000
    meta: list[MetaSpec] = field(default_factory=_default_lnpdb_meta)
    baselines: tuple[str, ...] = ("gp", "pooled-gbm", "pooled-gbm+recal", "residual-gp", "pooled-mlp",
                                  "pooled-mlp+finetune", "random")
    hidden: tuple[int, ...] = (64, 64)
    train_min_target: float | None = None
    pooled_epochs: int = 20
    pooled_batch: int = 128
    finetune_steps: int = 20
    finetune_lr: float = 1e-3
    gbm_iter: int = 200
    rf_trees: int = 100
    gp_restarts: int = 0
    max_folds: int | None = None
    fold_ids: tuple[int, ...] | None = None
    workers: int = 1
    seed: int = 0
    fingerprint: str = "counts"
    split_assays: bool = True
    select: bool = True
    select_episodes: int = 3
    gp_iterations: int = 200
    candidates: tuple[str, ...] = ("rf-support", "tanimoto-gp", "tanimoto-gp+pooled", "stack")
    stack_gp_weights: tuple[float, ...] = (0.5,)
    select_folds: int = 1

    @classmethod
    def quick(cls) -> LNPDBConfig:
        """The reduced configuration of ``--quick`` (one fold, 2 episodes, tiny budgets)."""
        meta = _default_lnpdb_meta()
        for m in meta:
            m.n_iterations, m.meta_batch_size, m.adapt_steps, m.k_query = 5, 2, 10, 32
        return cls(n_episodes=2, max_folds=1, k_query_cap=200, meta=meta, pooled_epochs=1, gbm_iter=30, rf_trees=20,
                   select_episodes=1, gp_iterations=3)


def run_lnpdb(quick: bool = False, seed: int = 0, progress: bool = True, config: LNPDBConfig | None = None,
              data_dir=None, log: Callable = print, episodes_path=None, **options) -> dict:
    """LNPDB few-shot benchmark (leave-study-out 5-fold); metrics ``spearman`` and ``top10_recall``.

    Same parameters and return value as :func:`nanonb.bench.calisol.run_calisol` (config
    :class:`LNPDBConfig`; data files ``lnpdb_all_data_metadata.csv`` and ``lnpdb_all_data_extra_x.csv``);
    metrics dimensionless.

    Example
    -------
    >>> res = run_lnpdb(quick=True, data_dir="../shared/data")  # doctest: +SKIP
    """
    t_all = time.perf_counter()
    cfg = apply_options(config or (LNPDBConfig.quick() if quick else LNPDBConfig()), options,
                        reserved={"seed": "--seed"})
    cfg.seed = seed
    t0 = time.perf_counter()
    ts = lnpdb_taskset(min_points=cfg.min_points, data_dir=data_dir, fingerprint=cfg.fingerprint,
                       split_assays=cfg.split_assays)
    log(f"LNPDB: {len(ts)} tasks with >= {cfg.min_points} points from {len(ts.all_groups)} studies "
        f"({time.perf_counter() - t0:.1f} s)")
    splits = lnpdb_splits(ts, cfg.n_folds)
    metrics = ["spearman", "top10_recall"]

    def extra(train, log):
        return nested_select(lnpdb_candidates(cfg, seed), train, _study, cfg.shots, cfg.select_episodes, "spearman",
                             higher_is_better=True, seed=seed, k_query_cap=cfg.k_query_cap, log=log,
                             n_select_folds=cfg.select_folds)

    df, timings, leakage, fold_info = run_folds("lnpdb", splits, cfg, metrics, cfg.k_query_cap, False, seed,
                                                progress, log, extra if cfg.select else None)
    return finish("lnpdb", df, metrics, cfg, timings, leakage, fold_info, t_all,
                  {"unit": "z-score (ranking metrics)", "n_tasks": len(ts), "quick": quick}, episodes_path)
