"""The ``soak`` protocol: does memory grow while a learner meta-trains for a long time?

Each learner family (``maml``, ``fomaml``, ``anil``, ``metasgd`` on a small MLP; ``bml``; ``dkt``)
meta-trains on the same small synthetic tabular task set (linear tasks with task-specific weights and
offsets). After ``warmup`` iterations (allocator pools, lazy initialisation) the resident set size
(RSS) of the process is read; then the learner runs ``n_iterations`` more meta-iterations in
``n_chunks`` calls to ``fit`` (each continues from the current weights) and the RSS is read again
(``gc.collect()`` before every reading). The metric ``rss_growth_pct`` is ``100 (RSS_end -
RSS_start) / RSS_start``; a family passes if it stays below ``max_growth_pct`` (5 %). The result also
holds, per family, the RSS in MB after every chunk (``"soak"``), so a slow leak shows as a trend.

RSS is that of the whole process (torch included), so the test is coarse; it catches a leak of graphs
or tensors kept per iteration (a few MB per thousand iterations), not a few bytes.

Example
-------
``nice python -m nanonb.bench soak --out results/soak.json`` (2000 iterations per family, minutes;
``--quick``: 40 iterations, seconds; ``--set families=["maml","bml"]`` for some families only).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..tasks import Task, TaskSet
from .schema import OptionError, apply_options, make_result

FAMILIES = ("maml", "fomaml", "anil", "metasgd", "bml", "dkt")


@dataclass
class SoakConfig:
    """Configuration of the ``soak`` protocol (``--set`` keys).

    ``n_iterations`` meta-iterations per family after ``warmup``, in ``n_chunks`` equal ``fit`` calls;
    ``max_growth_pct``: the allowed RSS growth. Task set: ``n_tasks`` tasks of ``n_points`` points with
    ``n_features`` inputs; networks: an MLP with ``hidden`` widths; episodes of up to ``k_max`` support
    points, ``meta_batch_size`` tasks per iteration.

    Example
    -------
    >>> SoakConfig.quick().n_iterations
    40
    """

    n_iterations: int = 2000
    warmup: int = 100
    n_chunks: int = 10
    max_growth_pct: float = 5.0
    families: tuple[str, ...] = FAMILIES
    n_tasks: int = 12
    n_points: int = 40
    n_features: int = 4
    hidden: tuple[int, ...] = (32, 32)
    k_max: int = 10
    meta_batch_size: int = 4
    inner_steps: int = 3

    @classmethod
    def quick(cls) -> SoakConfig:
        """The reduced configuration of ``--quick`` (seconds; used by the tests)."""
        return cls(n_iterations=40, warmup=5, n_chunks=2)


def rss_mb() -> float:
    """Resident set size of this process in MB (after ``gc.collect()``).

    Example
    -------
    >>> rss_mb() > 0
    True
    """
    gc.collect()
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / 2**20
    except ImportError:  # Linux without psutil
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak_tasks(cfg: SoakConfig, seed: int = 0) -> TaskSet:
    """The synthetic tabular task set: ``y = a_t . x + b_t + noise`` with task-specific ``(a_t, b_t)``."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(cfg.n_tasks):
        x = rng.normal(size=(cfg.n_points, cfg.n_features))
        y = x @ rng.normal(size=cfg.n_features) + rng.normal() + 0.1 * rng.normal(size=cfg.n_points)
        tasks.append(Task(f"t{i:02d}", x, y, groups=(f"g{i}",)))
    return TaskSet(tasks, name="soak")


