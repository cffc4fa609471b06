"""The ``forces`` protocol end to end on its quick configuration (the ``tb`` one needs the xTB flake
cache, minutes to build: its quick JSON is compared with the reference outside the test suite), and
the ``--set`` rule of both physics protocols."""

from __future__ import annotations

import dataclasses

import pytest

from nanonb.bench import SCHEMA_KEYS, format_table
from nanonb.bench.forces import ForcesBenchConfig, run_forces_bench
from nanonb.bench.schema import OptionError
from nanonb.bench.tb import run_tb_bench


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




@pytest.mark.parametrize("protocol", ["forces", "tb"])
def test_unknown_set_key_fails_before_any_work_and_lists_valid_keys(protocol):
    """The one ``--set`` rule (:func:`nanonb.bench.schema.apply_options`) for the physics protocols:
    a typo is an error naming the valid keys, raised before data are loaded or models trained."""
    run = {"forces": run_forces_bench, "tb": run_tb_bench}[protocol]
    with pytest.raises(OptionError, match=r"unknown option\(s\) \['n_episode'\].*valid keys: .*'n_episodes'"):
        run(quick=True, progress=False, log=_quiet, n_episode=3)
