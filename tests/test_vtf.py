"""Tests for the VTF physics: the per-task fit, the VTF head network and its use in meta-learning.

All synthetic (no data files): tasks follow ln k = ln A + alpha ln c + beta c - B / (T - T0) exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nanonb.learners.registry import load, make_learner
from nanonb.learners.training import Scaler
from nanonb.models.registry import MODELS, build_model
from nanonb.tasks import Task, TaskSet
from nanonb.vtf import (
    PARAM_NAMES,
    RawColumns,
    VTFFit,
    VTFNet,
    VTFPrior,
    empirical_prior,
    fit_vtf,
    vtf_log10k,
    vtf_model_kwargs,
    vtf_parameters,
)

TRUE = {"lnA": 5.6, "B": 520.0, "T0": 158.0, "alpha": 0.8, "beta": -0.7}
FEATURES = ["temperature_K", "inv_temperature_1000_per_K", "salt_concentration", "solvent_x"]


def _task_set(params_list, n=40, seed=0, noise=0.0, c_range=(0.2, 2.0), name="t"):
    """Tasks in the loader's format: standardized columns + feature_mean/feature_std attributes."""
    rng = np.random.default_rng(seed)
    raw, ys, ids = [], [], []
    for i, p in enumerate(params_list):
        T = rng.uniform(215.0, 350.0, n)
        c = rng.uniform(*c_range, n)
        s = np.full(n, float(i))
        raw.append(np.column_stack([T, 1000.0 / T, c, s]))
        ys.append(vtf_log10k(p, T, c) + noise * rng.standard_normal(n))
        ids.append(np.full(n, i))
    x = np.vstack(raw)
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    tasks, start = [], 0
    for i, y in enumerate(ys):
        sl = slice(start, start + len(y))
        tasks.append(Task(f"{name}{i}", z[sl], y, groups=(f"salt{i}",)))
        start += len(y)
    ts = TaskSet(tasks, name="synthetic VTF", feature_names=FEATURES)
    ts.feature_mean, ts.feature_std = mean, std
    return ts


# ---------------------------------------------------------------------- per-task fit
def test_fit_vtf_recovers_known_parameters_without_concentration():
    rng = np.random.default_rng(1)
    T = np.linspace(215.0, 355.0, 30)
    y = vtf_log10k({"lnA": 5.5, "B": 550.0, "T0": 165.0}, T) + rng.normal(0, 0.003, T.size)
    p = fit_vtf(T, y, None, prior=VTFPrior(t0_max=200.0), weight=0.0)
    assert p["lnA"] == pytest.approx(5.5, abs=0.1)
    assert p["B"] == pytest.approx(550.0, rel=0.05)
    assert p["T0"] == pytest.approx(165.0, abs=3.0)


def test_fit_vtf_recovers_concentration_terms():
    rng = np.random.default_rng(2)
    T = rng.uniform(215.0, 350.0, 60)
    c = rng.uniform(0.2, 2.5, 60)
    y = vtf_log10k(TRUE, T, c) + rng.normal(0, 0.003, 60)
    p = fit_vtf(T, y, c, prior=VTFPrior(t0_max=200.0), weight=0.0)
    for name, tol in [("lnA", 0.15), ("B", 30.0), ("T0", 3.0), ("alpha", 0.05), ("beta", 0.05)]:
        assert abs(p[name] - TRUE[name]) < tol, (name, p[name], TRUE[name])


def test_fit_vtf_with_few_points_stays_near_the_prior_and_bounds_t0():
    T = np.array([250.0, 260.0, 280.0])
    y = vtf_log10k(TRUE, T, np.ones(3))
    prior = VTFPrior(mean=(5.0, 500.0, 150.0, 0.8, -0.7), std=(1.0, 100.0, 10.0, 0.3, 0.3), t0_max=170.0)
    p = fit_vtf(T, y, np.ones(3), prior=prior)
    assert p["T0"] <= 170.0 + 1e-9
    assert abs(p["T0"] - 150.0) < 25.0  # regularised: 3 points cannot pin B and T0 separately
    assert abs(vtf_log10k(p, T, np.ones(3)) - y).max() < 0.05  # but the fit still matches the data


def test_vtf_fit_baseline_reads_kelvin_from_standardized_inputs():
    ts = _task_set([TRUE], n=60)
    cols = RawColumns.of(ts)
    T = cols.temperature(ts[0])
    assert 215.0 <= T.min() and T.max() <= 350.0
    assert np.allclose(cols.concentration(ts[0]).min(), 0.2, atol=0.05)
    base = VTFFit(prior=VTFPrior(t0_max=200.0)).fit(ts)
    pred = base.adapt(ts[0]).predict(ts[0])
    assert np.abs(pred - ts[0].targets).mean() < 0.01


def test_raw_columns_refuse_standardized_inputs_without_statistics():
    ts = _task_set([TRUE], n=20)
    bare = TaskSet(list(ts), feature_names=ts.feature_names)  # same tasks, no loader statistics
    with pytest.raises(ValueError, match="feature_mean"):
        RawColumns.of(bare)


