"""The episode loop: same episodes for every method, pluggable metrics/predict/seeds, batching, zero-shot."""

import numpy as np
import pytest

from nanonb.evaluation import (
    METRICS,
    Named,
    episode_seed,
    evaluate,
    mae,
    rmse,
    spearman,
    summarize,
    table,
    top_recall,
)
from nanonb.tasks import Task, TaskSet


def tasks(n_tasks=4, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return TaskSet([Task(f"t{i}", rng.normal(size=(n, 2)), rng.normal(size=n) + 3.0, groups=(f"g{i}",))
                    for i in range(n_tasks)])


class Shift:
    """Predicts 0.5 x0 + support mean (0 without support)."""

    kind = "meta"

    def __init__(self, name="shift"):
        self.name = name

    def adapt(self, support, bias: float = 0.0):
        c = bias if support is None or len(support) == 0 else float(support.targets.mean()) + bias

        class _P:
            def predict(self, q):
                return 0.5 * q.inputs[:, 0] + c

        return _P()


class Batched(Shift):
    def __init__(self):
        super().__init__("batched")
        self.calls = 0

    def predict_many(self, supports, queries):
        self.calls += 1
        return [self.adapt(s).predict(q) for s, q in zip(supports, queries)]


def test_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert mae(y + 1, y) == 1.0 and rmse(y + 2, y) == 2.0
    assert mae((y + 1, np.ones(4)), y) == 1.0  # a (mean, std) pair is scored on its mean
    assert spearman(y, y) == pytest.approx(1.0) and spearman(np.ones(4), y) == 0.0
    assert top_recall(y, y, frac=0.25) == 1.0 and top_recall(-y, y, frac=0.25) == 0.0
    assert set(METRICS) == {"mae", "rmse", "spearman", "top10_recall"}


def test_rows_seeds_and_summaries():
    ts = tasks()
    df = evaluate([Shift()], ts, shots=(1, 5), n_episodes=3, k_query=7, seed=2, progress=False)
    assert list(df.columns) == ["method", "kind", "task", "k", "episode", "mae", "rmse", "n_query", "adapt_s"]
    assert len(df) == 4 * 2 * 3 and (df["n_query"] == 7).all()
    row = df.iloc[4]
    ep = ts.episode(row.task, row.k, 7, seed=episode_seed(2, row.task, row.k, row.episode))
    assert row.mae == mae(Shift().adapt(ep.support).predict(ep.query), ep.query.targets)
    s = summarize(df, "mae", scale=1000.0)
    assert list(s["n_tasks"]) == [4, 4] and table(s).shape == (1, 2)


def test_predict_many_equals_per_episode_and_order():
    ts = tasks()
    b = Batched()
    kw = dict(shots=(2, 4), n_episodes=3, seed=1, progress=False, metrics=["mae", "spearman", "top10_recall"])
    by_episode = evaluate([Shift("batched")], ts, **kw)
    batched = evaluate([b], ts, **kw)
    assert b.calls == 4 * 2  # one call per (task, k)
    cols = ["method", "task", "k", "episode", "mae", "spearman", "top10_recall"]
    assert by_episode[cols].equals(batched[cols])
    two = evaluate([Shift("a"), Shift("b")], ts, **kw, order="method")
    assert list(two["method"][:6]) == ["a"] * 3 + ["b"] * 3
    two = evaluate([Shift("a"), Shift("b")], ts, **kw)
    assert list(two["method"][:4]) == ["a", "b", "a", "b"]


def test_zero_shot_include_extra_columns_predictions():
    ts = tasks(2)
    methods = [Named(Shift(), "zs", zero_shot=True), Named(Shift(), "no-zs", "baseline", zero_shot=False)]
    df, preds = evaluate(methods, ts, shots=(0, 3), n_episodes=2, progress=False, columns={"fold": 1},
                         include=lambda m, k: k > 0 or m.zero_shot,
                         extra=lambda m, task, ep, pred: {"n_negative": int((pred < 0).sum())},
                         return_predictions=True)
    zero = df[df.k == 0]
    assert list(zero["method"]) == ["zs", "zs"] and (zero["n_query"] == 20).all()  # one episode, whole task
    assert (df["fold"] == 1).all() and "n_negative" in df
    assert len(preds["zs"]) == 2 * 20 + 2 * 2 * 17 and len(preds["no-zs"]) == 2 * 2 * 17


def test_custom_predict_metric_dict_and_errors():
    ts = tasks(2)

    def predict(m, task, ep):
        mean = m.adapt(ep.support).predict(ep.query)
        return mean, np.ones_like(mean)

    def width(pred, y, seed=0):
        return {"mean_std": float(np.mean(pred[1])), "seed_seen": seed}

    df = evaluate([Shift()], ts, shots=(2,), n_episodes=2, progress=False, predict=predict,
                  metrics={"w": width, "mae": mae}, seed_fn=lambda seed, task, k, e: 100 + e)
    assert (df["mean_std"] == 1.0).all() and list(df["seed_seen"]) == [100, 101, 100, 101]
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluate([Shift()], ts, shots=(2,), metrics=["nope"], progress=False)

    class Bad(Shift):
        def adapt(self, support):
            class _P:
                def predict(self, q):
                    return np.full(len(q), np.nan)

            return _P()

    with pytest.raises(RuntimeError, match="non-finite"):
        evaluate([Bad("bad")], ts, shots=(2,), n_episodes=1, progress=False)


def test_named_passes_adapt_kwargs_and_delegates():
    base = Shift()
    base.extra_attribute = 7
    named = Named(base, "shift+1", adapt_kwargs={"bias": 1.0})
    ts = tasks(1)
    ep = ts.episode(ts[0], 3, seed=0)
    np.testing.assert_allclose(named.adapt(ep.support).predict(ep.query), base.adapt(ep.support).predict(ep.query) + 1,
                               rtol=1e-6)
    assert named.kind == "meta" and named.extra_attribute == 7 and named.name == "shift+1"


def test_extra_runs_right_after_its_episodes_predict():
    ts = tasks(2)
    last = {}

    def predict(m, task, ep):
        last["seed"] = ep.seed
        return m.adapt(ep.support).predict(ep.query)

    df = evaluate([Shift()], ts, shots=(2,), n_episodes=3, progress=False, predict=predict,
                  extra=lambda m, task, ep, pred: {"same": last["seed"] == ep.seed})
    assert df["same"].all()
