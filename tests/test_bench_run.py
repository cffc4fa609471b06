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
    assert set(bench_run.PROTOCOLS) >= {"nanoalloys", "calisol", "lnpdb", "active", "tb", "forces", "notebooks",
                                        "soak", "nanoalloys-loeo", "speed", "campaign",
                                        "calisol-narrow"}
    assert all(v.startswith("nanonb.bench.") for v in bench_run.PROTOCOLS.values())
    for name in bench_run.PROTOCOLS:  # every registered protocol resolves to a function
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


def test_unwritable_out_fails_before_any_work(tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "nanonb_toy_protocol", sys.modules[__name__])
    monkeypatch.setitem(bench_run.PROTOCOLS, "toy", "nanonb_toy_protocol:_toy_protocol")
    monkeypatch.setattr(sys.modules[__name__], "_toy_protocol", lambda **kw: calls.append(kw))
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "r.json"
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["toy", "--out", str(bad), "--no-progress"])
    assert exc.value.code == 2 and calls == []
    err = capsys.readouterr().err
    assert f"--out {bad}: cannot write {bad}" in err and "Nothing was run: choose a writable path" in err


def test_nanoalloys_bad_holdout_fails_before_data(capsys, monkeypatch):
    import nanonb.bench.nanoalloys as na

    def no_data(**_):
        raise AssertionError("data generated before the holdout was checked")

    monkeypatch.setattr(na, "load_nanoalloys", no_data)
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["nanoalloys", "--quick", "--holdout", "Xx", "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "holdout must be one of the nanoalloy elements Al, Cu, Ag, Au, Ni, Pd, Pt, not 'Xx'" in err


def test_soak_protocol_quick(tmp_path):
    res = bench_run.run("soak", quick=True, out=tmp_path / "soak.json", progress=False,
                        families=["fomaml", "bml", "dkt"], n_iterations=6, n_chunks=2, warmup=2)
    rows = json.loads((tmp_path / "soak.json").read_text())["results"]
    assert [r["method"] for r in rows] == ["fomaml", "bml", "dkt"]
    assert {r["metric"] for r in rows} == {"rss_growth_pct"} and {r["kind"] for r in rows} == {"meta"}
    assert all(len(d["rss_mb"]) == 3 and d["iterations"] == 6 for d in res["soak"])
    with pytest.raises(ValueError, match="families: unknown"):
        bench_run.run("soak", quick=True, families=["reptile"])
