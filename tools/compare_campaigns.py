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


def runs_at(curves: dict, budget: int, tol: float) -> pd.DataFrame:
    """One row per campaign with the call metrics of its first ``budget`` calls."""
    cut = {k: v[:budget] for k, v in curves.items()}
    runs = pd.DataFrame([{"pair": p, "seed": s, "strategy": st, "best_after_budget": float(v[-1]), "runtime_s": 0.0}
                         for (p, s, st), v in cut.items()])
    return add_call_metrics(runs, cut, tol)


def table_at(curves: dict, budget: int, tol: float) -> pd.DataFrame:
    runs = runs_at(curves, budget, tol)
    tab = campaign_table(runs, budget)
    gp = runs[runs.strategy == "gp-qlogei"].set_index(["pair", "seed"])["best_after_budget"]
    diff = {st: g.set_index(["pair", "seed"])["best_after_budget"].sub(gp) for st, g in runs.groupby("strategy")}
    tab["beats_gp_runs"] = tab["strategy"].map({st: int(d.lt(-1e-9).sum()) for st, d in diff.items()})
    tab["ties_gp_runs"] = tab["strategy"].map({st: int(d.abs().le(1e-9).sum()) for st, d in diff.items()})
    tab["loses_gp_runs"] = tab["strategy"].map({st: int(d.gt(1e-9).sum()) for st, d in diff.items()})
    return tab


def by_pair(curves: dict, budget: int, tol: float) -> pd.DataFrame:
    """Calls to target per pair and strategy: median [IQR] (censored at ``budget + 1``) and reached %."""
    runs = runs_at(curves, budget, tol)
    runs["calls"] = runs["calls_to_target"].fillna(budget + 1)
    g = runs.groupby(["pair", "strategy"], sort=False)
    out = g["calls"].median().rename("median").to_frame()
    out["q25"], out["q75"] = g["calls"].quantile(0.25), g["calls"].quantile(0.75)
    out["reached"] = g["calls_to_target"].apply(lambda c: c.notna().mean())
    out["target_mev"] = g["target"].first() * 1000
    out["best_median_mev"] = g["best_after_budget"].median() * 1000
    return out.reset_index()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--budgets", nargs="+", type=int, default=[])
    ap.add_argument("--by-pair", action="store_true", help="also calls to target per pair (at the last budget)")
    a = ap.parse_args()
    curves, cfg = load(a.runs)
    for b in a.budgets or [cfg["budget"]]:
        tab = table_at(curves, b, cfg["tol_ev_per_atom"])
        cols = ["strategy", "calls_median", "calls_q25", "calls_q75", "reached", "calls_same_seed_median",
                "calls_same_seed_q25", "calls_same_seed_q75", "calls_to_random_best_median",
                "calls_to_random_best_q25", "calls_to_random_best_q75", "best_median_ev_per_atom", "beats_gp_runs",
                "ties_gp_runs", "loses_gp_runs", "n_runs"]
        print(f"\n# budget {b} calls (censored at {b + 1}); {tab.n_runs.iloc[0]} campaigns per strategy")
        print(tab[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if a.by_pair:
        b = (a.budgets or [cfg["budget"]])[-1]
        print(f"\n# calls to target per pair, budget {b}")
        print(by_pair(curves, b, cfg["tol_ev_per_atom"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
