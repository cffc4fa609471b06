"""Tests of nanonb.active.refine: campaign data fed back into meta-training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import toy_task

from nanonb.active.campaign import run_campaign
from nanonb.active.refine import acquired_tasks, augment_taskset, refine
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.tasks import TaskSet

torch.set_num_threads(1)


def test_fed_back_points_enter_the_meta_training_set():
    tasks = [toy_task(40, seed=s) for s in range(6)]
    for i, t in enumerate(tasks):
        t.name = f"toy{i}"
    ts = TaskSet(tasks)
    train, held = ts.select(ts.names[:4]), ts.select(ts.names[4:])
    camps = [run_campaign(held["toy4"], None, "random", n_init=2, budget=8, seed=s) for s in (0, 1)]
    new = acquired_tasks(camps, held)
    assert len(new) == 1 and new[0].name == "toy4"
    idx = sorted(set(camps[0].measured) | set(camps[1].measured))
    np.testing.assert_array_equal(new[0].targets, held["toy4"].targets[idx])
    aug = augment_taskset(train, new)
    assert aug.names == [*train.names, "toy4"] and len(train) == 4  # the original set is untouched
    clash = augment_taskset(ts, new)
    assert clash.names[-1] == "toy4 [acquired]"

    bml = BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=3, k_support=(0, 5))
    bml.fit(train, progress=False)
    seen = []
    orig_fit = bml.fit

    def spy(taskset, **kw):
        seen.append(taskset)
        return orig_fit(taskset, **kw)

    bml.fit = spy
    aug2 = refine(bml, train, camps, held, n_iterations=2)
    assert seen and seen[0] is aug2 and "toy4" in seen[0].names
    np.testing.assert_array_equal(seen[0]["toy4"].targets, held["toy4"].targets[idx])
    assert bml.history["iteration"][-1] == 5  # training continued, not restarted
    with pytest.raises(KeyError, match="not among"):
        acquired_tasks(camps, train)
