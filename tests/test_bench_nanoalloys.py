"""The ``nanoalloys`` protocol and ``nanonb quickstart`` on reduced configurations."""

import json

import pytest

from nanonb.bench.nanoalloys import NanoalloyConfig, run_nanoalloys
from nanonb.bench.schema import OptionError
from nanonb.cli import main


def tiny_config():
    return NanoalloyConfig(n_per_pair=12, shots=(1, 5), n_episodes=1, val_episodes=1, algorithms=("anil", "fomaml"),
                           descriptor_learners=("bml", "bml-ens", "dkt"), bml_members=2, descriptor_hidden=(8,),
                           inner_steps=2,
                           model_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8},
                           iterations={"anil": 3, "fomaml": 3, "bml": 5, "bml-ens": 5, "dkt": 5}, pooled_epochs=1,
                           scratch_steps=3, finetune_steps=2, ceiling_splits=2)


def test_nanoalloys_protocol_end_to_end(tmp_path):
    cfg = tiny_config()
    res = run_nanoalloys(config=cfg, progress=False, cache_dir=tmp_path, fig_path=tmp_path / "f.png",
                         save_dir=tmp_path / "learners", log=lambda *_: None)
    methods = {r["method"] for r in res["results"]}
    best = res["best"]["name"]
    assert methods == {"anil", "fomaml", "bml", "bml-ens", "dkt", f"best={best}", "scratch", "pooled",
                       "pooled+finetune", "gp", "support mean", "in-task ceiling"}
    assert set(res["best"]["val_mae"]) == {"anil", "fomaml", "bml", "bml-ens", "dkt"}
    assert res["best"]["val_element"] == "Pd" and best == min(res["best"]["val_mae"], key=res["best"]["val_mae"].get)
    assert {r["k"] for r in res["results"]} == {1, 5}
    assert {r["metric"] for r in res["results"]} == {"mae", "rmse", "closed"}
    assert all(r["n_tasks"] == 6 and r["split"] == "holdout-Pt" for r in res["results"])
    closed = {(r["method"], r["k"]): r["mean"] for r in res["results"] if r["metric"] == "closed"}
    assert closed[("gp", 1)] == 0.0  # GP predicts the support mean from one point
    assert res["verdict"].startswith(f"best learner: {best}; at K=5 it closes")
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert (tmp_path / "learners" / "nanoalloys_anil.pt").exists()
    assert (tmp_path / "learners" / "nanoalloys_bml-ens.json").exists()  # the ensemble saves (and loads) too
    json.dumps(res, default=str)


def test_meta_validation_never_uses_the_test_element():
    with pytest.raises(ValueError, match="val_element must differ"):
        NanoalloyConfig(holdout="Cu", val_element="Cu").validation_element()
    assert NanoalloyConfig(holdout="Al").validation_element() == "Pt"
    assert NanoalloyConfig(holdout="Pt").validation_element() == "Pd"


def test_meta_validate_sees_only_the_given_tasks(monkeypatch):
    import nanonb.bench.nanoalloy_methods as nm

    seen = {}

    def fake_evaluate(methods, tasks, **kw):
        seen["names"] = tasks.names
        import pandas as pd
        return pd.DataFrame([{"method": m.name, "task": t, "mae": 1.0} for m in methods for t in tasks.names])

    monkeypatch.setattr(nm, "evaluate", fake_evaluate)

    class M:
        name = "m"

    class TS:
        names = ["Cu-Pd"]

    assert nm.meta_validate([M()], TS()) == {"m": 1.0} and seen["names"] == ["Cu-Pd"]


def test_nanoalloys_options_override_the_config_and_unknown_ones_fail():
    with pytest.raises(OptionError, match=r"NanoalloyConfig; valid keys: .*'n_episodes'"):
        run_nanoalloys(quick=True, n_episode=3, progress=False, log=lambda *_: None)


def test_quickstart_cli_quick(tmp_path, monkeypatch):
    """The CLI wiring end to end (the --quick configuration itself is shrunk further to keep tests fast)."""
    monkeypatch.setattr(NanoalloyConfig, "quick", classmethod(lambda cls: tiny_config()))
    assert main(["quickstart", "--quick", "--out", str(tmp_path / "qs"), "--cache-dir", str(tmp_path),
                 "--no-progress"]) == 0
    res = json.loads((tmp_path / "qs" / "results.json").read_text())
    assert res["protocol"] == "nanoalloys" and "timings" in res
    assert (tmp_path / "qs" / "quickstart.png").exists()
    with pytest.raises(SystemExit):
        main(["quickstart", "--holdout", "Fe"])
