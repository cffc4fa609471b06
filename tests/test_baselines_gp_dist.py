"""Tests of nanonb.baselines.gp_dist: GP baselines with a predictive std."""

from __future__ import annotations

import numpy as np
import torch
from synthetic import tabular_taskset

from nanonb.baselines.gp_dist import ResidualGP, SupportGPDist

torch.set_num_threads(1)


def test_gp_baselines_return_positive_std_for_any_support_size():
    ts = tabular_taskset(n_tasks=6, n=30)
    gp = SupportGPDist(n_restarts=0).fit(ts)
    rgp = ResidualGP(model="MLP", model_kwargs={"hidden": (8,)}, epochs=2, n_restarts=0).fit(ts)
    task = ts[0]
    for method in (gp, rgp):
        for k in (0, 1, 2, 8):
            sup = task.subset(range(k)) if k else None
            m, s = method.adapt(sup).predict_dist(task.subset(range(10, 30)))
            assert m.shape == s.shape == (20,)
            assert np.all(np.isfinite(m)) and np.all(s > 0)
    # with enough points the support GP learns the linear task well
    m, s = gp.adapt(task.subset(range(20))).predict_dist(task.subset(range(20, 30)))
    assert np.mean(np.abs(m - task.targets[20:])) < 0.5 * task.targets.std()
