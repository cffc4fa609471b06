"""In-task ceiling and the ``closed`` metric (nanonb.baselines.ceiling) on synthetic tasks (fast)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from nanonb.tasks import Task, TaskSet

try:
    from nanonb.baselines import ceiling
except ImportError:  # until the restructure, nanonb/baselines.py shadows the baselines/ folder
    _path = Path(__file__).resolve().parents[1] / "nanonb" / "baselines" / "ceiling.py"
    _spec = importlib.util.spec_from_file_location("nanonb.baselines.ceiling", _path)
    ceiling = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(ceiling)


def learnable_task(name: str, n: int = 60, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=(n, 3))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.05 * rng.standard_normal(n)  # x[:, 2] is irrelevant
    return Task(name, x.astype(np.float32), y)


def test_ceiling_below_support_mean_on_a_learnable_task():
    tasks = TaskSet([learnable_task("a", seed=0), learnable_task("b", seed=1)])
    ceil = ceiling.in_task_ceiling(tasks)
    assert set(ceil) == {"a", "b"}
    for t in tasks:
        mean_mae = np.abs(t.targets - t.targets.mean()).mean()
        assert ceil[t.name] < 0.3 * mean_mae, (ceil[t.name], mean_mae)
    assert ceiling.task_ceiling(tasks[0]) == ceil["a"]  # seeded folds: deterministic


def test_ceiling_of_noise_is_not_better_than_the_mean():
    rng = np.random.default_rng(3)
    t = Task("noise", rng.standard_normal((50, 2)).astype(np.float32), rng.standard_normal(50))
    assert ceiling.task_ceiling(t) > 0.9 * np.abs(t.targets - t.targets.mean()).mean()


def test_ceiling_input_errors():
    with pytest.raises(ValueError, match="too few"):
        ceiling.task_ceiling(learnable_task("small", n=8))
    with pytest.raises(ValueError, match="no descriptors"):
        ceiling.task_ceiling(Task("s", [object()] * 20, np.zeros(20)))


def test_closed_metric():
    assert ceiling.closed(0.032, 0.017, 0.015) == pytest.approx(15 / 17)
    assert ceiling.closed(30.0, 30.0, 15.0) == 0.0  # support mean itself closes nothing
    assert ceiling.closed(30.0, 15.0, 15.0) == 1.0  # as good as the in-task GP
    out = ceiling.closed([30.0, 20.0, 10.0], [20.0, 25.0, 9.0], [10.0, 10.0, 12.0])
    np.testing.assert_allclose(out[:2], [0.5, -0.5])
    assert np.isnan(out[2])  # nothing learnable: support mean already below the ceiling
