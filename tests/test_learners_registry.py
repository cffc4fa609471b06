"""learners.registry: one class per algorithm, names -> classes, load picks the class from the saved config."""

import numpy as np
import pytest

from nanonb.learners.anil import ANIL
from nanonb.learners.base import MetaConfig, MetaLearner
from nanonb.learners.maml import MAML
from nanonb.learners.metasgd import MetaSGD
from nanonb.learners.registry import ALGORITHMS, load, make_learner
from nanonb.tasks import Task, TaskSet


def test_names_map_to_classes_and_flags():
    assert ALGORITHMS == ("maml", "fomaml", "anil", "metasgd")
    kw = dict(model="MLP", model_kwargs={"n_in": 2, "hidden": (4,)})
    maml, fomaml = make_learner("maml", **kw), make_learner("fomaml", **kw)
    assert type(maml) is MAML and not maml.first_order and maml.name == "maml"
    assert type(fomaml) is MAML and fomaml.first_order and fomaml.name == "fomaml"
    assert MAML(first_order=True, **kw).name == "fomaml"
    assert type(make_learner("anil", **kw)) is ANIL and make_learner("anil", **kw).head_only
    assert type(make_learner("metasgd", **kw)) is MetaSGD
    assert make_learner(algorithm="anil", **kw).name == "anil"  # the old keyword still selects the class
    assert type(make_learner(config=MetaConfig(algorithm="metasgd", **kw))) is MetaSGD
    assert make_learner(**kw).name == MetaConfig.algorithm  # default algorithm
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make_learner("reptile")
    with pytest.raises(TypeError, match="base class"):
        MetaLearner(**kw)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_load_resolves_the_class_from_the_saved_config(tmp_path, name):
    rng = np.random.default_rng(0)
    ts = TaskSet([Task(f"t{i}", rng.normal(size=(15, 2)), rng.normal(size=15), groups=(f"g{i}",)) for i in range(4)])
    learner = make_learner(name, model="MLP", model_kwargs={"hidden": (4,)}, n_iterations=2,
                           k_support=(1, 5)).fit(ts, progress=False)
    again = load(learner.save(tmp_path / name))
    assert type(again) is type(learner) and again.name == name
    assert again.config.first_order == learner.config.first_order
    ep = ts.episode(ts[0], 3, seed=0)
    np.testing.assert_array_equal(again.adapt(ep.support).predict(ep.query),
                                  learner.adapt(ep.support).predict(ep.query))


def test_bml_and_ensemble_are_registered_and_a_saved_bml_loads_through_the_registry(tmp_path):
    from nanonb.learners.alpaca import BayesianMetaLearner
    from nanonb.learners.ensemble import EnsembleMetaLearner
    from nanonb.learners.registry import LEARNERS

    assert {"bml", "ensemble"} <= set(LEARNERS) and set(ALGORITHMS) <= set(LEARNERS)
    ens = make_learner("ensemble", algorithm="anil", n_members=2, model="MLP", model_kwargs={"n_in": 2, "hidden": (4,)})
    assert type(ens) is EnsembleMetaLearner and ens.n_members == 2
    assert all(type(m) is ANIL for m in ens.members)
    rng = np.random.default_rng(0)
    ts = TaskSet([Task(f"t{i}", rng.normal(size=(15, 2)), rng.normal(size=15), groups=(f"g{i}",)) for i in range(4)])
    bml = make_learner("bml", model="MLP", model_kwargs={"hidden": (4,)}, n_iterations=2, k_support=(1, 5),
                       k_query=5, val_every=100).fit(ts, progress=False)
    assert type(bml) is BayesianMetaLearner
    again = load(bml.save(tmp_path / "bml"))
    assert type(again) is BayesianMetaLearner and again.name == "bml"
    assert again.config.k_support == bml.config.k_support and again.var_factors == bml.var_factors
    ep = ts.episode(ts[0], 3, seed=0)
    for a, b in zip(again.adapt(ep.support).predict_dist(ep.query), bml.adapt(ep.support).predict_dist(ep.query)):
        np.testing.assert_array_equal(a, b)


def test_a_learner_saved_on_a_gpu_loads_on_the_cpu(tmp_path):
    import json

    import torch

    from nanonb.tasks.toy import sinusoid_tasks

    learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (4,)}, n_iterations=1, k_support=(1, 3))
    learner.fit(sinusoid_tasks(4, 10), progress=False).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["config"]["device"] = "cuda:0"  # as written by a GPU run
    (tmp_path / "m.json").write_text(json.dumps(meta))
    back = load(tmp_path / "m")
    assert back.config.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert load(tmp_path / "m", device="cpu").config.device == "cpu"
    x = np.linspace(-1, 1, 5)[:, None]
    np.testing.assert_allclose(load(tmp_path / "m", device="cpu").predict(x), learner.predict(x), rtol=1e-6)
