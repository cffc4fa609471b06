"""The ``nanoalloys-loeo`` protocol: the nanoalloys protocol with every element held out in turn.

For each element X of ``holdouts`` (default all 7) it runs :func:`~nanonb.bench.nanoalloys.run_nanoalloys`
with ``holdout=X`` (meta-validation on the element before X, so the test pairs are never seen in
selection) and collects its rows (split ``holdout-X``). The summary ``loeo`` says, per element, which
learner meta-validation picked, its MAE at K = 5 (meV/atom) and whether it beats every baseline
(scratch, pooled, pooled + fine-tune, GP on the support, support mean) there; ``wins`` counts them.

Example
-------
``nice python -m nanonb.bench nanoalloys-loeo --set n_episodes=3 --out results/nanoalloys_loeo.json``
(about 7 x the quickstart's time, one thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial

from ..data.nanoalloys import ELEMENTS
from .fanout import fan_out
from .nanoalloys import run_nanoalloys
from .schema import make_result

#: Baselines the best learner must beat at K = 5 (the in-task ceiling is a reference, not a competitor).
BASELINES = ("scratch", "pooled", "pooled+finetune", "gp", "support mean")


def loeo_summary(rows: list[dict], best: dict[str, str], k: int = 5) -> dict:
    """Per held-out element: best learner, its MAE at ``k``, the best baseline and whether it wins (meV/atom).

    Example
    -------
    >>> rows = [{"split": "holdout-Pt", "method": m, "metric": "mae", "k": 5, "mean": v}
    ...         for m, v in [("best=bml", 17.0), ("gp", 33.0), ("support mean", 32.0)]]
    >>> loeo_summary(rows, {"Pt": "bml"})["per_element"]["Pt"]["beats_every_baseline"]
    True
    """
    out = {}
    for el, name in best.items():
        mae = {r["method"]: r["mean"] for r in rows
               if r["split"] == f"holdout-{el}" and r["metric"] == "mae" and r["k"] == k}
        base = {b: mae[b] for b in BASELINES if b in mae}
        top = min(base, key=base.get)
        out[el] = {"best": name, "mae": mae[f"best={name}"], "best_baseline": top, "baseline_mae": base[top],
                   "beats_every_baseline": bool(mae[f"best={name}"] < base[top])}
    return {"k": k, "per_element": out, "wins": sum(v["beats_every_baseline"] for v in out.values()),
            "n_elements": len(out)}


def run_nanoalloys_loeo(quick: bool = False, seed: int = 0, progress: bool = True,
                        holdouts: Sequence[str] | str = ELEMENTS, workers: int = 1, log: Callable = print,
                        **options) -> dict:
    """Run the nanoalloys protocol once per held-out element; ``options`` go to every run (``--set``).

    ``holdouts``: elements to hold out (a list, or a comma-separated string). ``workers``: processes
    running the held-out elements side by side (:func:`~nanonb.bench.fanout.fan_out`; 1: one after the
    other in this process; the same numbers either way). Returns one result dict with every run's rows,
    ``loeo`` (see :func:`loeo_summary`), and each run's verdict and timings.

    Example
    -------
    >>> res = run_nanoalloys_loeo(quick=True, holdouts="Cu,Pt", workers=2, progress=False)  # doctest: +SKIP
    """
    if isinstance(holdouts, str):
        holdouts = [h.strip() for h in holdouts.split(",") if h.strip()]
    bad = [h for h in holdouts if h not in ELEMENTS]
    if bad:
        raise ValueError(f"holdouts must be elements of {ELEMENTS}, not {bad}")
    options.pop("holdout", None)
    t0 = time.perf_counter()
    one = partial(_holdout_run, quick, seed, progress and workers == 1, log, options)
    done = fan_out(one, [(el,) for el in holdouts], workers, names=[f"holdout={el}" for el in holdouts],
                   progress=progress and workers > 1, desc="nanoalloys-loeo", log=log)
    rows, best, runs = [], {}, {}
    for el, res in zip(holdouts, done):
        rows += res["results"]
        best[el] = res["best"]["name"]
        runs[el] = {"verdict": res["verdict"], "best": res["best"], "timings": res["timings"]}
    summary = loeo_summary(rows, best)
    for el, v in summary["per_element"].items():
        log(f"[loeo] {el}: {v['best']} {v['mae']:.1f} vs best baseline {v['best_baseline']} {v['baseline_mae']:.1f} "
            f"-> {'wins' if v['beats_every_baseline'] else 'loses'}")
    log(f"[loeo] best learner beats every baseline at K=5 on {summary['wins']} of {summary['n_elements']} elements")
    return make_result("nanoalloys-loeo", rows, time.perf_counter() - t0,
                       {"holdouts": list(holdouts), "workers": workers, **options}, loeo=summary, runs=runs)


def _holdout_run(quick: bool, seed: int, progress: bool, log: Callable, options: dict, el: str) -> dict:
    """The nanoalloys protocol with ``el`` held out (a :func:`~nanonb.bench.fanout.fan_out` job)."""
    res = run_nanoalloys(quick=quick, seed=seed, holdout=el, progress=progress, log=log, **options)
    log(f"[loeo] {el}: {res['verdict']}")
    return res
