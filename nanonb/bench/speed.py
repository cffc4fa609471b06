"""Speed benchmark: ``python -m nanonb.bench speed [--quick] [--out speed.json]``.

Three measurements, one run:

* **meta-iterations**: milliseconds per meta-iteration (min and median over ``repeats``; each repeat
  times ``iterations`` calls of the learner's own ``fit`` loop (``MLP-default``: as many more as make about the
  same number of episodes as an ``MLP`` repeat, so its short iterations are not timed alone), episode sampling and
  the Adam step included; ``ms_per_meta_gradient``: the meta-gradient of one pre-sampled meta-batch alone) for every
  algorithm (MAML, FOMAML, ANIL, Meta-SGD) × model family × backend
  (``higher``, ``func``), and the speed-up of ``func`` over ``higher`` measured in the same run. The
  two backends start from the same weights; ``grad_max_abs_diff`` is the largest difference of their
  meta-gradients on one meta-batch (they must agree). Tasks are synthetic, so no data is needed:
  ``MLP``: sinusoid regression tasks (40 points, 1 input), ``meta_batch`` episodes per iteration;
  ``MLP-default``: the same at the library's default ``meta_batch_size`` (:class:`~nanonb.learners.config.MetaConfig`);
  ``InvariantGNN``: 55-atom Cu/Pt icosahedra (the size of the nanoalloy clusters), episodes of
  ``gnn_structures`` structures, random per-atom targets (speed does not depend on them).
* **explorer latency**: p50/p95 of a slider move of :class:`nanonb.widgets.AdaptationExplorer`
  (shipped ANIL learner, held-out Cu-Pt, in a fresh kernel): :func:`nanonb.bench.notebooks.measure_widget_latency`.
* **heaviest notebook cell**: every notebook executed in a fresh kernel
  (:func:`nanonb.bench.notebooks.run_notebooks`), the wall time of its slowest cell
  (:func:`nanonb.bench.nbexec.heaviest_cell`).

Rows (shared schema, :mod:`nanonb.bench.schema`): ``split`` = model family, ``"explorer"`` or
``"notebooks"``; ``metric`` ``ms_per_iteration`` and ``ms_per_meta_gradient`` (``mean`` over repeats,
``median``, extra key ``min``), ``speedup_vs_higher`` (``mean``: ratio of the minima, ``median``: ratio of
the medians, extra keys ``meta_gradient_speedup`` and ``grad_max_abs_diff``),
``latency_p95_ms`` / ``latency_p50_ms``, ``heaviest_cell_s``. Times depend on machine load: read the
ratios, which come from one run. ``--quick`` is a tiny configuration (seconds, no explorer, no notebooks).

Example
-------
``python -m nanonb.bench speed --set 'families=["MLP"]' --set explorer=false --set notebooks=false``
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..learners.config import MetaConfig
from ..learners.registry import make_learner
from ..tasks import TaskSet
from ..tasks.toy import cluster_tasks, sinusoid_tasks
from .schema import apply_options, make_result


@dataclass
class SpeedConfig:
    """Options of :func:`run_speed` (each can be set with ``--set key=value``).

    ``meta_batch``: episodes per meta-iteration per family (``MLP-default``: the library default,
    ``MetaConfig.meta_batch_size``); ``inner_steps``: inner SGD steps;
    ``mlp_hidden``: MLP widths; ``gnn_width``/``gnn_blocks``: InvariantGNN size; ``gnn_structures``:
    structures per GNN episode (half support, half query); ``gnn_shells``: icosahedron shells (3: 55 atoms);
    ``repeats`` × ``iterations``: timed meta-iterations; ``explorer_moves``: slider moves timed (0: skip);
    ``notebooks``: time each notebook's heaviest cell.

    Example
    -------
    >>> SpeedConfig().meta_batch["MLP"]
    25
    """

    algorithms: tuple = ("maml", "fomaml", "anil", "metasgd")
    families: tuple = ("MLP", "MLP-default", "InvariantGNN")
    backends: tuple = ("higher", "func")
    meta_batch: dict = None  # type: ignore[assignment]
    inner_steps: int = 5
    mlp_hidden: tuple = (40, 40)
    gnn_width: int = 32
    gnn_blocks: int = 2
    gnn_structures: int = 20
    gnn_shells: int = 3
    repeats: int = 5
    iterations: int = 2
    explorer_moves: int = 40
    notebooks: bool = True

    def __post_init__(self) -> None:
        if self.meta_batch is None:
            self.meta_batch = {"MLP": 25, "InvariantGNN": 8}

    @classmethod
    def quick(cls) -> SpeedConfig:
        """The ``--quick`` configuration: tiny networks and meta-batches, no explorer, no notebooks."""
        return cls(**QUICK)


QUICK = {"meta_batch": {"MLP": 4, "InvariantGNN": 2}, "inner_steps": 2, "mlp_hidden": (16,), "gnn_width": 8,
         "gnn_blocks": 1, "gnn_structures": 6, "gnn_shells": 2, "repeats": 2, "iterations": 1,
         "explorer_moves": 0, "notebooks": False}


def _is_mlp(family: str) -> bool:
    return family.startswith("MLP")


def _batch(family: str, cfg: SpeedConfig) -> int:
    """Episodes per meta-iteration of a family (``MLP-default``: the library's default meta-batch)."""
    return MetaConfig.meta_batch_size if family == "MLP-default" else cfg.meta_batch[family]


def _iterations(family: str, cfg: SpeedConfig) -> int:
    """Timed meta-iterations per repeat: ``MLP-default`` times about as many episodes as ``MLP`` does."""
    if family != "MLP-default":
        return cfg.iterations
    return cfg.iterations * max(1, round(cfg.meta_batch.get("MLP", 1) / _batch(family, cfg)))


def _learner(algorithm: str, family: str, backend: str, cfg: SpeedConfig, seed: int):
    b = _batch(family, cfg)
    if _is_mlp(family):
        kw = {"model_kwargs": {"hidden": tuple(cfg.mlp_hidden)}, "k_support": (5, 10), "k_query": 10}
    else:
        half = cfg.gnn_structures // 2
        kw = {"model_kwargs": {"width": cfg.gnn_width, "n_blocks": cfg.gnn_blocks}, "k_support": (half, half),
              "k_query": cfg.gnn_structures - half, "center": "support", "inner_grad_clip": 1.0}
    return make_learner(algorithm, model="MLP" if _is_mlp(family) else family, meta_batch_size=b,
                        inner_steps=cfg.inner_steps, seed=seed, backend=backend, n_iterations=0, **kw)


def time_fit(learner, tasks: TaskSet, repeats: int, iterations: int) -> list[float]:
    """Milliseconds per meta-iteration of ``learner.fit`` (one warm-up iteration first), one value per repeat.

    Example
    -------
    >>> ms = time_fit(make_learner("maml", model="MLP"), sinusoid_tasks(), 3, 2)   # doctest: +SKIP
    """
    learner.fit(tasks, n_iterations=1, progress=False)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        learner.fit(tasks, n_iterations=iterations, progress=False)
        out.append((time.perf_counter() - t0) * 1000.0 / iterations)
    return out


def time_meta_gradient(learner, tasks: TaskSet, repeats: int, seed: int = 0) -> list[float]:
    """Milliseconds of the meta-gradient of one fixed, pre-sampled meta-batch (no sampling, no optimizer step).

    Example
    -------
    >>> learner = make_learner("maml", model="MLP").fit(tasks, n_iterations=0)   # doctest: +SKIP
    >>> ms = time_meta_gradient(learner, tasks, repeats=3)                      # doctest: +SKIP
    """
    eps = _meta_batch(learner, tasks, seed)
    out = []
    for _ in range(repeats):
        for p in learner.parameters():
            p.grad = None
        t0 = time.perf_counter()
        learner._meta_batch_grads(eps)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def _meta_batch(learner, tasks: TaskSet, seed: int) -> list:
    rng = np.random.default_rng(seed)
    lo, hi = learner.config.k_support
    return [tasks.episode(tasks[i % len(tasks)], int(rng.integers(lo, hi + 1)), learner.config.k_query, seed=i)
            for i in range(learner.config.meta_batch_size)]


def grad_difference(algorithm: str, family: str, tasks: TaskSet, cfg: SpeedConfig, seed: int) -> float:
    """Largest absolute difference between the ``func`` and ``higher`` meta-gradients of one meta-batch."""
    grads = []
    for backend in ("higher", "func"):
        learner = _learner(algorithm, family, backend, cfg, seed).fit(tasks, progress=False)
        learner._meta_batch_grads(_meta_batch(learner, tasks, seed))
        grads.append(torch.cat([p.grad.reshape(-1) for p in learner.parameters()]))
    return float((grads[0] - grads[1]).abs().max())


def _row(split: str, method: str, metric: str, mean: float, median: float, k: int, n: int, sem: float = 0.0,
         kind: str = "meta", **extra) -> dict:
    return {"split": split, "method": method, "kind": kind, "k": int(k), "metric": metric, "mean": float(mean),
            "sem": float(sem), "median": float(median), "n_tasks": int(n), **extra}


def markdown_table(rows: list[dict]) -> str:
    """The meta-iteration rows as a Markdown table: min / median ms per backend and the speed-up.

    Example
    -------
    >>> print(markdown_table(run_speed(quick=True)["results"]))   # doctest: +SKIP
    """
    ms = {(r["split"], *r["method"].split("/")): r for r in rows if r["metric"] == "ms_per_iteration"}
    sp = {(r["split"], r["method"].split("/")[0]): r for r in rows if r["metric"] == "speedup_vs_higher"}
    lines = ["| family | batch | algorithm | higher ms (min / median) | func ms (min / median) "
             "| speed-up (min / median) | meta-gradient alone: speed-up | max abs grad diff |",
             "|---|---|---|---|---|---|---|---|"]
    for (fam, algo), s in sp.items():
        h, f = ms[(fam, algo, "higher")], ms[(fam, algo, "func")]
        lines.append(f"| {fam} | {s['k']} | {algo} | {h['min']:.1f} / {h['median']:.1f} | {f['min']:.1f} / "
                     f"{f['median']:.1f} | **{s['mean']:.2f}×** / {s['median']:.2f}× | "
                     f"{s['meta_gradient_speedup']:.2f}× | {s['grad_max_abs_diff']:.1e} |")
    return "\n".join(lines)


def run_speed(quick: bool = False, seed: int = 0, progress: bool = True, config: SpeedConfig | None = None,
              log: Callable[[str], None] = print, **options) -> dict:
    """Time meta-iterations per algorithm × family × backend, the explorer, and the heaviest notebook cells.

    Returns a :func:`nanonb.bench.schema.make_result` dict with extra keys ``table`` (Markdown),
    ``explorer`` and ``notebooks`` (the raw measurements) and ``torch_threads``.

    Example
    -------
    >>> res = run_speed(quick=True, progress=False)          # doctest: +SKIP
    >>> {r["metric"] for r in res["results"]} >= {"ms_per_iteration", "speedup_vs_higher"}   # doctest: +SKIP
    True
    """
    cfg = config or (SpeedConfig.quick() if quick else SpeedConfig())
    apply_options(cfg, options)
    say = log if progress else (lambda _m: None)
    t_all = time.perf_counter()
    rows: list[dict] = []
    for family in cfg.families:
        b = _batch(family, cfg)
        tasks = (sinusoid_tasks(seed=seed) if _is_mlp(family)
                 else cluster_tasks(max(2, b), cfg.gnn_structures + 2, cfg.gnn_shells, seed=seed))
        for algo in cfg.algorithms:
            times, grad_ms = {}, {}
            for backend in cfg.backends:
                learner = _learner(algo, family, backend, cfg, seed)
                t = time_fit(learner, tasks, cfg.repeats, _iterations(family, cfg))
                times[backend] = t
                grad_ms[backend] = g = time_meta_gradient(learner, tasks, cfg.repeats, seed)
                rows.append(_row(family, f"{algo}/{backend}", "ms_per_meta_gradient", statistics.fmean(g),
                                 statistics.median(g), b, len(g), min=min(g)))
                sem = statistics.stdev(t) / len(t) ** 0.5 if len(t) > 1 else 0.0
                rows.append(_row(family, f"{algo}/{backend}", "ms_per_iteration", statistics.fmean(t),
                                 statistics.median(t), b, len(t), sem, min=min(t)))
                say(f"  {family:12s} {algo:8s} {backend:7s} min {min(t):8.1f} ms  "
                    f"median {statistics.median(t):8.1f} ms")
            if "higher" in times and "func" in times:
                h, f = times["higher"], times["func"]
                diff = grad_difference(algo, family, tasks, cfg, seed)
                rows.append(_row(family, f"{algo}/func", "speedup_vs_higher", min(h) / min(f),
                                 statistics.median(h) / statistics.median(f), b, len(f), grad_max_abs_diff=diff,
                                 meta_gradient_speedup=min(grad_ms["higher"]) / min(grad_ms["func"])))
    table = markdown_table(rows)
    say(table)
    explorer = {}
    if cfg.explorer_moves > 0:
        from .notebooks import measure_widget_latency

        explorer = measure_widget_latency(cfg.explorer_moves, seed=seed)
        if explorer["latency_ms"]:
            for q in (50, 95):
                v = explorer[f"p{q}_ms"]
                rows.append(_row("explorer", "AdaptationExplorer", f"latency_p{q}_ms", v, v, 5,
                                 len(explorer["latency_ms"]), kind="baseline"))
            say(f"  explorer: p50 {explorer['p50_ms']:.0f} ms, p95 {explorer['p95_ms']:.0f} ms "
                f"({len(explorer['latency_ms'])} slider moves)")
        else:
            say(f"  explorer latency FAILED: {explorer.get('error')}")
    notebooks = {}
    if cfg.notebooks:
        from .notebooks import run_notebooks

        nb = run_notebooks(seed=seed, progress=progress, widget=False, log=log)
        for name, r in nb["per_notebook"].items():
            cell = r["heaviest_cell"]
            notebooks[name] = {"runtime_s": r["runtime_s"], "error": r["error"], **cell}
            rows.append(_row("notebooks", name, "heaviest_cell_s", cell["seconds"], cell["seconds"],
                             cell["index"] if cell["index"] is not None else -1, 1, kind="baseline",
                             runtime_s=r["runtime_s"]))
            say(f"  {name:40s} heaviest cell #{cell['index']} {cell['seconds']:.1f} s of {r['runtime_s']:.1f} s "
                f"({cell['first_line']!r})")
    conf = {"quick": quick, "seed": seed, **asdict(cfg)}
    return make_result("speed", rows, time.perf_counter() - t_all, conf, table=table,
                       explorer={k: v for k, v in explorer.items()}, notebooks=notebooks,
                       torch_threads=torch.get_num_threads())
