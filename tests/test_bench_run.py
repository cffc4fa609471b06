"""The protocol registry and the ``python -m nanonb.bench`` command line (:mod:`nanonb.bench.run`)."""

import json
import sys
from dataclasses import dataclass

import pytest

from nanonb.bench import run as bench_run
from nanonb.bench.schema import apply_options, make_result


def test_bench_cli_writes_json_and_rejects_unknown(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanonb_toy_protocol", sys.modules[__name__])
    monkeypatch.setitem(bench_run.PROTOCOLS, "toy", "nanonb_toy_protocol:_toy_protocol")
    bench_run.main(["toy", "--out", str(tmp_path / "r.json"), "--set", "alpha=0.5", "--no-progress"])
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["protocol"] == "toy" and out["config"] == {"alpha": 0.5}
    assert "k=5" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown protocol"):
        bench_run.run("nope")


def _toy_protocol(quick=False, seed=0, alpha=0.0, **_):
    row = {"split": "s", "method": "m", "kind": "baseline", "k": 5, "metric": "mae", "mean": alpha, "sem": 0.0,
           "median": alpha, "n_tasks": 1}
    return make_result("toy", [row], 0.1, {"alpha": alpha})


def test_cli_unknown_set_key_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanonb_toy_protocol", sys.modules[__name__])
    monkeypatch.setitem(bench_run.PROTOCOLS, "toy", "nanonb_toy_protocol:_toy_config_protocol")
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["toy", "--set", "alpah=0.5", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option(s) ['alpah'] for _ToyConfig; valid keys: ['alpha']" in err
    with pytest.raises(SystemExit):
        bench_run.main(["toy", "--set", "seed=3"])
    assert "use the command-line flag --seed" in capsys.readouterr().err


def test_registry_names_every_protocol_module(monkeypatch):
    assert set(bench_run.PROTOCOLS) == {"nanoalloys", "calisol", "lnpdb", "active", "tb", "forces", "notebooks"}
    assert all(v.startswith("nanonb.bench.") for v in bench_run.PROTOCOLS.values())
    for name in ("nanoalloys", "calisol", "lnpdb", "notebooks"):
        assert callable(bench_run.protocol_function(name))
    monkeypatch.setitem(bench_run.PROTOCOLS, "ghost", "nanonb.bench.ghost:run_ghost")
    with pytest.raises(SystemExit, match="does not exist"):
        bench_run.protocol_function("ghost")


@dataclass
class _ToyConfig:
    alpha: float = 0.0


def _toy_config_protocol(quick=False, seed=0, progress=True, **options):
    cfg = apply_options(_ToyConfig(), options)
    return _toy_protocol(alpha=cfg.alpha)
