"""Tests for the case-study protocols (CALiSol-23, LNPDB) and their baselines.

Synthetic tests check the metrics and baselines; tests marked ``data`` use the real files
(``shared_data_dir`` fixture) to check the splits and run both protocols end to end (``--quick``).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from nanonb import casestudies as cs
from nanonb.bench import PROTOCOLS, SCHEMA_KEYS, format_table
from nanonb.tasks import Task, TaskSet


# ---------------------------------------------------------------------- synthetic fixtures
def _linear_taskset(n_tasks=6, n=40, d=3, seed=0):
    """Tasks y = w.x + offset_task (+ small noise); tabular; groups (salt_i,)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    tasks = []
    for i in range(n_tasks):
        x = rng.normal(size=(n, d))
        y = x @ w + rng.normal(0, 2.0) + rng.normal(0, 0.01, n)
        tasks.append(Task(f"task{i}", x, y, groups=(f"salt{i % 3}", "solvent")))
    return TaskSet(tasks, name="synthetic", feature_names=[f"x{j}" for j in range(d)])


class _ConstantPooled:
    """A 'pooled model' predicting x[:, 0] (for exact baseline arithmetic)."""

    kind = "baseline"
    name = "const"
    model = "fitted"

    def predict(self, task_or_x):
        x = task_or_x.inputs if isinstance(task_or_x, Task) else task_or_x
        return np.asarray(x, dtype=np.float64)[:, 0].copy()

    def adapt(self, support=None):
        return self


# ---------------------------------------------------------------------- metrics
def test_top_recall_perfect_reversed_and_ties():
    y = np.arange(100, dtype=float)
    assert cs.top_recall(y, y) == 1.0
    assert cs.top_recall(-y, y) == 0.0
    # ties at the threshold count as top: 30 points share the best value, n_top = 10
    y_ties = np.concatenate([np.zeros(70), np.ones(30)])
    pred = np.concatenate([np.ones(70), np.zeros(30)])  # ranks the tied best last
    assert cs.top_recall(pred, y_ties) == 0.0
    assert cs.top_recall(y_ties, y_ties) == 1.0
    # a random ranking scores about |true top| / n on average
    rng = np.random.default_rng(0)
    scores = [cs.top_recall(rng.normal(size=100), y_ties, seed=s) for s in range(300)]
    assert np.mean(scores) == pytest.approx(0.3, abs=0.03)


def test_spearman_constant_prediction_is_zero_and_sign_is_right():
    y = np.arange(20, dtype=float)
    assert cs.spearman(np.ones(20), y) == 0.0
    assert cs.spearman(y**3, y) == pytest.approx(1.0)
    assert cs.spearman(-y, y) == pytest.approx(-1.0)


# ---------------------------------------------------------------------- baselines
def test_offset_baseline_equals_pooled_plus_mean_support_residual():
    ts = _linear_taskset()
    ep = ts.episode(ts[0], 5, seed=1)
    pooled = _ConstantPooled()
    pred = cs.PooledOffset(pooled).adapt(ep.support).predict(ep.query)
    expected = ep.query.inputs[:, 0] + np.mean(ep.support.targets - ep.support.inputs[:, 0])
    assert np.allclose(pred, expected)


def test_recalibration_solves_the_ridge_problem_and_recovers_a_line():
    p = np.linspace(-1, 1, 10)
    a, b = cs.PooledRecalibration.solve(p, 0.5 - 2.0 * p, lam=1e-9)
    assert (a, b) == pytest.approx((0.5, -2.0), abs=1e-6)
    a0, b0 = cs.PooledRecalibration.solve(p, 0.5 - 2.0 * p, lam=1e9)  # strong prior: identity slope
    assert b0 == pytest.approx(1.0, abs=1e-6)
    ts = _linear_taskset()
    ep = ts.episode(ts[1], 8, seed=2)
    pred = cs.PooledRecalibration(_ConstantPooled(), lam=0.0).adapt(ep.support).predict(ep.query)
    a, b = cs.PooledRecalibration.solve(ep.support.inputs[:, 0].astype(float), ep.support.targets, 0.0)
    assert np.allclose(pred, a + b * ep.query.inputs[:, 0])


