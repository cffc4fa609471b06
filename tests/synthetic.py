"""Small synthetic task families shared by the uncertainty, learner and active-learning tests."""

from __future__ import annotations

import numpy as np

from nanonb.tasks import Task, TaskSet


def tabular_taskset(n_tasks=12, n=40, d=3, seed=0, noise=0.1):
    """Tasks y = a_t . x + b_t + noise with task-specific (a_t, b_t): a linear-Gaussian task family."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        x = rng.normal(size=(n, d)).astype(np.float32)
        a, b = rng.normal(size=d), rng.normal()
        y = x @ a + b + noise * rng.normal(size=n)
        tasks.append(Task(f"t{i}", x, y + 5.0, groups=(f"g{i}",), target_unit="u"))
    return TaskSet(tasks, name="synthetic")


def toy_task(n=50, seed=0) -> Task:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return Task("toy", x, x[:, 0] * 2.0 + rng.normal(size=n) * 0.1, target_unit="u")
