"""GP-BO's GP with a pooled model as its prior mean (:mod:`nanonb.baselines.pooled_mean_gp`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from nanonb.active import run_campaign
from nanonb.baselines.gp import SupportGP
from nanonb.baselines.pooled_mean_gp import PooledMeanGP, within_task_slope
from nanonb.tasks import Task, TaskSet

torch.set_num_threads(1)


class _FirstColumn:
    """A fitted 'pooled model' predicting ``x[:, 0]``; counts its fits."""

    fits = 0

    def __init__(self, train: TaskSet):
        type(self).fits += 1

    def predict(self, task):
        return np.asarray(task.inputs, dtype=np.float64)[:, 0].copy()


def _studies(n_tasks=6, n=60, d=8, seed=0, noise=0.05) -> TaskSet:
    """Separately normalized studies of one shared response ``2 x0 + sin(3 x1)``: each z-scored, own offset."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        x = rng.normal(size=(n, d))
        y = 2 * x[:, 0] + np.sin(3 * x[:, 1]) + noise * rng.normal(size=n)
        tasks.append(Task(f"s{i}", x, (y - y.mean()) / y.std() + rng.normal(0, 3), groups=(f"s{i}",)))
    return TaskSet(tasks, name="studies")


def test_within_task_slope_ignores_task_offsets_and_floors_at_zero():
    p = [np.array([0.0, 1.0, 2.0]), np.array([10.0, 11.0])]
    assert within_task_slope(p, [3 * p[0] - 50, 3 * p[1] + 7]) == pytest.approx(3.0)
    assert within_task_slope(p, [-p[0], -p[1]]) == 0.0
    assert within_task_slope([np.ones(3)], [np.arange(3.0)]) == 0.0  # constant predictions: no information


def test_crossfit_scale_is_learned_on_held_out_groups_and_a_number_fixes_it():
    ts = _studies()
    _FirstColumn.fits = 0
    gp = PooledMeanGP(_FirstColumn, crossfit=2).fit(ts)
    assert _FirstColumn.fits == 3  # two cross-fit parts + the final model on all of meta-train
    # y is a z-score of 2 x0 + sin(3 x1): the within-task slope on x0 is about 2 / sd(2 x0 + sin(3 x1))
    assert 0.6 < gp.a < 1.0
    task = ts[0]
    assert np.allclose(gp._base(task), gp.a * task.inputs[:, 0])
    fixed = PooledMeanGP(_FirstColumn, scale=1.0).fit(ts)
    assert fixed.a == 1.0 and np.allclose(fixed._base(task), task.inputs[:, 0])
    with pytest.raises(ValueError, match="scale must be"):
        PooledMeanGP(_FirstColumn, scale="insample")
    with pytest.raises(RuntimeError, match="not fitted"):
        PooledMeanGP(_FirstColumn)._base(task)


def test_pooled_mean_ranks_a_new_study_from_three_points_where_the_plain_gp_cannot():
    train, new = _studies(seed=0), _studies(n_tasks=1, seed=1)[0]
    sup, query = new.subset(range(3)), new.subset(range(3, 60))
    pm = PooledMeanGP(_FirstColumn, n_restarts=0).fit(train)
    plain = SupportGP(n_restarts=0, ard=None, maxiter=200).fit(train)
    rho_pm = spearmanr(pm.adapt(sup).predict(query), query.targets)[0]
    rho_plain = spearmanr(plain.adapt(sup).predict(query), query.targets)[0]
    assert rho_pm > 0.8 and rho_pm > rho_plain + 0.3
    # zero-shot (empty support): the pooled ranking itself, in the task's offset-free units
    m, s = pm.adapt(None).predict_dist(query)
    assert spearmanr(m, query.inputs[:, 0])[0] == pytest.approx(1.0) and np.all(s > 0)


def test_campaign_fast_path_matches_adapt_and_finds_the_top_quickly():
    train, new = _studies(seed=0), _studies(n_tasks=1, n=80, seed=2)[0]
    pm = PooledMeanGP(_FirstColumn, n_restarts=0, warm_start=True, refit_every=3).fit(train)
    idx_s, idx_q = np.arange(5), np.arange(5, 80)
    m_fast, s_fast = pm.for_task(new).predict_dist(idx_s, idx_q)  # first call: no warm start yet
    m, s = pm.adapt(new.subset(idx_s)).predict_dist(new.subset(idx_q))
    assert np.allclose(m_fast, m) and np.allclose(s_fast, s)
    found = [run_campaign(new, pm, "ei", n_init=3, budget=12, seed=seed, goal="max").experiments_to_top
             for seed in range(3)]
    rnd = [run_campaign(new, None, "random", n_init=3, budget=12, seed=seed, goal="max").experiments_to_top
           for seed in range(3)]
    assert all(f is not None and f <= 6 for f in found), found
    assert sum(r is None or r > 6 for r in rnd) >= 2, rnd  # the same starts at random do not get there


