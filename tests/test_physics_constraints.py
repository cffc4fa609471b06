"""Tests for nanonb.physics.constraints: non-negativity, mass balance, simplex projection, charge neutrality."""

from __future__ import annotations

import numpy as np
import torch

from nanonb.physics.constraints import (
    check_charge_neutrality,
    check_mass_balance,
    check_nonnegative,
    constraint_report,
    project_simplex,
)


def test_check_nonnegative():
    r = check_nonnegative([1.0, 0.0, -0.5, np.nan], name="conductivity")
    assert r.violations == [2, 3] and not r.ok
    assert "< 0" in r.reasons[0] and "not finite" in r.reasons[1]
    assert check_nonnegative(np.array([0.0, 3.0])).ok
    r2 = check_nonnegative(np.array([[1.0, -1.0]]))
    assert r2.violations == [(0, 1)]

def test_check_mass_balance():
    assert check_mass_balance(np.array([[0.2, 0.8], [1.0, 0.0]])).ok
    bad = np.array([[0.5, 0.6], [1.2, -0.2], [0.3, 0.7]])
    r = check_mass_balance(bad)
    assert r.violations == [0, 1]
    assert "sums to 1.1" in r.reasons[0]
    assert "< 0" in r.reasons[1] and "> 1" in r.reasons[1]
    assert check_mass_balance([0.5, 0.5 + 1e-9]).ok
    assert not check_mass_balance([0.5, 0.5 + 1e-3]).ok

def test_project_simplex_is_feasible_and_optimal():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(50, 5))
    p = project_simplex(x)
    assert check_mass_balance(p, tol=1e-9).ok
    # KKT: x - p = theta on the support, <= theta off the support
    for xi, pi in zip(x, p):
        r = xi - pi
        theta = r[pi > 0]
        assert np.ptp(theta) < 1e-9
        assert np.all(r[pi == 0] <= theta[0] + 1e-9)
    feasible = np.array([0.1, 0.2, 0.7])
    np.testing.assert_allclose(project_simplex(feasible), feasible, atol=1e-12)
    np.testing.assert_allclose(project_simplex(np.array([2.0, 0.0])), [1.0, 0.0])
    t = torch.tensor([[0.4, 0.4, 0.4]], requires_grad=True)
    out = project_simplex(t)
    assert isinstance(out, torch.Tensor) and torch.allclose(out.sum(1), torch.ones(1))
    out[0, 0].backward()
    assert torch.isfinite(t.grad).all()

def test_check_charge_neutrality():
    r = check_charge_neutrality(["NaCl", "NaCl2", "Fe2O3", "LiPF6", "Qq2"])
    assert r.violations == [1, 4]
    assert "NaCl2" in r.reasons[0]

def test_constraint_report():
    df = constraint_report(
        fractions=np.array([[0.5, 0.5], [0.7, 0.7]]),
        conductivity=np.array([1.0, -1.0, 2.0]),
        formulas=["NaCl", "NaCl2"],
        ok_values=[0.0, 1.0],
    )
    assert list(df.columns) == ["check", "n_items", "n_violations", "status", "examples"]
    assert df["n_violations"].tolist() == [1, 1, 1, 0]
    assert df["status"].tolist() == ["FAIL", "FAIL", "FAIL", "pass"]
    assert df["check"].iloc[0].startswith("mass balance")
    assert df["check"].iloc[2].startswith("charge neutrality")
    assert "1 of 4 checks pass" in df.attrs["summary"]
    assert "NaCl2" in df["examples"].iloc[2]
