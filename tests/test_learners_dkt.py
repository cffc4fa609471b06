"""Deep kernel transfer (nanonb.learners.dkt) on small synthetic task sets (fast, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.learners.dkt import DKT, DKTConfig
from nanonb.tasks import Task, TaskSet


def sine_tasks(n_tasks: int, n_points: int = 40, seed: int = 0, prefix: str = "t") -> TaskSet:
    """y = a sin(x0 + p) + 0.5 x1 + c + noise: amplitude, phase and a large offset vary per task."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        a, p, c = rng.uniform(0.8, 1.2), rng.uniform(-0.3, 0.3), rng.normal(0, 3)
        x = rng.uniform(-3, 3, size=(n_points, 2))
        y = a * np.sin(x[:, 0] + p) + 0.5 * x[:, 1] + c + 0.05 * rng.standard_normal(n_points)
        tasks.append(Task(f"{prefix}{i}", x.astype(np.float32), y))
    return TaskSet(tasks, name="sines")


FAST = dict(hidden=(32, 32), n_features=4, n_iterations=120, meta_batch_size=4, k_support=(1, 10), k_query=20,
            lr=1e-2, kernel="rbf", linear=False, center="support", objective="predictive", seed=0)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return sine_tasks(10, seed=0), sine_tasks(4, seed=1, prefix="test")


@pytest.fixture(scope="module")
def fitted(data):
    return DKT(**FAST).fit(data[0], progress=False)


def _scores(model, test: TaskSet, k: int = 5, n_episodes: int = 3):
    mae, mae_sm, inside = [], [], []
    for t in test:
        for s in range(n_episodes):
            ep = test.episode(t.name, k, seed=s)
            mean, std = model.adapt(ep.support).predict_dist(ep.query)
            y = ep.query.targets
            mae.append(np.abs(mean - y).mean())
            mae_sm.append(np.abs(ep.support.targets.mean() - y).mean())
            inside.append(np.mean(np.abs(mean - y) <= 1.645 * std))
    return float(np.mean(mae)), float(np.mean(mae_sm)), float(np.mean(inside))


def test_dkt_beats_support_mean_and_is_calibrated(fitted, data):
    mae, mae_sm, cov90 = _scores(fitted, data[1])
    assert mae < 0.6 * mae_sm, (mae, mae_sm)
    assert 0.7 <= cov90 <= 1.0, cov90
    assert fitted.history["loss"][-1] < fitted.history["loss"][0]


def test_predict_dist_units_and_shapes(fitted, data):
    ep = data[1].episode("test0", 5, seed=0)
    pred = fitted.adapt(ep.support)
    mean, std = pred.predict_dist(ep.query)
    assert mean.shape == std.shape == (len(ep.query),)
    assert np.all(std > 0) and np.all(np.isfinite(mean))
    np.testing.assert_allclose(pred.predict(ep.query.inputs), mean)  # an array works like the task
    # targets shifted by a constant: predictions shift by it (per-task centring on the support mean)
    shifted = Task("shift", ep.support.inputs, ep.support.targets + 100.0)
    np.testing.assert_allclose(fitted.adapt(shifted).predict(ep.query), mean + 100.0, rtol=0, atol=1e-8)
    prior_mean, prior_std = fitted.adapt(None).predict_dist(ep.query)
    assert np.all(prior_std > std.min()) and np.all(np.isfinite(prior_mean))


def test_adapt_kernel_variant(fitted, data):
    import copy

    ada = copy.deepcopy(fitted)
    ada.config.adapt_kernel = True
    mae, mae_sm, cov90 = _scores(ada, data[1], n_episodes=2)
    assert mae < 0.7 * mae_sm and 0.6 <= cov90 <= 1.0
    ep = data[1].episode("test1", 8, seed=0)
    gp = ada.adapt(ep.support).gp
    assert gp is not ada.gp  # a per-task copy whose kernel was refitted
    ls_task = gp.base.base_kernel.lengthscale.detach()
    assert not torch.equal(ls_task, ada.gp.base.base_kernel.lengthscale.detach())
    assert DKT(adapt_kernel=True).name == "dkt-adapt"


def test_save_load_round_trip(fitted, data, tmp_path):
    ep = data[1].episode("test2", 5, seed=3)
    path = fitted.save(tmp_path / "dkt")
    assert path.with_suffix(".json").exists() and path.with_suffix(".pt").exists()
    loaded = DKT.load(path)
    a = fitted.adapt(ep.support).predict_dist(ep.query)
    b = loaded.adapt(ep.support).predict_dist(ep.query)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert loaded.config == fitted.config and loaded.name == fitted.name


