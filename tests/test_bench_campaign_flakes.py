"""Tests of nanonb.bench.campaign_flakes: ``campaign --data flakes``, GFN2-xTB in the loop (quick run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tblite")

from nanonb.active.flake_oracle import FlakeOracle  # noqa: E402
from nanonb.bench.campaign import run_campaign_bench  # noqa: E402
from nanonb.bench.campaign_flakes import FlakeCampaignConfig  # noqa: E402
from nanonb.bench.schema import SCHEMA_KEYS  # noqa: E402
from nanonb.data.flakes import load_flakes, size_split, xtb_gap  # noqa: E402
from nanonb.data.honeycomb import fingerprint  # noqa: E402


def test_flakes_campaign_quick_proposes_new_flakes_in_budget_labelled_by_xtb():
    res = run_campaign_bench(quick=True, data="flakes", progress=False, log=lambda *a: None)
    cfg = FlakeCampaignConfig.for_quick()
    assert res["data"] == "flakes" and res["config"]["unit"] == "eV" and res["config"]["goal"] == "min"
    df = pd.DataFrame(res["results"])
    assert set(SCHEMA_KEYS) <= set(df.columns) and set(df.method) == set(cfg.strategies)
    assert len(res["config"]["xtb_seconds"]) == cfg.budget * len(cfg.strategies)  # one xTB call per measurement
    meta = res["config"]["meta_train"]
    assert meta["max_n_heavy"] <= cfg.meta_max_heavy < cfg.min_heavy  # meta-train flakes are all smaller
    train, _ = size_split(load_flakes(n_per_family=cfg.meta_n_per_family, seed=cfg.data_seed,
                                      max_heavy=cfg.meta_data_max_heavy, progress=False),
                          cfg.meta_max_heavy, min_test_points=1)
    seen = {fingerprint(s) for t in train for s in t.inputs}
    runs = pd.DataFrame(res["campaigns"]).set_index("strategy")
    oracle = FlakeOracle(cfg.pairs[0], cfg.min_heavy, cfg.max_heavy)
    for row in res["best_designs"]:
        flake = oracle.flake(row["best_design"])
        assert cfg.min_heavy <= flake.info["n_heavy"] <= cfg.max_heavy and fingerprint(flake.structure) not in seen
        assert runs.loc[row["strategy"], "best_after_budget"] == xtb_gap(flake.structure)[0]
    firsts = {tuple(c["best"][: cfg.n_init]) for c in res["curves"]}
    assert len(firsts) == 1  # every strategy starts from the same random flakes
    assert all(np.all(np.diff(c["best"]) <= 0) for c in res["curves"])
