"""The README's real-data tables agree with the result JSONs they were typed from.

"Text never disagrees with numbers": the CALiSol and LNPDB tables in ``README.md`` are written by hand from
``notebooks/results/{calisol,lnpdb}.json``. This test reads every row of the two tables, maps its first cell to
a method of the JSON (the first backticked name, or a plain-words label below), and checks each printed mean and
s.e.m. against the JSON at the printed precision (half a unit in the last printed digit). A row it cannot map
fails the test, so no row escapes it. The share-of-tasks column of those tables is not checked. The status table
("Where the real-data targets stand") is recomputed whole: each number (the shares from the episode files, the
active-learning medians and paired counts from ``active_lnpdb.json``) and each met / missed verdict. The
per-fold choices of the nested selection, in the README and in ``docs/case_studies.md``, must be the output of
``tools/selection_table.py`` on the JSONs.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Rows whose first cell names the method in words, not in backticks.
LABELS = {
    "pooled VTF network + fine-tune (control)": "pooled-vtf+finetune",
    "Bayesian last layer": "bml",
    "deep ensemble": "ensemble",
    "per-task VTF fit": "vtf-fit",
    "residual GP around pooled GBM": "residual-gp",
    "per-task GP": "gp",
    "random forest on the support": "rf-support",
    "extremely randomized trees on the support": "et-support",
    "pooled GBM zero-shot": "pooled-gbm",
    "random ranking": "random",
}

#: (README heading, JSON file, the metric and K of each numeric column in order).
TABLES = [
    ("### CALiSol-23, leave-salt-out", "calisol.json", [("mae", 5), ("mae", 10)]),
    ("### LNPDB, leave-study-out", "lnpdb.json",
     [("spearman", 10), ("spearman", 30), ("top10_recall", 10), ("top10_recall", 30)]),
]

NUMBER = re.compile(r"(-?\d+\.\d+)(?:\s*±\s*(\d+\.\d+))?")


def _table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of every body row of the first markdown table after ``heading``."""
    section = text[text.index(heading):]
    rows, started = [], False
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif started:
            break
    return rows[2:]                                    # drop the header and the |---| line


def _methods(first_cell: str) -> list[str]:
    """Method names of a row: ``a`` / ``b`` / ``c`` rows name several, one per number."""
    cell = first_cell.replace("*", "")
    lead = cell.split(":")[0] if ":" in cell else cell
    names = re.findall(r"`([^`]+)`", lead)
    if " / " in lead and len(names) > 1:
        return names
    if cell.startswith("`"):
        return names[:1]
    for label, method in LABELS.items():
        if cell.startswith(label):
            return [method]
    return []


def _printed(cell: str) -> list[tuple[float, int, float | None, int]]:
    """(mean, decimals, sem or None, decimals) of every number in a cell."""
    out = []
    for m in NUMBER.finditer(cell.replace("−", "-").replace("*", "")):
        mean, sem = m.group(1), m.group(2)
        out.append((float(mean), len(mean.split(".")[1]),
                    None if sem is None else float(sem), 0 if sem is None else len(sem.split(".")[1])))
    return out


def _agrees(printed: float, decimals: int, value: float) -> bool:
    return abs(printed - value) <= 0.5 * 10.0 ** -decimals + 1e-12


@pytest.mark.parametrize("heading, path, columns", TABLES, ids=[t[1] for t in TABLES])
def test_readme_case_study_table_is_the_json(heading, path, columns):
    results = json.loads((ROOT / "notebooks" / "results" / path).read_text())["results"]
    score = {(r["method"], r["metric"], r["k"]): r for r in results}
    rows = _table_rows((ROOT / "README.md").read_text(), heading)
    assert len(rows) >= 10, f"found only {len(rows)} rows under {heading!r}"
    wrong, checked = [], 0
    for row in rows:
        methods = _methods(row[0])
        assert methods, f"README row not mapped to a method of {path}: {row[0][:80]!r} (add it to LABELS)"
        for (metric, k), cell in zip(columns, row[1:1 + len(columns)]):
            numbers = _printed(cell)
            assert len(numbers) == len(methods), f"{row[0][:60]!r}: cell {cell!r} has {len(numbers)} numbers"
            for method, (mean, md, sem, sd) in zip(methods, numbers):
                r = score.get((method, metric, k))
                assert r is not None, f"{method!r} ({metric}, K={k}) is in the README but not in {path}"
                ok = _agrees(mean, md, r["mean"]) and (sem is None or _agrees(sem, sd, r["sem"]))
                checked += 1
                if not ok:
                    wrong.append(f"{method} {metric} K={k}: README {cell!r}, JSON {r['mean']:.4f} ± {r['sem']:.4f}")
    assert not wrong, "README disagrees with " + path + ":\n" + "\n".join(wrong)
    assert checked >= 2 * len(rows)


def test_the_check_catches_a_changed_digit():
    assert _agrees(0.0926, 4, 0.09262) and not _agrees(0.0926, 4, 0.09268)
    assert _methods("`ft-map-p0.01` / `ft-map-p0.1`: text") == ["ft-map-p0.01", "ft-map-p0.1"]
    assert _methods("**`selected`** (blind: `x`)") == ["selected"]
    assert _methods("per-task GP (RBF)") == ["gp"]
    assert _printed("0.0967 / **0.0978** / −0.012 ± 0.007") == [(0.0967, 4, None, 0), (0.0978, 4, None, 0),
                                                                 (-0.012, 3, 0.007, 3)]


