"""Synthetic VTF task sets for the VTF tests: ln k = ln A + alpha ln c + beta c - B / (T - T0) exactly."""

from __future__ import annotations

import numpy as np

from nanonb.physics.vtf import vtf_log10k
from nanonb.tasks import Task, TaskSet

TRUE = {"lnA": 5.6, "B": 520.0, "T0": 158.0, "alpha": 0.8, "beta": -0.7}
FEATURES = ["temperature_K", "inv_temperature_1000_per_K", "salt_concentration", "solvent_x"]


def vtf_task_set(params_list, n=40, seed=0, noise=0.0, c_range=(0.2, 2.0), name="t"):
    """Tasks in the loader's format: standardized columns + feature_mean/feature_std attributes."""
    rng = np.random.default_rng(seed)
    raw, ys, ids = [], [], []
    for i, p in enumerate(params_list):
        T = rng.uniform(215.0, 350.0, n)
        c = rng.uniform(*c_range, n)
        s = np.full(n, float(i))
        raw.append(np.column_stack([T, 1000.0 / T, c, s]))
        ys.append(vtf_log10k(p, T, c) + noise * rng.standard_normal(n))
        ids.append(np.full(n, i))
    x = np.vstack(raw)
    mean, std = x.mean(0), x.std(0) + 1e-12
    z = (x - mean) / std
    tasks, start = [], 0
    for i, y in enumerate(ys):
        sl = slice(start, start + len(y))
        tasks.append(Task(f"{name}{i}", z[sl], y, groups=(f"salt{i}",), target_unit="log10(mS/cm)"))
        start += len(y)
    ts = TaskSet(tasks, name="synthetic VTF", feature_names=FEATURES)
    ts.feature_mean, ts.feature_std = mean, std
    return ts
