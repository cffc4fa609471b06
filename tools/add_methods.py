"""Add the methods of a second case-study run to a finished one, on the same episodes.

Usage (from the repository root)::

    python tools/add_methods.py lnpdb notebooks/results/lnpdb.json /tmp/lnpdb_stack.json \\
        --rename selected=selected-no-stack

Both runs must use the same protocol settings (folds, shots, episodes, seed, query cap), so that a method in both
has the same episodes. The script checks it: every method present in both runs must give identical per-episode
scores (within 1e-9), else it stops. Methods of the second run are added; a method in both keeps the second run's
rows only if it is listed with ``--rename old=new`` (the base run's rows are kept under ``new``). The per-episode
CSV of each run is ``<run>.json`` -> ``<run>_episodes.csv.gz``; the result rows are recomputed from the merged
episodes as :func:`nanonb.bench.casestudy.finish` does; the second run's nested selection records replace the
base's (with ``--rename selected=<new>``, the base's are kept as ``selection_<new>``); ``runtime_s`` is the sum;
an earlier ``added_from`` record is kept in ``config["added_from_earlier"]``.

``--allow-drift``: a run on another machine (thread count, libraries) may give the shared methods slightly other
floats. With this flag a mismatch does not stop the merge: for each shared method the largest per-episode
difference and the change of the mean over tasks per K are printed and recorded in
``config["added_from"]["drift"]``, and the base run's rows are kept (as without the flag).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from nanonb.bench.schema import format_table, make_result, summary_to_rows
from nanonb.evaluation import summarize

METRICS = {"calisol": ["mae"], "lnpdb": ["spearman", "top10_recall"]}
KEYS = ["split", "method", "task", "k", "episode"]


def _episodes(path: str) -> pd.DataFrame:
    return pd.read_csv(path.replace(".json", "_episodes.csv.gz"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("protocol", choices=sorted(METRICS))
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--rename", action="append", default=[], help="old=new: the base run's method renamed")
    ap.add_argument("--allow-drift", action="store_true",
                    help="shared methods may differ (recorded in config['added_from']['drift']); base rows kept")
    args = ap.parse_args()
    metrics = METRICS[args.protocol]
    base, new = (json.loads(Path(p).read_text()) for p in (args.base, args.new))
    eb, en = _episodes(args.base), _episodes(args.new)
    rename = dict(r.split("=", 1) for r in args.rename)
    for key in ("shots", "n_episodes", "k_query_cap", "seed", "n_folds", "min_points", "fingerprint", "split_assays"):
        if base["config"].get(key) != new["config"].get(key):
            raise SystemExit(f"config {key} differs: {base['config'].get(key)} vs {new['config'].get(key)}")
    shared = sorted((set(eb.method) & set(en.method)) - set(rename))
    drift = {}
    for m in shared:
        a = eb[eb.method == m].set_index(KEYS)[metrics].sort_index()
        b = en[en.method == m].set_index(KEYS)[metrics].sort_index()
        if not a.index.equals(b.index):
            raise SystemExit(f"{m}: the runs have different episodes (split, task, k, episode)")
        if not np.allclose(a.to_numpy(), b.to_numpy(), atol=1e-9, equal_nan=True):
            if not args.allow_drift:
                raise SystemExit(f"{m}: per-episode scores differ between the runs; not the same episodes or code")
            mean = {f"{metric} k={k}": float(b.xs(k, level="k").groupby("task")[metric].mean().mean()
                                             - a.xs(k, level="k").groupby("task")[metric].mean().mean())
                    for metric in metrics for k in sorted(set(a.index.get_level_values("k")))}
            drift[m] = {"max_episode_diff": float(np.nanmax(np.abs(a.to_numpy() - b.to_numpy()))),
                        "mean_change": mean}
            print(f"{m}: {len(a)} episodes, NOT identical: max per-episode difference "
                  f"{drift[m]['max_episode_diff']:.2e}, mean change {mean} (base rows kept)")
            continue
        print(f"{m}: {len(a)} episodes identical in both runs")
    eb = eb.assign(method=eb.method.replace(rename))
    df = pd.concat([eb, en[~en.method.isin(shared)]], ignore_index=True)
    rows = []
    for split, g in df.groupby("split", sort=False):
        for metric in metrics:
            rows += summary_to_rows(summarize(g, metric), split)
    folds = base["folds"]
    for tag, info in new["folds"].items():
        if "selection" in info:
            if "selected" in rename:                   # only the nested choice has selection records
                folds[tag][f"selection_{rename['selected']}"] = folds[tag].get("selection")
            folds[tag]["selection"] = info["selection"]
    earlier = base["config"].get("added_from_earlier", []) + [a for a in [base["config"].get("added_from")] if a]
    added = {"config": new["config"], "methods": sorted(set(en.method) - set(shared)), "renamed": rename}
    config = base["config"] | {"added_from": added | ({"drift": drift} if drift else {})} | (
        {"added_from_earlier": earlier} if earlier else {})
    timings = base["timings"] | {f"added run: {k}": v for k, v in new["timings"].items()}
    adapt = df.groupby("method", sort=False)["adapt_s"].mean().to_dict()
    res = make_result(base["protocol"], rows, float(base["runtime_s"] + new["runtime_s"]), config, timings=timings,
                      leakage=base["leakage"], folds=folds, mean_adapt_predict_s=adapt)
    Path(args.base).write_text(json.dumps(res, indent=1))
    df.to_csv(args.base.replace(".json", "_episodes.csv.gz"), index=False)
    print(format_table(res))


if __name__ == "__main__":
    main()
