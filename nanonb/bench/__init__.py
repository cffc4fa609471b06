"""Benchmarks: ``python -m nanonb.bench <protocol> [--quick] [--out results.json]``.

Every protocol prints a table and writes JSON with one schema::

    {"protocol": str,
     "results": [{"split", "method", "kind": "meta" | "baseline", "k", "metric",
                  "mean", "sem", "median", "n_tasks"}],
     "runtime_s": float, "config": {...}}

Metric names are lower case (``mae``, ``rmse``, ``spearman``, ``top10_recall``, ``nll``, ...).
``--quick`` runs a reduced configuration (used by the tests). Speed and accuracy targets live here,
not in timed unit tests.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nanonb.threads import set_threads

# protocol name -> "module:function"; each function takes (quick: bool, seed: int, **options) and
# returns a result dict in the schema above (it may add extra keys).
PROTOCOLS: dict[str, str] = {
    "nanoalloys": "nanonb.bench:run_nanoalloys",
    "calisol": "nanonb.casestudies:run_calisol",
    "lnpdb": "nanonb.casestudies:run_lnpdb",
    "active": "nanonb.active:run_active_bench",
    "tb": "nanonb.bench.tb:run_tb_bench",
    "forces": "nanonb.bench.forces:run_forces_bench",
    "notebooks": "nanonb.nbbench:run_notebooks",
}

SCHEMA_KEYS = ("split", "method", "kind", "k", "metric", "mean", "sem", "median", "n_tasks")


def summary_to_rows(summary: pd.DataFrame, split: str) -> list[dict]:
    """Rows of the shared JSON schema from :func:`nanonb.evaluate.summarize` output."""
    rows = []
    for r in summary.itertuples(index=False):
        rows.append({"split": split, "method": r.method, "kind": r.kind, "k": int(r.k), "metric": r.metric,
                     "mean": float(r.mean), "sem": float(r.sem), "median": float(r.median),
                     "n_tasks": int(r.n_tasks)})
    return rows


def make_result(protocol: str, rows: list[dict], runtime_s: float, config: dict, **extra) -> dict:
    """Assemble and validate a result dict."""
    for r in rows:
        missing = [k for k in SCHEMA_KEYS if k not in r]
        if missing:
            raise ValueError(f"result row lacks {missing}: {r}")
        if r["kind"] not in ("meta", "baseline"):
            raise ValueError(f"kind must be 'meta' or 'baseline', got {r['kind']!r}")
        if r["metric"] != r["metric"].lower():
            raise ValueError(f"metric names are lower case, got {r['metric']!r}")
    return {"protocol": protocol, "results": rows, "runtime_s": float(runtime_s), "config": config, **extra}


def format_table(result: dict, digits: int = 3) -> str:
    """Text table: one block per (split, metric), methods × k with 'mean ± sem'."""
    df = pd.DataFrame(result["results"])
    if df.empty:
        return "(no results)"
    out = []
    for (split, metric), g in df.groupby(["split", "metric"], sort=False):
        g = g.assign(cell=[f"{m:.{digits}g} ± {s:.{digits - 1}g}" for m, s in zip(g["mean"], g["sem"])])
        wide = g.pivot_table(index=["method", "kind"], columns="k", values="cell", aggfunc="first", sort=False)
        wide.columns = [f"k={k}" for k in wide.columns]
        n = int(g["n_tasks"].max())
        out.append(f"[{result['protocol']}] split={split} metric={metric} (mean ± s.e.m. over {n} tasks)")
        out.append(wide.to_string())
        out.append("")
    out.append(f"runtime {result['runtime_s']:.1f} s")
    return "\n".join(out)


# ---------------------------------------------------------------------- nanoalloys protocol
@dataclass
class NanoalloyConfig:
    """Configuration of the nanoalloy protocol and of ``nanonb quickstart``.

    Meta-test = every element pair containing ``holdout`` (unseen element); errors in meV/atom.
    The pooled network is trained first and every meta-learner starts from its weights
    (``warm_start``), so meta-training refines a good representation for fast adaptation.
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
        return cls(n_per_pair=24, shots=(1, 5), n_episodes=2, algorithms=("fomaml", "anil"), pooled_epochs=3,
                   model_kwargs={"width": 16, "n_blocks": 1, "n_rbf": 8},
                   iterations={"maml": 20, "fomaml": 20, "anil": 20, "metasgd": 20},
                   scratch_steps=20, finetune_steps=5)