# --- the status table "Where the real-data targets stand" -------------------------------------------------------

#: The active-learning strategy declared before the one fold-0 run (see the README).
DECLARED_AL = "gp+pooled+trust-ei"


def _unfinished_as(budget_plus_one: float, value) -> float:
    return budget_plus_one if value is None or math.isnan(value) else float(value)


def _status_facts() -> list[tuple[list[float], bool, float | None]]:
    """Per status row, in order: the numbers it prints, whether the target is met, and the gap when missed."""
    res = {f: json.loads((ROOT / "notebooks" / "results" / f"{f}.json").read_text())
           for f in ("calisol", "lnpdb", "active_lnpdb")}

    def score(f, method, metric, k):
        return next(r for r in res[f]["results"] if (r["method"], r["metric"], r["k"]) == (method, metric, k))

    eps = pd.read_csv(ROOT / "notebooks" / "results" / "calisol_episodes.csv.gz")
    per_task = eps.groupby(["method", "k", "task"])["mae"].mean().unstack("method")
    facts = []
    for k, target in ((5, 0.094), (10, 0.076)):
        r = score("calisol", "selected", "mae", k)
        facts.append(([r["mean"], r["sem"]], r["mean"] <= target, r["mean"] - target))
    for k in (5, 10):
        g = per_task.xs(k, level="k")
        share = float(np.mean(g["selected"] < g["vtf-fit"]))
        facts.append(([100 * share], share >= 0.70, None))
    for k, target in ((10, 0.30), (30, 0.42)):
        r = score("lnpdb", "selected", "spearman", k)
        facts.append(([r["mean"], r["sem"]], r["mean"] >= target, target - r["mean"]))
    med = {r["method"]: r["median"] for r in res["active_lnpdb"]["results"] if r["metric"] == "experiments_to_top5"}
    ratio = med["random"] / med[DECLARED_AL]
    facts.append(([med["random"], med[DECLARED_AL], ratio], round(ratio, 1) >= 2.0, None))
    facts.append(([med[DECLARED_AL], med["gp_bo"]], med[DECLARED_AL] < med["gp_bo"], None))
    return facts


def test_readme_status_table_is_computed_from_the_results():
    text = (ROOT / "README.md").read_text()
    rows = _table_rows(text, "### Where the real-data targets stand")
    facts = _status_facts()
    assert len(rows) == len(facts), f"{len(rows)} status rows, {len(facts)} computed"
    for row, (numbers, met, gap) in zip(rows, facts):
        _, result, verdict = row
        printed = re.findall(r"\d+(?:\.\d+)?", result)
        assert len(printed) == len(numbers), (row, numbers)
        for p, v in zip(printed, numbers):
            decimals = len(p.split(".")[1]) if "." in p else 0
            assert _agrees(float(p), decimals, v), f"{row[0]}: README {result!r}, computed {numbers}"
        word = verdict.replace("*", "").split()[0]
        assert word == ("met" if met else "missed"), f"{row[0]}: README says {word!r}, the results say met={met}"
        by = re.search(r"by (\d+\.\d+)", verdict)
        if gap is not None and not met:
            assert by, f"{row[0]}: a missed target gives its gap"
            assert _agrees(float(by.group(1)), len(by.group(1).split(".")[1]), gap), (row[0], gap)


def test_readme_paired_al_counts_are_the_campaigns():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Where the real-data targets stand"):text.index("### CALiSol-23, leave-salt-out")]
    m = re.search(r"fewer than GP-BO in (\d+) campaigns, as many in (\d+), more in (\d+)", section)
    assert m, "the status section states the paired counts against GP-BO"
    camps = json.loads((ROOT / "notebooks" / "results" / "active_lnpdb.json").read_text())["campaigns"]
    budget = {c["budget"] for c in camps}.pop()
    n = {(c["strategy"], c["task"], c["seed"]): _unfinished_as(budget + 1, c["experiments_to_top"]) for c in camps}
    pairs = [(n[(DECLARED_AL, t, s)], v) for (st, t, s), v in n.items() if st == "gp_bo"]
    assert len(pairs) == 60
    counted = (sum(a < b for a, b in pairs), sum(a == b for a, b in pairs), sum(a > b for a, b in pairs))
    assert tuple(int(x) for x in m.groups()) == counted


# --- the per-fold choices of the nested selection --------------------------------------------------------------

_spec = importlib.util.spec_from_file_location("selection_table", ROOT / "tools" / "selection_table.py")
selection_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(selection_table)


@pytest.mark.parametrize("path", ["calisol.json", "lnpdb.json"])
def test_selection_tables_in_readme_and_docs_are_the_json_choices(path):
    result = json.loads((ROOT / "notebooks" / "results" / path).read_text())
    readme, docs = ((ROOT / f).read_text() for f in ("README.md", "docs/case_studies.md"))
    assert selection_table.selection_table(result) in readme                 # the latest run's choice
    runs = selection_table.runs(result)
    assert len(runs) >= 5 and runs[0] == "selected"
    for run in runs:                                                        # every run's, in the history
        assert f"`{run}` (among" in docs and selection_table.selection_table(result, run) in docs, run
    first = next(iter(result["folds"].values()))["selection"]["chosen"]
    assert all(f"`{name}`" in readme for name in first.values())
