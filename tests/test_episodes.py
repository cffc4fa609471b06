"""The case studies' episode loop and metrics (:mod:`nanonb.episodes`)."""

from __future__ import annotations

import numpy as np
import pytest
from _tabular import _ConstantPooled, _linear_taskset

from nanonb.baselines.tabular import PooledOffset
from nanonb.bench.adaptation import Renamed
from nanonb.episodes import evaluate_episodes, spearman, top_recall


def test_top_recall_perfect_reversed_and_ties():
    y = np.arange(100, dtype=float)
    assert top_recall(y, y) == 1.0
    assert top_recall(-y, y) == 0.0
    # ties at the threshold count as top: 30 points share the best value, n_top = 10
    y_ties = np.concatenate([np.zeros(70), np.ones(30)])
    pred = np.concatenate([np.ones(70), np.zeros(30)])  # ranks the tied best last
    assert top_recall(pred, y_ties) == 0.0
    assert top_recall(y_ties, y_ties) == 1.0
    # a random ranking scores about |true top| / n on average
    rng = np.random.default_rng(0)
    scores = [top_recall(rng.normal(size=100), y_ties, seed=s) for s in range(300)]
    assert np.mean(scores) == pytest.approx(0.3, abs=0.03)


def test_spearman_constant_prediction_is_zero_and_sign_is_right():
    y = np.arange(20, dtype=float)
    assert spearman(np.ones(20), y) == 0.0
    assert spearman(y**3, y) == pytest.approx(1.0)
    assert spearman(-y, y) == pytest.approx(-1.0)


def test_evaluate_episodes_gives_every_method_the_same_episodes():
    ts = _linear_taskset()
    pooled = _ConstantPooled()
    methods = [PooledOffset(pooled), Renamed(PooledOffset(pooled), "copy")]
    df = evaluate_episodes(methods, ts, shots=(3, 5), n_episodes=3, metrics=["mae", "spearman"], seed=4)
    assert len(df) == 2 * len(ts) * 2 * 3
    a = df[df.method == "const+offset"].reset_index(drop=True)
    b = df[df.method == "copy"].reset_index(drop=True)
    assert np.allclose(a["mae"], b["mae"])
    assert set(df.columns) >= {"method", "kind", "task", "k", "episode", "mae", "spearman", "n_query"}
