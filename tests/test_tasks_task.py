"""Task.subset and sample_episode: the cheap path (no re-validation, lazy meta) gives the same Task."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest

from nanonb.graphs import Structure
from nanonb.tasks import Task
from nanonb.tasks.task import sample_episode


def tabular(n=12, seed=0, **kw):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({"c": np.arange(n) * 2, "s": [f"r{i}" for i in range(n)]}, index=np.arange(n) + 100)
    return Task("a", rng.normal(size=(n, 3)), rng.normal(size=n), meta=meta, groups=("X", "Y"),
                target_name="e", target_unit="eV", group_keys={"k": "X"}, **kw)


def validated(task, idx):
    """What subset returned before the cheap path: a full Task(...) on the sliced fields."""
    idx = np.asarray(idx)
    inputs = task.inputs[idx] if task.is_tabular else [task.inputs[i] for i in idx]
    return Task(task.name, inputs, task.targets[idx], task.meta.iloc[idx].reset_index(drop=True), task.groups,
                None if task.descriptors is None else task.descriptors[idx], task.target_name, task.target_unit,
                task.group_keys)


def assert_same_task(a, b):
    assert (a.name, a.groups, a.group_keys, a.target_name, a.target_unit) == \
        (b.name, b.groups, b.group_keys, b.target_name, b.target_unit)
    for f in ("targets", "descriptors") + (("inputs",) if a.is_tabular else ()):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f
    if not a.is_tabular:
        assert all(u is v for u, v in zip(a.inputs, b.inputs, strict=True))
    pd.testing.assert_frame_equal(a.meta, b.meta, check_exact=True)
    assert a.group_keys is not b.group_keys  # a copy, as the validating constructor made


@pytest.mark.parametrize("descriptors", [None, "own"])
def test_subset_equals_the_validated_task_field_by_field(descriptors):
    d = np.random.default_rng(1).normal(size=(12, 5)) if descriptors else None
    task = tabular(descriptors=d)
    idx = [7, 0, 3, 11]
    sub = task.subset(idx)
    assert_same_task(sub, validated(task, idx))
    assert list(sub.meta["c"]) == [14, 0, 6, 22] and list(sub.meta.index) == [0, 1, 2, 3]
    assert_same_task(sub.subset([3, 1]), validated(validated(task, idx), [3, 1]))  # a subset of a subset


def test_subset_skips_revalidation_and_slices_meta_only_when_read(monkeypatch):
    task = tabular()

    def refuse(self):
        raise AssertionError("subset re-validated a validated task")

    monkeypatch.setattr(Task, "__post_init__", refuse)
    monkeypatch.setattr(pd.DataFrame, "iloc", property(lambda self: refuse(self)))
    sub = task.subset([1, 2, 5]).subset([0, 2])
    assert list(sub.targets) == [task.targets[1], task.targets[5]]
    monkeypatch.undo()
    assert list(sub.meta["s"]) == ["r1", "r5"]  # sliced on first read, composed through both subsets


def test_subset_of_structures_and_copies():
    structures = [Structure([29, 78], np.array([[0.0, 0, 0], [2.5, 0, 0]]) + i) for i in range(6)]
    task = Task("s", structures, np.arange(6.0), descriptors=np.arange(12.0).reshape(6, 2))
    sub = task.subset([4, 1])
    assert_same_task(sub, validated(task, [4, 1]))
    for clone in (pickle.loads(pickle.dumps(sub)), copy.deepcopy(sub)):
        assert len(clone.meta) == 2 and list(clone.targets) == [4.0, 1.0]
    assert pickle.loads(pickle.dumps(task.subset([0]))).__dict__["_meta_rows"] is None  # no parent frame pickled


def test_reassigned_or_empty_subsets_still_validate_with_the_same_errors():
    task = tabular()
    task.targets = np.where(np.arange(12) == 2, np.nan, task.targets)  # reassigned after construction: not trusted
    with pytest.raises(ValueError, match=r"Task 'a' has 1 NaN/inf targets \(rows \[0\]\)"):
        task.subset([2, 3])
    with pytest.raises(ValueError, match="Task 'a' is empty: it has no data points."):
        tabular().subset([])
    task = tabular()
    task.meta = pd.DataFrame({"z": range(12)})  # a new meta is the one subsets slice
    assert list(task.subset([4]).meta["z"]) == [4]


def test_sampled_episodes_are_the_checked_episodes():
    task = tabular(n=20)
    for seed in range(5):
        ep = sample_episode(task, 4, 6, seed=seed)
        perm = np.random.default_rng(seed).permutation(20)  # the documented draw: indices never change
        assert list(ep.support_idx) == sorted(perm[:4]) and list(ep.query_idx) == sorted(perm[4:10])
        assert_same_task(ep.support, validated(task, ep.support_idx))
        assert_same_task(ep.query, validated(task, ep.query_idx))
    assert sample_episode(task, 0, 3, seed=0).support is None


def test_a_task_pickled_before_lazy_meta_still_reads_its_meta():
    task = tabular()
    old = object.__new__(Task)  # the __dict__ an older nanonb pickled: plain fields, "meta" among them
    old.__dict__.update({k: v for k, v in task.__dict__.items() if not k.startswith("_")} | {"meta": task.meta})
    assert list(old.meta["c"]) == list(task.meta["c"]) and list(old.subset([3]).meta["s"]) == ["r3"]


def test_sampled_episode_makes_support_and_query_when_first_read_and_pickles():
    task = tabular(n=20)
    ep = sample_episode(task, 4, 6, seed=1)
    assert "support" not in ep.__dict__ and "query" not in ep.__dict__  # fit reads only the indices
    assert ep.support is ep.support and "support" in ep.__dict__         # made once, then kept
    assert_same_task(ep.query, validated(task, ep.query_idx))
    back = pickle.loads(pickle.dumps(sample_episode(task, 4, 6, seed=1)))
    assert_same_task(back.support, validated(task, ep.support_idx)) and back == copy.copy(back)
    with pytest.raises(AttributeError, match="no attribute 'supprt'"):
        ep.supprt  # noqa: B018
