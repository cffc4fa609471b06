"""The ``nanoalloys`` protocol and ``nanonb quickstart`` on reduced configurations."""

import json

import pytest

from nanonb.bench.nanoalloys import NanoalloyConfig, run_nanoalloys
from nanonb.bench.schema import OptionError
from nanonb.cli import main


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
