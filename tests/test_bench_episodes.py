"""Tests for nanonb.bench.episodes: the episode loop of the forces and tb protocols."""

from __future__ import annotations

from _physics_helpers import toy_flake_taskset

from nanonb.bench.episodes import run_episodes, violation_rows
from nanonb.evaluation import Named
from nanonb.physics.calibration import HuckelCalibration


def test_run_episodes_zero_shot_and_negative_counts():
    ts = toy_flake_taskset(2)
    calib = HuckelCalibration().fit(ts)
    calib.prior = (0.5, -100.0)  # every zero-shot prediction negative
    no_zero = Named(HuckelCalibration().fit(ts), "no-zero-shot", "baseline", zero_shot=False)
    df, preds = run_episodes([calib, no_zero], ts, shots=(0, 2), n_episodes=2)
    z = df[df.k == 0]
    assert set(z.method) == {"huckel+calibration"} and (z.n_query == [len(t) for t in ts]).all()
    assert (z.n_negative == z.n_query).all()
    assert set(df[df.k == 2].method) == {"huckel+calibration", "no-zero-shot"}
    assert len(preds["huckel+calibration"]) == df[df.method == "huckel+calibration"].n_query.sum()
    rows = violation_rows(df, "s")
    r0 = next(r for r in rows if r["k"] == 0)
    assert r0["metric"] == "constraint_violations" and r0["total"] == sum(len(t) for t in ts)
