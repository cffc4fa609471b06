"""The case-study recipe (:mod:`nanonb.bench.casestudy`) and the ``calisol`` / ``lnpdb`` protocols.

Synthetic tests check the recipe's guards; tests marked ``data`` use the real files
(``shared_data_dir`` fixture) to check the splits and run both protocols end to end (``--quick``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tabular import _ConstantPooled, _linear_taskset

from nanonb.baselines.tabular import PooledOffset
from nanonb.bench import calisol, casestudy, lnpdb
from nanonb.bench.run import PROTOCOLS
from nanonb.bench.schema import SCHEMA_KEYS, OptionError, format_table
from nanonb.evaluation import Named, spearman, top_recall


# ---------------------------------------------------------------------- metrics and episodes of the case studies
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
    methods = [PooledOffset(pooled), Named(PooledOffset(pooled), "copy")]
    df = casestudy.evaluate_episodes(methods, ts, shots=(3, 5), n_episodes=3, metrics=["mae", "spearman"], seed=4)
    assert len(df) == 2 * len(ts) * 2 * 3
    a = df[df.method == "const+offset"].reset_index(drop=True)
    b = df[df.method == "copy"].reset_index(drop=True)
    assert np.allclose(a["mae"], b["mae"])
    assert set(df.columns) >= {"method", "kind", "task", "k", "episode", "mae", "spearman", "n_query"}


def test_check_disjoint_catches_a_leaky_split():
    ts = _linear_taskset()
    train, test = ts.select(ts.names[:4]), ts.select(ts.names[3:])
    with pytest.raises(AssertionError, match="tasks in both"):
        casestudy.check_disjoint(train, test, None)
    train, test = ts.select(ts.names[:3]), ts.select(ts.names[3:])  # salt0..2 appear on both sides
    with pytest.raises(AssertionError, match="groups in both"):
        casestudy.check_disjoint(train, test, lambda t: t.groups[0])


# ---------------------------------------------------------------------- real data: splits and protocols
@pytest.fixture(scope="module")
def calisol_ts(shared_data_dir):
    from nanonb.data.calisol import calisol_taskset

    return calisol_taskset(data_dir=shared_data_dir)


@pytest.mark.data
def test_leave_salt_out_folds_exclude_held_out_salts(calisol_ts):
    splits = calisol.calisol_splits(calisol_ts, n_folds=5, seed=0)
    folds = splits["leave-salt-out"]
    assert len(folds) == 5
    seen = []
    for train, test in folds:
        assert not {t.groups[0] for t in train} & {t.groups[0] for t in test}
        assert hasattr(train, "feature_mean") and hasattr(test, "feature_std")
        seen += test.names
    assert sorted(seen) == sorted(calisol_ts.names)  # every task is tested exactly once
    (train, test), = splits["random-task"]
    assert not set(train.names) & set(test.names)
    assert len(test) == round(0.3 * len(calisol_ts))


@pytest.mark.data
def test_protocol_meta_trains_without_held_out_salts(shared_data_dir, monkeypatch):
    """Spy on what the protocol fits and evaluates: no held-out salt ever reaches meta-training."""
    fitted, tested = [], []
    real_build, real_eval = casestudy.build_meta_learner, casestudy.evaluate_episodes

    def spy_build(spec, train, *a, **k):
        fitted.append({t.groups[0] for t in train})
        return real_build(spec, train, *a, **k)

    def spy_eval(methods, test, *a, **k):
        tested.append({t.groups[0] for t in test})
        return real_eval(methods, test, *a, **k)

    monkeypatch.setattr(casestudy, "build_meta_learner", spy_build)
    monkeypatch.setattr(casestudy, "evaluate_episodes", spy_eval)
    res = calisol.run_calisol(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None,
                         splits=("leave-salt-out",), max_folds=2, meta=[casestudy.MetaSpec("m", n_iterations=2,
                                                                                   meta_batch_size=1)],
                         baselines=("pooled-gbm",), shots=(5,), n_episodes=1)
    assert len(tested) == 2 and len(fitted) == 2
    for train_salts, test_salts in zip(fitted, tested):
        assert test_salts and not train_salts & test_salts
    assert {r["split"] for r in res["results"]} == {"leave-salt-out"}


def _check_schema(res: dict, protocol: str, metrics: set[str], splits: set[str]) -> None:
    assert res["protocol"] == protocol
    assert res["results"], "no result rows"
    for row in res["results"]:
        assert all(k in row for k in SCHEMA_KEYS)
        assert row["kind"] in ("meta", "baseline")
        assert np.isfinite(row["mean"]) and row["n_tasks"] >= 1
    assert {r["metric"] for r in res["results"]} == metrics
    assert {r["split"] for r in res["results"]} == splits
    assert any(r["kind"] == "meta" for r in res["results"])
    json.dumps(res, default=str)  # serialisable
    assert "runtime_s" in res and res["config"]["quick"] is True
    assert format_table(res)


@pytest.mark.data
@pytest.mark.slow
def test_calisol_quick_protocol_end_to_end(shared_data_dir):
    assert PROTOCOLS["calisol"] == "nanonb.bench.calisol:run_calisol"
    res = calisol.run_calisol(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None)
    _check_schema(res, "calisol", {"mae"}, {"leave-salt-out", "random-task"})
    methods = {r["method"] for r in res["results"]}
    assert {"fomaml-vtf", "fomaml-mlp", "vtf-fit", "gp", "pooled-gbm+offset", "residual-gp",
            "pooled-mlp+finetune"} <= methods
    assert all(r["mean"] < 5 for r in res["results"])  # log10 k errors, not garbage


@pytest.mark.data
@pytest.mark.slow
def test_lnpdb_quick_protocol_end_to_end(shared_data_dir):
    assert PROTOCOLS["lnpdb"] == "nanonb.bench.lnpdb:run_lnpdb"
    res = lnpdb.run_lnpdb(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None, max_folds=None,
                          fold_ids=(1,))  # one outer fold, not the first: fold_ids reaches the fold loop
    _check_schema(res, "lnpdb", {"spearman", "top10_recall"}, {"leave-study-out"})
    assert list(res["folds"]) == ["leave-study-out/1"] and list(res["config"]["fold_ids"]) == [1]
    methods = {r["method"] for r in res["results"]}
    assert {"fomaml-mlp", "rf-support", "random", "pooled-gbm+recal", "residual-gp"} <= methods
    for f in res["folds"].values():
        assert f["n_test"] >= 1
    rows = [r for r in res["results"] if r["metric"] == "spearman"]
    assert all(-1 <= r["mean"] <= 1 for r in rows)


def test_drop_low_targets_keeps_loader_attributes():
    ts = _linear_taskset()
    ts.feature_mean, ts.feature_std = np.zeros(3), np.ones(3)
    low = float(np.median(np.concatenate([t.targets for t in ts])))
    out = casestudy.drop_low_targets(ts, low)
    assert all((t.targets >= low).all() for t in out)
    assert out.feature_mean is ts.feature_mean and out.feature_std is ts.feature_std
    assert casestudy.drop_low_targets(ts, None) is ts
    pooled = casestudy.pooled_view(ts)
    assert len(pooled) == 1 and len(pooled[0]) == sum(len(t) for t in ts)
    assert pooled.feature_mean is ts.feature_mean


def test_protocols_reject_unknown_options_before_loading_data():
    with pytest.raises(OptionError, match=r"unknown option\(s\) \['shot'\] for CalisolConfig; valid keys: .*'shots'"):
        calisol.run_calisol(quick=True, shot=[5])
    with pytest.raises(OptionError, match="LNPDBConfig"):
        lnpdb.run_lnpdb(quick=True, holdout="x")


# ---------------------------------------------------------------------------- nested selection
class _Shift:
    """A 'learner' predicting the support mean plus a fixed shift (shift 0 is the better one)."""

    kind = "meta"

    def __init__(self, shift):
        self.shift = shift
        self.fitted_on: list[str] = []

    def fit(self, train):
        self.fitted_on = sorted({t.groups[0] for t in train})
        return self

    def adapt(self, support):
        m = float(np.mean(support.targets)) + self.shift
        return type("P", (), {"predict": lambda _s, q: np.full(len(q), m)})()


def _grouped_split():
    """``(train, test, fitted, make)``: nine one-group tasks split 6 / 3 by group; ``make(shift)`` is a
    fitter of :class:`_Shift` learners that records every fit in ``fitted``."""
    import dataclasses

    ts = _linear_taskset(n_tasks=9, n=30, d=2, seed=3)
    ts = ts.with_tasks([dataclasses.replace(t, groups=(f"g{i}",)) for i, t in enumerate(ts)])
    train, test = ts.group_kfold(3, key=lambda t: t.groups[0])[0]
    fitted: list[_Shift] = []

    def make(shift):
        def fit(tr):
            fitted.append(_Shift(shift).fit(tr))
            return fitted[-1]
        return fit
    return train, test, fitted, make


def test_nested_select_chooses_on_inner_meta_train_groups_and_refits_on_all():
    from nanonb.bench.casestudy_gp import PerShot, nested_select

    train, test, fitted, make = _grouped_split()

    methods, rec = nested_select({"good": make(0.0), "bad": make(3.0)}, train, lambda t: t.groups[0], shots=(5,),
                                 n_episodes=2, metric="mae", higher_is_better=False, log=lambda *_: None)
    assert rec["chosen"] == {"5": "good"} and rec["scores"]["good"]["5"] < rec["scores"]["bad"]["5"]
    train_groups = {t.groups[0] for t in train}
    assert set(rec["inner_val_groups"]) < train_groups                      # never a test group
    assert not set(rec["inner_val_groups"]) & {t.groups[0] for t in test}
    inner, outer = fitted[:2], fitted[2:]
    assert all(set(f.fitted_on) == train_groups - set(rec["inner_val_groups"]) for f in inner)
    assert all(set(f.fitted_on) == train_groups for f in outer)
    assert [m.name for m in methods] == ["good", "bad", "selected"]
    sel = methods[-1]
    assert isinstance(sel, PerShot) and sel.chosen[5].method is outer[0]
    with pytest.raises(ValueError, match="K = 3"):
        sel.adapt(test[0].subset(range(3)))


def test_nested_select_on_every_inner_split_holds_out_each_meta_train_group_once():
    from nanonb.bench.casestudy_gp import nested_select

    train, test, fitted, make = _grouped_split()

    kw = dict(shots=(5,), n_episodes=2, metric="mae", higher_is_better=False, log=lambda *_: None)
    methods, rec = nested_select({"good": make(0.0), "bad": make(3.0)}, train, lambda t: t.groups[0],
                                 n_select_folds=3, **kw)
    train_groups = {t.groups[0] for t in train}
    assert set(rec["inner_val_groups"]) == train_groups and len(rec["inner_folds"]) == 3
    assert sorted(g for f in rec["inner_folds"] for g in f) == sorted(train_groups)  # each held out once
    inner = fitted[:6]
    assert [set(f.fitted_on) for f in inner[::2]] == [train_groups - set(f) for f in rec["inner_folds"]]
    assert rec["chosen"] == {"5": "good"} and len(rec["scores_per_fold"]) == 3
    # the pooled score is the mean over all held-out tasks, so between the per-split scores
    per = [f["good"]["5"] for f in rec["scores_per_fold"]]
    assert min(per) <= rec["scores"]["good"]["5"] <= max(per)
    with pytest.raises(ValueError, match="n_select_folds"):
        nested_select({"good": make(0.0)}, train, lambda t: t.groups[0], n_select_folds=4, **kw)


def test_merge_folds_recomputes_rows_over_all_folds():
    import pandas as pd

    from nanonb.bench.casestudy import merge_folds
    from nanonb.bench.schema import make_result

    frames = [pd.DataFrame({"split": "s", "method": "m", "kind": "meta", "task": [t] * 2, "k": 5, "episode": [0, 1],
                            "mae": v, "adapt_s": 0.1, "fold": f"s/{i}"})
              for i, (t, v) in enumerate([("a", [1.0, 3.0]), ("b", [4.0, 4.0])])]
    results = [make_result("calisol", [], 10.0, {"fold_ids": [i]}, timings={f"s/{i} x": 1.0}, leakage={f"s/{i}": "ok"},
                           folds={f"s/{i}": {"test_groups": [t]}}, mean_adapt_predict_s={})
               for i, t in enumerate("ab")]
    res = merge_folds(results, frames, ["mae"])
    (row,) = res["results"]
    assert row["n_tasks"] == 2 and row["mean"] == pytest.approx(3.0)  # per-task means 2 and 4
    assert set(res["folds"]) == {"s/0", "s/1"} and res["config"]["fold_ids"] == [0, 1]
    assert res["runtime_s"] == pytest.approx(20.0)


def test_lnpdb_candidates_stack_reuses_the_tanimoto_gp_and_filter_works():
    from nanonb.bench.casestudy_gp import lnpdb_candidates
    from nanonb.learners.stack import StackLearner
    from nanonb.tasks import Task, TaskSet

    rng = np.random.default_rng(0)
    tasks = [Task(f"t{i}", np.hstack([rng.poisson(0.8, (20, 6)), rng.normal(size=(20, 2))]), rng.normal(size=20),
                  groups=(f"s{i}",)) for i in range(4)]
    ts = TaskSet(tasks, feature_names=[f"fp_{j}" for j in range(6)] + ["a", "b"])
    cfg = lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, candidates=("tanimoto-gp", "stack"))
    cands = lnpdb_candidates(cfg, 0)
    assert sorted(cands) == ["stack", "tanimoto-gp"]
    gp = cands["tanimoto-gp"](ts)
    stack = cands["stack"](ts)
    assert isinstance(stack, StackLearner) and stack.members[0] is gp  # fitted once, shared
    assert list(gp.fp_columns) == list(range(6))
    assert cands["stack"](ts.select(ts.names[:3])).members[0] is not gp  # another meta-train set: refitted
    assert stack.adapt(ts[0].subset(range(8))).predict(ts[0].subset(range(8, 20))).shape == (12,)
    weighted = lnpdb_candidates(lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, stack_gp_weights=(0.25, 0.5),
                                                  candidates=("stack", "stack-gp0.25")), 0)
    assert sorted(weighted) == ["stack", "stack-gp0.25"]
    assert weighted["stack-gp0.25"](ts).weights.tolist() == [0.25, 0.75]
    assert weighted["stack"](ts).weights.tolist() == [0.5, 0.5]
    from nanonb.baselines.tabular import SupportExtraTrees, SupportRF

    trees = lnpdb_candidates(lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5,
                                               candidates=("tanimoto-gp", "et-support", "stack-et", "stack3")), 0)
    assert sorted(trees) == ["et-support", "stack-et", "stack3", "tanimoto-gp"]
    gp = trees["tanimoto-gp"](ts)
    three, two = trees["stack3"](ts), trees["stack-et"](ts)
    assert [type(m) for m in three.members] == [type(gp), SupportRF, SupportExtraTrees] and three.members[0] is gp
    assert np.allclose(three.weights, 1 / 3) and three.scale == "zscore"
    assert [type(m) for m in two.members] == [type(gp), SupportExtraTrees] and two.weights.tolist() == [0.5, 0.5]
    assert three.adapt(ts[0].subset(range(8))).predict(ts[0].subset(range(8, 20))).shape == (12,)
    pooled = lnpdb_candidates(lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, gbm_iter=5, candidates=(
        "tanimoto-gp+pooled", "stack-pooled", "stack3-pooled")), 0)
    gpp = pooled["tanimoto-gp+pooled"](ts)
    two, three = pooled["stack-pooled"](ts), pooled["stack3-pooled"](ts)
    assert two.members[0] is gpp and three.members[0] is gpp and gpp.name == "tanimoto-gp+pooled"  # fitted once
    assert [type(m) for m in three.members[1:]] == [SupportRF, SupportExtraTrees] and type(two.members[1]) is SupportRF
    with pytest.raises(ValueError, match="unknown LNPDB candidates"):
        lnpdb_candidates(lnpdb.LNPDBConfig(candidates=("stak",)), 0)


def test_calisol_candidates_filter_and_the_fit_memo_shared_with_the_stack(monkeypatch):
    from nanonb.bench.casestudy_gp import calisol_candidates

    cands = calisol_candidates(calisol.CalisolConfig(candidates=("dkt-vtf-rbf", "pooled-vtf+finetune", "stack")), 0)
    assert sorted(cands) == ["dkt-vtf-rbf", "pooled-vtf+finetune", "stack"]
    with pytest.raises(ValueError, match="unknown CALiSol candidates"):
        calisol_candidates(calisol.CalisolConfig(candidates=("stak",)), 0)
    # stack weights: one stack per weight of dkt-vtf-rbf, sharing the members' fits (stand-in fitters)
    from nanonb.bench import casestudy_gp as cg

    class _Fit:
        def __init__(self, *a, **k):
            self.n_fits = 0

        def fit(self, tr):
            self.n_fits += 1
            return self

    monkeypatch.setattr(cg, "MeanDKT", _Fit)
    monkeypatch.setattr(cg, "_fit_pooled", lambda *a, **k: _Fit())
    monkeypatch.setattr(cg, "vtf_model_kwargs", lambda *a, **k: {})
    weighted = calisol_candidates(calisol.CalisolConfig(stack_gp_weights=(0.25, 0.5),
                                                        candidates=("stack", "stack-gp0.25")), 0)
    assert sorted(weighted) == ["stack", "stack-gp0.25"]
    tr = _linear_taskset(n_tasks=3)
    quarter, half = weighted["stack-gp0.25"](tr), weighted["stack"](tr)
    assert quarter.weights.tolist() == [0.25, 0.75] and half.weights.tolist() == [0.5, 0.5]
    assert quarter.scale == "mean" and quarter.members[0] is half.members[0] and quarter.members[0].n_fits == 1
    three = calisol_candidates(calisol.CalisolConfig(candidates=("dkt-vtf-jac", "stack3", "stack3-eq")), 0)
    s3, eq = three["stack3"](tr), three["stack3-eq"](tr)
    assert s3.weights.tolist() == [0.25, 0.25, 0.5] and np.allclose(eq.weights, 1 / 3) and s3.scale == "mean"
    assert three["dkt-vtf-jac"](tr) is s3.members[1] is eq.members[1] and s3.members[1].n_fits == 1  # shared fit
    # the memo: a stand-in fitter shows the stack reuses the member fitted on the same meta-train set
    from nanonb.bench.memo import once_per_trainset

    calls = []
    once = once_per_trainset(lambda tr: calls.append(tuple(tr.names)) or object())
    ts = _linear_taskset(n_tasks=4)
    a, b = once(ts), once(ts)
    assert a is b and len(calls) == 1
    assert once(ts.select(ts.names[:2])) is not a and len(calls) == 2


@pytest.mark.data
def test_folds_fanned_out_over_two_processes_equal_the_hand_merged_fold_runs(shared_data_dir, tmp_path):
    """``--set workers=2`` gives the rows that ``--set fold_ids=[i]`` run fold by fold and ``merge_folds`` give.

    Exact equality: the same code on the same machine with one thread per process (the thread policy)
    does the same floating-point operations, whichever process runs a fold.
    """
    import pandas as pd

    kw = dict(quick=True, progress=False, data_dir=shared_data_dir, log=lambda *_: None, splits=("leave-salt-out",),
              max_folds=2, meta=[casestudy.MetaSpec("m", n_iterations=2, meta_batch_size=1)],
              baselines=("pooled-gbm",), shots=(5,), n_episodes=1, select=False)
    fanned = calisol.run_calisol(workers=2, **kw)
    parts = [calisol.run_calisol(fold_ids=(i,), episodes_path=tmp_path / f"ep{i}.csv", **kw) for i in (0, 1)]
    frames = [pd.read_csv(tmp_path / f"ep{i}.csv", float_precision="round_trip") for i in (0, 1)]
    merged = casestudy.merge_folds(parts, frames, ["mae"])
    assert fanned["config"]["workers"] == 2 and len(fanned["folds"]) == 2
    assert fanned["results"] == merged["results"]
    assert fanned["folds"] == merged["folds"] and fanned["leakage"] == merged["leakage"]
    assert fanned["timings"].keys() == merged["timings"].keys()


def test_lnpdb_candidates_pooled_mean_gp_and_its_stacks_share_one_gbm():
    from nanonb.baselines.pooled_mean_gp import PooledMeanGP
    from nanonb.baselines.tabular import PooledTrees, SupportExtraTrees, SupportRF
    from nanonb.bench.casestudy_gp import lnpdb_candidates
    from nanonb.tasks import Task, TaskSet

    rng = np.random.default_rng(1)
    tasks = []
    for i in range(4):
        x = np.hstack([rng.poisson(0.8, (20, 6)), rng.normal(size=(20, 2))])
        tasks.append(Task(f"t{i}", x, rng.normal(size=20), groups=(f"s{i}",), descriptors=x))
    ts = TaskSet(tasks, feature_names=[f"fp_{j}" for j in range(6)] + ["a", "b"])
    cfg = lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, gbm_iter=5,
                            candidates=("tanimoto-gp+pooled", "gp+pooled", "stack-gp+pooled", "stack4-pooled"))
    cands = lnpdb_candidates(cfg, 0)
    assert sorted(cands) == ["gp+pooled", "stack-gp+pooled", "stack4-pooled", "tanimoto-gp+pooled"]
    tgp = cands["tanimoto-gp+pooled"](ts)
    gp = cands["gp+pooled"](ts)
    assert isinstance(gp, PooledMeanGP) and gp.a == 1.0 and gp.name == "gp+pooled"
    assert gp.mean_model is tgp.mean_model  # the GBM on the whole set, fitted once
    fresh = PooledTrees("gbm", max_iter=5, seed=0).fit(ts)
    assert np.array_equal(fresh.predict(ts[0]), gp.mean_model.predict(ts[0]))  # sharing changes no prediction
    two, four = cands["stack-gp+pooled"](ts), cands["stack4-pooled"](ts)
    assert two.members[0] is gp and type(two.members[1]) is SupportRF and two.weights.tolist() == [0.5, 0.5]
    assert four.members[0] is tgp and four.members[3] is gp and np.allclose(four.weights, 0.25)
    assert [type(m) for m in four.members[1:3]] == [SupportRF, SupportExtraTrees]
    assert four.adapt(ts[0].subset(range(8))).predict(ts[0].subset(range(8, 20))).shape == (12,)


def test_lnpdb_candidates_bayes_scale_gp_its_stacks_and_the_support_cv_stacks():
    from nanonb.baselines.pooled_mean_gp import PooledMeanGP
    from nanonb.baselines.tabular import SupportExtraTrees, SupportRF
    from nanonb.bench.casestudy_gp import lnpdb_candidates
    from nanonb.tasks import Task, TaskSet

    rng = np.random.default_rng(2)
    tasks = [Task(f"t{i}", np.hstack([rng.poisson(0.8, (20, 6)), rng.normal(size=(20, 2))]), rng.normal(size=20),
                  groups=(f"s{i}",)) for i in range(4)]
    ts = TaskSet(tasks, feature_names=[f"fp_{j}" for j in range(6)] + ["a", "b"])
    names = ("tanimoto-gp+pooled", "tanimoto-gp+pooled-bs", "stack-pooled-bs", "stack3-pooled-bs", "stack4-pooled-bs")
    cands = lnpdb_candidates(lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, gbm_iter=5, candidates=names), 0)
    assert sorted(cands) == sorted(names)
    plain, bs = cands["tanimoto-gp+pooled"](ts), cands["tanimoto-gp+pooled-bs"](ts)
    assert bs.bayes_scale and not plain.bayes_scale and bs.name == "tanimoto-gp+pooled-bs"
    assert hasattr(bs.hyper, "log_s_a") and not hasattr(plain.hyper, "log_s_a")
    two, three, four = (cands[n](ts) for n in ("stack-pooled-bs", "stack3-pooled-bs", "stack4-pooled-bs"))
    assert two.members[0] is bs and three.members[0] is bs and four.members[0] is bs  # fitted once, shared
    assert [type(m) for m in four.members[1:]] == [SupportRF, SupportExtraTrees, PooledMeanGP]
    assert [type(m) for m in three.members[1:]] == [SupportRF, SupportExtraTrees] and type(two.members[1]) is SupportRF
    assert np.allclose(four.weights, 0.25) and np.allclose(three.weights, 1 / 3) and two.scale == "zscore"
    assert [m.name for m in (two, three, four)] == ["stack-pooled-bs", "stack3-pooled-bs", "stack4-pooled-bs"]
    assert four.adapt(ts[0].subset(range(8))).predict(ts[0].subset(range(8, 20))).shape == (12,)
    cvs = lnpdb_candidates(lnpdb.LNPDBConfig(gp_iterations=2, rf_trees=5, gbm_iter=5, candidates=(
        "stack3-pooled-bs", "stack3-pooled-bs-cv", "stack-cv")), 0)
    plain, cv = cvs["stack3-pooled-bs"](ts), cvs["stack3-pooled-bs-cv"](ts)
    assert cv.support_cv == 3 and plain.support_cv == 0 and cv.name == "stack3-pooled-bs-cv"
    assert cv.members[0] is plain.members[0] and np.allclose(cv.weights, plain.weights)  # the same fitted GP
    assert cvs["stack-cv"](ts).support_cv == 3
    w = cv.adapt(ts[0].subset(range(9))).weights
    assert w.shape == (3,) and np.isclose(w.sum(), 1.0)
