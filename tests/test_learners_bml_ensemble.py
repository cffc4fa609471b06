"""Tests of nanonb.learners.bml_ensemble: an ensemble of Bayesian last layers with one mixture predictive."""

from __future__ import annotations

import numpy as np
import torch
from synthetic import tabular_taskset

from nanonb.learners.bml_ensemble import BMLEnsemble, mixture_moments
from nanonb.learners.registry import load, make_learner

torch.set_num_threads(1)


def _fitted(n_members: int = 3) -> tuple[BMLEnsemble, object]:
    ts = tabular_taskset(n_tasks=4, n=20)
    ens = make_learner("bml-ens", n_members=n_members, model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=5,
                       k_support=(0, 5), seed=1)
    return ens.fit(ts, progress=False), ts


def test_members_differ_and_the_predictive_is_their_mixture():
    ens, ts = _fitted()
    assert [m.config.seed for m in ens.members] == [1, 2, 3]
    task = ts[0]
    sup, qry = task.subset(range(5)), task.subset(range(5, 20))
    pred = ens.adapt(sup)
    means, stds = pred.member_dists(qry)
    assert means.shape == (3, 15) and not np.allclose(means[0], means[1])  # different seeds, different members
    for i, m in enumerate(ens.members):  # each member is its own exact posterior
        np.testing.assert_allclose(means[i], m.adapt(sup).predict(qry), rtol=1e-12)
    mean, std = pred.predict_dist(qry)
    np.testing.assert_allclose(mean, means.mean(0), rtol=1e-12)
    np.testing.assert_allclose(pred.predict(qry), mean, rtol=1e-12)
    assert np.all(std >= stds.min(0) - 1e-12)  # disagreement only widens the mixture
    assert np.all(std ** 2 >= (stds ** 2).mean(0) - 1e-12)


def test_mixture_moments_against_samples():
    rng = np.random.default_rng(0)
    mu, sd = np.array([[0.0, 1.0], [3.0, 1.0]]), np.array([[1.0, 0.5], [2.0, 0.5]])
    m, s = mixture_moments(mu, sd)
    draws = np.concatenate([rng.normal(mu[i], sd[i], size=(100_000, 2)) for i in range(2)])
    np.testing.assert_allclose(m, draws.mean(0), atol=0.03)
    np.testing.assert_allclose(s, draws.std(0), atol=0.03)
    np.testing.assert_allclose(s[1], 0.5)  # agreeing members: the members' own spread


def test_save_and_load_roundtrip(tmp_path):
    ens, ts = _fitted(2)
    task = ts[1]
    sup, qry = task.subset(range(4)), task.subset(range(4, 20))
    ens.save(tmp_path / "ens")
    again = load(tmp_path / "ens")
    assert isinstance(again, BMLEnsemble) and again.n_members == 2
    for a, b in zip(ens.adapt(sup).predict_dist(qry), again.adapt(sup).predict_dist(qry)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
