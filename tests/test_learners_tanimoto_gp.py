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
