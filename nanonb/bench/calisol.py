"""The ``calisol`` protocol: few-shot ionic conductivity of Li-ion electrolytes (CALiSol-23).

Electrolyte systems with >= 20 measurements (56 tasks, 9 salts). Leave-salt-out 5-fold GroupKFold
(every system of a held-out salt is in meta-test) and, for contrast, a random task split (30 % of
the tasks). Per test task 20 seeded episodes of K = 5 and K = 10 support points, query = the rest;
metric ``mae`` of ``log10(k / mS/cm)``, averaged over episodes, then over tasks. Methods and the
per-fold recipe: :mod:`nanonb.bench.casestudy`.

Choices specific to this protocol, made on two inner leave-salt-out splits of fold 0's meta-train
set (5 episodes per task) before looking at any test fold: FOMAML from the pooled network, 10
inner steps in meta-training and 100 SGD steps at test time, and the anion descriptors hidden from
the VTF body (with nine salts they identify the salt and do not generalise). Fold 0's meta-train
set contains the salts of the other test folds, so these few hyper-parameters have seen that data
as meta-training data (never as a test fold of this protocol). Meta-train points with
log10 k < -3 (down to 1e-16 mS/cm; :func:`nanonb.bench.casestudy.drop_low_targets`) are removed
from meta-training for every method; every test point is kept.

Example
-------
``NANONB_DATA_DIR=../shared/data python -m nanonb.bench calisol --out results/calisol.json``
(``--quick`` for the reduced configuration used by the tests; ``--set key=value`` overrides a
:class:`CalisolConfig` field).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..data.calisol import calisol_taskset
from ..tasks import Task, TaskSet
from .casestudy import MetaSpec, check_disjoint, finish, run_folds
from .casestudy_gp import calisol_candidates, nested_select
from .schema import apply_options

__all__ = ["CalisolConfig", "calisol_splits", "run_calisol"]


def _salt(t: Task) -> str:
    return t.groups[0]


def calisol_splits(ts: TaskSet, n_folds: int = 5, random_fraction: float = 0.3, seed: int = 0,
                   splits: Sequence[str] = ("leave-salt-out", "random-task")) -> dict[str, list]:
    """The CALiSol splits: ``{"leave-salt-out": [(train, test)] * n_folds, "random-task": [(train, test)]}``.

    Leave-salt-out folds come from ``ts.group_kfold(n_folds)`` (key ``groups[0]`` = the salt) and are
    checked to share no salt; the random split is ``ts.random_split(random_fraction, seed)``.

    Example
    -------
    >>> folds = calisol_splits(calisol_taskset(), n_folds=5)["leave-salt-out"]  # doctest: +SKIP
    """
    out = {}
    if "leave-salt-out" in splits:
        folds = ts.group_kfold(n_folds, key=_salt)
        for tr, te in folds:
            check_disjoint(tr, te, _salt)
        out["leave-salt-out"] = folds
    if "random-task" in splits:
        folds = [ts.random_split(test_fraction=random_fraction, seed=seed)]
        for tr, te in folds:
            check_disjoint(tr, te, None)
        out["random-task"] = folds
    return out


def _default_calisol_meta() -> list[MetaSpec]:
    # Chosen on an inner leave-salt-out split of fold 0's meta-train set (see the module notes):
    # FOMAML from the pooled network, 10 inner steps in meta-training, 100 SGD steps at test time.
    return [
        MetaSpec("fomaml-mlp", algorithm="fomaml", model="MLP", init="pooled", hidden=(64, 64), inner_lr=0.05,
                 inner_steps=10, inner_grad_clip=2.0, n_iterations=150, adapt_steps=100, adapt_lr=0.05),
        MetaSpec("fomaml-vtf", algorithm="fomaml", model="VTFNet", init="pooled", hidden=(32, 32), inner_lr=0.05,
                 inner_steps=10, inner_grad_clip=2.0, n_iterations=200, vtf_mask=("anion_",), adapt_steps=100,
                 adapt_lr=0.1),
    ]


@dataclass
class CalisolConfig:
    """Configuration of :func:`run_calisol` (every field can be overridden with ``--set key=value``).

    Budgets: ``pooled_epochs`` / ``finetune_steps`` (optimiser steps), ``gbm_iter`` (trees),
    ``train_min_target`` in log10(mS/cm) (None: keep every meta-train point); ``candidates``: the learners of
    the nested selection (:func:`nanonb.bench.casestudy_gp.calisol_candidates`; None: all of them);
    ``stack_gp_weights``: the weight of ``dkt-vtf-rbf`` in each stack candidate (0.5: ``stack``, else
    ``stack-gp<w>``); ``select_folds``: how many of the 3 inner leave-salt-out splits the nested selection
    scores on (1: the first, as before; 3: every meta-train salt held out once,
    :func:`nanonb.bench.casestudy_gp.nested_select`); ``ft_ens_members``: pooled networks in the ``ft-ens``
    candidate and in the mean of ``dkt-vtf-rbf-ens``; ``ft_map_prior``: the weight-prior strength of ``ft-map``;
    ``ft_map_priors``: more prior strengths, one ``ft-map-p<prior>`` candidate each, with its stacks (default none).

    Example
    -------
    >>> CalisolConfig.quick().max_folds
    1
    """

    min_points: int = 20
    n_folds: int = 5
    random_fraction: float = 0.3
    splits: tuple[str, ...] = ("leave-salt-out", "random-task")
    shots: tuple[int, ...] = (5, 10)
    n_episodes: int = 20
    meta: list[MetaSpec] = field(default_factory=_default_calisol_meta)
    baselines: tuple[str, ...] = ("gp", "pooled-gbm", "pooled-gbm+offset", "residual-gp", "pooled-mlp",
                                  "pooled-mlp+finetune", "vtf-fit", "pooled-vtf+finetune")
    hidden: tuple[int, ...] = (64, 64)
    train_min_target: float | None = -3.0
    pooled_epochs: int = 40
    pooled_batch: int = 128
    finetune_steps: int = 20
    finetune_lr: float = 1e-3
    gbm_iter: int = 300
    gp_restarts: int = 1
    max_folds: int | None = None
    fold_ids: tuple[int, ...] | None = None
    workers: int = 1
    seed: int = 0
    select: bool = True
    select_episodes: int = 3
    gp_iterations: int = 300
    bml_iterations: int = 500
    ens_members: int = 3
    outer_only: tuple[str, ...] = ("ensemble",)
    ens_iterations: int = 150
    candidates: tuple[str, ...] | None = None
    stack_gp_weights: tuple[float, ...] = (0.5,)
    select_folds: int = 1
    ft_ens_members: int = 3
    ft_map_prior: float = 0.03
    ft_map_priors: tuple[float, ...] = ()

    @classmethod
    def quick(cls) -> CalisolConfig:
        """The reduced configuration of ``--quick`` (one fold of each split, 2 episodes, tiny budgets)."""
        meta = _default_calisol_meta()
        for m in meta:
            m.n_iterations, m.meta_batch_size, m.adapt_steps = 5, 2, 10
        return cls(n_folds=3, splits=("leave-salt-out", "random-task"), n_episodes=2, max_folds=1, meta=meta,
                   pooled_epochs=1, gbm_iter=30, gp_restarts=0, select_episodes=1, gp_iterations=3, bml_iterations=3,
                   ens_members=2, ens_iterations=2)


def run_calisol(quick: bool = False, seed: int = 0, progress: bool = True, config: CalisolConfig | None = None,
                data_dir=None, log: Callable = print, episodes_path=None, **options) -> dict:
    """CALiSol-23 few-shot benchmark (leave-salt-out 5-fold + random task split); metric ``mae``.

    Parameters
    ----------
    quick:
        Reduced configuration (:meth:`CalisolConfig.quick`: one fold of each split, 2 episodes, tiny
        budgets) for tests.
    seed:
        Seed of the episodes, the random split and every model.
    config:
        A :class:`CalisolConfig`; ``options`` override its fields (``--set shots=[5,10]``).
    data_dir:
        Folder with ``calisol23.xlsx`` (default: ``$NANONB_DATA_DIR`` or the download cache).
    episodes_path:
        Optional CSV path for the per-episode table.

    Returns
    -------
    dict
        :func:`nanonb.bench.schema.make_result` with rows for each split, method and K (``mae`` in
        log10(mS/cm)), plus ``timings``, ``leakage``, ``folds`` and ``mean_adapt_predict_s``.

    Example
    -------
    >>> res = run_calisol(quick=True, data_dir="../shared/data", shots=[5])  # doctest: +SKIP
    """
    t_all = time.perf_counter()
    cfg = apply_options(config or (CalisolConfig.quick() if quick else CalisolConfig()), options,
                        reserved={"seed": "--seed"})
    cfg.seed = seed
    t0 = time.perf_counter()
    ts = calisol_taskset(min_points=cfg.min_points, data_dir=data_dir)
    log(f"CALiSol-23: {len(ts)} systems with >= {cfg.min_points} points, {len(ts.all_groups)} groups "
        f"({time.perf_counter() - t0:.1f} s)")
    splits = calisol_splits(ts, cfg.n_folds, cfg.random_fraction, seed, cfg.splits)

    def extra(train, log):
        cands = calisol_candidates(cfg, seed)
        also = {n: cands.pop(n) for n in cfg.outer_only if n in cands}
        return nested_select(cands, train, _salt, cfg.shots, cfg.select_episodes, "mae", higher_is_better=False,
                             seed=seed, log=log, also=also, n_select_folds=cfg.select_folds)

    df, timings, leakage, fold_info = run_folds("calisol", splits, cfg, ["mae"], None, True, seed, progress, log,
                                                extra if cfg.select else None)
    return finish("calisol", df, ["mae"], cfg, timings, leakage, fold_info, t_all,
                  {"unit": "log10(mS/cm)", "n_tasks": len(ts), "quick": quick}, episodes_path)
