"""Tasks, episodes, splits and leakage reports."""

import numpy as np
import pandas as pd
import pytest

from nanonb.tasks import Task, TaskSet, leakage_report


def frame(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i, salt in enumerate(["A", "A", "B", "C", "D", "E"]):
        centre = rng.normal(size=2) * 5
        x = centre + rng.normal(size=(25, 2))
        rows.append(pd.DataFrame({"system": f"s{i}", "salt": salt, "x1": x[:, 0], "x2": x[:, 1],
                                  "y": x.sum(1) + rng.normal(size=25)}))
    return pd.concat(rows, ignore_index=True)


def taskset():
    return TaskSet.from_frame(frame(), task="system", features=["x1", "x2"], target="y", groups="salt")


def test_from_frame_builds_one_task_per_system():
    ts = taskset()
    assert len(ts) == 6 and ts["s0"].groups == ("A",)
    assert ts["s3"].inputs.shape == (25, 2)
    with pytest.raises(KeyError, match="Columns not in the frame"):
        TaskSet.from_frame(frame(), task="system", features=["nope"], target="y")


def test_episodes_deterministic_and_disjoint():
    ts = taskset()
    a, b = ts.episode("s1", 5, seed=7), ts.episode("s1", 5, seed=7)
    c = ts.episode("s1", 5, seed=8)
    assert np.array_equal(a.support_idx, b.support_idx) and np.array_equal(a.query_idx, b.query_idx)
    assert not np.array_equal(a.support_idx, c.support_idx)
    assert len(np.intersect1d(a.support_idx, a.query_idx)) == 0
    assert len(a.support) == 5 and len(a.query) == 20
    assert len(ts.episode("s1", 5, k_query=3, seed=0).query) == 3


def test_meta_batch():
    eps = taskset().meta_batch(4, 5, 10, seed=0)
    assert len(eps) == 4 and len({e.task.name for e in eps}) == 4
    assert [e.seed for e in eps] == [e.seed for e in taskset().meta_batch(4, 5, 10, seed=0)]


def test_bad_input_errors_name_the_problem():
    ts = taskset()
    with pytest.raises(ValueError, match="k_support=25 is too large for task 's0'"):
        ts.episode("s0", 25)
    with pytest.raises(ValueError, match="NaN/inf targets"):
        Task("bad", np.zeros((3, 1)), [1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="empty"):
        Task("empty", np.zeros((0, 1)), [])
    with pytest.raises(ValueError, match="Unknown group"):
        ts.split_by_group("Z")
    with pytest.raises(KeyError, match="No task named"):
        ts["zzz"]


def test_split_by_group_holds_out_every_task_with_the_group():
    train, test = taskset().split_by_group("A")
    assert set(test.names) == {"s0", "s1"}
    assert all("A" not in t.groups for t in train)


def test_group_kfold_never_shares_groups():
    folds = taskset().group_kfold(3)
    seen = set()
    for train, test in folds:
        assert not set(train.all_groups) & set(test.all_groups)
        seen |= set(test.names)
    assert seen == set(taskset().names)


def test_similarity_split_keeps_clusters_together():
    train, test = taskset().split_by_similarity(n_clusters=3, test_clusters=1, seed=0)
    assert len(train) + len(test) == 6 and len(test) >= 1
    assert not set(train.names) & set(test.names)


def test_leakage_report_sees_duplicates_and_distance():
    ts = taskset()
    # a test set that copies train points is flagged as leaky; a far-away one is not
    leaky = Task("copy", ts["s2"].inputs.copy(), ts["s2"].targets, groups=("B",))
    far = Task("far", ts["s2"].inputs + 100.0, ts["s2"].targets, groups=("Q",))
    r1 = leakage_report(ts.select(["s2", "s3"]), leaky)
    r2 = leakage_report(ts.select(["s2", "s3"]), far)
    assert r1.near_duplicate_fraction == 1.0 and r1.ratio < 0.1 and r1.shared_groups == ["B"]
    assert r2.ratio > 10 and r2.near_duplicate_fraction == 0.0
    assert "LEAKY" in str(r1) and "LEAKY" not in str(r2)
    assert r1.unseen_group_fraction == 0.0 and r2.unseen_group_fraction == 1.0


def test_leakage_report_group_split_vs_random_split():
    ts = taskset()
    by_group = leakage_report(*ts.split_by_group(["A", "B"]))
    assert by_group.unseen_group_fraction == 1.0 and not by_group.leaky
    train, test = ts.select(["s0", "s2", "s3", "s4", "s5"]), ts.select(["s1"])  # s1 shares salt A with s0
    assert leakage_report(train, test).unseen_group_fraction == 0.0


def test_splits_keep_loader_attributes():
    ts = taskset()
    ts.feature_mean, ts.feature_std = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    train, test = ts.split_by_group("A")
    for part in (train, test, *ts.group_kfold(3)[0], ts.filter(2)):
        assert np.array_equal(part.feature_mean, ts.feature_mean)
        assert np.array_equal(part.feature_std, ts.feature_std)
