"""Protocol ``forces``: does force supervision improve few-shot energy errors on held-out nanoalloys?

``python -m nanonb.bench forces [--quick]``; configuration :class:`ForcesBenchConfig`, entry point
:func:`run_forces_bench`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from nanonb.baselines.gp import SupportGP
from nanonb.bench import make_result, summary_to_rows  # WAVE2: nanonb.bench.schema (H4)
from nanonb.bench.episodes import apply_options, run_episodes
from nanonb.data.nanoalloys import load_nanoalloys
from nanonb.evaluation import Named, evaluate, summarize
from nanonb.learners.registry import make_learner
from nanonb.threads import set_threads


@dataclass
class ForcesBenchConfig:
    """Force-supervision benchmark (``python -m nanonb.bench forces``).

    Meta-train on the EMT nanoalloys without ``holdout`` (FOMAML, inner-loop gradient clipping), with
    ``force_weight = 0`` and ``> 0`` (forces ``-dE/dpos`` supervised in the inner and outer loss,
    and in the few-shot adaptation on the support), for each model in ``models``; few-shot energy
    MAE (meV/atom) at ``shots`` on the held-out pairs. ``force_weight`` multiplies the force MSE in
    standardized units ``(F / y_std)²`` (F in eV/Å, y_std the meta-train std of E_mix in eV/atom):
    with y_std ≈ 0.046 eV/atom and force RMS ≈ 0.48 eV/Å the force MSE of an untrained model is ~100,
    so 0.01 puts the two terms on a similar scale.

    Example
    -------
    >>> ForcesBenchConfig.quick().shots
    (1, 5)
    """

    holdout: str = "Pt"
    n_per_pair: int = 80
    shots: tuple[int, ...] = (1, 5, 10)
    n_episodes: int = 3
    k_query_eval: int | None = 30
    models: tuple[str, ...] = ("InvariantGNN", "EquivariantGNN")
    force_weight: float = 0.01
    algorithm: str = "fomaml"
    model_kwargs: dict = field(default_factory=lambda: {"width": 32, "n_blocks": 2, "n_rbf": 16})
    n_iterations: int = 80
    inner_lr: float = 0.05
    inner_steps: int = 3
    inner_grad_clip: float = 1.0
    outer_lr: float = 3e-3
    meta_batch_size: int = 4
    k_query: int = 10
    baselines: bool = True
    seed: int = 0

    @classmethod
    def quick(cls) -> ForcesBenchConfig:
        return cls(n_per_pair=24, shots=(1, 5), n_episodes=1, model_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8},
                   n_iterations=3, inner_steps=2, meta_batch_size=2, k_query=5)


class ZeroForces:
    """Reference for ``force_mae``: predict zero force (its error is the mean ``|F|`` of the query, eV/Å).

    A method for :func:`nanonb.evaluation.evaluate` (``adapt``/``predict``; its energy prediction, zero,
    is not reported), so it sees the same seeded query structures as the learners.

    Example
    -------
    >>> ZeroForces().adapt(None).name
    'zero-forces'
    """

    name, kind = "zero-forces", "baseline"

    def adapt(self, support) -> ZeroForces:
        return self

    def predict(self, query) -> np.ndarray:
        return np.zeros(len(query))


def _query_force_magnitude(method, task, episode, pred) -> dict:
    """``force_mae`` of :class:`ZeroForces`: mean |F| (eV/Å) of the episode's query structures."""
    return {"force_mae": float(np.abs(np.concatenate([s.forces for s in episode.query.inputs])).mean())}


def _forces_name(algorithm: str, model: str, force_weight: float) -> str:
    tag = {"InvariantGNN": "", "EquivariantGNN": "-equivariant"}.get(model, f"-{model}")
    return f"{algorithm}{tag}{'+forces' if force_weight > 0 else ''}"


