"""Tests for nanonb.physics.vtfnet: VTFNet (registration, T0 bound, head fit, meta-learning, save/load).

All synthetic (no data files): tasks follow ln k = ln A + alpha ln c + beta c - B / (T - T0) exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _vtf_helpers import TRUE, vtf_task_set

from nanonb.learners.registry import load, make_learner
from nanonb.learners.training import Scaler
from nanonb.models.registry import MODELS, build_model
from nanonb.physics.vtf import PARAM_NAMES
from nanonb.physics.vtfnet import VTFNet, vtf_model_kwargs, vtf_parameters
from nanonb.scaling import standardization


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
    ts = vtf_task_set([TRUE], n=80, c_range=(1.0, 1.0))  # one concentration: the body sees a constant
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
    ts = vtf_task_set(params, n=30)
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
    ts = vtf_task_set([TRUE, {**TRUE, "lnA": 5.0}], n=25)
    learner = make_learner("fomaml", model="VTFNet", model_kwargs=vtf_model_kwargs(ts, hidden=(8,)),
                          n_iterations=3, meta_batch_size=2, k_support=(2, 4), k_query=5, seed=0)
    learner.fit(ts, progress=False)
    learner.save(tmp_path / "vtf")
    again = load(tmp_path / "vtf")
    ep = ts.episode(ts[1], 4, seed=0)
    assert np.allclose(learner.adapt(ep.support).predict(ep.query), again.adapt(ep.support).predict(ep.query))


def test_model_kwargs_use_the_learner_standardization():
    ts = vtf_task_set([TRUE, {**TRUE, "lnA": 5.0}], n=25)
    kw, sc, stats = vtf_model_kwargs(ts, hidden=(8,)), Scaler.fit(ts), standardization(ts)
    assert (kw["y_mean"], kw["y_std"]) == (sc.y_mean, sc.y_std) == (stats["y_mean"], stats["y_std"])
    assert sc.x_mean == stats["x_mean"] and sc.x_std == stats["x_std"]


def test_saved_vtf_learner_loads_in_a_fresh_process_without_importing_physics(tmp_path):
    import subprocess
    import sys

    ts = vtf_task_set([TRUE, {**TRUE, "lnA": 5.0}], n=12)
    make_learner("anil", model="VTFNet", model_kwargs=vtf_model_kwargs(ts, hidden=(4,)), n_iterations=1,
                 meta_batch_size=2, k_support=(2, 3), k_query=3).fit(ts, progress=False).save(tmp_path / "vtf")
    code = ("import sys; from nanonb.learners.registry import load; "
            "print(type(load(sys.argv[1]).model).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "vtf")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "VTFNet"
