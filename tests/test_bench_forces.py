"""The ``forces`` protocol end to end on its quick configuration (the ``tb`` one needs the xTB flake
cache, minutes to build: its quick JSON is compared with the reference outside the test suite)."""

from __future__ import annotations

import dataclasses

from nanonb.bench import SCHEMA_KEYS, format_table
from nanonb.bench.forces import ForcesBenchConfig, run_forces_bench


def _quiet(*_):
    pass


def test_forces_protocol_quick():
    res = run_forces_bench(quick=True, progress=False, log=_quiet)
    assert res["protocol"] == "forces" and all(set(SCHEMA_KEYS) <= set(r) for r in res["results"])
    methods = {(r["method"], r["metric"]) for r in res["results"]}
    assert ("fomaml+forces", "mae") in methods and ("zero-forces", "force_mae") in methods
    assert ("fomaml-equivariant", "force_mae") in methods and ("gp", "force_mae") not in methods
    assert "forces" in format_table(res)
    assert dataclasses.asdict(ForcesBenchConfig.quick())["shots"] == res["config"]["shots"]

