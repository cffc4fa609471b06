"""Synthetic tabular task sets for the case-study tests (imported by several test modules)."""

from __future__ import annotations

import numpy as np

from nanonb.tasks import Task, TaskSet


def _linear_taskset(n_tasks=6, n=40, d=3, seed=0):
    """Tasks y = w.x + offset_task (+ small noise); tabular; groups (salt_i,)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    tasks = []
    for i in range(n_tasks):
        x = rng.normal(size=(n, d))
        y = x @ w + rng.normal(0, 2.0) + rng.normal(0, 0.01, n)
        tasks.append(Task(f"task{i}", x, y, groups=(f"salt{i % 3}", "solvent")))
    return TaskSet(tasks, name="synthetic", feature_names=[f"x{j}" for j in range(d)])


class _ConstantPooled:
    """A 'pooled model' predicting x[:, 0] (for exact baseline arithmetic)."""

    kind = "baseline"
    name = "const"
    model = "fitted"

    def predict(self, task_or_x):
        x = task_or_x.inputs if isinstance(task_or_x, Task) else task_or_x
        return np.asarray(x, dtype=np.float64)[:, 0].copy()

    def adapt(self, support=None):
        return self


