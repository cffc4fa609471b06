"""The ``nanoalloys`` protocol (and ``nanonb quickstart``): few-shot mixing energies of EMT nanoalloys.

Meta-test = every element pair that contains the held-out element (default Pt); meta-train = the
other pairs. Every method sees the same seeded episodes (1, 5 and 10 support points per task);
errors are MAE and RMSE in meV/atom. Validation during meta-training would have to come from
meta-train tasks; the protocol tracks none (``val=None``), so the held-out pairs are used for
evaluation only.

Example
-------
``python -m nanonb.bench nanoalloys --holdout Cu --set n_episodes=20 --out results/nanoalloys_Cu.json``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..baselines.gp import SupportGP
from ..baselines.nets import FineTune, Pooled, Scratch
from ..data.nanoalloys import ELEMENTS, load_nanoalloys
from ..evaluation import evaluate, summarize
from ..learners.registry import make_learner
from ..plots import quickstart_figure
from ..tasks import leakage_report
from .schema import OptionError, apply_options, make_result, summary_to_rows


@dataclass
class NanoalloyConfig:
    """Configuration of the nanoalloy protocol and of ``nanonb quickstart``.

    Meta-test = every element pair containing ``holdout`` (unseen element); errors in meV/atom.
    The pooled network is trained first and every meta-learner starts from its weights
    (``warm_start``), so meta-training refines a good representation for fast adaptation.

    Example
    -------
    >>> NanoalloyConfig.quick().shots
    (1, 5)
    """

    holdout: str = "Pt"
    n_per_pair: int = 80
    shots: tuple[int, ...] = (1, 5, 10)
    n_episodes: int = 10
    algorithms: tuple[str, ...] = ("maml", "fomaml", "anil", "metasgd")
    model_kwargs: dict = field(default_factory=lambda: {"width": 32, "n_blocks": 2, "n_rbf": 16})
    iterations: dict = field(default_factory=lambda: {"maml": 60, "fomaml": 100, "anil": 150, "metasgd": 60})
    inner_lr: dict = field(default_factory=lambda: {"maml": 0.03, "fomaml": 0.03, "anil": 0.1, "metasgd": 0.01})
    inner_steps: int = 5
    inner_grad_clip: float = 1.0
    meta_batch_size: int = 4
    outer_lr: float = 3e-4
    warm_start: bool = True
    pooled_epochs: int = 20
    finetune_steps: int = 20
    scratch_steps: int = 60
    seed: int = 0

    @classmethod
    def quick(cls) -> NanoalloyConfig:
        """The reduced configuration of ``--quick`` (seconds; used by the tests)."""
        return cls(n_per_pair=24, shots=(1, 5), n_episodes=2, algorithms=("fomaml", "anil"), pooled_epochs=3,
                   model_kwargs={"width": 16, "n_blocks": 1, "n_rbf": 8},
                   iterations={"maml": 20, "fomaml": 20, "anil": 20, "metasgd": 20},
                   scratch_steps=20, finetune_steps=5)


def _build_methods(cfg: NanoalloyConfig, train, progress: bool, log: Callable, timings: dict):
    """Pooled pre-training once; every meta-learner starts from those weights (``warm_start``).

    Meta-training gets no validation set: one would have to be split from ``train`` (never the
    meta-test pairs).
    """
    t0 = time.perf_counter()
    pooled = Pooled(model_kwargs=cfg.model_kwargs, epochs=cfg.pooled_epochs, seed=cfg.seed)
    pooled.fit(train, progress=progress)
    timings["pooled pre-training"] = time.perf_counter() - t0
    log(f"  pooled pre-training {cfg.pooled_epochs} epochs in {timings['pooled pre-training']:.1f} s")
    learners = []
    for algo in cfg.algorithms:
        t0 = time.perf_counter()
        learner = make_learner(algo, model_kwargs=cfg.model_kwargs, n_iterations=cfg.iterations[algo],
                               inner_lr=cfg.inner_lr[algo], inner_steps=cfg.inner_steps, outer_lr=cfg.outer_lr,
                               meta_batch_size=cfg.meta_batch_size, inner_grad_clip=cfg.inner_grad_clip,
                               seed=cfg.seed)
        if cfg.warm_start:
            learner.warm_start(pooled.model)
        learner.fit(train, val=None, progress=progress)
        timings[f"meta-train {algo}"] = time.perf_counter() - t0
        log(f"  meta-trained {algo:8s} {cfg.iterations[algo]} iterations in {timings[f'meta-train {algo}']:.1f} s")
        learners.append(learner)
    baselines = [Scratch(model_kwargs=cfg.model_kwargs, steps=cfg.scratch_steps, seed=cfg.seed).fit(train),
                 FineTune(pooled, steps=cfg.finetune_steps), pooled, SupportGP(seed=cfg.seed).fit(train)]
    return learners, baselines


def run_nanoalloys(quick: bool = False, seed: int = 0, holdout: str | None = None, progress: bool = True,
                   config: NanoalloyConfig | None = None, fig_path: str | Path | None = None,
                   save_dir: str | Path | None = None, cache_dir=None, log: Callable = print, **options) -> dict:
    """Held-out-element few-shot benchmark on the embedded EMT nanoalloys.

    Meta-trains every algorithm and baseline on the pairs without ``holdout`` (default: the
    config's, ``"Pt"``), evaluates 1/5/10 shots on the pairs with it (same episodes for all
    methods), reports MAE and RMSE in meV/atom. ``options`` override :class:`NanoalloyConfig`
    fields (:func:`nanonb.bench.schema.apply_options`); ``fig_path`` writes the quickstart figure,
    ``save_dir`` the trained learners.

    Example
    -------
    >>> res = run_nanoalloys(quick=True, holdout="Cu", progress=False)  # doctest: +SKIP
    >>> res["config"]["unit"]                                            # doctest: +SKIP
    'meV/atom'
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
    log(f"data: {len(tasks)} element-pair tasks, {sum(len(t) for t in tasks)} clusters "
        f"({timings['data (EMT labels or cache)']:.1f} s); meta-test = {len(test)} pairs with {cfg.holdout}: "
        f"{', '.join(test.names)}")
    learners, baselines = _build_methods(cfg, train, progress, log, timings)
    methods = learners + baselines
    t0 = time.perf_counter()
    df = evaluate(methods, test, shots=cfg.shots, n_episodes=cfg.n_episodes, seed=seed, progress=progress)
    timings["evaluation"] = time.perf_counter() - t0
    log(f"  evaluated {len(methods)} methods x {len(test)} tasks x {len(cfg.shots)} shot counts x "
        f"{cfg.n_episodes} episodes in {timings['evaluation']:.1f} s")
    summ = summarize(df, "mae", scale=1000.0)
    rows = summary_to_rows(summ, f"holdout-{cfg.holdout}")
    rows += summary_to_rows(summarize(df, "rmse", scale=1000.0), f"holdout-{cfg.holdout}")
    if fig_path is not None:
        _quickstart_figure(methods, test, summ, cfg, fig_path)
    if save_dir is not None:
        for learner in learners:
            learner.save(Path(save_dir) / f"nanoalloys_{learner.name}")
    timings["total"] = time.perf_counter() - t_all
    return make_result("nanoalloys", rows, timings["total"], asdict(cfg) | {"unit": "meV/atom"},
                       timings=timings, leakage=str(leakage_report(train, test)))


def _quickstart_figure(methods, test, summ, cfg: NanoalloyConfig, path) -> None:
    """Error-vs-shots and parity panels (meV/atom) at K = 5, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = 5 if 5 in cfg.shots else cfg.shots[-1]
    show = [m for m in methods if m.name in ("anil", "gp", "pooled+finetune")] or methods[:2]
    data = {}
    for m in show:
        yt, yp = [], []
        for task in test:
            ep = test.episode(task, k, seed=cfg.seed)
            yt.append(ep.query.targets * 1000)
            yp.append(np.asarray(m.adapt(ep.support).predict(ep.query)) * 1000)
        data[m.name] = (np.concatenate(yt), np.concatenate(yp))
    fig = quickstart_figure(summ, data, unit="meV/atom",
                            title=f"EMT nanoalloys, held-out element {cfg.holdout} (parity at K={k})")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
