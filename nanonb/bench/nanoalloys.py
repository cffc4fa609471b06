"""The ``nanoalloys`` protocol (and ``nanonb quickstart``): few-shot mixing energies of EMT nanoalloys.

Three disjoint sets of element-pair tasks, all errors MAE/RMSE in meV/atom:

- **meta-test**: every pair with the held-out element (default Pt); used for the table only;
- **meta-validation**: the meta-train pairs with a second element (``val_element``, default the
  element before ``holdout`` in :data:`~nanonb.data.nanoalloys.ELEMENTS`, e.g. Pd for Pt): every
  meta-learner is trained without them and scored on them at K = ``val_k``; the lowest MAE picks the
  **best learner**, which is then retrained on all meta-train pairs (row ``best=<name>``);
- **meta-train**: the rest.

Families: MAML, FOMAML, ANIL and Meta-SGD on the structures (graph network, adapted around the
support mean: ``center="support"``), and the Bayesian last layer (``bml``), an ensemble of five (``bml-ens``),
deep kernel transfer
(``dkt``) and a deep ensemble of ANIL learners (``ensemble``) on the 12 cluster descriptors.
Baselines: scratch, pooled, pooled + fine-tune (graph network, all meta-train pairs), GP on the
support (descriptors), the support mean, and the **in-task ceiling** (GP on 80 % of each held-out task,
5-fold; :mod:`nanonb.baselines.ceiling`). Every method sees the same seeded episodes. Metric rows
``closed`` = (support-mean MAE - method MAE) / (support-mean MAE - ceiling MAE), per K, from the
task-averaged MAEs.

Example
-------
``python -m nanonb.bench nanoalloys --holdout Cu --set n_episodes=5 --out results/nanoalloys_Cu.json``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..baselines.ceiling import in_task_ceiling
from ..baselines.gp import SupportGP
from ..baselines.nets import FineTune, Pooled, Scratch, SupportMean
from ..data.nanoalloys import ELEMENTS, load_nanoalloys
from ..evaluation import Named, evaluate, summarize
from ..tasks import leakage_report
from .nanoalloy_methods import DESCRIPTOR_LEARNERS, descriptor_learner, graph_learner, meta_validate
from .nanoalloy_report import ceiling_rows, closed_rows, quickstart_figure_best, verdict
from .schema import OptionError, apply_options, make_result, summary_to_rows


@dataclass
class NanoalloyConfig:
    """Configuration of the nanoalloy protocol and of ``nanonb quickstart``.

    Meta-test = every element pair containing ``holdout``; meta-validation = the meta-train pairs
    containing ``val_element`` (``None``: the element before ``holdout`` in ``ELEMENTS``); errors in
    meV/atom. ``algorithms``: the MAML family on structures, warm-started from a pooled network trained
    on the same pairs (``warm_start``), ``inner_steps`` SGD steps around the support mean
    (``center="support"``); ``descriptor_learners``: ``bml``, ``bml-ens`` (``bml_members`` BMLs, one mixture),
    ``dkt``, ``ensemble`` on descriptors.
    ``iterations`` holds the meta-training iterations of every learner. ``n_episodes`` test episodes
    per task and K, ``val_episodes`` per validation task at ``val_k`` shots.

    Example
    -------
    >>> NanoalloyConfig.quick().shots
    (1, 5)
    """

    holdout: str = "Pt"
    val_element: str | None = None
    n_per_pair: int = 80
    shots: tuple[int, ...] = (1, 5, 10)
    n_episodes: int = 5
    val_k: int = 5
    val_episodes: int = 3
    algorithms: tuple[str, ...] = ("maml", "fomaml", "anil", "metasgd")
    descriptor_learners: tuple[str, ...] = DESCRIPTOR_LEARNERS
    model_kwargs: dict = field(default_factory=lambda: {"width": 32, "n_blocks": 2, "n_rbf": 16})
    descriptor_hidden: tuple[int, ...] = (64, 64)
    iterations: dict = field(default_factory=lambda: {"maml": 30, "fomaml": 50, "anil": 100, "metasgd": 30,
                                                      "bml": 250, "bml-ens": 250, "dkt": 200,
                                                      "ensemble": 80})
    inner_lr: dict = field(default_factory=lambda: {"maml": 0.03, "fomaml": 0.03, "anil": 0.1, "metasgd": 0.01})
    inner_steps: int = 10
    inner_grad_clip: float = 1.0
    center: str = "support"
    meta_batch_size: int = 4
    outer_lr: float = 3e-4
    warm_start: bool = True
    ensemble_members: int = 3
    bml_members: int = 5
    pooled_epochs: int = 15
    finetune_steps: int = 20
    scratch_steps: int = 30
    ceiling_splits: int = 5
    seed: int = 0

    @classmethod
    def quick(cls) -> NanoalloyConfig:
        """The reduced configuration of ``--quick`` (seconds; used by the tests)."""
        return cls(n_per_pair=24, shots=(1, 5), n_episodes=2, val_episodes=1, algorithms=("fomaml", "anil"),
                   descriptor_learners=("bml", "bml-ens", "dkt"), bml_members=2,
                   pooled_epochs=3, descriptor_hidden=(16,),
                   model_kwargs={"width": 16, "n_blocks": 1, "n_rbf": 8}, inner_steps=3,
                   iterations={"maml": 5, "fomaml": 5, "anil": 5, "metasgd": 5, "bml": 20, "bml-ens": 20, "dkt": 20,
                               "ensemble": 5},
                   scratch_steps=10, finetune_steps=5, ceiling_splits=2)

    def validation_element(self) -> str:
        """``val_element``, or the element before ``holdout`` in :data:`ELEMENTS` (cyclically)."""
        if self.val_element is not None:
            if self.val_element == self.holdout:
                raise ValueError(f"val_element must differ from holdout ({self.holdout}): meta-validation uses "
                                 "meta-train tasks only")
            return self.val_element
        return ELEMENTS[(ELEMENTS.index(self.holdout) - 1) % len(ELEMENTS)]


def _fit_learners(cfg: NanoalloyConfig, fit_tasks, progress: bool, log: Callable, timings: dict) -> list:
    """Every learner (graph family warm-started from a pooled network on ``fit_tasks``), fitted on ``fit_tasks``."""
    pooled_model = None
    if cfg.algorithms:
        t0 = time.perf_counter()
        warm = Pooled(model_kwargs=cfg.model_kwargs, epochs=cfg.pooled_epochs, seed=cfg.seed).fit(fit_tasks,
                                                                                                 progress=progress)
        pooled_model = warm.model
        timings["pooled pre-training (warm start)"] = time.perf_counter() - t0
    learners = []
    for name in (*cfg.algorithms, *cfg.descriptor_learners):
        t0 = time.perf_counter()
        graph = name in cfg.algorithms
        learner = graph_learner(cfg, name, pooled_model) if graph else descriptor_learner(cfg, name)
        learner.fit(fit_tasks, **({"val": None} if graph else {}), progress=progress)
        timings[f"meta-train {name}"] = time.perf_counter() - t0
        log(f"  meta-trained {name:8s} ({cfg.iterations[name]} iterations) in {timings[f'meta-train {name}']:.1f} s")
        learners.append(learner)
    return learners


def _refit_best(cfg: NanoalloyConfig, name: str, train, progress: bool):
    """The selected learner, retrained on all meta-train pairs (row ``best=<name>``)."""
    if name in cfg.algorithms:
        pooled = Pooled(model_kwargs=cfg.model_kwargs, epochs=cfg.pooled_epochs, seed=cfg.seed).fit(train)
        learner = graph_learner(cfg, name, pooled.model).fit(train, val=None, progress=progress)
    else:
        learner = descriptor_learner(cfg, name).fit(train, progress=progress)
    return Named(learner, f"best={name}")


def run_nanoalloys(quick: bool = False, seed: int = 0, holdout: str | None = None, progress: bool = True,
                   config: NanoalloyConfig | None = None, fig_path: str | Path | None = None,
                   save_dir: str | Path | None = None, cache_dir=None, log: Callable = print, **options) -> dict:
    """Held-out-element few-shot benchmark on the embedded EMT nanoalloys (see the module docstring).

    Meta-trains every learner on the meta-train pairs without the validation element, picks the best by
    its MAE at K = ``val_k`` on the validation pairs, retrains it on all meta-train pairs, and evaluates
    every method on the same seeded episodes of the held-out pairs. Returns the result dict with MAE,
    RMSE (meV/atom) and ``closed`` rows, ``best`` (name, validation MAEs in meV/atom), ``verdict`` (one
    line) and ``ceiling`` (per task, meV/atom). ``options`` override :class:`NanoalloyConfig` fields;
    ``fig_path`` writes the figure, ``save_dir`` the learners.

    Example
    -------
    >>> res = run_nanoalloys(quick=True, holdout="Cu", progress=False)  # doctest: +SKIP
    >>> res["verdict"]                                                    # doctest: +SKIP
    'best learner: bml; at K=5 it closes 85 % of the learnable error; support mean 32.1, ceiling 15.0 meV/atom'
    """
    cfg = apply_options(config or (NanoalloyConfig.quick() if quick else NanoalloyConfig()), options,
                        reserved={"seed": "--seed"})
    if holdout is not None:
        cfg.holdout = holdout
    cfg.seed = seed
    if cfg.holdout not in ELEMENTS:  # before any data is generated
        raise OptionError(f"holdout must be one of the nanoalloy elements {', '.join(ELEMENTS)}, not {cfg.holdout!r}")
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    tasks = load_nanoalloys(n_per_pair=cfg.n_per_pair, seed=seed, cache_dir=cache_dir, progress=progress)
    timings["data (EMT labels or cache)"] = time.perf_counter() - t0
    train, test = tasks.split_by_group(cfg.holdout)
    val_el = cfg.validation_element()
    fit_tasks, val = train.split_by_group(val_el)
    log(f"data: {len(tasks)} element-pair tasks, {sum(len(t) for t in tasks)} clusters; meta-test = {len(test)} "
        f"pairs with {cfg.holdout}; meta-validation = {len(val)} meta-train pairs with {val_el}; "
        f"{len(fit_tasks)} pairs for meta-training")
    learners = _fit_learners(cfg, fit_tasks, progress, log, timings)
    t0 = time.perf_counter()
    val_mae = meta_validate(learners, val, k=cfg.val_k, n_episodes=cfg.val_episodes, seed=seed)
    best_name = min(val_mae, key=val_mae.get)
    timings["meta-validation"] = time.perf_counter() - t0
    scores = ", ".join(f"{n} {1000 * v:.1f}" for n, v in val_mae.items())
    log(f"  meta-validation MAE at K={cfg.val_k} on {val_el} pairs (meV/atom): {scores} -> best: {best_name}")
    t0 = time.perf_counter()
    best = _refit_best(cfg, best_name, train, progress)
    timings[f"retrain {best_name} on all meta-train pairs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pooled = Pooled(model_kwargs=cfg.model_kwargs, epochs=cfg.pooled_epochs, seed=cfg.seed)
    pooled.fit(train, progress=progress)
    baselines = [Scratch(model_kwargs=cfg.model_kwargs, steps=cfg.scratch_steps, seed=cfg.seed).fit(train),
                 FineTune(pooled, steps=cfg.finetune_steps), pooled, SupportGP(seed=cfg.seed).fit(train),
                 SupportMean()]
    timings["baselines (pooled network on all meta-train pairs)"] = time.perf_counter() - t0
    methods = [best, *learners, *baselines]
    t0 = time.perf_counter()
    df = evaluate(methods, test, shots=cfg.shots, n_episodes=cfg.n_episodes, seed=seed, progress=progress)
    timings["evaluation"] = time.perf_counter() - t0
    per_method = df.groupby("method", sort=False)["adapt_s"].sum()
    timings.update({f"  evaluation of {m}": float(v) for m, v in per_method.items()})
    log(f"  evaluated {len(methods)} methods x {len(test)} tasks x {len(cfg.shots)} shot counts x "
        f"{cfg.n_episodes} episodes in {timings['evaluation']:.1f} s")
    support_fit = _support_fit([m for m in learners if hasattr(m, "support_loss")], test, cfg)
    for name, v in support_fit.items():
        log(f"  {name}: support loss (standardized MSE, K=5) {v['before']:.3f} before adapt, {v['after']:.3f} after")
    t0 = time.perf_counter()
    ceiling = in_task_ceiling(test, n_splits=cfg.ceiling_splits, seed=seed)
    timings["in-task ceiling"] = time.perf_counter() - t0
    split = f"holdout-{cfg.holdout}"
    summ = summarize(df, "mae", scale=1000.0)
    rows = summary_to_rows(summ, split) + ceiling_rows(ceiling, cfg.shots, split)
    rows += closed_rows(rows, split)
    rows += summary_to_rows(summarize(df, "rmse", scale=1000.0), split)
    line = verdict(rows, best.name, k=5 if 5 in cfg.shots else cfg.shots[-1])
    log(line)
    if fig_path is not None:
        quickstart_figure_best(best, test, rows, cfg, fig_path)
    if save_dir is not None:
        for learner in (best, *learners):
            if callable(getattr(getattr(learner, "learner", learner), "save", None)):  # the ensemble has no save
                learner.save(Path(save_dir) / f"nanoalloys_{learner.name.replace('=', '_')}")
    timings["total"] = time.perf_counter() - t_all
    return make_result("nanoalloys", rows, timings["total"], asdict(cfg) | {"unit": "meV/atom"},
                       timings=timings, leakage=str(leakage_report(train, test)), verdict=line,
                       best={"name": best_name, "val_element": val_el, "val_k": cfg.val_k,
                             "val_mae": {n: 1000 * v for n, v in val_mae.items()}},
                       ceiling={n: 1000 * v for n, v in ceiling.items()}, support_fit=support_fit)


def _support_fit(learners, test, cfg: NanoalloyConfig, k: int = 5) -> dict[str, dict[str, float]]:
    """Mean inner-loop support loss (standardized MSE) of the gradient learners on one K-shot episode per
    held-out task, before (``steps=0``) and after ``adapt``: does adaptation fit the support? (A diagnostic,
    not used for selection.)"""
    out = {}
    for m in learners:
        eps = [test.episode(t, k, seed=cfg.seed) for t in test if len(t) > k]
        out[m.name] = {"before": float(np.mean([m.support_loss(ep.support, steps=0) for ep in eps])),
                       "after": float(np.mean([m.support_loss(ep.support) for ep in eps]))}
    return out
