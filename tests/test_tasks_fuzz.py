"""Fuzz ``TaskSet.from_frame`` and ``TaskSet.episode`` with random frames (Hypothesis).

Frames mix NaN, inf, None, text, numeric text, booleans, duplicate column names, task ids of mixed
types and tasks too small to keep. Every call must either give a valid result that is exactly the
table (no row lost, moved or changed) or raise ``ValueError``/``TypeError`` with a message; never
another exception, and the frame is never modified. Derandomized and without an example database,
so CI runs the same examples every time (about 10 s).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nanonb.tasks import TaskSet

#: ``NANONB_FUZZ_EXAMPLES=5000`` runs a longer, random (not derandomized) search locally.
_N = int(os.environ.get("NANONB_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_N or 300, deadline=None, derandomize=not _N, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TASK_IDS = st.sampled_from(["a", "b", "c", "1", 1, 2, None, np.nan])
GROUPS = st.sampled_from(["A", "B", "C", None, np.nan])
GOOD = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
ODD = st.one_of(st.just(np.nan), st.just(np.inf), st.just(-np.inf), st.just(1e300), st.none(),
                st.just("abc"), st.just("1.5"), st.just(""), st.booleans(), st.integers(-5, 5))
CELL = st.one_of(GOOD, GOOD, GOOD, ODD)  # mostly clean numbers, so valid frames occur too


def _dirty(draw, p_dirty: float) -> bool:
    """True with probability about ``p_dirty`` (clean is the simplest case Hypothesis shrinks to)."""
    return draw(st.sampled_from(range(100))) < round(100 * p_dirty)


@st.composite
def frames(draw, p_dirty: float = 0.3):
    """(frame, features, groups, min_points): each kind of dirt is drawn on its own."""
    n = draw(st.integers(0, 20))
    ids_s = TASK_IDS if _dirty(draw, p_dirty) else st.sampled_from(["a", "b", "c"])
    g_s = GROUPS if _dirty(draw, p_dirty) else st.sampled_from(["A", "B"])
    x1_s = CELL if _dirty(draw, p_dirty) else GOOD
    y_s = CELL if _dirty(draw, p_dirty) else GOOD
    df = pd.DataFrame({
        "t": pd.Series(draw(st.lists(ids_s, min_size=n, max_size=n)), dtype=object),
        "g": pd.Series(draw(st.lists(g_s, min_size=n, max_size=n)), dtype=object),
        "x1": pd.Series(draw(st.lists(x1_s, min_size=n, max_size=n)), dtype=object),
        "x2": draw(st.lists(GOOD, min_size=n, max_size=n)),
        "y": pd.Series(draw(st.lists(y_s, min_size=n, max_size=n)), dtype=object),
    })
    if draw(st.booleans()):  # typed columns where they allow it, as a real table would have
        for col in ("x1", "y"):
            try:
                df[col] = df[col].astype(float)
            except (TypeError, ValueError):
                pass
    if draw(st.booleans()):
        df = df.astype({"x2": draw(st.sampled_from([float, np.float32, int, object]))})
    if _dirty(draw, p_dirty / 3):  # a second column with an existing name
        dup = draw(st.sampled_from(["x1", "x2", "y", "g", "t"]))
        df = pd.concat([df, df[[dup]]], axis=1)
    if _dirty(draw, p_dirty / 3):
        features = draw(st.lists(st.sampled_from(["x1", "x2", "y"]), min_size=0, max_size=3))
    else:
        features = draw(st.sampled_from([["x1"], ["x2"], ["x1", "x2"], ["x2", "x1"]]))
    groups = draw(st.sampled_from([None, "g", ["g"]]))
    min_points = draw(st.sampled_from([1, 1, 2, 3, 0, -1 if _dirty(draw, p_dirty / 3) else 1]))
    return df, features, groups, min_points


def _expected_tasks(df: pd.DataFrame, min_points: int) -> dict[str, np.ndarray]:
    """Independent oracle: task name -> positions of its rows, for tasks with >= min_points rows."""
    out: dict[str, list[int]] = {}
    for pos, v in enumerate(df["t"].tolist()):
        out.setdefault(str(v), []).append(pos)
    return {k: np.array(v) for k, v in out.items() if len(v) >= min_points}


def _check_result(ts: TaskSet, df: pd.DataFrame, features, groups, min_points) -> None:
    # a valid result is only possible for a clean request
    used = {"t", "y", *features} | ({"g"} if groups else set())
    assert all(int((df.columns == c).sum()) == 1 for c in used)
    assert len(features) == len(set(features)) > 0 and "y" not in features
    assert not df["t"].isna().any()
    expected = _expected_tasks(df, min_points)
    assert sorted(ts.names) == sorted(expected)
    for name, pos in expected.items():
        task = ts[name]
        rows = df.iloc[pos]
        x = np.array([[float(v) for v in rows[c].tolist()] for c in features], dtype=np.float32).T
        np.testing.assert_array_equal(task.inputs, x)
        np.testing.assert_array_equal(task.targets, np.array([float(v) for v in rows["y"].tolist()]))
        assert np.isfinite(task.inputs).all() and np.isfinite(task.targets).all()
        if groups is None:
            assert task.groups == (name,)
        else:
            assert not rows["g"].isna().any()
            assert task.groups == tuple(sorted({str(v) for v in rows["g"].tolist()}))
    assert ts.feature_names == list(features)


@FUZZ
@given(frames())
def test_from_frame_valid_or_clear_error(case):
    df, features, groups, min_points = case
    before = df.copy(deep=True)
    try:
        ts = TaskSet.from_frame(df, task="t", features=features, target="y", groups=groups,
                                min_points=min_points)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), "an error without a message"
        event(f"{type(exc).__name__}: {str(exc)[:30]}")
        ts = None
    pd.testing.assert_frame_equal(df, before)  # never modified, whatever happened
    if ts is not None:
        event("valid TaskSet")
        _check_result(ts, df, features, groups, min_points)


K = st.one_of(st.integers(1, 3), st.integers(1, 3), st.integers(-2, 16), st.floats(-2, 16),
             st.sampled_from(["2", None, (5, 1), [2], True, np.int64(2)]))


@FUZZ
@given(frames(p_dirty=0.1), K, st.one_of(st.none(), st.none(), K), st.integers(0, 2**31 - 1))
def test_episode_valid_or_clear_error(case, k_support, k_query, seed):
    df, features, groups, min_points = case
    try:
        ts = TaskSet.from_frame(df, task="t", features=features, target="y", groups=groups,
                                min_points=min_points)
    except (ValueError, TypeError):
        return
    for task in ts:
        try:
            ep = ts.episode(task.name, k_support, k_query, seed=seed)
        except (ValueError, TypeError) as exc:
            assert str(exc).strip()
            event(f"episode {type(exc).__name__}")
            continue
        event("valid episode")
        n = len(task)
        assert isinstance(k_support, (int, np.integer)) and not isinstance(k_support, bool)
        s, q = ep.support_idx, ep.query_idx
        assert len(s) == k_support >= 0 and not np.intersect1d(s, q).size
        assert (ep.support is None) == (k_support == 0)
        assert len(q) == (n - k_support if k_query is None else k_query) >= 1
        assert set(s) | set(q) <= set(range(n))
        np.testing.assert_array_equal(ep.query.inputs, task.inputs[q])
        assert ep.query.groups == task.groups
        if k_support:
            np.testing.assert_array_equal(ep.support.targets, task.targets[s])
            assert ep.support.groups == task.groups


@pytest.mark.parametrize("k", [1, 3])
def test_fuzz_cases_include_valid_frames(k):
    """Guard against a generator that only ever makes bad frames: a clean frame builds."""
    df = pd.DataFrame({"t": list("aaaabbbb"), "g": list("AAAABBBB"), "x1": np.arange(8.0),
                       "x2": np.ones(8), "y": np.arange(8.0)})
    ts = TaskSet.from_frame(df, task="t", features=["x1", "x2"], target="y", groups="g")
    _check_result(ts, df, ["x1", "x2"], "g", 1)
    assert len(ts.episode("a", k).support) == k
