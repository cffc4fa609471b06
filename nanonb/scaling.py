"""Standardization statistics of a meta-train task set: the one rule for target and input scaling.

Learners and network baselines store these in their ``Scaler`` (:mod:`nanonb.learners.training`);
physics models read the same numbers to match a learner's units (:func:`nanonb.physics.tb.tb_model_kwargs`,
:func:`nanonb.physics.vtfnet.vtf_model_kwargs`) without importing the learners (which sit above
physics). WAVE2: the ``Scaler`` class itself could live here.
"""

from __future__ import annotations

import numpy as np

from nanonb.tasks import TaskSet


def standardization(tasks: TaskSet) -> dict:
    """Standardization statistics of a (meta-train) task set: the one rule every learner's ``Scaler`` uses.

    ``y_mean``/``y_std``: mean and std (+ 1e-12) of all targets (target units); ``x_mean``/``x_std``:
    per-column mean and std of tabular inputs (std < 1e-8 -> 1.0), ``None`` for structures. Physics
    models read them too (:func:`nanonb.physics.tb.tb_model_kwargs`, ``vtfnet.vtf_model_kwargs``).

    Example
    -------
    >>> from nanonb.tasks import Task
    >>> standardization(TaskSet([Task("a", np.zeros((2, 1)), np.array([1.0, 3.0]))]))["y_mean"]  # target units
    2.0
    """
    y = np.concatenate([t.targets for t in tasks])
    out = {"y_mean": float(y.mean()), "y_std": float(y.std() + 1e-12), "x_mean": None, "x_std": None}
    if tasks[0].is_tabular:
        x = np.vstack([t.inputs for t in tasks]).astype(np.float64)
        sd = x.std(0)
        sd[sd < 1e-8] = 1.0
        out["x_mean"], out["x_std"] = x.mean(0).tolist(), sd.tolist()
    return out
