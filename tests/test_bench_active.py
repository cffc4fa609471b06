"""Tests of nanonb.bench.active: the active benchmark protocol (quick runs)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from synthetic import tabular_taskset

from nanonb.baselines.pooled_mean_gp import PooledMeanGP
from nanonb.bench.active import ActiveConfig, _surrogates, run_active_bench
from nanonb.bench.schema import SCHEMA_KEYS

torch.set_num_threads(1)


def test_active_bench_quick_emits_the_schema():
    res = run_active_bench(quick=True, progress=False, data="nanoalloys", log=lambda *a: None)
    assert res["protocol"] == "active" and res["data"] == "nanoalloys"
    df = pd.DataFrame(res["results"])
    assert set(SCHEMA_KEYS) <= set(df.columns)
    unc = df[df.metric.isin(["nll", "coverage50", "coverage90", "coverage95"])]
    assert set(unc.method) == {"bml", "bml_cal", "ensemble", "gp", "pooled+gp"}
    act = df[df.metric.isin(["experiments_to_top5", "auc_best_so_far"])]
    assert {"random", "gp_bo", "bml-ei"} <= set(act.method)
    assert set(act[act.method.isin(["random", "gp_bo"])].kind) == {"baseline"}
    assert all(len(r) == 2 and r[0] <= r[1] for r in act["iqr"])
    assert ((unc[unc.metric.str.startswith("coverage")]["mean"]).between(0, 1)).all()
    assert res["config"]["goal"] == "min" and res["config"]["split"] == "holdout-Pt"
    assert {"calibration", "campaigns", "refinement", "timings"} <= set(res)
    with pytest.raises(ValueError, match="unknown option"):
        run_active_bench(quick=True, progress=False, data="nanoalloys", bogus=1)


@pytest.mark.data
def test_active_bench_quick_on_calisol(shared_data_dir):
    res = run_active_bench(quick=True, progress=False, data="calisol", data_dir=shared_data_dir, log=lambda *a: None)
    df = pd.DataFrame(res["results"])
    assert res["config"]["goal"] == "max" and res["config"]["split"].startswith("leave-salt-out fold 1")
    assert {"nll", "coverage90", "experiments_to_top5", "auc_best_so_far"} <= set(df.metric)
    camps = pd.DataFrame(res["campaigns"])
    assert (camps["budget"] == 8).all() and (camps.loc[camps["found"], "experiments_to_top"] <= 8).all()
    assert set(camps["strategy"]) == {"random", "gp_bo", "bml-ei", "bml-thompson", "ensemble-ei", "bml_cal-ei"}


@pytest.mark.data
@pytest.mark.slow
def test_active_bench_quick_on_lnpdb_runs_the_tanimoto_gp_stack_and_pooled_mean_surrogates(shared_data_dir):
    res = run_active_bench(quick=True, progress=False, data="lnpdb", data_dir=shared_data_dir, log=lambda *a: None,
                           acquisitions=["ei"], ensemble_acquisitions=[], calibrated_acquisitions=[],
                           surrogate_acquisitions=["ei", "thompson"])
    camps = pd.DataFrame(res["campaigns"])
    assert set(camps["strategy"]) == {"random", "gp_bo", "bml-ei"} | {
        f"{s}-{a}" for s in ("tanimoto-gp", "stack", "tanimoto-gp+pooled", "gp+pooled", "gp+pooled+trust")
        for a in ("ei", "thompson")}
    assert (camps["budget"] == 8).all() and (camps.loc[camps["found"], "experiments_to_top"] <= 8).all()
    act = pd.DataFrame(res["results"]).query("metric == 'experiments_to_top5'")
    assert {"tanimoto-gp-ei", "stack-ei", "gp+pooled-ei", "tanimoto-gp+pooled-ei"} <= set(act.method)
    with pytest.raises(ValueError, match="unknown surrogates"):
        run_active_bench(quick=True, progress=False, data="lnpdb", data_dir=shared_data_dir, surrogates=["svm"])
    with pytest.raises(ValueError, match="unknown surrogate_acquisitions"):
        run_active_bench(quick=True, progress=False, data="lnpdb", data_dir=shared_data_dir,
                         surrogate_acquisitions=["eii"])


def test_gp_pooled_surrogate_is_gp_bo_with_a_pooled_mean_and_needs_no_fingerprints():
    ts = tabular_taskset(n_tasks=4, n=30)
    ts.feature_names = ["x0", "x1", "x2"]
    cfg = ActiveConfig.for_data("calisol", quick=True)
    cfg.surrogates, cfg.bo_refit_every, cfg.pooled_scale = ("gp+pooled",), 2, 0.5
    out = _surrogates(cfg, ts, seed=0)
    gp = out["gp+pooled"]
    assert list(out) == ["gp+pooled"] and isinstance(gp, PooledMeanGP) and gp.name == "gp+pooled"
    assert gp.a == 0.5 and gp.warm_start and gp.refit_every == 2 and gp.n_restarts == 1  # GP-BO's settings
    assert gp.mean_model.model_name == "gbm" and gp.mean_model.max_iter == cfg.gbm_iter
    assert gp.trust is None  # one fixed scale (the published rows); its per-campaign version is another surrogate
    cfg.surrogates, cfg.pooled_trust = ("gp+pooled", "gp+pooled+trust"), 0.5
    out = _surrogates(cfg, ts, seed=0)
    assert out["gp+pooled"].trust is None and out["gp+pooled+trust"].trust == 0.5
    assert out["gp+pooled+trust"].name == "gp+pooled+trust" and out["gp+pooled+trust"].a == 0.5
    cfg.surrogates = ("gp+pooled", "tanimoto-gp+pooled")
    with pytest.raises(ValueError, match=r"\['tanimoto-gp\+pooled'\] need fingerprint columns"):
        _surrogates(cfg, ts, seed=0)
