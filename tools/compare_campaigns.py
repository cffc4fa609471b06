"""Combine campaign-bench runs of different surrogates and recompute the metrics over all of them, at the
full budget and at shorter budgets (a campaign's first n calls do not depend on the budget).

Usage (from the repository root)::

    python tools/compare_campaigns.py results/campaign_ens.json results/campaign_bml.json:bml --budgets 20 30

``run.json:tag`` appends ``/tag`` to the strategy names of that run (e.g. ``meta-qlogei/bml``); strategies
whose curves are identical to an earlier run's (e.g. ``random``, which no surrogate touches) are taken once.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd

from nanonb.bench.campaign import add_call_metrics, campaign_table


def load(specs: list[str]) -> tuple[dict, dict]:
    curves, cfg = {}, None
    for spec in specs:
        path, _, tag = spec.partition(":")
        res = json.load(open(path))
        cfg = cfg or res["config"]
        repeated = {st for st in {c["strategy"] for c in res["curves"]}
                    if all((c["pair"], c["seed"], st) in curves and np.allclose(curves[(c["pair"], c["seed"], st)],
                                                                                c["best"])
                           for c in res["curves"] if c["strategy"] == st)}
        for c in res["curves"]:
            if tag and c["strategy"] in repeated:
                continue  # e.g. random, which no surrogate touches: identical in every campaign, kept once
            name = c["strategy"] + (f"/{tag}" if tag else "")
            key = (c["pair"], c["seed"], name)
            if key in curves and not np.allclose(curves[key], c["best"]):
                raise ValueError(f"{key} differs between runs; tag one of them")
            curves[key] = np.asarray(c["best"], float)
    return curves, cfg


def table_at(curves: dict, budget: int, tol: float) -> pd.DataFrame:
    cut = {k: v[:budget] for k, v in curves.items()}
    runs = pd.DataFrame([{"pair": p, "seed": s, "strategy": st, "best_after_budget": float(v[-1]), "runtime_s": 0.0}
                         for (p, s, st), v in cut.items()])
    runs = add_call_metrics(runs, cut, tol)
    tab = campaign_table(runs, budget)
    gp = runs[runs.strategy == "gp-qlogei"].set_index(["pair", "seed"])["best_after_budget"]
    wins = {st: int(g.set_index(["pair", "seed"])["best_after_budget"].sub(gp).lt(0).sum())
            for st, g in runs.groupby("strategy")}
    tab["beats_gp_runs"] = tab["strategy"].map(wins)
    return tab


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--budgets", nargs="+", type=int, default=[])
    a = ap.parse_args()
    curves, cfg = load(a.runs)
    for b in a.budgets or [cfg["budget"]]:
        tab = table_at(curves, b, cfg["tol_ev_per_atom"])
        cols = ["strategy", "calls_median", "calls_q25", "calls_q75", "reached", "calls_same_seed_median",
                "calls_same_seed_q25", "calls_same_seed_q75", "calls_to_random_best_median",
                "calls_to_random_best_q25", "calls_to_random_best_q75", "best_median_ev_per_atom", "beats_gp_runs",
                "n_runs"]
        print(f"\n# budget {b} calls (censored at {b + 1}); {tab.n_runs.iloc[0]} campaigns per strategy")
        print(tab[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
