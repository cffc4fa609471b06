"""Tests of nanonb.active: acquisition functions, campaigns, refinement, bench protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from nanonb.active import (
    ACQUISITIONS,
    GOALS,
    acquired_tasks,
    augment_taskset,
    campaign_pool,
    campaign_summary,
    compare_strategies,
    expected_improvement,
    greedy_mean,
    max_variance,
    refine,
    run_active_bench,
    run_campaign,
    select_batch,
    thompson_sampling,
    upper_confidence_bound,
)
from nanonb.bench import SCHEMA_KEYS
from nanonb.tasks import Task, TaskSet
from nanonb.uncertainty import BayesianMetaLearner

torch.set_num_threads(1)


# ---------------------------------------------------------------------- acquisition functions
def test_each_acquisition_picks_the_analytic_optimum():
    mean = np.array([1.0, 2.5, 3.0, 0.9])
    std = np.array([2.0, 0.1, 0.1, 0.5])
    best = 2.9
    # greedy: largest mean
    assert select_batch("greedy", mean, std, best)[0] == 2
    np.testing.assert_array_equal(greedy_mean(mean, std), mean)
    # UCB (beta = 2): 1 + 4 = 5 beats 3.2
    np.testing.assert_allclose(upper_confidence_bound(mean, std), [5.0, 2.7, 3.2, 1.9])
    assert select_batch("ucb", mean, std, best)[0] == 0
    assert select_batch("ucb", mean, std, best, beta=0.0)[0] == 2
    # max variance: largest std
    assert select_batch("maxvar", mean, std, best)[0] == 0
    np.testing.assert_allclose(max_variance(mean, std), std**2)
    # thompson with a given (joint) sample: its argmax
    assert select_batch("thompson", mean, std, best, sampler=lambda n: np.array([[0, 0, 0, 9.0]] * n))[0] == 3


def test_expected_improvement_formula_and_choice():
    mean, std, best = np.array([0.9, 1.0, 1.3]), np.array([0.5, 0.01, 0.0]), 1.0
    ei = expected_improvement(mean, std, best)
    # closed form against numerical integration of E[max(s - best, 0)]
    for m, s, e in zip(mean[:2], std[:2], ei[:2]):
        ref = integrate.quad(lambda x, m=m, s=s: max(x - best, 0.0) * norm.pdf(x, m, s), m - 12 * s, m + 12 * s,
                             points=[best], limit=200)[0]
        assert e == pytest.approx(ref, rel=1e-6, abs=1e-12)
    assert ei[2] == pytest.approx(0.3)  # no uncertainty: the plain improvement
    # an uncertain slightly-worse point beats a certain equal one; greedy disagrees
    assert select_batch("ei", mean[:2], std[:2], best)[0] == 0
    assert select_batch("greedy", mean[:2], std[:2], best)[0] == 1


def test_goal_min_flips_the_direction():
    mean, std = np.array([-0.05, 0.02, -0.01]), np.array([0.01, 0.01, 0.01])
    assert select_batch("greedy", mean, std, best=0.0, goal="min")[0] == 0
    assert select_batch("greedy", mean, std, best=0.0, goal="max")[0] == 1
    ei_min = select_batch("ei", mean, std, best=-0.04, goal="min")
    assert ei_min[0] == 0
    assert GOALS == {"nanoalloys": "min", "calisol": "max", "lnpdb": "max"}
    with pytest.raises(ValueError, match="goal"):
        select_batch("ei", mean, std, 0.0, goal="lowest")
    with pytest.raises(ValueError, match="unknown acquisition"):
        select_batch("pi", mean, std, 0.0)


def test_thompson_frequencies_match_probability_of_being_best():
    rng = np.random.default_rng(0)
    mean, std = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    picks = [select_batch("thompson", mean, std, 0.0, rng=rng)[0] for _ in range(4000)]
    p1 = norm.cdf(1.0 / np.sqrt(2.0))  # P(x1 > x0) for independent N(0,1), N(1,1)
    assert np.mean(picks) == pytest.approx(p1, abs=0.025)
    assert thompson_sampling(mean, std, sample=np.array([3.0, 1.0]))[0] == 3.0


def test_batches_are_distinct_top_candidates():
    mean = np.array([5.0, 1.0, 4.0, 3.0, 2.0])
    std = np.ones(5)
    np.testing.assert_array_equal(select_batch("greedy", mean, std, 0.0, batch_size=3), [0, 2, 3])
    b = select_batch("thompson", mean, std, 0.0, batch_size=5, rng=np.random.default_rng(1))
    assert sorted(b.tolist()) == [0, 1, 2, 3, 4]
    assert set(ACQUISITIONS) == {"greedy", "ucb", "ei", "maxvar", "thompson"}


# ---------------------------------------------------------------------- campaigns
class _Oracle:
    """Knows the truth: mean = target, small std. A campaign with it must find the top at once."""

    name, kind = "oracle", "baseline"

    def adapt(self, support):
        return self

    def predict_dist(self, task):
        return task.targets.copy(), np.full(len(task), 1e-3)


def _task(n=50, seed=0) -> Task:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return Task("toy", x, x[:, 0] * 2.0 + rng.normal(size=n) * 0.1, target_unit="u")


def test_campaign_with_an_oracle_and_metrics():
    task = _task()
    for goal in ("max", "min"):
        r = run_campaign(task, _Oracle(), "greedy", n_init=3, budget=10, seed=4, goal=goal, top_fraction=0.05)
        sign = 1 if goal == "max" else -1
        top = np.argsort(-sign * task.targets)[:3]  # ceil(0.05 * 50) = 3 top candidates
        assert r.n_top == 3
        # greedy on the truth measures the best remaining candidates in order after the initial points
        order = [i for i in np.argsort(-sign * task.targets) if i not in set(r.measured[:3].tolist())]
        np.testing.assert_array_equal(r.measured[3:], order[:7])
        init_hits = np.isin(r.measured[:3], top)
        assert r.experiments_to_top == (int(np.argmax(init_hits)) + 1 if init_hits.any() else 4)
        s = sign * task.targets
        expect = np.mean((np.maximum.accumulate(s[r.measured]) - s.min()) / (s.max() - s.min()))
        assert r.auc_best_so_far == pytest.approx(expect)
        assert r.best_curve[-1] == task.targets[top[0]]
        assert np.all(np.isfinite(r.history["mae_pool"]))
        assert len(set(r.measured.tolist())) == 10  # never measures a point twice


def test_campaign_is_reproducible_and_shares_initial_points():
    task = _task(80)
    a = run_campaign(task, None, "random", n_init=3, budget=15, seed=7)
    b = run_campaign(task, None, "random", n_init=3, budget=15, seed=7)
    c = run_campaign(task, None, "random", n_init=3, budget=15, seed=8)
    np.testing.assert_array_equal(a.measured, b.measured)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not np.array_equal(a.measured, c.measured)
    o = run_campaign(task, _Oracle(), "ei", n_init=3, budget=15, seed=7)
    np.testing.assert_array_equal(o.measured[:3], a.measured[:3])  # same seed, same starting points
    assert np.all(np.isnan(a.history["mae_pool"]))  # random without a model tracks no error
    pool, init = campaign_pool(task, 7, 3, max_pool=30)
    assert len(pool) == 30 and np.isin(init, pool).all()
    r = run_campaign(task, _Oracle(), "ucb", n_init=3, budget=12, seed=7, max_pool=30, batch_size=4)
    assert np.isin(r.measured, pool).all() and len(r.measured) == 12
    assert r.history["n_measured"].tolist() == [7, 11, 12]
    with pytest.raises(ValueError, match="needs a fitted method"):
        run_campaign(task, None, "ei")


def test_bml_campaign_is_reproducible_for_a_seed():
    tasks = [_task(40, seed=s) for s in range(6)]
    for i, t in enumerate(tasks):
        t.name = f"toy{i}"
    ts = TaskSet(tasks)
    bml = BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=20, k_support=(0, 8), seed=0)
    bml.fit(ts.select(ts.names[:4]), progress=False)
    runs = [run_campaign(ts["toy5"], bml, acq, n_init=2, budget=12, seed=3) for acq in ("thompson", "thompson", "ei")]
    np.testing.assert_array_equal(runs[0].measured, runs[1].measured)
    pd.testing.assert_frame_equal(runs[0].history, runs[1].history)
    df, camps = compare_strategies({"random": (None, "random"), "bml-ei": (bml, "ei")}, [ts["toy4"], ts["toy5"]],
                                   seeds=[0, 1], progress=False, n_init=2, budget=10)
    assert len(df) == 8 and len(camps) == 8
    summ = campaign_summary(df)
    assert set(summ["metric"]) == {"experiments_to_top5", "auc_best_so_far"}
    row = summ[(summ.strategy == "bml-ei") & (summ.metric == "experiments_to_top5")].iloc[0]
    e = np.where(df[df.strategy == "bml-ei"]["found"], df[df.strategy == "bml-ei"]["experiments_to_top"], 11)
    assert row["median"] == pytest.approx(np.median(e)) and row["q25"] <= row["median"] <= row["q75"]


# ---------------------------------------------------------------------- refinement
def test_fed_back_points_enter_the_meta_training_set():
    tasks = [_task(40, seed=s) for s in range(6)]
    for i, t in enumerate(tasks):
        t.name = f"toy{i}"
    ts = TaskSet(tasks)
    train, held = ts.select(ts.names[:4]), ts.select(ts.names[4:])
    camps = [run_campaign(held["toy4"], None, "random", n_init=2, budget=8, seed=s) for s in (0, 1)]
    new = acquired_tasks(camps, held)
    assert len(new) == 1 and new[0].name == "toy4"
    idx = sorted(set(camps[0].measured) | set(camps[1].measured))
    np.testing.assert_array_equal(new[0].targets, held["toy4"].targets[idx])
    aug = augment_taskset(train, new)
    assert aug.names == [*train.names, "toy4"] and len(train) == 4  # the original set is untouched
    clash = augment_taskset(ts, new)
    assert clash.names[-1] == "toy4 [acquired]"

    bml = BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=3, k_support=(0, 5))
    bml.fit(train, progress=False)
    seen = []
    orig_fit = bml.fit

    def spy(taskset, **kw):
        seen.append(taskset)
        return orig_fit(taskset, **kw)

    bml.fit = spy
    aug2 = refine(bml, train, camps, held, n_iterations=2)
    assert seen and seen[0] is aug2 and "toy4" in seen[0].names
    np.testing.assert_array_equal(seen[0]["toy4"].targets, held["toy4"].targets[idx])
    assert bml.history["iteration"][-1] == 5  # training continued, not restarted
    with pytest.raises(KeyError, match="not among"):
        acquired_tasks(camps, train)


# ---------------------------------------------------------------------- bench protocol
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
