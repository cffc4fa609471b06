"""The case-study explorer (:mod:`nanonb.widgets.casestudy`) shows the benchmark's episodes."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from _tabular import _ConstantPooled, _linear_taskset  # noqa: E402

from nanonb.baselines.tabular import PooledOffset, RandomRanker  # noqa: E402
from nanonb.episodes import evaluate_episodes  # noqa: E402
from nanonb.widgets.casestudy import case_study_explorer  # noqa: E402


def test_explorer_shows_the_benchmark_episode():
    ts = _linear_taskset(n=60)
    pooled = _ConstantPooled()
    methods = [PooledOffset(pooled), RandomRanker()]
    box = case_study_explorer(methods, ts, kind="lnpdb", shots=(5, 10), n_episodes=3, seed=7)
    r = box.show(task="task2", k=10, episode=1)
    df = evaluate_episodes(methods, ts.select(["task2"]), shots=(10,), n_episodes=3,
                              metrics=["spearman", "top10_recall"], seed=7)
    row = df[(df.method == "const+offset") & (df.episode == 1)].iloc[0]
    assert r["const+offset"]["spearman"] == pytest.approx(row["spearman"])
    assert r["const+offset"]["top10_recall"] == pytest.approx(row["top10_recall"])
    with pytest.raises(ValueError, match="kind"):
        case_study_explorer(methods, ts, kind="alloys")
