"""Tests of nanonb.uncertainty.decision: flag_for_validation rules and goals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from nanonb.tasks import Task
from nanonb.uncertainty.decision import flag_for_validation


class _FixedDist:
    def __init__(self, mean, std):
        self.mean, self.std = np.asarray(mean, float), np.asarray(std, float)

    def predict_dist(self, task):
        idx = task.meta["i"].to_numpy()
        return self.mean[idx], self.std[idx]


def test_flag_for_validation_rules_and_goal():
    n = 6
    task = Task("t", np.zeros((n, 1), np.float32), np.array([1.0, 0.0, 0, 0, 0, 0]),
                meta=pd.DataFrame({"i": range(n)}), target_unit="eV")
    z90 = norm.ppf(0.95)
    # point 0 measured (best = 1.0); candidates 1..5
    mean = np.array([0.0, 2.0, 1.2, 0.9, 0.5, 0.0])
    std = np.array([1.0, 0.1, 0.5, 0.5, 0.01, 0.2])
    out = flag_for_validation(_FixedDist(mean, std), task, measured_idx=[0], goal="max")
    assert list(out["index"]) == [1, 2, 3, 4, 5]  # ranked by predicted mean
    flags = dict(zip(out["index"], out["flag"]))
    assert flags == {1: "confident", 2: "validate experimentally", 3: "validate experimentally", 4: "", 5: ""}
    r3 = out.set_index("index").loc[3, "reason"]
    assert "optimistic" in r3 and "does not beat" in r3
    assert out.set_index("index").loc[3, "upper"] == pytest.approx(0.9 + z90 * 0.5)
    assert "i" in out.columns  # metadata kept
    # goal="min": the best is the smallest; point 5 (mean 0.0) is ranked first
    task_min = Task("t", task.inputs, np.array([0.2, 1, 1, 1, 1, 1.0]), meta=task.meta)
    out_min = flag_for_validation(_FixedDist(mean, std), task_min, measured_idx=[0], goal="min")
    assert out_min["index"].iloc[0] in (5,)
    fl = dict(zip(out_min["index"], out_min["flag"]))
    assert fl[5] == "validate experimentally" and fl[1] == "" and fl[4] == ""
    with pytest.raises(ValueError, match="goal"):
        flag_for_validation(_FixedDist(mean, std), task, goal="up")