def test_empirical_prior_is_centred_on_the_meta_train_tasks():
    params = [{**TRUE, "lnA": 5.6 + d, "B": 520.0 + 40 * d, "T0": 158.0 - 5 * d} for d in (-1, -0.5, 0, 0.5, 1)]
    prior = empirical_prior(_task_set(params, n=50))
    assert prior.mean[0] == pytest.approx(5.6, abs=0.3)
    assert prior.mean[1] == pytest.approx(520.0, rel=0.15)
    assert prior.t0_max == pytest.approx(215.0 - 20.0, abs=1.0)


# ---------------------------------------------------------------------- VTF head network
def test_vtfnet_is_registered_and_keeps_t0_below_temperature():
    assert MODELS["VTFNet"] is VTFNet
    torch.manual_seed(0)
    net = build_model("VTFNet", n_in=4, t_index=0, t_scale=30.0, t_offset=280.0, c_index=2, t0_max=190.0,
                      mask=[1])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 3.0)  # arbitrary weights
        x = torch.randn(200, 4) * 3
        params = net(x, output="params")
        out = net(x)
    assert (params[:, PARAM_NAMES.index("T0")] <= 190.0).all()  # softplus may underflow to exactly t0_max
    assert (params[:, PARAM_NAMES.index("B")] >= 0).all()
    assert torch.isfinite(out).all()
    # temperature enters only through the VTF law: the body never sees the T or 1000/T columns
    x2 = x.clone()
    x2[:, 0] += 1.0
    x2[:, 1] -= 5.0
    assert torch.allclose(net(x, output="features")[:, :-2], net(x2, output="features")[:, :-2])


def test_vtf_head_recovers_known_parameters():
    ts = _task_set([TRUE], n=80, c_range=(1.0, 1.0))  # one concentration: the body sees a constant
    kw = vtf_model_kwargs(ts, hidden=(16,))
    sc = Scaler.fit(ts)
    torch.manual_seed(0)
    net = VTFNet(**kw)
    x, y = sc.x(ts[0]), sc.y(ts[0].targets)
    opt = torch.optim.LBFGS(net.head.parameters(), lr=0.5, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    p = vtf_parameters(net, x)
    lnA_eff = p["lnA"] + p["alpha"] * math.log(1.0) + p["beta"] * 1.0  # c = 1: the concentration terms fold into ln A
    true_eff = TRUE["lnA"] + TRUE["beta"]
    assert np.ptp(p["B"]) < 1e-3 and np.ptp(p["T0"]) < 1e-3  # one set of parameters for the task
    assert p["T0"].mean() == pytest.approx(TRUE["T0"], abs=4.0)
    assert p["B"].mean() == pytest.approx(TRUE["B"], rel=0.06)
    assert lnA_eff.mean() == pytest.approx(true_eff, abs=0.1)
    pred = sc.y_inv(net(x))
    assert np.abs(pred - ts[0].targets).max() < 0.01


def test_vtfnet_meta_learner_runs_in_higher_and_adapt_leaves_meta_weights():
    rng = np.random.default_rng(3)
    params = [{"lnA": 5.6 + rng.normal(0, 0.3), "B": 500 + rng.normal(0, 50), "T0": 160 + rng.normal(0, 8),
               "alpha": 0.8, "beta": -0.7} for _ in range(6)]
    ts = _task_set(params, n=30)
    torch.manual_seed(0)
    for algo in ("maml", "anil"):
        learner = make_learner(algo, model="VTFNet", model_kwargs=vtf_model_kwargs(ts, hidden=(16,)),
                              n_iterations=15, meta_batch_size=2, k_support=(3, 6), k_query=10, inner_lr=0.05,
                              outer_lr=3e-3, seed=0)
        before = [p.detach().clone() for p in learner.model.parameters()]
        learner.fit(ts, progress=False)
        after = [p.detach().clone() for p in learner.model.parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(before, after)), "meta-training changed nothing"
        ep = ts.episode(ts[0], 5, seed=1)
        zero = np.abs(learner.predict(ep.query) - ep.query.targets).mean()
        adapted = learner.adapt(ep.support, steps=20)
        pred = adapted.predict(ep.query)
        assert np.isfinite(pred).all()
        assert np.abs(pred - ep.query.targets).mean() < zero + 1e-6  # adapting on the support helps
        for a, b in zip(after, learner.model.parameters()):
            assert torch.equal(a, b.detach())


def test_vtf_learner_save_load_roundtrip(tmp_path):
    ts = _task_set([TRUE, {**TRUE, "lnA": 5.0}], n=25)
    learner = make_learner("fomaml", model="VTFNet", model_kwargs=vtf_model_kwargs(ts, hidden=(8,)),
                          n_iterations=3, meta_batch_size=2, k_support=(2, 4), k_query=5, seed=0)
    learner.fit(ts, progress=False)
    learner.save(tmp_path / "vtf")
    again = load(tmp_path / "vtf")
    ep = ts.episode(ts[1], 4, seed=0)
    assert np.allclose(learner.adapt(ep.support).predict(ep.query), again.adapt(ep.support).predict(ep.query))
