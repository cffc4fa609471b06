"""Tests for the Tanimoto kernel and the meta-learned Tanimoto GP."""

from __future__ import annotations

import numpy as np
import torch

from nanonb.learners.tanimoto_gp import TanimotoGP, TanimotoKernel, tanimoto
from nanonb.tasks import Task, TaskSet


def test_tanimoto_is_one_on_identical_fingerprints_and_psd():
    rng = np.random.default_rng(0)
    counts = torch.as_tensor(rng.poisson(0.7, size=(60, 32)), dtype=torch.float64)
    k = tanimoto(counts, counts)
    assert torch.allclose(torch.diagonal(k), torch.ones(60, dtype=torch.float64))
    assert float(torch.linalg.eigvalsh(k).min()) > -1e-9
    bits = (counts > 0).double()
    kb = TanimotoKernel()(bits, bits).to_dense()
    a, b = bits[0].bool(), bits[1].bool()
    assert abs(float(kb[0, 1]) - int((a & b).sum()) / int((a | b).sum())) < 1e-12  # bit Tanimoto: |A and B| / |A or B|
    assert float(torch.linalg.eigvalsh(kb).min()) > -1e-9
    zero = torch.zeros(2, 32, dtype=torch.float64)
    assert torch.equal(tanimoto(zero, zero), torch.ones(2, 2, dtype=torch.float64))
    # scale invariance: counts divided by one global constant (as the LNPDB loader does) change nothing
    assert torch.allclose(tanimoto(counts / 7.0, counts / 7.0), k)


def _fp_tasks(n_tasks=8, n=40, d=24, seed=0):
    """Tasks whose target is a task-specific weighted count of a few fingerprint bits (a structure-activity rule)."""
    rng = np.random.default_rng(seed)
    w_shared = rng.normal(size=d)
    tasks = []
    for i in range(n_tasks):
        fp = rng.poisson(0.8, size=(n, d)).astype(float)
        w = w_shared + 0.3 * rng.normal(size=d)
        y = fp @ w / 4 + rng.normal(0, 1.0) + rng.normal(0, 0.05, n)
        form = rng.normal(size=(n, 2))
        tasks.append(Task(f"t{i}", np.hstack([fp, form]), y, groups=(f"s{i}",)))
    return TaskSet(tasks)


def test_tanimoto_gp_learns_from_the_support_and_beats_its_prior():
    ts = _fp_tasks()
    gp = TanimotoGP(fp_columns=range(24), n_iterations=80, seed=0).fit(TaskSet(ts.tasks[:6]))
    assert gp.history[-1] < gp.history[0]
    err_prior, err_post = [], []
    for t in ts.tasks[6:]:
        sup, qry = t.subset(range(20)), t.subset(range(20, 40))
        m, s = gp.adapt(sup).predict_dist(qry)
        assert (s > 0).all()
        err_post.append(np.abs(m - qry.targets).mean())
        err_prior.append(np.abs(gp.adapt(None).predict(qry) - qry.targets).mean())
        rho = np.corrcoef(m, qry.targets)[0, 1]
        assert rho > 0.5
    assert np.mean(err_post) < 0.7 * np.mean(err_prior)


def test_tanimoto_gp_with_a_pooled_mean_uses_it():
    from nanonb.baselines.tabular import PooledTrees

    ts = _fp_tasks(seed=1)
    gp = TanimotoGP(fp_columns=range(24), fit_mean=lambda s: PooledTrees("gbm", max_iter=30).fit(s), crossfit=2,
                    n_iterations=40, seed=0).fit(TaskSet(ts.tasks[:6]))
    assert gp.mean_model is not None and gp.settings()["pooled_mean"]
    qry = ts.tasks[6]
    m0 = gp.adapt(None).predict(qry)
    base = gp.mean_model.predict(qry)
    a, b = float(gp.hyper.a), float(gp.hyper.b)
    assert np.allclose(m0, a * base + b)


class _Oracle:
    """A 'pooled model' that predicts ``g(x)``, the rule every task follows up to its own sign."""

    def __init__(self, d: int):
        self.d = d

    def predict(self, inputs) -> np.ndarray:
        x = np.asarray(inputs.inputs if isinstance(inputs, Task) else inputs, dtype=float)
        return np.sin(3.0 * x[:, : self.d] @ np.linspace(0.5, 1.5, self.d))


def _signed_tasks(n_tasks=10, n=50, d=12, seed=0):
    """``y = s_task g(x) + noise``, ``s_task = +1`` or ``-1`` (alternating): the pooled model is right up to sign."""
    rng = np.random.default_rng(seed)
    oracle, tasks = _Oracle(d), []
    for i in range(n_tasks):
        x = np.hstack([rng.poisson(0.8, size=(n, d)).astype(float), rng.normal(size=(n, 1))])
        y = (1 if i % 2 == 0 else -1) * oracle.predict(x) + rng.normal(0, 0.1, n)
        tasks.append(Task(f"t{i}", x, y, groups=(f"s{i}",)))
    return TaskSet(tasks), oracle


def test_bayes_scale_lets_the_support_flip_a_pooled_mean_of_the_wrong_sign():
    ts, oracle = _signed_tasks()
    train, test = TaskSet(ts.tasks[:8]), ts.tasks[9]  # t9: sign -1
    kw = dict(fp_columns=range(12), fit_mean=lambda s: oracle, n_iterations=60, seed=0)
    shared = TanimotoGP(**kw).fit(train)
    per_task = TanimotoGP(bayes_scale=True, **kw).fit(train)
    assert per_task.settings()["bayes_scale"] and "bayes_scale" not in shared.settings()
    assert float(per_task.hyper.log_s_a.detach().exp()) > 0.5  # the scales (+1 / -1) differ: a wide prior is learned
    sup, qry = test.subset(range(20)), test.subset(range(20, 50))
    rho = {}
    for name, gp in (("shared", shared), ("per_task", per_task)):
        m, s = gp.adapt(sup).predict_dist(qry)
        assert (s > 0).all()
        rho[name] = np.corrcoef(m, qry.targets)[0, 1]
    assert rho["per_task"] > 0.9  # the support fixes this task's scale at about -1
    assert rho["shared"] < 0.6  # one shared a (about 0 here) leaves the kernel to learn g from 20 points


def test_bayes_scale_off_is_the_old_gp_and_needs_a_pooled_mean():
    import pytest

    ts, oracle = _signed_tasks(n_tasks=4, n=20)
    kw = dict(fp_columns=range(12), fit_mean=lambda s: oracle, n_iterations=5, seed=0)
    a, b = TanimotoGP(**kw).fit(ts), TanimotoGP(bayes_scale=False, scale_sd_init=0.9, **kw).fit(ts)
    assert a.history == b.history and not hasattr(b.hyper, "log_s_a")
    with pytest.raises(ValueError, match="needs a pooled mean"):
        TanimotoGP(range(12), bayes_scale=True)
