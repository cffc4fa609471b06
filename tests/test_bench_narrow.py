"""Tests for nanonb.bench.narrow: one-temperature supports on CALiSol-23 (the ``calisol-narrow`` protocol)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nanonb.bench.narrow import narrow_supports, run_narrow
from nanonb.bench.run import PROTOCOLS


def test_narrow_supports_hold_one_temperature_each():
    T = np.r_[np.full(6, 253.15), np.full(3, 273.15), np.full(6, 298.15)]
    sups = narrow_supports(T, 5, 4)
    assert len(sups) == 4 and all(len(s) == 5 and np.ptp(T[s]) == 0 for s in sups)
    assert {float(T[s[0]]) for s in sups} == {253.15, 298.15}     # 273.15 K has too few points
    assert narrow_supports(np.full(10, 300.0), 5, 2) == []         # the task has one temperature only


@pytest.mark.data
@pytest.mark.slow
def test_quick_protocol_end_to_end(shared_data_dir):
    assert PROTOCOLS["calisol-narrow"] == "nanonb.bench.narrow:run_narrow"
    res = run_narrow(quick=True, data_dir=shared_data_dir, log=lambda *_: None)
    assert {r["split"] for r in res["results"]} == {"one-temperature", "random"}
    assert {"fomaml-vtf", "pooled-vtf+finetune", "vtf-fit", "vtf-prior", "support mean"} <= \
        {r["method"] for r in res["results"]}
    assert res["n_one_temperature_tasks"] >= 1 and set(res["worst_ratio"]) == {"one-temperature", "random"}
    json.dumps(res)
