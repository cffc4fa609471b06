"""Protocol ``tb``: the TB-embedded meta-learner vs the plain graph network vs baselines on flakes.

``python -m nanonb.bench tb [--quick]``; configuration :class:`TBBenchConfig`, entry point
:func:`run_tb_bench`. Held-out flake families and size extrapolation, with a count of negative
predicted gaps per method (:func:`nanonb.physics.constraint_report`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from nanonb.baselines.gp import SupportGP
from nanonb.baselines.nets import FineTune, Pooled, Scratch
from nanonb.bench import make_result, summary_to_rows  # WAVE2: nanonb.bench.schema (H4)
from nanonb.bench.episodes import apply_options, run_episodes, violation_rows
from nanonb.data.flakes import drop_shared_molecules, load_flakes, size_split
from nanonb.evaluation import Named, summarize
from nanonb.learners.registry import make_learner
from nanonb.physics import HuckelCalibration, constraint_report, tb_model_kwargs
from nanonb.threads import set_threads


@dataclass
class TBBenchConfig:
    """TB benchmark (``python -m nanonb.bench tb``) on the GFN2-xTB flake gaps (eV).

    ``holdouts`` maps split names to held-out groups (a dopant or shapes; :meth:`TaskSet.split_by_group`);
    meta-train molecules identical to a meta-test molecule are removed first (``drop_shared``).
    The size split trains on ``n_heavy <= size_threshold`` and tests on larger flakes at ``size_shots``
    (0 = zero-shot, only methods that can predict without a support set).

    Example
    -------
    >>> TBBenchConfig.quick().baselines
    ('pooled', 'gp', 'huckel+calibration')
    """

    n_per_family: int = 20
    data_seed: int = 0
    holdouts: dict = field(default_factory=lambda: {"holdout-BN": ["BN"],
                                                    "holdout-ribbons": ["ribbon-zigzag", "ribbon-armchair"]})
    shots: tuple[int, ...] = (1, 5, 10)
    n_episodes: int = 5
    size_split: bool = True
    size_threshold: int = 24
    size_shots: tuple[int, ...] = (0, 1, 3)
    tb_kwargs: dict = field(default_factory=lambda: {"hidden": 32, "n_layers": 2})
    gnn_kwargs: dict = field(default_factory=lambda: {"width": 32, "n_blocks": 2, "n_rbf": 16})
    tb_algorithms: tuple[str, ...] = ("anil",)
    gnn_algorithms: tuple[str, ...] = ("fomaml", "anil")
    n_iterations: int = 150
    inner_lr: float = 0.05
    inner_steps: int = 5
    inner_grad_clip: float = 1.0
    outer_lr: float = 3e-3
    meta_batch_size: int = 4
    k_support: tuple[int, int] = (1, 10)
    k_query: int = 10
    size_k_support: tuple[int, int] = (1, 5)
    size_k_query: int = 5
    baselines: tuple[str, ...] = ("scratch", "pooled", "pooled+finetune", "pooled-tb", "gp", "huckel+calibration")
    pooled_epochs: int = 40
    finetune_steps: int = 20
    scratch_steps: int = 100
    drop_shared: bool = True
    seed: int = 0

    @classmethod
    def quick(cls) -> TBBenchConfig:
        return cls(holdouts={"holdout-BN": ["BN"]}, shots=(1, 5), n_episodes=1, size_shots=(0, 1),
                   tb_kwargs={"hidden": 8, "n_layers": 1}, gnn_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8},
                   gnn_algorithms=("fomaml",), n_iterations=3, inner_steps=2, meta_batch_size=2,
                   k_support=(1, 5), k_query=5, size_k_support=(1, 3), size_k_query=3,
                   baselines=("pooled", "gp", "huckel+calibration"), pooled_epochs=2, scratch_steps=10,
                   finetune_steps=3)


def _tb_methods(cfg: TBBenchConfig, train, k_support, k_query, progress: bool, log, timings: dict, split: str):
    common = dict(n_iterations=cfg.n_iterations, inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps,
                  inner_grad_clip=cfg.inner_grad_clip, outer_lr=cfg.outer_lr, meta_batch_size=cfg.meta_batch_size,
                  k_support=tuple(k_support), k_query=k_query, seed=cfg.seed)
    tb_kw = tb_model_kwargs(train, **cfg.tb_kwargs)
    specs = [(f"{a}-tb", "TBGapNet", tb_kw, a) for a in cfg.tb_algorithms]
    specs += [(a, "InvariantGNN", dict(cfg.gnn_kwargs), a) for a in cfg.gnn_algorithms]
    methods = []
    for name, model, kw, algo in specs:
        t0 = time.perf_counter()
        learner = make_learner(algo, model=model, model_kwargs=kw, **common).fit(train, progress=progress)
        timings[f"{split}: meta-train {name}"] = time.perf_counter() - t0
        log(f"  meta-trained {name:10s} in {timings[f'{split}: meta-train {name}']:.1f} s")
        methods.append(Named(learner, name, "meta", zero_shot=True))
    pooled = None
    for b in cfg.baselines:
        t0 = time.perf_counter()
        if b == "scratch":
            m = Scratch(model_kwargs=cfg.gnn_kwargs, steps=cfg.scratch_steps, seed=cfg.seed).fit(train)
        elif b in ("pooled", "pooled+finetune"):
            if pooled is None:
                pooled = Pooled(model_kwargs=cfg.gnn_kwargs, epochs=cfg.pooled_epochs, seed=cfg.seed).fit(train)
            m = pooled if b == "pooled" else FineTune(pooled, steps=cfg.finetune_steps)
        elif b == "pooled-tb":
            m = Named(Pooled(model="TBGapNet", model_kwargs=tb_kw, epochs=cfg.pooled_epochs,
                                   seed=cfg.seed).fit(train), "pooled-tb", "baseline", zero_shot=True)
        elif b == "gp":
            m = SupportGP(seed=cfg.seed).fit(train)
        elif b == "huckel+calibration":
            m = HuckelCalibration(seed=cfg.seed).fit(train)
        else:
            raise ValueError(f"unknown baseline {b!r}; choose from {TBBenchConfig().baselines}")
        timings[f"{split}: fit {b}"] = time.perf_counter() - t0
        methods.append(m)
    return methods


def run_tb_bench(quick: bool = False, seed: int = 0, progress: bool = True, config: TBBenchConfig | None = None,
                 log=print, **options) -> dict:
    """TB-embedded meta-learner vs plain graph network vs baselines on held-out flake families.

    Splits: every entry of ``config.holdouts`` (held-out dopant / shapes, shared molecules removed
    from meta-train) and the size-extrapolation split (train on small flakes, test on large ones).
    Rows: metric ``mae`` (eV) per split, method and shot count, plus ``constraint_violations``
    (negative predicted gaps per test task, summed over episodes; see the ``constraints`` key for
    totals). Methods of the TB-embedded model carry ``tb`` in their name. ``--set key=value``
    overrides :class:`TBBenchConfig` fields.

    Example
    -------
    >>> result = run_tb_bench(quick=True, progress=False)        # doctest: +SKIP
    >>> result["constraints"]["holdout-BN"]                      # negative gaps per method  # doctest: +SKIP
    """
    set_threads()  # NANONB_NUM_THREADS or 1
    cfg = config or (TBBenchConfig.quick() if quick else TBBenchConfig())
    cfg = apply_options(cfg, {**options, "seed": seed}, log)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    tasks = load_flakes(n_per_family=cfg.n_per_family, seed=cfg.data_seed, progress=progress,
                        cache_dir=options.get("cache_dir"))
    log(f"tb: {len(tasks)} flake families, {sum(len(t) for t in tasks)} molecules (GFN2-xTB gaps, eV)")
    splits = []
    for name, hold in cfg.holdouts.items():
        train, test = tasks.split_by_group(hold)
        splits.append((name, train, test, cfg.shots, cfg.k_support, cfg.k_query))
    if cfg.size_split:
        train, test = size_split(tasks, cfg.size_threshold)
        splits.append((f"size-extrapolation (n_heavy <= {cfg.size_threshold} -> >)", train, test, cfg.size_shots,
                       cfg.size_k_support, cfg.size_k_query))
    rows, constraints, leakage = [], {}, {}
    for name, train, test, shots, ks, kq in splits:
        removed = 0
        if cfg.drop_shared:
            train, removed = drop_shared_molecules(train, test)
        leakage[name] = {"shared_molecules_removed_from_train": removed,
                         "n_train_tasks": len(train), "n_test_tasks": len(test),
                         "n_train_points": sum(len(t) for t in train), "n_test_points": sum(len(t) for t in test)}
        log(f"[{name}] meta-train {len(train)} tasks ({leakage[name]['n_train_points']} molecules; {removed} "
            f"shared with meta-test removed), meta-test {len(test)} tasks: {', '.join(test.names)}")
        methods = _tb_methods(cfg, train, ks, kq, progress, log, timings, name)
        t0 = time.perf_counter()
        df, preds = run_episodes(methods, test, shots, cfg.n_episodes, seed=cfg.seed, progress=progress)
        timings[f"{name}: evaluation"] = time.perf_counter() - t0
        rows += summary_to_rows(summarize(df, "mae"), name)
        rows += violation_rows(df, name)
        constraints[name] = {}
        log(f"  constraint report (predicted gaps >= 0), all episodes and shots of [{name}]:")
        for m, p in preds.items():
            rep = constraint_report(**{f"{m} gap": p})
            constraints[name][m] = {"n_predictions": int(rep["n_items"].iloc[0]),
                                    "n_violations": int(rep["n_violations"].iloc[0])}
            log(f"    {m:20s} {rep['n_violations'].iloc[0]:4d} of {rep['n_items'].iloc[0]:5d} negative  "
                f"({rep.attrs['summary']})")
    timings["total"] = time.perf_counter() - t_all
    return make_result("tb", rows, timings["total"], asdict(cfg) | {"unit": "eV"}, timings=timings,
                       constraints=constraints, leakage=leakage)