def test_exact_gp_matches_scikit_learn():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1] ** 2 + 0.01 * rng.normal(size=12)
    xq = rng.normal(size=(30, 3))
    ours = cs.ExactGP(ard=True).fit(x, y)
    k = ConstantKernel(1.0, (1e-3, 1e2)) * RBF(np.ones(3), (1e-2, 1e3)) + WhiteKernel(1e-2, (1e-5, 1e0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianProcessRegressor(k, normalize_y=True, n_restarts_optimizer=0).fit(x, y)
    m1, s1 = ours.predict(xq, return_std=True)
    m2, s2 = ref.predict(xq, return_std=True)
    assert np.allclose(m1, m2, atol=1e-3)
    assert np.allclose(s1, s2, atol=1e-2)


def test_residual_gp_is_pooled_when_residuals_vanish_and_task_gp_fits_support():
    ts = _linear_taskset()
    t = ts[2]
    # targets exactly equal to the pooled model -> residual GP returns the pooled prediction
    exact = Task("exact", t.inputs, t.inputs[:, 0].astype(float))
    ep = TaskSet([exact]).episode(exact, 10, seed=0)
    pred = cs.ResidualGP(_ConstantPooled()).adapt(ep.support).predict(ep.query)
    assert np.allclose(pred, ep.query.inputs[:, 0], atol=1e-6)
    ep = ts.episode(t, 20, seed=0)
    gp = cs.TaskGP().fit(ts).adapt(ep.support)
    err = np.abs(gp.predict(ep.query) - ep.query.targets).mean()
    assert err < 0.3 * np.abs(ep.query.targets - ep.support.targets.mean()).mean()


def test_support_rf_and_pooled_trees_learn_something():
    ts = _linear_taskset(n=80)
    train, test = ts.select(ts.names[:4]), ts.select(ts.names[4:])
    pooled = cs.PooledTrees("gbm", max_iter=50).fit(train)
    ep = test.episode(test[0], 30, seed=0)
    corr = cs.spearman(pooled.adapt(None).predict(ep.query), ep.query.targets)
    assert corr > 0.7  # shared slope transfers; only the offset is task specific
    rf = cs.SupportRF(n_estimators=30).fit(train).adapt(ep.support)
    assert cs.spearman(rf.predict(ep.query), ep.query.targets) > 0.5


def test_check_disjoint_catches_a_leaky_split():
    ts = _linear_taskset()
    train, test = ts.select(ts.names[:4]), ts.select(ts.names[3:])
    with pytest.raises(AssertionError, match="tasks in both"):
        cs._check_disjoint(train, test, None)
    train, test = ts.select(ts.names[:3]), ts.select(ts.names[3:])  # salt0..2 appear on both sides
    with pytest.raises(AssertionError, match="groups in both"):
        cs._check_disjoint(train, test, lambda t: t.groups[0])


def test_evaluate_episodes_gives_every_method_the_same_episodes():
    ts = _linear_taskset()
    pooled = _ConstantPooled()
    methods = [cs.PooledOffset(pooled), cs._Renamed(cs.PooledOffset(pooled), "copy")]
    df = cs.evaluate_episodes(methods, ts, shots=(3, 5), n_episodes=3, metrics=["mae", "spearman"], seed=4)
    assert len(df) == 2 * len(ts) * 2 * 3
    a = df[df.method == "const+offset"].reset_index(drop=True)
    b = df[df.method == "copy"].reset_index(drop=True)
    assert np.allclose(a["mae"], b["mae"])
    assert set(df.columns) >= {"method", "kind", "task", "k", "episode", "mae", "spearman", "n_query"}


# ---------------------------------------------------------------------- real data: splits and protocols
@pytest.fixture(scope="module")
def calisol_ts(shared_data_dir):
    from nanonb.data.calisol import calisol_taskset

    return calisol_taskset(data_dir=shared_data_dir)


@pytest.mark.data
def test_leave_salt_out_folds_exclude_held_out_salts(calisol_ts):
    splits = cs.calisol_splits(calisol_ts, n_folds=5, seed=0)
    folds = splits["leave-salt-out"]
    assert len(folds) == 5
    seen = []
    for train, test in folds:
        assert not {t.groups[0] for t in train} & {t.groups[0] for t in test}
        assert hasattr(train, "feature_mean") and hasattr(test, "feature_std")
        seen += test.names
    assert sorted(seen) == sorted(calisol_ts.names)  # every task is tested exactly once
    (train, test), = splits["random-task"]
    assert not set(train.names) & set(test.names)
    assert len(test) == round(0.3 * len(calisol_ts))


@pytest.mark.data
def test_protocol_meta_trains_without_held_out_salts(shared_data_dir, monkeypatch):
    """Spy on what the protocol fits and evaluates: no held-out salt ever reaches meta-training."""
    fitted, tested = [], []
    real_build, real_eval = cs.build_meta_learner, cs.evaluate_episodes

    def spy_build(spec, train, *a, **k):
        fitted.append({t.groups[0] for t in train})
        return real_build(spec, train, *a, **k)

    def spy_eval(methods, test, *a, **k):
        tested.append({t.groups[0] for t in test})
        return real_eval(methods, test, *a, **k)

    monkeypatch.setattr(cs, "build_meta_learner", spy_build)
    monkeypatch.setattr(cs, "evaluate_episodes", spy_eval)
    res = cs.run_calisol(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None,
                         splits=("leave-salt-out",), max_folds=2, meta=[cs.MetaSpec("m", n_iterations=2,
                                                                                   meta_batch_size=1)],
                         baselines=("pooled-gbm",), shots=(5,), n_episodes=1)
    assert len(tested) == 2 and len(fitted) == 2
    for train_salts, test_salts in zip(fitted, tested):
        assert test_salts and not train_salts & test_salts
    assert {r["split"] for r in res["results"]} == {"leave-salt-out"}


def _check_schema(res: dict, protocol: str, metrics: set[str], splits: set[str]) -> None:
    assert res["protocol"] == protocol
    assert res["results"], "no result rows"
    for row in res["results"]:
        assert all(k in row for k in SCHEMA_KEYS)
        assert row["kind"] in ("meta", "baseline")
        assert np.isfinite(row["mean"]) and row["n_tasks"] >= 1
    assert {r["metric"] for r in res["results"]} == metrics
    assert {r["split"] for r in res["results"]} == splits
    assert any(r["kind"] == "meta" for r in res["results"])
    json.dumps(res, default=str)  # serialisable
    assert "runtime_s" in res and res["config"]["quick"] is True
    assert format_table(res)


@pytest.mark.data
@pytest.mark.slow
def test_calisol_quick_protocol_end_to_end(shared_data_dir):
    assert PROTOCOLS["calisol"] == "nanonb.casestudies:run_calisol"
    res = cs.run_calisol(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None)
    _check_schema(res, "calisol", {"mae"}, {"leave-salt-out", "random-task"})
    methods = {r["method"] for r in res["results"]}
    assert {"fomaml-vtf", "fomaml-mlp", "vtf-fit", "gp", "pooled-gbm+offset", "residual-gp",
            "pooled-mlp+finetune"} <= methods
    assert all(r["mean"] < 5 for r in res["results"])  # log10 k errors, not garbage


@pytest.mark.data
@pytest.mark.slow
def test_lnpdb_quick_protocol_end_to_end(shared_data_dir):
    assert PROTOCOLS["lnpdb"] == "nanonb.casestudies:run_lnpdb"
    res = cs.run_lnpdb(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None)
    _check_schema(res, "lnpdb", {"spearman", "top10_recall"}, {"leave-study-out"})
    methods = {r["method"] for r in res["results"]}
    assert {"fomaml-mlp", "rf-support", "random", "pooled-gbm+recal", "residual-gp"} <= methods
    for f in res["folds"].values():
        assert f["n_test"] >= 1
    rows = [r for r in res["results"] if r["metric"] == "spearman"]
    assert all(-1 <= r["mean"] <= 1 for r in rows)


def test_explorer_shows_the_benchmark_episode():
    pytest.importorskip("ipywidgets")
    ts = _linear_taskset(n=60)
    pooled = _ConstantPooled()
    methods = [cs.PooledOffset(pooled), cs.RandomRanker()]
    box = cs.case_study_explorer(methods, ts, kind="lnpdb", shots=(5, 10), n_episodes=3, seed=7)
    r = box.show(task="task2", k=10, episode=1)
    df = cs.evaluate_episodes(methods, ts.select(["task2"]), shots=(10,), n_episodes=3,
                              metrics=["spearman", "top10_recall"], seed=7)
    row = df[(df.method == "const+offset") & (df.episode == 1)].iloc[0]
    assert r["const+offset"]["spearman"] == pytest.approx(row["spearman"])
    assert r["const+offset"]["top10_recall"] == pytest.approx(row["top10_recall"])
    with pytest.raises(ValueError, match="kind"):
        cs.case_study_explorer(methods, ts, kind="alloys")