def run_forces_bench(quick: bool = False, seed: int = 0, progress: bool = True,
                     config: ForcesBenchConfig | None = None, log=print, **options) -> dict:
    """Does force supervision improve few-shot energy errors on held-out nanoalloys?

    For every model in ``config.models`` (invariant SchNet-like and E(3)-equivariant PaiNN-like)
    meta-train with and without forces on the same episodes (same seed), then evaluate every
    learner on the same held-out-element episodes. Metrics: ``mae`` (energy, meV/atom) and
    ``force_mae`` (meV/Å, forces ``-dE/dpos`` of the adapted model on the query structures; only for
    the graph meta-learners). ``--set key=value`` overrides :class:`ForcesBenchConfig` fields.

    Example
    -------
    >>> result = run_forces_bench(quick=True, progress=False)    # doctest: +SKIP
    >>> print(format_table(result))                              # doctest: +SKIP
    """
    set_threads()  # NANONB_NUM_THREADS or 1 (measured: 2 threads on the shared 2-core machine were ~10x slower)
    cfg = config or (ForcesBenchConfig.quick() if quick else ForcesBenchConfig())
    cfg = apply_options(cfg, {**options, "seed": seed}, log)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    tasks = load_nanoalloys(n_per_pair=cfg.n_per_pair, seed=0, cache_dir=options.get("cache_dir"), progress=progress)
    train, test = tasks.split_by_group(cfg.holdout)
    log(f"forces: {len(train)} meta-train pairs, meta-test = {len(test)} pairs with {cfg.holdout}")
    methods = []
    histories = {}
    for model in cfg.models:
        for fw in (0.0, cfg.force_weight):
            name = _forces_name(cfg.algorithm, model, fw)
            t0 = time.perf_counter()
            learner = make_learner(cfg.algorithm, model=model, model_kwargs=dict(cfg.model_kwargs),
                                   n_iterations=cfg.n_iterations, inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps,
                                   inner_grad_clip=cfg.inner_grad_clip, outer_lr=cfg.outer_lr,
                                   meta_batch_size=cfg.meta_batch_size, k_query=cfg.k_query, force_weight=fw,
                                   seed=cfg.seed)
            learner.fit(train, progress=progress)
            timings[f"meta-train {name}"] = time.perf_counter() - t0
            histories[name] = learner.history["train_loss"]
            log(f"  meta-trained {name:28s} {cfg.n_iterations} it in {timings[f'meta-train {name}']:.1f} s "
                f"(last-10 mean train loss {np.mean(learner.history['train_loss'][-10:]):.3g})")
            methods.append(Named(learner, name, "meta"))
    if cfg.baselines:
        methods.append(SupportGP(seed=cfg.seed).fit(train))
    t0 = time.perf_counter()
    df, _ = run_episodes(methods, test, cfg.shots, cfg.n_episodes, seed=cfg.seed, progress=progress, force_mae=True,
                         k_query=cfg.k_query_eval)
    timings["evaluation"] = time.perf_counter() - t0
    split = f"holdout-{cfg.holdout}"
    rows = summary_to_rows(summarize(df, "mae", scale=1000.0), split)
    zero = evaluate([ZeroForces()], test, cfg.shots, cfg.n_episodes, k_query=cfg.k_query_eval, seed=cfg.seed,
                    progress=False, metrics={}, extra=_query_force_magnitude)
    fdf = pd.concat([df.dropna(subset=["force_mae"]), zero], ignore_index=True)
    if len(fdf):
        rows += summary_to_rows(summarize(fdf, "force_mae", scale=1000.0), split)
    timings["total"] = time.perf_counter() - t_all
    log(f"  evaluation {timings['evaluation']:.1f} s; total {timings['total']:.1f} s")
    return make_result("forces", rows, timings["total"],
                       asdict(cfg) | {"unit": "mae: meV/atom; force_mae: meV/Å",
                                      "note": "+forces methods use forces in meta-training and in the "
                                              "support-set adaptation; query forces are never used for fitting"},
                       timings=timings, train_loss=histories)
