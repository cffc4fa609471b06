"""Tests for nanonb.learners.vtfprior: the VTF head adapted under an empirical-Bayes prior.

Synthetic electrolytes on a temperature x concentration grid (VTF law exactly, 0.02 log10 noise).
"""

from __future__ import annotations

import numpy as np
import pytest

from nanonb.learners.registry import load, make_learner
from nanonb.physics.vtf import vtf_log10k
from nanonb.tasks import Task, TaskSet

T_GRID = np.arange(233.15, 354.0, 10.0)   # K
C_GRID = np.array([0.3, 0.6, 1.0, 1.5, 2.0])


def grid_tasks(n_tasks=16, seed=0) -> TaskSet:
    rng = np.random.default_rng(seed)
    raw, ys = [], []
    for _ in range(n_tasks):
        e = rng.normal()
        p = {"lnA": 5.6 + 0.4 * rng.normal() + 0.3 * e, "B": 520.0 + 60 * e, "T0": 158.0 - 8 * e,
             "alpha": 0.8, "beta": -0.7}
        T, c = (a.ravel() for a in np.meshgrid(T_GRID, C_GRID))
        raw.append(np.column_stack([T, c, np.full(T.size, rng.normal())]))
        ys.append(vtf_log10k(p, T, c) + 0.02 * rng.standard_normal(T.size))
    tasks = [Task(f"t{i}", x, y, groups=(f"s{i}",), target_unit="log10(mS/cm)")
             for i, (x, y) in enumerate(zip(raw, ys))]
    return TaskSet(tasks, name="grid", feature_names=["temperature_K", "salt_concentration", "solvent_x"])


@pytest.fixture(scope="module")
def fitted():
    ts = grid_tasks()
    train, test = ts.select(ts.names[:12]), ts.select(ts.names[12:])
    return make_learner("vtf-prior", hidden=(8,), epochs=15).fit(train), test


def test_single_temperature_support_falls_back_to_the_meta_learned_curve(fitted):
    learner, test = fitted
    err = {"prior": [], "curve": [], "mean": []}
    for t in test:
        for T_s in T_GRID[[0, 6, 11]]:                       # coldest, middle, hottest
            s = np.flatnonzero(np.isclose(t.inputs[:, 0], T_s))
            q = np.setdiff1d(np.arange(len(t)), s)
            sup, qry = t.subset(s), t.subset(q)
            assert np.ptp(sup.inputs[:, 0]) == 0.0           # one temperature in the support
            err["prior"].append(np.abs(learner.adapt(sup).predict(qry) - qry.targets).mean())
            err["curve"].append(np.abs(learner.adapt(None).predict(qry) - qry.targets).mean())
            err["mean"].append(np.abs(sup.targets.mean() - qry.targets).mean())
    prior, curve, mean = (float(np.mean(v)) for v in err.values())
    worst = max(p - c for p, c in zip(err["prior"], err["curve"]))
    print(f"single-T support MAE: vtf-prior {prior:.3f}, curve {curve:.3f}, support mean {mean:.3f}, "
          f"worst excess over the curve {worst:.3f}")
    assert prior < 0.5 * curve and prior < 0.25 * mean, (prior, curve, mean)    # log10(mS/cm)
    assert worst < 0.05, worst         # never much worse than not adapting at all


def test_predict_dist_widens_away_from_the_support_and_save_load(fitted, tmp_path):
    learner, test = fitted
    t = test[0]
    s = np.flatnonzero(np.isclose(t.inputs[:, 0], T_GRID[6]))
    adapted = learner.adapt(t.subset(s))
    mean, std = adapted.predict_dist(t)
    near, far = np.isclose(t.inputs[:, 0], T_GRID[6]), np.isclose(t.inputs[:, 0], T_GRID[0])
    assert std[far].mean() > std[near].mean() > 0
    np.testing.assert_allclose(mean, adapted.predict(t.inputs))          # arrays work as well as tasks
    learner.save(tmp_path / "vp")
    again = load(tmp_path / "vp")
    np.testing.assert_allclose(again.adapt(t.subset(s)).predict(t), mean, atol=1e-6)


def test_other_target_units_are_refused():
    ts = grid_tasks(n_tasks=2)
    bad = TaskSet([Task(t.name, t.inputs, t.targets - 3.0, target_unit="log10(S/cm)") for t in ts],
                  feature_names=ts.feature_names)
    with pytest.raises(ValueError, match="log10"):
        make_learner("vtf-prior", epochs=1).fit(bad)
