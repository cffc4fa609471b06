"""Tests of the notebook benchmark (``python -m nanonb.bench notebooks``, :mod:`nanonb.bench.notebooks`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nanonb.bench import notebooks as nbbench
from nanonb.bench.nbexec import execute_notebook, notebook_stdout
from nanonb.bench.schema import SCHEMA_KEYS, OptionError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _nb(*sources: str):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_execute_notebook_measures_time_and_peak_memory(tmp_path: Path) -> None:
    # 400 MB allocated and freed again: only a peak measurement can see it
    nb = _nb("import time, numpy as np\ntime.sleep(0.5)",
             "a = np.ones(50_000_000)\nprint(a.nbytes // 10**6)\ndel a",
             "import os; print(os.getcwd()); print(os.environ.get('MPLBACKEND'))")
    r = execute_notebook(nb, tmp_path, timeout_s=60)
    assert r["error"] is None
    assert r["runtime_s"] > 0.5
    assert 400 < r["peak_mem_mb"] < 1500, r
    assert r["kernel_hwm_mb"] > 400, r  # exact high-water mark of the kernel process
    out = notebook_stdout(nb).split()
    assert out[0] == "400" and Path(out[1]) == tmp_path.resolve()
    # the inline backend must not be replaced by an MPLBACKEND inherited from a CI shell
    assert "Agg" not in out[2:], out


def test_execute_notebook_reports_errors(tmp_path: Path) -> None:
    r = execute_notebook(_nb("x = 1", "1 / 0", "print('not reached')"), tmp_path, timeout_s=60)
    assert r["error"] is not None and r["error"].startswith("ZeroDivisionError"), r
    assert r["runtime_s"] > 0


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "notebooks"
    d.mkdir()
    nbformat.write(_nb("print('welcome')"), d / "00_welcome.ipynb")
    nbformat.write(_nb("import time\ntime.sleep(0.3)"), d / "01_other.ipynb")
    return d


def test_run_notebooks_rows_and_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _folder(tmp_path)
    r = nbbench.run_notebooks(notebooks_dir=d, widget=False, progress=False)
    assert r["protocol"] == "notebooks" and r["config"]["notebooks"] == ["00_welcome.ipynb", "01_other.ipynb"]
    assert {(x["method"], x["metric"]) for x in r["results"]} == {
        (m, k) for m in ("00_welcome", "01_other") for k in ("runtime_s", "peak_mem_mb")}
    for row in r["results"]:
        assert set(SCHEMA_KEYS) <= set(row) and row["split"] == "budget" and row["kind"] == "baseline"
    assert r["all_within_budget"] and not r["errors"] and len(r["checks"]) == 4
    assert r["per_notebook"]["01_other"]["runtime_s"] > 0.3
    json.dumps(r)  # JSON-serialisable as written by --out
    # the repository folder is never written to
    assert sorted(p.name for p in d.iterdir()) == ["00_welcome.ipynb", "01_other.ipynb"]

    # quick mode runs only 00_welcome; a tiny budget is reported as exceeded, strict raises
    monkeypatch.setitem(nbbench.BUDGETS, "runtime_s", 1e-3)
    q = nbbench.run_notebooks(quick=True, notebooks_dir=d, widget=False, progress=False)
    assert [x["method"] for x in q["results"]] == ["00_welcome", "00_welcome"]
    assert not q["all_within_budget"]
    assert [c["ok"] for c in q["checks"] if c["metric"] == "runtime_s"] == [False]
    with pytest.raises(RuntimeError, match="budgets not met"):
        nbbench.run_notebooks(quick=True, notebooks_dir=d, widget=False, progress=False, strict=True)


def test_run_notebooks_records_failing_notebook(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    nbformat.write(_nb("raise ValueError('broken on purpose')"), d / "02_broken.ipynb")
    r = nbbench.run_notebooks(notebooks_dir=d, names=["02_broken"], widget=False, progress=False)
    assert r["errors"] == {"02_broken": "ValueError: broken on purpose"}
    assert not r["all_within_budget"]


def test_latency_code_compiles() -> None:
    for baselines in (True, False):
        code = nbbench._latency_code(7, (5, 6), 10, 3, baselines)
        compile(code, "<latency>", "exec")
        assert "range(7)" in code and "steps.value = 10" in code and "seed=3" in code


def test_without_drops_one_occurrence_each() -> None:
    assert nbbench._without([5.0, 1.0, 5.0, 2.0], [5.0]) == [1.0, 5.0, 2.0]
    assert nbbench._percentile([], 95) != nbbench._percentile([], 95)  # nan for no data


def test_missing_notebooks_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        nbbench.run_notebooks(notebooks_dir=tmp_path / "nope", widget=False)
    with pytest.raises(FileNotFoundError, match="99_missing"):
        nbbench.run_notebooks(notebooks_dir=_folder(tmp_path), names=["99_missing"], widget=False)


@pytest.mark.slow
def test_bench_notebooks_quick_cli(tmp_path: Path) -> None:
    """End to end on the repository: ``python -m nanonb.bench notebooks --quick`` (00_welcome + widget)."""
    if not (REPO_ROOT / "notebooks" / "00_welcome.ipynb").is_file():
        pytest.fail("notebooks/00_welcome.ipynb is missing")
    out = tmp_path / "nb.json"
    res = subprocess.run([sys.executable, "-m", "nanonb.bench", "notebooks", "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r = json.loads(out.read_text())
    assert not r["errors"], r["errors"]
    metrics = {(x["method"], x["metric"]) for x in r["results"]}
    assert {("00_welcome", "runtime_s"), ("00_welcome", "peak_mem_mb"),
            ("widget_interaction", "latency_p95_ms")} <= metrics
    assert r["widget"]["n"] == nbbench.QUICK_INTERACTIONS
    lat = [x for x in r["results"] if x["metric"] == "latency_p95_ms"][0]
    assert 0 < lat["mean"] < 60_000


def test_unknown_option_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"NotebooksConfig; valid keys: .*'widget'"):
        nbbench.run_notebooks(notebooks_dir=_folder(tmp_path), widgets=False, progress=False)
