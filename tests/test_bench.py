"""The benchmark entry point and the quickstart CLI, on reduced configurations."""

import json

import pytest

from nanonb import bench
from nanonb.bench import NanoalloyConfig, make_result, run_nanoalloys


def test_make_result_validates_schema():
    row = {"split": "s", "method": "m", "kind": "meta", "k": 5, "metric": "mae", "mean": 1.0, "sem": 0.1,
           "median": 1.0, "n_tasks": 3}
    assert make_result("p", [row], 1.0, {})["results"][0] == row
    with pytest.raises(ValueError, match="kind"):
        make_result("p", [row | {"kind": "other"}], 1.0, {})
    with pytest.raises(ValueError, match="lower case"):
        make_result("p", [row | {"metric": "MAE"}], 1.0, {})
    with pytest.raises(ValueError, match="lacks"):
        make_result("p", [{"split": "s"}], 1.0, {})


def tiny_config():
    return NanoalloyConfig(n_per_pair=12, shots=(1, 5), n_episodes=1, algorithms=("anil", "fomaml"),
                           model_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8},
                           iterations={"anil": 3, "fomaml": 3}, pooled_epochs=1, scratch_steps=3,
                           finetune_steps=2)


def test_nanoalloys_protocol_end_to_end(tmp_path):
    cfg = tiny_config()
    res = run_nanoalloys(config=cfg, progress=False, cache_dir=tmp_path, fig_path=tmp_path / "f.png",
                         save_dir=tmp_path / "learners", log=lambda *_: None)
    methods = {r["method"] for r in res["results"]}
    assert methods == {"anil", "fomaml", "scratch", "pooled", "pooled+finetune", "gp"}
    assert {r["k"] for r in res["results"]} == {1, 5}
    assert all(r["n_tasks"] == 6 and r["split"] == "holdout-Pt" for r in res["results"])
    assert (tmp_path / "f.png").stat().st_size > 10_000
    assert (tmp_path / "learners" / "nanoalloys_anil.pt").exists()
    json.dumps(res, default=str)


def test_bench_cli_writes_json_and_rejects_unknown(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nanonb_toy_protocol", sys.modules[__name__])
    monkeypatch.setitem(bench.PROTOCOLS, "toy", "nanonb_toy_protocol:_toy_protocol")
    bench.main(["toy", "--out", str(tmp_path / "r.json"), "--set", "alpha=0.5", "--no-progress"])
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["protocol"] == "toy" and out["config"] == {"alpha": 0.5}
    assert "k=5" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown protocol"):
        bench.run("nope")


def _toy_protocol(quick=False, seed=0, alpha=0.0, **_):
    row = {"split": "s", "method": "m", "kind": "baseline", "k": 5, "metric": "mae", "mean": alpha, "sem": 0.0,
           "median": alpha, "n_tasks": 1}
    return make_result("toy", [row], 0.1, {"alpha": alpha})


def test_quickstart_cli_quick(tmp_path, monkeypatch):
    """The CLI wiring end to end (the --quick configuration itself is shrunk further to keep tests fast)."""
    from nanonb.cli import main

    monkeypatch.setattr(NanoalloyConfig, "quick", classmethod(lambda cls: tiny_config()))
    assert main(["quickstart", "--quick", "--out", str(tmp_path / "qs"), "--cache-dir", str(tmp_path),
                 "--no-progress"]) == 0
    res = json.loads((tmp_path / "qs" / "results.json").read_text())
    assert res["protocol"] == "nanoalloys" and "timings" in res
    assert (tmp_path / "qs" / "quickstart.png").exists()
    with pytest.raises(SystemExit):
        main(["quickstart", "--holdout", "Fe"])
