"""Pilot of the LNPDB campaign surrogates on leave-study-out folds other than the published fold 0.

Usage (from the repository root)::

    NANONB_DATA_DIR=../shared/data python tools/lnpdb_al_pilot.py --folds 1 2 3 4 \\
        --strategies random gp_bo gp+pooled:crossfit:ei gp+pooled:1:ei gp+pooled:crossfit:ucb

Runs only the campaigns of ``python -m nanonb.bench active --data lnpdb`` (its config, split, campaign tasks,
seeds, budget and GP-BO settings) on each fold, for ``random``, ``gp_bo``, ``gp+pooled:<scale>:<acq>`` (the
bench's ``gp+pooled`` surrogate with ``pooled_scale=<scale>``), ``gp+pooled:<scale>:<acq>:<trust>`` (its
``gp+pooled+trust`` with ``pooled_trust=<trust>``, ``ml`` or a number: a per-campaign scale with prior mean
``<scale>``) and ``tanimoto-gp+pooled:<acq>``; prints the median [IQR] (mean) experiments to a top-5 % candidate
per fold and pooled over the folds (unfinished campaigns count as budget + 1). Used to choose the surrogate
settings of the published fold-0 run without looking at fold 0's held-out studies.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from nanonb.active import compare_strategies
from nanonb.baselines.gp import SupportGP
from nanonb.bench.active import ActiveConfig, _load_split, _surrogates
from nanonb.threads import limit_threads


def _strategies(names, cfg: ActiveConfig, train, seed: int) -> dict:
    out = {}
    for name in names:
        if name == "random":
            out[name] = (None, "random")
        elif name == "gp_bo":
            out[name] = (SupportGP(n_restarts=1, ard=None, warm_start=True, refit_every=cfg.bo_refit_every,
                                   maxiter=200, seed=seed, name="gp_bo").fit(train), "ei")
        elif name.startswith("gp+pooled:"):
            _, scale, acq, *trust = name.split(":")
            surrogate = "gp+pooled+trust" if trust else "gp+pooled"
            sub = replace(cfg, surrogates=(surrogate,), surrogate_acquisitions=(acq,),
                          pooled_scale=scale if scale == "crossfit" else float(scale))
            if trust:
                sub.pooled_trust = trust[0] if trust[0] == "ml" else float(trust[0])
            out[name] = (_surrogates(sub, train, seed)[surrogate], acq)
        elif name.startswith("tanimoto-gp+pooled:"):
            acq = name.split(":")[1]
            sub = replace(cfg, surrogates=("tanimoto-gp+pooled",), surrogate_acquisitions=(acq,))
            out[name] = (_surrogates(sub, train, seed)["tanimoto-gp+pooled"], acq)
        else:
            raise SystemExit(f"unknown strategy {name!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--strategies", nargs="+", default=["random", "gp_bo", "gp+pooled:crossfit:ei", "gp+pooled:1:ei"])
    ap.add_argument("--out", help="CSV of every campaign")
    args = ap.parse_args()
    if 0 in args.folds:
        raise SystemExit("fold 0 is the published fold: choose settings on the others")
    frames = []
    with limit_threads(1):
        for fold in args.folds:
            cfg = replace(ActiveConfig.for_data("lnpdb"), fold=fold)
            t0 = time.perf_counter()
            train, test, split = _load_split(cfg, False)
            tasks = sorted([t for t in test if len(t) >= cfg.min_task_size], key=lambda t: (-len(t), t.name))
            df, _ = compare_strategies(_strategies(args.strategies, cfg, train, cfg.seed), tasks[: cfg.max_tasks],
                                       cfg.seeds, progress=False, n_init=cfg.n_init, budget=cfg.budget, goal="max",
                                       top_fraction=cfg.top_fraction, max_pool=cfg.max_pool)
            frames.append(df.assign(fold=fold))
            print(f"{split}: {time.perf_counter() - t0:.0f} s", flush=True)
    d = pd.concat(frames, ignore_index=True)
    d["experiments"] = np.where(d["found"], d["experiments_to_top"].fillna(0), d["budget"] + 1)
    print(d.pivot_table(index="strategy", columns="fold", values="experiments", aggfunc="median"))
    g = d.groupby("strategy")["experiments"]
    print(pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75), "mean": g.mean(),
                        "n": g.size()}).sort_values(["median", "mean"]))
    if args.out:
        d.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