def test_seeded_and_reproducible(data):
    ep = data[1].episode("test0", 5, seed=0)
    small = {**FAST, "n_iterations": 10}
    p1 = DKT(**small).fit(data[0], progress=False).adapt(ep.support).predict(ep.query)
    p2 = DKT(**small).fit(data[0], progress=False).adapt(ep.support).predict(ep.query)
    np.testing.assert_array_equal(p1, p2)


@pytest.mark.parametrize("objective, iterations", [("mll", 10), ("predictive", 120)])
def test_bayesian_offset_variants(data, objective, iterations):
    """center='none' (the default): the offset is left to the constant kernel; K=0 is the prior predictive."""
    over = {"n_iterations": iterations, "objective": objective, "center": "none", "k_support": (0, 10), "linear": True,
            "kernel": "none" if objective == "predictive" else "matern52"}
    m = DKT(**{**FAST, **over}).fit(data[0], progress=False)
    ep = data[1].episode("test0", 5, seed=0)
    mean, std = m.adapt(ep.support).predict_dist(ep.query)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    assert np.isfinite(m.adapt(None).predict(ep.query)).all()
    if objective == "predictive":
        mae, mae_sm, cov90 = _scores(m, data[1])
        assert mae < 0.6 * mae_sm and 0.7 <= cov90 <= 1.0, (mae, mae_sm, cov90)


def test_input_validation(fitted, data):
    with pytest.raises(RuntimeError, match="not fitted"):
        DKT().adapt(data[1][0])
    with pytest.raises(TypeError, match="Unknown DKT option"):
        DKT(n_iter=3)
    with pytest.raises(ValueError, match="objective='predictive'"):
        DKTConfig(center="support", objective="mll")
    with pytest.raises(ValueError, match="kernel"):
        DKTConfig(kernel="linear")
    with pytest.raises(ValueError, match="needs linear=True"):
        DKTConfig(kernel="none", linear=False)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        fitted.adapt(data[1][0]).predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.adapt(data[1][0]).predict(np.full((2, 2), np.nan))
    structures = Task("s", [object()] * 3, np.zeros(3))
    with pytest.raises(TypeError, match="tabular"):
        DKT(n_iterations=1).fit(TaskSet([structures]), progress=False)


def test_dkt_issue16_save_names_and_nan(fitted, data, tmp_path):
    with pytest.raises(RuntimeError, match="not fitted yet; fit it first"):
        DKT().save(tmp_path / "x")
    fitted.save(tmp_path / "run.1")
    fitted.save(tmp_path / "run.2.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.1.json", "run.1.pt", "run.2.json", "run.2.pt"]
    train = data[0]
    sup = train[0].subset(np.arange(5))
    object.__setattr__(sup, "targets", np.where(np.arange(5) == 0, np.nan, sup.targets))
    with pytest.raises(ValueError, match="dkt.adapt: the support set .* NaN/inf targets"):
        fitted.adapt(sup)
    sd = torch.load(tmp_path / "run.1.pt", weights_only=True)
    sd["features.0.weight"] = torch.full_like(sd["features.0.weight"], float("nan"))
    torch.save(sd, tmp_path / "run.1.pt")
    with pytest.raises(ValueError, match="dkt: weight 'features.0.weight' .* contains NaN/inf"):
        DKT.load(tmp_path / "run.1")
    broken = DKT.load(tmp_path / "run.2")
    with torch.no_grad():
        broken.gp.mean_const.constant.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="dkt: the prediction is NaN/inf. Likely cause: the meta-learned"):
        broken.adapt(None).predict(train[1])


def test_safe_cholesky_adds_jitter_only_when_needed():
    from nanonb.learners.dkt import safe_cholesky

    k = torch.ones(3, 3, dtype=torch.float64)  # rank one: singular
    c = safe_cholesky(k)
    assert torch.allclose(c @ c.T, k, atol=1e-3)
    eye = torch.eye(2, dtype=torch.float64)
    assert torch.equal(safe_cholesky(eye), eye)


def test_default_dkt_adapts_on_a_new_bit_and_duplicate_support(data):
    """A fingerprint bit never set in meta-train (std 0, was divided by 1e-9) and a support of five copies
    of one point: the package defaults (linear kernel + learned linear mean) used to fail the support
    Cholesky or predict ~1e9; the shared input rule (std 1, clip at 10) and the jitter keep them finite."""
    train = TaskSet([Task(t.name, np.c_[t.inputs, np.zeros(len(t))], t.targets) for t in data[0]])
    t = data[1][0]
    x = np.c_[t.inputs, np.ones(len(t))]
    dkt = DKT(hidden=(16,), n_features=8, n_iterations=30, seed=0).fit(train, progress=False)
    support = Task("dup", np.repeat(x[:1], 5, axis=0), np.repeat(t.targets[:1], 5))
    mean, std = dkt.adapt(support).predict_dist(x[1:])
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    assert np.abs(mean - t.targets[1:]).mean() < 5 * np.ptp(t.targets)
