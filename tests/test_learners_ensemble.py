"""Tests of nanonb.learners.ensemble: deep ensembles of meta-learners, calibrated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import tabular_taskset

from nanonb.learners.ensemble import EnsembleMetaLearner, _EnsembleTaskModel
from nanonb.learners.registry import make_learner

torch.set_num_threads(1)


def test_ensemble_fast_path_equals_adapt_and_calibrates():
    ts = tabular_taskset(n_tasks=8, n=25)
    ens = EnsembleMetaLearner(n_members=2, algorithm="anil", model="MLP", model_kwargs={"hidden": (8,)},
                              n_iterations=5, inner_lr=0.1, k_support=(1, 5), seed=3)
    ens.fit(ts, progress=False)
    assert len(ens.calib_names) == 2 and ens.noise_std > 0
    task = ts[ens.calib_names[0]]
    sup, qry = np.arange(5), np.arange(5, 25)
    m1, s1 = _EnsembleTaskModel(ens, task).predict_dist(sup, qry)
    m2, s2 = ens.adapt(task.subset(sup)).predict_dist(task.subset(qry))
    np.testing.assert_allclose(m1, m2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1, s2, rtol=1e-4, atol=1e-6)
    members = ens.adapt(task.subset(sup)).member_predictions(task.subset(qry))
    assert members.shape == (2, 20) and not np.allclose(members[0], members[1])
    # calibration tasks stay out of the members' training, also when fit is called again
    ens.fit(ts, n_iterations=2, progress=False)
    assert ens.members[0].history["iteration"][-1] == 7


def test_any_fitted_meta_learner_gets_a_predictive_distribution():
    ts = tabular_taskset(n_tasks=8, n=25)
    train, val = ts.select(ts.names[:6]), ts.select(ts.names[6:])
    learner = make_learner("fomaml", model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=5,
                           k_support=(1, 5), inner_lr=0.05)
    learner.fit(train, progress=False)
    one = EnsembleMetaLearner.from_learners([learner], val=val)
    task = val[0]
    mean, std = one.adapt(task.subset(range(5))).predict_dist(task.subset(range(5, 25)))
    np.testing.assert_allclose(mean, learner.adapt(task.subset(range(5))).predict(task.subset(range(5, 25))),
                               rtol=1e-6)
    assert np.allclose(std, std[0]) and std[0] == pytest.approx(one.noise_std)  # homoscedastic, calibrated
    with pytest.raises(ValueError, match="needs n_members >= 2"):
        EnsembleMetaLearner.from_learners([learner])
    with pytest.raises(ValueError, match="meta-trained"):
        EnsembleMetaLearner.from_learners([make_learner(model="MLP", model_kwargs={"n_in": 3})], val=val)
