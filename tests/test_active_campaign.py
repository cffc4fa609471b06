"""Tests of nanonb.active.campaign: simulated campaigns, reproducibility, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import toy_task

from nanonb.active.campaign import campaign_pool, campaign_summary, compare_strategies, run_campaign
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.tasks import TaskSet

torch.set_num_threads(1)


class _Oracle:
    """Knows the truth: mean = target, small std. A campaign with it must find the top at once."""

    name, kind = "oracle", "baseline"

    def adapt(self, support):
        return self

    def predict_dist(self, task):
        return task.targets.copy(), np.full(len(task), 1e-3)


def test_campaign_with_an_oracle_and_metrics():
    task = toy_task()
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
    task = toy_task(80)
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
    tasks = [toy_task(40, seed=s) for s in range(6)]
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
