"""Tests of nanonb.active.live: the live loop on EMT-labelled nanoalloy designs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nanonb.active.botorch_model import learner_model
from nanonb.active.live import meta_prior_gp, run_live_campaign
from nanonb.active.oracle import AlloyOracle
from nanonb.pretrained import load_pretrained

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bml():
    return load_pretrained()


def test_strategies_share_the_first_designs_and_runs_are_reproducible(bml):
    oracle = AlloyOracle("Cu", "Pt", max_atoms=19)
    kw = dict(surrogate=bml, budget=6, n_init=3, n_candidates=24, seed=4)
    runs = {s: run_live_campaign(oracle, s, **kw) for s in ("random", "meta", "metagp")}
    firsts = {s: r.frame["candidate"].iloc[:3].tolist() for s, r in runs.items()}
    assert firsts["random"] == firsts["meta"] == firsts["metagp"]
    again = run_live_campaign(oracle, "meta", **kw)
    assert again.values.tolist() == runs["meta"].values.tolist()
    m = runs["meta"].frame
    assert m["model_mean"].iloc[3:].notna().all() and (m["model_std"].iloc[3:] > 0).all()
    assert m["candidate"].nunique() == len(m)  # never proposes a measured design again
    best = runs["meta"].best_design
    assert json.dumps(best, sort_keys=True) in set(m["candidate"])
    with pytest.raises(ValueError, match="unknown strategy"):
        run_live_campaign(oracle, "bogus", **{**kw, "budget": 4})


def test_meta_prior_gp_starts_from_the_meta_learned_mean(bml):
    oracle = AlloyOracle("Cu", "Pt", max_atoms=19)
    designs = oracle.initial(np.random.default_rng(0), 8)
    x = oracle.describe(designs)
    y = np.array([v for _, v in oracle.measure_batch(list(enumerate(designs)))])
    x_far = x[:2].copy()
    x_far[:, 1] += 5.0  # far from every measured point (in the scaled inputs)
    bounds = np.stack([x.min(0), np.where(x.max(0) > x.min(0), x.max(0), x.min(0) + 1)])
    model, gp = meta_prior_gp(bml, x, y, bounds, sign=-1.0)
    m0 = learner_model(bml, x[:0], y[:0]).mean_std(x_far)[0]
    mean = -model.posterior(torch.as_tensor(x_far).unsqueeze(-2)).mean.reshape(-1).numpy()
    # far from the data the GP reverts to its constant: the prediction is the meta-learned mean plus one offset
    assert np.ptp(mean - m0) < 1e-3 and np.ptp(m0) > 1e-3
    fitted = -model.posterior(torch.as_tensor(x).unsqueeze(-2)).mean.reshape(-1).numpy()
    assert np.mean(np.abs(fitted - y)) < np.mean(np.abs(m0.mean() - y)) + 1e-9


def test_warm_start_begins_at_the_given_hyper_parameters_and_still_fits(monkeypatch):
    import botorch.fit

    from nanonb.active.live import fit_gp

    rng = np.random.default_rng(0)
    x, bounds = rng.random((12, 3)), np.array([[0, 0, 0], [1, 1, 1.0]])
    y = np.sin(4 * x[:, 0]) + x[:, 1]
    cold = fit_gp(x, y, bounds)
    init = {k: v.numpy() + 0.3 for k, v in cold.state_dict().items()}
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", lambda mll, **kw: mll)  # no optimizer: see the start
    start = fit_gp(x, y, bounds, init=init)
    params = dict(start.named_parameters())
    assert params and all(np.allclose(p.detach().numpy(), init[k]) for k, p in params.items())
    # data-dependent buffers are not taken over: the outcome standardization is of this y
    assert np.isclose(float(start.outcome_transform.means), y.mean())
    monkeypatch.undo()
    warm = fit_gp(x, y, bounds, init=init)  # optimized from there: moved off the start, as good a fit as cold
    assert not all(np.allclose(p.detach().numpy(), init[k]) for k, p in warm.named_parameters())
    assert _mll(warm) > _mll(start) and _mll(warm) >= _mll(cold) - 0.02


def test_warm_start_refuses_a_state_of_another_gp():
    from nanonb.active.live import fit_gp

    rng = np.random.default_rng(1)
    x, bounds = rng.random((10, 3)), np.array([[0, 0, 0], [1, 1, 1.0]])
    y = x.sum(1)
    two = fit_gp(x[:, :2], y, bounds[:, :2])  # fitted on 2 inputs: its length scales have another shape
    with pytest.raises(ValueError, match="wrong shapes.*lengthscale"):
        fit_gp(x, y, bounds, init=two.state_dict())
    with pytest.raises(ValueError, match="unknown keys.*not_a_parameter"):
        fit_gp(x, y, bounds, init={"not_a_parameter": np.zeros(1)})


def _mll(gp) -> float:
    from gpytorch.mlls import ExactMarginalLogLikelihood

    gp.train()
    with torch.no_grad():
        out = ExactMarginalLogLikelihood(gp.likelihood, gp)(gp(*gp.train_inputs), gp.train_targets)
    gp.eval()
    return float(out)


def test_warm_started_campaign_reads_the_previous_checkpoint_and_resumes_identically(bml, monkeypatch):
    import nanonb.active.live as live
    from nanonb.active.store import CampaignStore

    inits, real = [], live.fit_gp
    monkeypatch.setattr(live, "fit_gp", lambda *a, init=None, **kw: inits.append(init) or real(*a, init=init, **kw))
    oracle = AlloyOracle("Cu", "Pt", max_atoms=19)
    kw = dict(surrogate=bml, budget=7, n_init=3, n_candidates=16, seed=2, warm_start=True)
    store = CampaignStore(":memory:")
    full = run_live_campaign(oracle, "metagp", store=store, **kw)
    assert inits[0] is None and all(i is not None for i in inits[1:]) and len(inits) == 4
    _, ckpt1 = store.load_checkpoint(1, 1)
    assert set(inits[1]) == set(ckpt1) and all(np.array_equal(inits[1][k], ckpt1[k]) for k in ckpt1)
    split = CampaignStore(":memory:")
    run_live_campaign(oracle, "metagp", store=split, max_rounds=3, **kw)  # stopped after round 2
    resumed = run_live_campaign(oracle, "metagp", store=split, **kw)
    assert resumed.frame["candidate"].tolist() == full.frame["candidate"].tolist()
    assert json.loads(store.conn.execute("SELECT config_json FROM campaigns").fetchone()[0])["warm_start"] is True
    with pytest.raises(ValueError, match="another config"):  # a log is resumed with the fit it was started with
        run_live_campaign(oracle, "metagp", store=split, **{**kw, "warm_start": False})
