"""Merge case-study runs made fold by fold (``--set fold_ids=[i]``, run side by side) into one result, and
print the per-fold selected settings and the share of tasks on which a learner beats a reference.

Usage (from the repository root)::

    python tools/merge_casestudy.py calisol notebooks/results/calisol.json /tmp/calisol_f*.json
    python tools/merge_casestudy.py lnpdb notebooks/results/lnpdb.json    # summary of one finished run

Each run's per-episode CSV is the ``config["episodes_path"]``-style file next to it: ``<run>.json`` pairs with
``--episodes`` files given in the same order (``<run>`` with ``_f`` replaced by ``_ep`` and ``.csv.gz``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from nanonb.bench.casestudy import merge_folds
from nanonb.bench.schema import format_table

METRIC = {"calisol": ("mae", False, "vtf-fit"), "lnpdb": ("spearman", True, "rf-support")}


def share_beating(df: pd.DataFrame, method: str, ref: str, metric: str, higher: bool) -> dict:
    """Per K: the share of test tasks whose episode-mean ``metric`` of ``method`` beats that of ``ref``."""
    per = df.groupby(["method", "k", "task"])[metric].mean().unstack("method")
    out = {}
    for k, g in per.groupby(level="k"):
        d = (g[method] - g[ref]) * (1 if higher else -1)
        out[int(k)] = (float((d > 0).mean()), int(len(d)))
    return out


def main(protocol: str, out: str, runs: list[str]) -> None:
    metric, higher, ref = METRIC[protocol]
    if runs:
        results = [json.loads(Path(r).read_text()) for r in runs]
        frames = [pd.read_csv(r.replace("_f", "_ep").replace(".json", ".csv.gz")) for r in runs]
        res = merge_folds(results, frames, [metric] + (["top10_recall"] if protocol == "lnpdb" else []),
                          episodes_path=out.replace(".json", "_episodes.csv.gz"))
        Path(out).write_text(json.dumps(res, indent=1))
    res = json.loads(Path(out).read_text())
    df = pd.read_csv(out.replace(".json", "_episodes.csv.gz"))
    print(format_table(res))
    for tag, info in sorted(res["folds"].items()):
        sel = info.get("selection", {})
        print(tag, "held out:", info["test_groups"], "| inner validation groups:", sel.get("inner_val_groups"),
              "| chosen:", sel.get("chosen"))
    for line in share_lines(df, ref, metric, higher):
        print(line)


def share_lines(df: pd.DataFrame, ref: str, metric: str, higher: bool) -> list[str]:
    """One line per method: the share of tasks on which it beats ``ref``; one line saying so if ``ref`` did not run."""
    methods = sorted(df["method"].unique())
    if ref not in methods:
        return [f"no shares of tasks beating {ref!r}: it is not in this run (methods: {', '.join(methods)}); "
                f"add it to the run's baselines to get them"]
    return [f"share of tasks where {m} beats {ref} ({metric}): {share_beating(df, m, ref, metric, higher)}"
            for m in methods if m != ref]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
