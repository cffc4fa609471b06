"""The public bring-your-own-data path: a made-up conductivity table (°C, a column named ``molality``, a
log10 S/cm target) -> TaskSet.from_frame(roles=, units=) -> nanonb.recipes -> evaluate(seeds=).

Only public names are imported (no ``_private`` module or name, nothing from nanonb.bench).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanonb import TaskSet, evaluate, recipes, summarize
from nanonb.baselines.nets import SupportMean
from nanonb.physics.vtf import vtf_log10k


def conductivity_frame(n_systems: int = 14, seed: int = 0) -> pd.DataFrame:
    """Made-up electrolytes: VTF law in S/cm, temperatures in °C on a grid, molality in mol/kg."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_systems):
        shift = rng.normal(0.0, 1.0)
        p = {"lnA": 5.6 + 0.3 * rng.normal() + 0.3 * shift, "B": 520.0 + 60.0 * shift, "T0": 158.0 - 8.0 * shift,
             "alpha": 0.8, "beta": -0.7}
        frac = rng.uniform(0.2, 0.8)
        for t_c in np.arange(-30.0, 81.0, 10.0):
            for m in (0.3, 0.6, 1.0, 1.5, 2.0):
                k_ms = 10 ** vtf_log10k(p, [t_c + 273.15], [m])[0] * 10 ** rng.normal(0, 0.01)
                rows.append({"system": f"sys{i:02d}", "salt": f"salt{i % 7}", "solvent": f"solv{i % 3}",
                             "T_C": t_c, "molality": m, "frac_EC": frac,
                             "log_sigma": np.log10(k_ms / 1000.0)})                  # log10(S/cm)
    return pd.DataFrame(rows)


def build(df: pd.DataFrame) -> TaskSet:
    return TaskSet.from_frame(df, task="system", features=["frac_EC"], target="log_sigma",
                              groups=["salt", "solvent"],
                              roles={"temperature": "T_C", "concentration": "molality"},
                              units={"temperature": "degC", "concentration": "mol/kg", "target": "log10 S/cm"})


def test_own_table_trains_the_vtf_learner_through_the_public_path():
    df = conductivity_frame()
    ts = build(df)
    assert ts.feature_names == ["frac_EC", "temperature_K", "concentration"]
    assert ts[0].target_unit == "log10(mS/cm)"
    np.testing.assert_allclose(ts[0].targets, df[df.system == "sys00"].log_sigma + 3.0, rtol=1e-12)  # S -> mS
    assert 243.0 < ts[0].inputs[:, 1].min() < 243.3                                     # -30 °C in K
    report = ts.column_report.set_index("column")["use"].to_dict()
    assert report == {"system": "task", "salt": "group", "solvent": "group", "T_C": "role:temperature",
                      "molality": "role:concentration", "frac_EC": "feature", "log_sigma": "target"}
    train, test = ts.group_kfold(3, key="salt")[0]
    assert not {t.group_keys["salt"] for t in train} & {t.group_keys["salt"] for t in test}
    learner = recipes.conductivity("vtf-prior", hidden=(16,), epochs=15).fit(train)
    df_eval = evaluate([learner, SupportMean()], test, shots=(5,), seeds=range(3), progress=False)
    assert sorted(set(df_eval["episode"])) == [0, 1, 2]
    mae = summarize(df_eval, "mae").set_index("method")["mean"]
    assert mae["vtf-prior"] < 0.5 * mae["support mean"], mae                 # log10(mS/cm)
    mean, std = learner.adapt(test.episode(0, 5, seed=0).support).predict_dist(test[0])
    assert mean.shape == std.shape == (len(test[0]),) and (std > 0).all()


def test_evaluate_seeds_are_the_taskset_episode_seeds():
    ts = build(conductivity_frame(n_systems=4))
    task = ts[0]
    eps = ts.episodes(task.name, 5, seeds=[7, 8])
    df, preds = evaluate([SupportMean()], ts.select([task.name]), shots=(5,), seeds=[7, 8], progress=False,
                         return_predictions=True)
    by_hand = np.concatenate([np.full(len(ep.query), ep.support.targets.mean()) for ep in eps])
    np.testing.assert_allclose(preds["support mean"], by_hand)


def test_celsius_declared_as_kelvin_and_linear_declared_as_log_are_refused():
    df = conductivity_frame(n_systems=2)
    with pytest.raises(ValueError, match="degC"):
        TaskSet.from_frame(df, "system", ["frac_EC"], "log_sigma", roles={"temperature": "T_C"},
                           units={"temperature": "K"})
    df = df.assign(sigma_mS=10 ** (df.log_sigma + 3.0))
    with pytest.raises(ValueError, match="look linear"):
        TaskSet.from_frame(df, "system", ["frac_EC"], "sigma_mS",
                           roles={"temperature": "T_C"}, units={"temperature": "degC", "target": "log10 mS/cm"})
    with pytest.raises(ValueError, match="Declare the unit"):
        TaskSet.from_frame(df, "system", ["frac_EC"], "log_sigma", roles={"temperature": "T_C"})


