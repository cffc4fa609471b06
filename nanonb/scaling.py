"""Standardization statistics of a meta-train task set: the one rule for target and input scaling.

Learners and network baselines store these in their ``Scaler`` (:mod:`nanonb.learners.training`);
physics models read the same numbers to match a learner's units (:func:`nanonb.physics.tb.tb_model_kwargs`,
:func:`nanonb.physics.vtfnet.vtf_model_kwargs`) without importing the learners (which sit above
physics). WAVE2: the ``Scaler`` class itself could live here.
"""

from __future__ import annotations

import numpy as np

from nanonb.tasks import TaskSet

CLIP_STD = 10.0
"""Standardized tabular inputs are clipped to ``+- CLIP_STD`` meta-train standard deviations."""


def near_constant(x: np.ndarray, rtol: float = 1e-6) -> np.ndarray:
    """Boolean mask of the columns of ``x`` (n, d) whose spread is negligible: ``std <= rtol * max(1, max|x|)``.

    Such a column carries nothing a model could learn in meta-train, and dividing by its tiny std would turn
    any other value on a new task into an astronomically large input.

    Example
    -------
    >>> near_constant(np.array([[1.0, 5.0], [2.0, 5.0 + 1e-9]])).tolist()
    [False, True]
    """
    x = np.asarray(x, dtype=np.float64)
    return x.std(0) <= rtol * np.maximum(1.0, np.abs(x).max(0))


def clip_standardized(z, clip: float = CLIP_STD):
    """``z`` (standardized inputs, numpy array or torch tensor) clipped to ``[-clip, clip]``.

    Example
    -------
    >>> clip_standardized(np.array([-30.0, 0.5, 12.0])).tolist()
    [-10.0, 0.5, 10.0]
    """
    return z.clamp(-clip, clip) if hasattr(z, "clamp") else np.clip(z, -clip, clip)


def input_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(mean, std)`` of tabular inputs ``x`` (n, d); :func:`near_constant` columns get std 1.0.

    Example
    -------
    >>> input_statistics(np.array([[0.0, 3.0], [2.0, 3.0]]))[1].tolist()
    [1.0, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(0)
    sd[near_constant(x)] = 1.0
    return x.mean(0), sd


def standardization(tasks: TaskSet) -> dict:
    """Standardization statistics of a (meta-train) task set: the one rule every learner's ``Scaler`` uses.

    ``y_mean``/``y_std``: mean and std (+ 1e-12) of all targets (target units); ``x_mean``/``x_std``:
    per-column mean and std of tabular inputs (near-constant columns, :func:`near_constant`, get std 1.0),
    ``None`` for structures; the learners clip standardized inputs at ``+- CLIP_STD``
    (:func:`clip_standardized`). Physics models read them too (:func:`nanonb.physics.tb.tb_model_kwargs`,
    ``vtfnet.vtf_model_kwargs``).

    Example
    -------
    >>> from nanonb.tasks import Task
    >>> standardization(TaskSet([Task("a", np.zeros((2, 1)), np.array([1.0, 3.0]))]))["y_mean"]  # target units
    2.0
    """
    y = np.concatenate([t.targets for t in tasks])
    out = {"y_mean": float(y.mean()), "y_std": float(y.std() + 1e-12), "x_mean": None, "x_std": None}
    if tasks[0].is_tabular:
        mean, sd = input_statistics(np.vstack([t.inputs for t in tasks]))
        out["x_mean"], out["x_std"] = mean.tolist(), sd.tolist()
    return out
