"""Tests of tools/merge_casestudy.py: shares of tasks beating the reference, and a run without the reference."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

_spec = importlib.util.spec_from_file_location("merge_casestudy",
                                               Path(__file__).parents[1] / "tools" / "merge_casestudy.py")
mc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mc)


def _episodes(methods):
    rows = []
    for m, offset in methods.items():
        for task, base in (("a", 0.1), ("b", 0.2)):
            rows.append({"method": m, "k": 5, "task": task, "mae": base + offset})
    return pd.DataFrame(rows)


def test_shares_of_tasks_beating_the_reference():
    df = _episodes({"vtf-fit": 0.0, "good": -0.05, "bad": 0.05})
    assert mc.share_beating(df, "good", "vtf-fit", "mae", higher=False) == {5: (1.0, 2)}
    lines = mc.share_lines(df, "vtf-fit", "mae", higher=False)
    assert len(lines) == 2 and "bad beats vtf-fit" in lines[0] and "(0.0, 2)" in lines[0]


def test_a_run_without_the_reference_says_so_instead_of_a_key_error():
    (line,) = mc.share_lines(_episodes({"good": 0.0, "bad": 0.1}), "vtf-fit", "mae", higher=False)
    assert "'vtf-fit'" in line and "not in this run" in line and "good" in line
