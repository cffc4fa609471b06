"""Tests of tools/compare_campaigns.py: per-pair calls to target and wins/ties/losses against GP-BO."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location("compare_campaigns",
                                               Path(__file__).parents[1] / "tools" / "compare_campaigns.py")
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


def _curves():
    c = {}
    for s in (0, 1):
        c[("A-B", s, "random")] = np.array([0.0, -0.01, -0.02, -0.02])
        c[("A-B", s, "gp-qlogei")] = np.array([0.0, -0.05, -0.10, -0.10])
        c[("A-B", s, "metagp-qlogei")] = np.array([0.0, -0.10, -0.10, -0.10]) if s == 0 else np.array([0.0] * 4)
    return c


def test_by_pair_and_wins_against_gp():
    bp = cc.by_pair(_curves(), 4, 0.005).set_index("strategy")
    assert bp.loc["gp-qlogei", "median"] == 3 and bp.loc["gp-qlogei", "reached"] == 1.0
    assert bp.loc["metagp-qlogei", "reached"] == 0.5 and bp.loc["random", "median"] == 5  # censored at budget + 1
    assert np.isclose(bp.loc["random", "target_mev"], -100.0)
    tab = cc.table_at(_curves(), 4, 0.005).set_index("strategy")
    assert tuple(tab.loc["metagp-qlogei", ["beats_gp_runs", "ties_gp_runs", "loses_gp_runs"]]) == (0, 1, 1)
    # cut at 2 calls: metagp's seed-0 campaign is ahead of GP-BO there
    assert cc.table_at(_curves(), 2, 0.005).set_index("strategy").loc["metagp-qlogei", "beats_gp_runs"] == 1