def _make(family: str, cfg: SoakConfig, seed: int):
    """A learner of ``family`` and a ``fit(n)`` that meta-trains it ``n`` more iterations."""
    kw = {"seed": seed, "meta_batch_size": cfg.meta_batch_size}
    if family == "dkt":
        from ..learners.dkt import DKT

        learner = DKT(hidden=tuple(cfg.hidden), n_features=16, k_support=(0, cfg.k_max), k_query=10, **kw)

        def fit(train, n):
            learner.config.n_iterations = n
            learner.fit(train, progress=False)
        return learner, fit
    from ..learners.registry import make_learner

    model = {"model": "MLP", "model_kwargs": {"hidden": tuple(cfg.hidden)}}
    if family == "bml":
        learner = make_learner("bml", k_support=(0, cfg.k_max), k_query=10, **model, **kw)
    else:
        learner = make_learner(family, k_support=(1, cfg.k_max), k_query=10, inner_steps=cfg.inner_steps,
                               inner_lr=0.05, **model, **kw)
    return learner, lambda train, n: learner.fit(train, n_iterations=n, progress=False)


def soak_family(family: str, train: TaskSet, cfg: SoakConfig, seed: int = 0) -> dict:
    """RSS (MB) after the warm-up and after each chunk of meta-training of one family; growth in % and MB."""
    learner, fit = _make(family, cfg, seed)
    t0 = time.perf_counter()
    fit(train, cfg.warmup)
    trace = [rss_mb()]
    chunk = max(1, cfg.n_iterations // cfg.n_chunks)
    done = 0
    while done < cfg.n_iterations:
        n = min(chunk, cfg.n_iterations - done)
        fit(train, n)
        done += n
        trace.append(rss_mb())
    growth = 100.0 * (trace[-1] - trace[0]) / trace[0]
    return {"family": family, "iterations": done, "rss_mb": [round(r, 1) for r in trace],
            "growth_mb": round(trace[-1] - trace[0], 2), "growth_pct": growth,
            "passed": bool(growth < cfg.max_growth_pct), "seconds": round(time.perf_counter() - t0, 1)}


def run_soak(quick: bool = False, seed: int = 0, progress: bool = True, config: SoakConfig | None = None,
             log: Callable = print, **options) -> dict:
    """RSS growth over ``n_iterations`` meta-iterations of each learner family (metric ``rss_growth_pct``).

    ``options`` override :class:`SoakConfig` fields (:func:`nanonb.bench.schema.apply_options`). Rows:
    split ``"soak"``, one per family, ``k`` = the largest support size; the extra key ``"soak"`` holds
    the RSS trace and the pass/fail verdict of every family, ``"passed"`` whether all passed.

    Example
    -------
    >>> res = run_soak(quick=True, families=("fomaml",), log=lambda *a: None)   # doctest: +SKIP
    >>> res["results"][0]["metric"]                                              # doctest: +SKIP
    'rss_growth_pct'
    """
    cfg = apply_options(config or (SoakConfig.quick() if quick else SoakConfig()), options)
    cfg.families = tuple(cfg.families)
    unknown = [f for f in cfg.families if f not in FAMILIES]
    if unknown:
        raise OptionError(f"families: unknown {unknown}; choose from {list(FAMILIES)}")
    t0 = time.perf_counter()
    train = soak_tasks(cfg, seed)
    rows, details = [], []
    for family in cfg.families:
        d = soak_family(family, train, cfg, seed)
        details.append(d)
        log(f"  {family:8s} RSS {d['rss_mb'][0]:.0f} -> {d['rss_mb'][-1]:.0f} MB over {d['iterations']} iterations: "
            f"{d['growth_pct']:+.2f} % ({'pass' if d['passed'] else 'FAIL'}, < {cfg.max_growth_pct} % allowed; "
            f"{d['seconds']:.0f} s)")
        rows.append({"split": "soak", "method": family, "kind": "meta", "k": cfg.k_max, "metric": "rss_growth_pct",
                     "mean": d["growth_pct"], "sem": 0.0, "median": d["growth_pct"], "n_tasks": cfg.n_tasks})
    return make_result("soak", rows, time.perf_counter() - t0, asdict(cfg) | {"seed": seed}, soak=details,
                       passed=all(d["passed"] for d in details))
