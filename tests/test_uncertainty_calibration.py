"""Tests of nanonb.uncertainty.calibration: variance factors by NLL, calibration-task selection."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import tabular_taskset

from nanonb.uncertainty.calibration import calibration_tasks, fit_noise_calibration


def test_noise_calibration_recovers_known_scale_and_noise():
    rng = np.random.default_rng(0)
    var_ep = rng.uniform(0.1, 2.0, size=20000)
    y = rng.normal(0, np.sqrt(2.0**2 * var_ep + 0.5**2))
    scale, noise = fit_noise_calibration(y, np.zeros_like(y), var_ep)
    assert scale == pytest.approx(2.0, rel=0.05)
    assert noise == pytest.approx(0.5, rel=0.15)


def _two_label_taskset():
    ts = tabular_taskset(n_tasks=12, n=20)
    # two labels per task: a "salt" (4 values) and a per-task label
    for i, t in enumerate(ts):
        t.groups = (f"salt{i % 4}", f"solvent{i}")
    return ts


def test_calibration_tasks_hold_out_whole_groups():
    ts = _two_label_taskset()
    held = calibration_tasks(ts, 0.2, "group", seed=1, group_index=0)
    salts = {ts[n].groups[0] for n in held}
    assert len(salts) == 1 and len(held) == 3  # exactly one whole salt (3 of 12 tasks >= 20 %)
    assert all(t.name in held for t in ts if t.groups[0] in salts)
    assert len(calibration_tasks(ts, 0.2, "random", seed=1)) == 2
