"""The speed protocol: schema rows, ratios from the same run, equal gradients; heaviest-cell timing."""

import nbformat
import pytest

from nanonb.bench.nbexec import cell_seconds, heaviest_cell
from nanonb.bench.run import PROTOCOLS, run
from nanonb.bench.schema import OptionError
from nanonb.bench.speed import SpeedConfig, _iterations, markdown_table, run_speed
from nanonb.learners.config import MetaConfig


def test_quick_speed_run_times_every_algorithm_family_and_backend(tmp_path):
    res = run("speed", quick=True, out=tmp_path / "speed.json", progress=False)
    assert PROTOCOLS["speed"].endswith("run_speed") and (tmp_path / "speed.json").is_file()
    rows = res["results"]
    ms = {(r["split"], r["method"]): r for r in rows if r["metric"] == "ms_per_iteration"}
    sp = {(r["split"], r["method"]): r for r in rows if r["metric"] == "speedup_vs_higher"}
    algos, fams = ("maml", "fomaml", "anil", "metasgd"), ("MLP", "MLP-default", "InvariantGNN")
    assert set(ms) == {(f, f"{a}/{b}") for f in fams for a in algos for b in ("higher", "func")}
    assert {r["k"] for (f, _), r in ms.items() if f == "MLP-default"} == {MetaConfig.meta_batch_size}  # the default
    for (fam, method), r in sp.items():
        algo = method.split("/")[0]
        h, f = ms[(fam, f"{algo}/higher")], ms[(fam, f"{algo}/func")]
        assert r["mean"] == pytest.approx(h["min"] / f["min"])  # ratio of the minima of this run
        assert r["median"] == pytest.approx(h["median"] / f["median"])
        assert 0 < h["min"] <= h["median"] and r["grad_max_abs_diff"] < 1e-5  # the same gradients
    assert res["table"] == markdown_table(rows) and res["table"].count("\n") == 1 + len(sp)


def test_default_batch_rows_time_about_as_many_episodes_per_repeat():
    cfg = SpeedConfig()  # MLP: 25 episodes x 2 iterations; MLP-default: 4 episodes x 12 iterations
    assert [_iterations(f, cfg) for f in ("MLP", "MLP-default", "InvariantGNN")] == [2, 12, 2]


def test_unknown_option_is_an_error():
    with pytest.raises(OptionError, match="valid keys"):
        run_speed(quick=True, progress=False, repeat=3)


def test_heaviest_cell_from_nbclient_timing():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# hi"),
                                         nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("slow()")])
    stamps = [("2026-11-30T10:00:00.000Z", "2026-11-30T10:00:00.250Z"),
              ("2026-11-30T10:00:00.300Z", "2026-11-30T10:00:02.300Z")]
    for cell, (t0, t1) in zip(nb.cells[1:], stamps):
        cell.metadata["execution"] = {"iopub.status.busy": t0, "iopub.status.idle": t1}
    assert cell_seconds(nb) == [None, 0.25, 2.0]
    assert heaviest_cell(nb) == {"index": 2, "seconds": 2.0, "first_line": "slow()"}
    assert heaviest_cell(nbformat.v4.new_notebook())["index"] is None
