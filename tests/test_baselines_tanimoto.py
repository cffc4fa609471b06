"""The Tanimoto-kernel GP baseline."""

from __future__ import annotations

import numpy as np

from nanonb.baselines.tanimoto import SupportTanimotoGP, tanimoto
from nanonb.tasks import Task, TaskSet


def test_tanimoto_similarity():
    a = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    b = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(tanimoto(a, b), [[1.0, 1 / 3, 0.0], [0.0, 0.0, 1.0]])


def _tasks(seed=0, n_tasks=4, n=12, bits=16):
    """Each task: two prototype fingerprints; a point is a prototype with one bit flipped, its target the
    prototype's level (0 or 1 V) plus the task offset: similar fingerprints, similar targets."""
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(n_tasks):
        protos = rng.integers(0, 2, size=(2, bits))
        which = np.arange(n) % 2
        fp = protos[which].astype(float)
        flip = rng.integers(0, bits, size=n)
        fp[np.arange(n), flip] = 1 - fp[np.arange(n), flip]
        x = np.hstack([rng.normal(size=(n, 3)), fp])
        tasks.append(Task(f"t{t}", x, which + 3.0 * t + rng.normal(0, 0.02, n), target_unit="V"))
    return TaskSet(tasks)


def test_gp_uses_the_fingerprints_and_is_calibrated_at_the_support():
    ts = _tasks()
    gp = SupportTanimotoGP(n_bits=16).fit(ts)
    task = ts["t2"]
    pred = gp.adapt(task.subset(range(8)))
    mean, std = pred.predict_dist(task.subset(range(8, 12)))
    # better than the support mean on held-out points of the same task
    mae_gp = np.abs(mean - task.targets[8:]).mean()
    mae_mean = np.abs(task.targets[:8].mean() - task.targets[8:]).mean()
    assert mae_gp < mae_mean and (std > 0).all()
    # at a support point the predictive std shrinks below the prior std
    m_s, s_s = pred.predict_dist(task.subset([0]))
    _, s_prior = gp.adapt(None).predict_dist(task.subset([0]))
    assert s_s[0] < s_prior[0]
