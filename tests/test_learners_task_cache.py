"""The task cache of fit: episode tensors and a padded meta-batch as rows of the cached tensors, bit for bit."""

import numpy as np
import torch

from nanonb.learners import batched
from nanonb.learners.registry import make_learner
from nanonb.learners.task_cache import TaskTensors
from nanonb.tasks import TaskSet
from nanonb.tasks.toy import sinusoid_tasks


def _fitted():
    tasks = sinusoid_tasks(n_tasks=6, n=20, seed=2)
    learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (8,)}, meta_batch_size=3, inner_steps=1)
    return learner.fit(tasks, n_iterations=1, progress=False), tasks


def test_padded_meta_batch_equals_per_episode_pad_bit_for_bit():
    learner, tasks = _fitted()
    cache = learner._cache_tensors(tasks)
    assert set(cache) == {id(t) for t in tasks} and len(cache.x) == sum(len(t) for t in tasks) + 1
    eps = [tasks.episode(tasks[i], k, 7 - i, seed=i) for i, k in enumerate((2, 5, 3))]  # ragged sizes
    learner._task_tensors = cache
    fast = batched.pad_episodes(learner, eps)
    assert all("support" not in ep.__dict__ for ep in eps)  # the cached path never builds the subset Tasks
    learner._task_tensors = {}
    slow = batched.pad_episodes(learner, eps)
    assert all(a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(fast, slow, strict=True))
    assert float(fast[0][0, 2:].abs().sum()) == 0.0 and fast[2][0].tolist()[2:] == [0.0] * 3  # zero padding


def test_padded_falls_back_unless_every_episode_is_of_a_cached_task():
    learner, tasks = _fitted()
    cache = learner._cache_tensors(tasks)
    other = sinusoid_tasks(n_tasks=1, n=20, seed=9)  # same name, not the cached Task object
    assert cache.padded([tasks.episode(tasks[0], 3, 4), other.episode(other[0], 3, 4)]) is None
    assert cache.padded([tasks.episode(tasks[0], 0, 4)]) is None      # zero-shot: no support
    assert cache.episode(other.episode(other[0], 3, 4)) is None and TaskTensors().padded([]) is None


def test_graph_tasks_are_not_cached():
    from nanonb.tasks.toy import cluster_tasks
    assert TaskTensors.build(cluster_tasks(2, 4, 2, seed=0), None, None) == {}
    ts = TaskSet.from_arrays(np.ones((4, 1)), np.arange(4.0), ["a", "a", "b", "b"])
    assert len(TaskTensors.build(ts, torch.as_tensor, torch.as_tensor)) == 2
