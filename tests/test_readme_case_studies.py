"""The README's real-data tables agree with the result JSONs they were typed from.

"Text never disagrees with numbers": the CALiSol and LNPDB tables in ``README.md`` are written by hand from
``notebooks/results/{calisol,lnpdb}.json``. This test reads every row of the two tables, maps its first cell to
a method of the JSON (the first backticked name, or a plain-words label below), and checks each printed mean and
s.e.m. against the JSON at the printed precision (half a unit in the last printed digit). A row it cannot map
fails the test, so no row escapes it. The share-of-tasks column is not checked (it is computed from the episode
files, not stored in the JSON).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

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
    return [r for r in rows[2:]]                       # drop the header and the |---| line


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
