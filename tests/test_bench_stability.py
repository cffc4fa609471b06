"""The ``stability`` protocol (quick mode) and the blend screen's pieces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rdkit")

from nanonb.bench.run import PROTOCOLS, protocol_function  # noqa: E402
from nanonb.bench.schema import SCHEMA_KEYS  # noqa: E402
from nanonb.bench.stability import run_stability, scaffold_leakage  # noqa: E402


def test_stability_quick_runs_with_the_shared_schema(tmp_path):
    assert protocol_function("stability") is run_stability and "stability" in PROTOCOLS
    res = run_stability(quick=True, progress=False, cache_dir=tmp_path, log=lambda *_: None)
    assert res["protocol"] == "stability" and res["library"]["source"] == "shipped"
    df = pd.DataFrame(res["results"])
    assert set(SCHEMA_KEYS) <= set(df.columns)
    methods = set(df.method)
    assert {"bml", "fomaml", "support mean", "gp", "tanimoto-gp", "pooled-mlp", "pooled-mlp+finetune"} <= methods
    mae = df[(df.metric == "mae") & (df.k == 5)].set_index("method")["mean"]
    assert np.isfinite(mae).all() and (mae > 0).all()
    # every family is a test family exactly once over the folds
    assert set(df.n_tasks) == {11}
    assert "K=5" in res["verdict"]["e_ox_v"]
    leak = res["leakage"]["e_ox_v/fold0"]
    assert 0 <= leak["scaffold_shared"] <= 1 and 0 <= leak["median_max_tanimoto"] <= 1
    assert -1 <= res["ox_red_correlation"] <= 1


def test_scaffold_leakage_sees_a_shared_scaffold():
    from nanonb.data.electrolyte_tasks import stability_taskset
    from nanonb.data.electrolytes_xtb import load_electrolyte_library

    ts = stability_taskset(load_electrolyte_library("small"), "e_ox_v")
    same = scaffold_leakage(ts.select(["cyclic_carbonate"]), ts.select(["cyclic_carbonate"]))
    assert same["median_max_tanimoto"] == pytest.approx(1.0) and same["near_duplicates"] == 1.0
    apart = scaffold_leakage(ts.select(["phosphate"]), ts.select(["nitrile"]))
    assert apart["scaffold_shared"] == 0.0 and apart["median_max_tanimoto"] < 0.8