class _Misleading(_FirstColumn):
    """A 'pooled model' that ranks the new study upside down: predicts ``-x[:, 0]``."""

    def predict(self, task):
        return -super().predict(task)


def test_last_column_split_puts_one_kernel_on_the_last_column_and_one_on_the_rest():
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct

    from nanonb.baselines.pooled_mean_gp import LastColumnSplit

    x = np.random.default_rng(0).normal(size=(5, 3))
    k = (LastColumnSplit(RBF(1.0), last=False)
         + LastColumnSplit(ConstantKernel(2.0) * DotProduct(0.0, "fixed"), last=True))
    assert np.allclose(k(x), RBF(1.0)(x[:, :2]) + 2.0 * np.outer(x[:, 2], x[:, 2]))
    _, grad = k(x, eval_gradient=True)
    assert grad.shape == (5, 5, 2) and np.allclose(grad[..., 1], 2.0 * np.outer(x[:, 2], x[:, 2]))  # d/d log c
    assert np.allclose(k.clone_with_theta(k.theta)(x), k(x)) and np.allclose(k.diag(x), np.diag(k(x)))


def test_learned_trust_turns_against_a_misleading_pooled_model_and_keeps_a_good_one():
    train, new = _studies(seed=0), _studies(n_tasks=1, seed=1)[0]
    sup, query = new.subset(range(10)), new.subset(range(10, 60))
    fixed = PooledMeanGP(_Misleading, scale=1.0, n_restarts=0).fit(train)
    learned = PooledMeanGP(_Misleading, scale=1.0, n_restarts=0, trust="ml").fit(train)
    # the fixed scale keeps trusting the upside-down ranking; the per-campaign scale turns negative
    assert fixed.posterior_scale(sup) == 1.0 and learned.posterior_scale(sup) < -0.5
    err_fixed = np.abs(fixed.adapt(sup).predict(query) - query.targets).mean()
    err_learned = np.abs(learned.adapt(sup).predict(query) - query.targets).mean()
    assert err_learned < 0.5 * err_fixed, (err_learned, err_fixed)
    # a good pooled model keeps its scale and its zero-shot ranking from three points on
    good = PooledMeanGP(_FirstColumn, scale=1.0, n_restarts=0, trust="ml").fit(train)
    assert 0.7 < good.posterior_scale(sup) < 1.3
    few, rest = new.subset(range(3)), new.subset(range(3, 60))
    assert spearmanr(good.adapt(few).predict(rest), rest.targets)[0] > 0.8
    # a fixed prior variance works the same way; no trust is the old model exactly
    assert PooledMeanGP(_Misleading, scale=1.0, n_restarts=0, trust=1.0).fit(train).posterior_scale(sup) < -0.5
    old = PooledMeanGP(_FirstColumn, scale=1.0, n_restarts=0).fit(train)
    assert old._features(query).shape[1] == 8 and good._features(query).shape[1] == 9
    with pytest.raises(ValueError, match="trust must be"):
        PooledMeanGP(_FirstColumn, trust="bayes")


def test_learned_trust_fast_path_matches_adapt_and_a_campaign_recovers_from_a_misleading_model():
    train, new = _studies(seed=0), _studies(n_tasks=1, n=80, seed=2)[0]
    kw = dict(scale=1.0, n_restarts=0, warm_start=True, refit_every=3)
    pm = PooledMeanGP(_Misleading, trust="ml", **kw).fit(train)
    idx_s, idx_q = np.arange(5), np.arange(5, 80)
    m_fast, s_fast = pm.for_task(new).predict_dist(idx_s, idx_q)
    m, s = pm.adapt(new.subset(idx_s)).predict_dist(new.subset(idx_q))
    assert np.allclose(m_fast, m) and np.allclose(s_fast, s)

    def steps(model):
        out = [run_campaign(new, model, "ei", n_init=3, budget=20, seed=seed, goal="max").experiments_to_top
               for seed in range(4)]
        return [21 if e is None else e for e in out]

    learned, fixed = steps(pm), steps(PooledMeanGP(_Misleading, **kw).fit(train))
    assert sum(learned) < sum(fixed), (learned, fixed)