def test_unused_numeric_column_is_reported():
    df = conductivity_frame(n_systems=2)
    with pytest.warns(UserWarning, match="molality"):
        ts = TaskSet.from_frame(df, "system", ["frac_EC"], "log_sigma", roles={"temperature": "T_C"},
                                units={"temperature": "degC"})
    assert ts.column_report.set_index("column").loc["molality", "use"] == "unused"


@pytest.mark.parametrize("method", ["fomaml", "pooled-finetune"])
def test_other_conductivity_recipes_fit_on_the_same_table(method):
    ts = build(conductivity_frame(n_systems=8))
    train, test = ts.group_kfold(2, key="salt")[0]
    kw = {"meta_iterations": 3, "adapt_steps": 5} if method == "fomaml" else {"finetune_steps": 5}
    learner = recipes.conductivity(method, hidden=(8,), epochs=2, **kw).fit(train, progress=False)
    pred = learner.adapt(test.episode(0, 5, seed=0).support).predict(test[0])
    assert pred.shape == (len(test[0]),) and np.isfinite(pred).all()


def test_ranking_recipes_and_unknown_methods():
    assert type(recipes.ranking()).__name__ == "SupportRF"
    with pytest.raises(ValueError, match="pooled-finetune"):
        recipes.conductivity("vtf")
    with pytest.raises(ValueError, match="rf-support"):
        recipes.ranking("nope")


def test_pooled_finetune_ensemble_averages_fine_tuned_members_and_member_zero_is_the_single_network():
    ts = build(conductivity_frame(n_systems=8))
    train, test = ts.group_kfold(2, key="salt")[0]
    kw = dict(hidden=(8,), epochs=2, finetune_steps=5)
    one = recipes.conductivity("pooled-finetune", **kw).fit(train, progress=False)
    ens = recipes.conductivity("pooled-finetune", n_members=3, **kw).fit(train, progress=False)
    assert (one.name, ens.name, len(ens.members)) == ("pooled-vtf+finetune", "ft-ens", 3)
    support, query = test.episode(0, 5, seed=0).support, test[0]
    single = one.adapt(support).predict(query)
    members = ens.adapt(support).adapted
    np.testing.assert_array_equal(members[0].predict(query), single)        # seed 0: the same network, bit for bit
    preds = np.stack([m.predict(query) for m in members])
    assert np.ptp(preds, axis=0).max() > 0                                  # other seeds, other networks
    mean, std = ens.adapt(support).predict_dist(query)
    np.testing.assert_allclose(mean, preds.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, preds.std(0), rtol=1e-6, atol=1e-12)    # the members' spread
    assert mean.shape == std.shape == (len(query),)
    zero = ens.adapt(None).predict(query)                                   # no support: mean of the pooled nets
    np.testing.assert_allclose(zero, np.mean([p.adapt(None).predict(query) for p in ens.members], 0), rtol=1e-12)
    with pytest.raises(ValueError, match="n_members"):
        recipes.conductivity("pooled-finetune", n_members=0)


def test_map_finetune_recipe_is_the_bench_ft_map_and_prior_zero_is_the_plain_fine_tune():
    from nanonb.baselines.nets import FineTune

    ts = build(conductivity_frame(n_systems=8))
    train, test = ts.group_kfold(2, key="salt")[0]
    kw = dict(hidden=(8,), epochs=2, finetune_steps=30, finetune_lr=3e-2)
    plain = recipes.conductivity("pooled-finetune", **kw).fit(train, progress=False)
    fmap = recipes.conductivity("pooled-finetune", finetune_prior=0.5, **kw).fit(train, progress=False)
    assert (plain.name, fmap.name) == ("pooled-vtf+finetune", "ft-map")
    support, query = test.episode(0, 5, seed=0).support, test[0]
    # what the CALiSol bench builds for ft-map: FineTune(pooled network, prior=) on the same pooled fit
    bench = FineTune(fmap.pooled, steps=30, lr=3e-2, prior=0.5).adapt(support).predict(query)
    np.testing.assert_array_equal(fmap.adapt(support).predict(query), bench)
    np.testing.assert_array_equal(plain.pooled.adapt(None).predict(query), fmap.pooled.adapt(None).predict(query))
    assert not np.allclose(fmap.adapt(support).predict(query), plain.adapt(support).predict(query))
    zero = recipes.conductivity("pooled-finetune", finetune_prior=0.0, **kw).fit(train, progress=False)
    np.testing.assert_array_equal(zero.adapt(support).predict(query), plain.adapt(support).predict(query))
    with pytest.raises(ValueError, match="prior"):
        recipes.conductivity("pooled-finetune", finetune_prior=-1.0)