def _build_methods(cfg: NanoalloyConfig, train, val, progress: bool, log: Callable, timings: dict):
    """Pooled pre-training once; every meta-learner starts from those weights (``warm_start``)."""
    from nanonb.baselines.gp import SupportGP
    from nanonb.baselines.nets import FineTune, Pooled, Scratch
    from nanonb.learners.registry import make_learner

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
        learner.fit(train, val=val, progress=progress)
        timings[f"meta-train {algo}"] = time.perf_counter() - t0
        log(f"  meta-trained {algo:8s} {cfg.iterations[algo]} iterations in {timings[f'meta-train {algo}']:.1f} s")
        learners.append(learner)
    baselines = [Scratch(model_kwargs=cfg.model_kwargs, steps=cfg.scratch_steps, seed=cfg.seed).fit(train),
                 FineTune(pooled, steps=cfg.finetune_steps), pooled, SupportGP(seed=cfg.seed).fit(train)]
    return learners, baselines


def run_nanoalloys(quick: bool = False, seed: int = 0, holdout: str = "Pt", progress: bool = True,
                   config: NanoalloyConfig | None = None, fig_path: str | Path | None = None,
                   save_dir: str | Path | None = None, cache_dir=None, log: Callable = print, **_) -> dict:
    """Held-out-element few-shot benchmark on the embedded EMT nanoalloys.

    Meta-trains every algorithm and baseline on the pairs without ``holdout``, evaluates 1/5/10
    shots on the pairs with it (same episodes for all methods), reports MAE in meV/atom.
    """
    from nanonb.data.nanoalloys import load_nanoalloys
    from nanonb.evaluate import evaluate, summarize

    cfg = config or (NanoalloyConfig.quick() if quick else NanoalloyConfig())
    cfg.holdout, cfg.seed = holdout, seed
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    tasks = load_nanoalloys(n_per_pair=cfg.n_per_pair, seed=seed, cache_dir=cache_dir, progress=progress)
    timings["data (EMT labels or cache)"] = time.perf_counter() - t0
    train, test = tasks.split_by_group(cfg.holdout)
    log(f"data: {len(tasks)} element-pair tasks, {sum(len(t) for t in tasks)} clusters "
        f"({timings['data (EMT labels or cache)']:.1f} s); meta-test = {len(test)} pairs with {cfg.holdout}: "
        f"{', '.join(test.names)}")
    learners, baselines = _build_methods(cfg, train, test if not quick else None, progress, log, timings)
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
                       timings=timings, leakage=str(_leakage(train, test)))


def _leakage(train, test):
    from nanonb.tasks import leakage_report

    return leakage_report(train, test)


def _quickstart_figure(methods, test, summ, cfg: NanoalloyConfig, path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from nanonb.plots import quickstart_figure

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


# ---------------------------------------------------------------------- entry point
def run(protocol: str, quick: bool = False, seed: int = 0, out: str | Path | None = None, **options) -> dict:
    """Run a registered protocol, print its table, write JSON to ``out``."""
    set_threads()
    if protocol not in PROTOCOLS:
        raise SystemExit(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    mod, fn = PROTOCOLS[protocol].split(":")
    func = getattr(importlib.import_module(mod), fn, None)
    if func is None:
        raise SystemExit(f"protocol {protocol!r} is registered but {mod}.{fn} does not exist yet")
    result = func(quick=quick, seed=seed, **options)
    print(format_table(result))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, default=_json_default))
        print(f"wrote {out}")
    return result


def _parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nanonb.bench", description=__doc__.split("\n")[0])
    p.add_argument("protocol", choices=sorted(PROTOCOLS))
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument("--quick", action="store_true", help="reduced configuration (seconds, for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", default=None, help="nanoalloys: element to hold out (default Pt)")
    p.add_argument("--data", default=None, help="active: data set (nanoalloys, calisol, lnpdb)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="protocol-specific option (repeatable), passed as a keyword argument")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    opts = {k: v for k, v in {"holdout": a.holdout, "data": a.data}.items() if v is not None}
    for kv in a.set:
        key, _, value = kv.partition("=")
        opts[key.strip()] = _parse_value(value)
    run(a.protocol, quick=a.quick, seed=a.seed, out=a.out, progress=not a.no_progress, **opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
