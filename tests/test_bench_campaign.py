"""Tests of nanonb.bench.campaign: live campaigns with EMT in the loop (quick run)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nanonb.active.live import calls_to_target
from nanonb.bench.campaign import CampaignConfig, run_campaign_bench
from nanonb.bench.run import PROTOCOLS
from nanonb.bench.schema import SCHEMA_KEYS


def test_campaign_quick_emits_the_schema_and_consistent_metrics():
    res = run_campaign_bench(quick=True, progress=False, log=lambda *a: None)
    assert PROTOCOLS["campaign"].endswith("run_campaign_bench") and res["protocol"] == "campaign"
    df = pd.DataFrame(res["results"])
    assert set(SCHEMA_KEYS) <= set(df.columns)
    assert set(df.metric) == {"simulator_calls_to_target", "simulator_calls_to_target_same_seed",
                              "simulator_calls_to_random_best", "best_after_budget"}
    assert set(df.method) == {"random", "gp-qlogei", "meta-qlogei", "metagp-qlogei"}
    runs = pd.DataFrame(res["campaigns"])
    assert runs.loc[runs.strategy == "random", "calls_to_random_best"].notna().all()
    budget = res["config"]["budget"]
    # the target is the best any strategy found, so at least one campaign reaches it, within the budget
    assert runs["calls_to_target"].notna().any() and (runs["calls_to_target"].dropna() <= budget).all()
    assert (runs["calls_to_target_same_seed"].fillna(budget + 1) <= runs["calls_to_target"].fillna(budget + 1)).all()
    assert np.isclose(runs["target"], runs["best_after_budget"].min()).all()
    for c in res["curves"]:  # best-so-far never gets worse; every strategy starts from the same random designs
        assert len(c["best"]) == budget and np.all(np.diff(c["best"]) <= 0)
    firsts = {tuple(c["best"][:3]) for c in res["curves"]}
    assert len(firsts) == 1
    with pytest.raises(ValueError, match="unknown option"):
        run_campaign_bench(quick=True, progress=False, bogus=1)
    with pytest.raises(ValueError, match="FlakeCampaignConfig"):
        CampaignConfig.for_data("flakes")


def test_calls_to_target_counts_calls_and_censors():
    assert calls_to_target(np.array([0.0, -0.01, -0.02]), -0.02, "min") == 3
    assert calls_to_target(np.array([0.0, -0.01]), -0.02, "min", tol=0.005) is None
    assert calls_to_target(np.array([1.0, 2.0]), 2.0, "max") == 2


def test_campaign_fanned_out_over_two_processes_gives_the_serial_numbers():
    def numbers(res):  # everything but the timings, as JSON text (NaN == NaN there)
        runs = [{k: v for k, v in r.items() if k != "runtime_s"} for r in res["campaigns"]]
        return json.dumps([res["results"], runs, res["curves"], res["best_designs"]], default=str)

    serial = run_campaign_bench(quick=True, progress=False, log=lambda *a: None)
    fanned = run_campaign_bench(quick=True, progress=False, log=lambda *a: None, workers=2)
    assert serial["config"]["workers"] == 1 and fanned["config"]["workers"] == 2
    assert numbers(fanned) == numbers(serial)


def test_flakes_campaign_fanned_out_gives_the_serial_numbers_and_every_xtb_time():
    pytest.importorskip("tblite")

    def numbers(res):
        return json.dumps([res["results"], res["curves"], res["best_designs"]], default=str)

    serial = run_campaign_bench(quick=True, data="flakes", progress=False, log=lambda *a: None)
    fanned = run_campaign_bench(quick=True, data="flakes", progress=False, log=lambda *a: None, workers=2)
    assert numbers(fanned) == numbers(serial)
    assert len(fanned["config"]["xtb_seconds"]) == len(serial["config"]["xtb_seconds"]) > 0  # workers' calls too


def test_campaign_without_random_skips_only_the_random_best_metric():
    res = run_campaign_bench(quick=True, progress=False, log=lambda *a: None,
                             strategies=["gp-qlogei"], budget=4, n_candidates=12)
    df = pd.DataFrame(res["results"])
    assert set(df.metric) == {"simulator_calls_to_target", "simulator_calls_to_target_same_seed", "best_after_budget"}


def test_search_options_reach_every_model_based_campaign(monkeypatch):
    import nanonb.bench.campaign as bc

    seen = []
    real = bc.run_live_campaign

    def spy(oracle, kind, **kw):
        seen.append((kind, kw["search_steps"], kw["search_starts"], kw["search_neighbours"]))
        return real(oracle, kind, **kw)

    monkeypatch.setattr(bc, "run_live_campaign", spy)
    res = run_campaign_bench(quick=True, progress=False, log=lambda *a: None, strategies=["random", "gp-qlogei"],
                             budget=4, n_candidates=8, search_steps=2, search_starts=3, search_neighbours=4)
    assert sorted(seen) == [("gp", 2, 3, 4), ("random", 2, 3, 4)] and res["config"]["search_steps"] == 2


def test_fixed_composition_and_warm_start_options_reach_the_oracle_and_the_loop(monkeypatch):
    import nanonb.bench.campaign as bc

    seen = []
    real = bc.run_live_campaign

    def spy(oracle, kind, **kw):
        seen.append((kind, oracle.cluster, oracle.composition, kw["warm_start"]))
        return real(oracle, kind, **kw)

    monkeypatch.setattr(bc, "run_live_campaign", spy)
    res = run_campaign_bench(quick=True, progress=False, log=lambda *a: None, strategies=["random", "gp-qlogei"],
                             budget=4, n_candidates=8, cluster="Ih13", composition=0.5, warm_start=True)
    assert sorted(seen) == [("gp", "Ih13", 0.5, True), ("random", "Ih13", 0.5, True)]
    assert {(d["best_design"]["cluster"], len(d["best_design"]["b_sites"])) for d in res["best_designs"]} == {
        ("Ih13", 7)}
    assert res["config"]["cluster"] == "Ih13" and res["config"]["warm_start"] is True
