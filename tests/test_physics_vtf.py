"""Tests for nanonb.physics.vtf: the VTF law, the per-task MAP fit, the empirical prior and VTFFit.

All synthetic (no data files): tasks follow ln k = ln A + alpha ln c + beta c - B / (T - T0) exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from _vtf_helpers import TRUE, vtf_task_set

from nanonb.physics.vtf import RawColumns, VTFFit, VTFPrior, empirical_prior, fit_vtf, vtf_log10k
from nanonb.tasks import TaskSet


def test_fit_vtf_recovers_known_parameters_without_concentration():
    rng = np.random.default_rng(1)
    T = np.linspace(215.0, 355.0, 30)
    y = vtf_log10k({"lnA": 5.5, "B": 550.0, "T0": 165.0}, T) + rng.normal(0, 0.003, T.size)
    p = fit_vtf(T, y, None, prior=VTFPrior(t0_max=200.0), weight=0.0)
    assert p["lnA"] == pytest.approx(5.5, abs=0.1)
    assert p["B"] == pytest.approx(550.0, rel=0.05)
    assert p["T0"] == pytest.approx(165.0, abs=3.0)

def test_fit_vtf_recovers_concentration_terms():
    rng = np.random.default_rng(2)
    T = rng.uniform(215.0, 350.0, 60)
    c = rng.uniform(0.2, 2.5, 60)
    y = vtf_log10k(TRUE, T, c) + rng.normal(0, 0.003, 60)
    p = fit_vtf(T, y, c, prior=VTFPrior(t0_max=200.0), weight=0.0)
    for name, tol in [("lnA", 0.15), ("B", 30.0), ("T0", 3.0), ("alpha", 0.05), ("beta", 0.05)]:
        assert abs(p[name] - TRUE[name]) < tol, (name, p[name], TRUE[name])

def test_fit_vtf_with_few_points_stays_near_the_prior_and_bounds_t0():
    T = np.array([250.0, 260.0, 280.0])
    y = vtf_log10k(TRUE, T, np.ones(3))
    prior = VTFPrior(mean=(5.0, 500.0, 150.0, 0.8, -0.7), std=(1.0, 100.0, 10.0, 0.3, 0.3), t0_max=170.0)
    p = fit_vtf(T, y, np.ones(3), prior=prior)
    assert p["T0"] <= 170.0 + 1e-9
    assert abs(p["T0"] - 150.0) < 25.0  # regularised: 3 points cannot pin B and T0 separately
    assert abs(vtf_log10k(p, T, np.ones(3)) - y).max() < 0.05  # but the fit still matches the data

def test_vtf_fit_baseline_reads_kelvin_from_standardized_inputs():
    ts = vtf_task_set([TRUE], n=60)
    cols = RawColumns.of(ts)
    T = cols.temperature(ts[0])
    assert 215.0 <= T.min() and T.max() <= 350.0
    assert np.allclose(cols.concentration(ts[0]).min(), 0.2, atol=0.05)
    base = VTFFit(prior=VTFPrior(t0_max=200.0)).fit(ts)
    pred = base.adapt(ts[0]).predict(ts[0])
    assert np.abs(pred - ts[0].targets).mean() < 0.01

def test_raw_columns_refuse_standardized_inputs_without_statistics():
    ts = vtf_task_set([TRUE], n=20)
    bare = TaskSet(list(ts), feature_names=ts.feature_names)  # same tasks, no loader statistics
    with pytest.raises(ValueError, match="feature_mean"):
        RawColumns.of(bare)

def test_empirical_prior_is_centred_on_the_meta_train_tasks():
    params = [{**TRUE, "lnA": 5.6 + d, "B": 520.0 + 40 * d, "T0": 158.0 - 5 * d} for d in (-1, -0.5, 0, 0.5, 1)]
    prior = empirical_prior(vtf_task_set(params, n=50))
    assert prior.mean[0] == pytest.approx(5.6, abs=0.3)
    assert prior.mean[1] == pytest.approx(520.0, rel=0.15)
    assert prior.t0_max == pytest.approx(215.0 - 20.0, abs=1.0)


def test_celsius_temperatures_are_refused_with_the_from_frame_fix():
    ts = vtf_task_set([TRUE], n=20)
    celsius = TaskSet(list(ts), feature_names=ts.feature_names)
    celsius.feature_mean, celsius.feature_std = ts.feature_mean - np.r_[273.15, 0, 0, 0], ts.feature_std
    with pytest.raises(ValueError, match="units=\\{'temperature': 'degC'\\}") as err:
        RawColumns.of(celsius)                                      # -58 to 77: °C above 20 °C included
    assert "select()" not in str(err.value)


def test_vtf_fit_predicts_arrays_and_reads_roles():
    ts = vtf_task_set([TRUE], n=40)
    base = VTFFit(prior=VTFPrior(t0_max=200.0)).fit(ts)
    adapted = base.adapt(ts[0])
    np.testing.assert_allclose(adapted.predict(ts[0].inputs), adapted.predict(ts[0]))
    renamed = TaskSet(list(ts), feature_names=["Tk", "invT", "molality", "s"])
    renamed.feature_mean, renamed.feature_std = ts.feature_mean, ts.feature_std
    renamed.roles = {"temperature": "Tk", "concentration": "molality"}
    cols = RawColumns.of(renamed)
    assert (cols.t_index, cols.c_index) == (0, 2)
