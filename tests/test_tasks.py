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


# ---------------------------------------------------------------------- input validation (issue 16)
def small():
    return pd.DataFrame({"t": ["a", "a", "a", "b", "b", "b"], "g": ["A", "A", "A", "B", "B", "B"],
                         "x1": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "x2": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                         "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})


def test_duplicate_frame_columns_are_refused_not_widened():
    df = pd.concat([small(), small()[["x1"]] * 10], axis=1)  # two columns named "x1"
    with pytest.raises(ValueError, match=r"several columns named \['x1'\].*duplicated"):
        TaskSet.from_frame(df, task="t", features=["x1"], target="y")
    with pytest.raises(ValueError, match=r"features lists \['x1'\] more than once"):
        TaskSet.from_frame(small(), task="t", features=["x1", "x1"], target="y")


def test_target_listed_as_feature_is_a_label_leak():
    with pytest.raises(ValueError, match="target 'y' is also listed in features.*leak"):
        TaskSet.from_frame(small(), task="t", features=["x1", "y"], target="y")


def test_missing_task_ids_and_groups_are_refused():
    df = small()
    df.loc[4, "t"] = np.nan
    with pytest.raises(ValueError, match=r"Task column 't' has 1 missing task ids at rows \[4\].*dropna"):
        TaskSet.from_frame(df, task="t", features=["x1"], target="y")
    df = small()
    df.loc[5, "g"] = None
    with pytest.raises(ValueError, match=r"Group column 'g' has 1 missing labels at rows \[5\].*'nan'"):
        TaskSet.from_frame(df, task="t", features=["x1"], target="y", groups="g")
    with pytest.raises(ValueError, match="group labels .* missing values"):
        Task("a", np.zeros((2, 1)), [1.0, 2.0], groups=("Cu", np.nan))


def test_non_numeric_and_nan_features_name_the_column_and_task():
    df = small().astype({"x2": object})
    df.loc[3, "x2"] = "abc"
    with pytest.raises(TypeError, match=r"feature column 'x2' is not numeric: row 3 \(task 'b'\) holds 'abc'"):
        TaskSet.from_frame(df, task="t", features=["x1", "x2"], target="y")
    df = small()
    df.loc[1, "x2"] = np.inf
    with pytest.raises(ValueError, match=r"feature column 'x2' has 1 .*non-finite.*rows \[1\] \(task\(s\) \['a'\]\)"):
        TaskSet.from_frame(df, task="t", features=["x1", "x2"], target="y")
    df = small()
    df.loc[2, "y"] = np.nan
    with pytest.raises(ValueError, match=r"target column 'y' has 1 missing"):
        TaskSet.from_frame(df, task="t", features=["x1"], target="y")
    # the Task-level message names the column index and the rows
    with pytest.raises(ValueError, match=r"NaN/inf inputs in column\(s\) \[1\] \(rows \[0\]\)"):
        Task("a", np.array([[1.0, np.nan], [1.0, 2.0]]), [1.0, 2.0])


def test_task_ids_that_print_alike_and_empty_results():
    df = small().astype({"t": object})
    df.loc[3:, "t"] = 1
    df.loc[:2, "t"] = "1"
    with pytest.raises(ValueError, match="differ but print alike"):
        TaskSet.from_frame(df, task="t", features=["x1"], target="y")
    with pytest.raises(ValueError, match="No task has min_points=7 rows .*largest of 2 tasks has 3"):
        TaskSet.from_frame(small(), task="t", features=["x1"], target="y", min_points=7)


def test_valid_frames_build_as_before():
    df = small()
    before = df.copy()
    ts = TaskSet.from_frame(df, task="t", features="x1", target="y", groups="g", meta=["x2"])
    pd.testing.assert_frame_equal(df, before)  # the frame is not modified
    assert ts.names == ["a", "b"] and ts["b"].groups == ("B",) and ts.feature_names == ["x1"]
    np.testing.assert_array_equal(ts["b"].inputs, np.array([[0.4], [0.5], [0.6]], dtype=np.float32))
    assert list(ts["a"].meta.columns) == ["x2"]
    # numeric text converts as it always did; a one-string group is one group, not its letters
    df = small().astype({"x1": object})
    df["x1"] = [str(v) for v in small()["x1"]]
    np.testing.assert_array_equal(TaskSet.from_frame(df, task="t", features=["x1"], target="y")["a"].inputs,
                                  ts["a"].inputs)
    assert Task("a", np.zeros((1, 1)), [1.0], groups="Cu-Pt").groups == ("Cu-Pt",)


def test_k_support_zero_is_a_zero_shot_episode():
    ts = taskset()
    ep = ts.episode("s0", 0, k_query=5, seed=3)
    assert ep.support is None and len(ep.support_idx) == 0 and len(ep.query) == 5
    assert len(ts.episode("s0", 0).query) == len(ts["s0"])
    with pytest.raises(ValueError, match=r"k_support must be >= 1, got 0.*zero-shot, is for evaluation"):
        ts.meta_batch(2, 0)


@pytest.mark.parametrize("k, exc, msg", [
    (-2, ValueError, r"k_support must be >= (0|1), got -2"),
    (1.5, TypeError, r"k_support must be an integer, got 1.5 \(float\)"),
    (2.0, TypeError, r"got 2.0 \(float\). Use k_support=2"),
    ("2", TypeError, r"got '2' \(str\)"),
    ((5, 1), TypeError, r"got \(5, 1\) \(tuple\).*MetaConfig.k_support"),
])
def test_bad_k_support_is_named(k, exc, msg):
    ts = taskset()
    with pytest.raises(exc, match=msg):
        ts.episode("s0", k)
    with pytest.raises(exc, match=msg):
        ts.meta_batch(2, k)


def test_bad_k_query_and_meta_batch_size():
    ts = taskset()
    with pytest.raises(ValueError, match="k_query must be >= 1, got 0.*k_query=None"):
        ts.episode("s0", 5, k_query=0)
    with pytest.raises(TypeError, match="k_query must be an integer, got 2.5"):
        ts.episode("s0", 5, k_query=2.5)
    with pytest.raises(ValueError, match="n_tasks must be >= 1, got 0"):
        ts.meta_batch(0, 5)
    with pytest.raises(TypeError, match="task must be a task name, an index or a Task"):
        ts.episode(1.0, 5)


def test_from_arrays_checks_shapes_types_and_ids():
    x, y = np.arange(8.0).reshape(4, 2), np.arange(4.0)
    with pytest.raises(ValueError, match=r"1 task ids are missing \(None/NaN\) at rows \[2\]"):
        TaskSet.from_arrays(x, y, [1.0, 1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match=r"1 task ids are missing"):
        TaskSet.from_arrays(x, y, np.array(["a", "a", None, "b"], dtype=object))
    with pytest.raises(ValueError, match=r"inputs has 4 rows but targets has shape \(3,\)"):
        TaskSet.from_arrays(x, y[:3], ["a"] * 4)
    with pytest.raises(ValueError, match=r"must be 2-D .*reshape\(-1, 1\)"):
        TaskSet.from_arrays(y, y, ["a"] * 4)
    bad = x.astype(object)
    bad[1, 1] = "abc"
    with pytest.raises(TypeError, match=r"inputs must be numbers .*'abc'.*column\(s\) \[1\]"):
        TaskSet.from_arrays(bad, y, ["a"] * 4)
    ts = TaskSet.from_arrays(x, y, ["a", "a", "b", "b"], groups={"b": "Cu"})
    assert ts.names == ["a", "b"] and ts["a"].groups == ("a",) and ts["b"].groups == ("Cu",)
