"""Guards that make ``pytest --nbval notebooks/`` meaningful.

Strict nbval only compares cells that carry an execution count, so a notebook saved without outputs
passes silently. These tests fail when a notebook under ``notebooks/`` is

* not saved from a clean top-to-bottom run (every non-empty code cell executed, counts 1, 2, 3, ...),
* saved with an error output (unless the cell is tagged ``raises-exception``),
* defining a class (style rule: notebooks use classes from ``nanonb``; none defines one another needs),
* displaying through an ``ipywidgets.Output`` (interact, interactive_output) without the
  ``nbval-ignore-output`` cell tag (nbval has no widget front end, see :func:`test_output_widget_cells_tagged`),
* hiding a cell result with a trailing ``;`` (nbval runs cells without history, so IPython ignores it),
* larger than :data:`MAX_NOTEBOOK_MB`.

They also check that ``tests/nbval_sanitize.cfg`` removes timings and addresses without hiding results,
and that the nbval invocation used in CI really fails when an output changes.

The nbval invocation (run from the repository root)::

    pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \\
        --nbval-cell-timeout=600 -p no:cacheprovider notebooks/
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SANITIZE_CFG = REPO_ROOT / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb"))
#: notebooks other tooling depends on (browser test, ``python -m nanonb.bench notebooks --quick``)
REQUIRED = ("00_welcome.ipynb", "03_few_shot_adaptation.ipynb")
MAX_NOTEBOOK_MB = 5.0
#: cells nbval does not run may legitimately be stored unexecuted
SKIP_TAGS = {"nbval-skip", "skip-execution"}
CLASS_DEF = re.compile(r"^[ \t]*class[ \t]+[A-Za-z_]\w*[ \t]*[(:]", re.MULTILINE)
OUTPUT_WIDGET = re.compile(r"\b(?:interactive_output|interactive|interact|interact_manual|Output)\s*\(")


def _code_cells(nb) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]


def _skipped(cell) -> bool:
    tags = {t.lower() for t in cell.get("metadata", {}).get("tags", [])}
    return bool(tags & SKIP_TAGS) or cell.source.lstrip().startswith("# NBVAL_SKIP")


def _ignores_output(cell) -> bool:
    tags = {t.lower() for t in cell.get("metadata", {}).get("tags", [])}
    return "nbval-ignore-output" in tags or "nbval-skip" in tags or bool(
        re.search(r"^\s*#\s*(NBVAL_IGNORE_OUTPUT|NBVAL_SKIP)\s*$", cell.source, re.MULTILINE))


def test_required_notebooks_present() -> None:
    missing = [n for n in REQUIRED if not (NOTEBOOK_DIR / n).is_file()]
    assert not missing, f"missing notebooks in {NOTEBOOK_DIR}: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_saved_from_clean_run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = [(i, c) for i, c in _code_cells(nb) if not _skipped(c)]
    unexecuted = [i for i, c in cells if c.get("execution_count") is None]
    assert not unexecuted, (f"{path.name}: code cells {unexecuted} have no execution count; nbval would skip them. "
                            "Save the notebook after Kernel > Restart Kernel and Run All Cells (or "
                            f"jupyter nbconvert --to notebook --execute --inplace {path.name})")
    counts = [c.execution_count for _, c in cells]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1, 2, 3, ...: the stored outputs come from an "
        "out-of-order or partial session. Restart the kernel and run all cells before saving")
    assert any(c.get("outputs") for _, c in cells), f"{path.name}: no code cell has an output; save it executed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_has_no_errors(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    bad = [(i, o.get("ename"), o.get("evalue")) for i, c in _code_cells(nb)
           for o in c.get("outputs", []) if o.get("output_type") == "error"
           and "raises-exception" not in c.get("metadata", {}).get("tags", [])]
    assert not bad, f"{path.name}: cells saved with errors (cell index, exception, message): {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_defines_no_class(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    found = [(i, m.group(0).strip()) for i, c in _code_cells(nb) for m in CLASS_DEF.finditer(c.source)]
    assert not found, (f"{path.name}: defines {found}; put classes in the nanonb package and import them "
                       "(no notebook may define a class another one needs)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_output_widget_cells_tagged(path: Path) -> None:
    """Cells whose display goes through an ``ipywidgets.Output`` need the ``nbval-ignore-output`` tag.

    A front end (and nbclient, which saves the notebook) routes what such a cell prints or plots into the
    Output widget; nbval has no widget front end, so the same text arrives as a plain cell output and
    strict nbval fails ("Unexpected output fields from running code: {'stdout'}"). The cell still runs
    under nbval with the tag, so exceptions are still caught; widget views are never compared anyway.
    """
    nb = nbformat.read(path, as_version=4)
    untagged = [i for i, c in _code_cells(nb) if OUTPUT_WIDGET.search(c.source) and not _ignores_output(c)]
    assert not untagged, (f"{path.name}: code cells {untagged} display through an Output widget "
                          "(interact/interactive_output/Output); add the cell tag 'nbval-ignore-output' "
                          "(View > Cell metadata, or a first line '# NBVAL_IGNORE_OUTPUT')")


def _ends_with_semicolon(source: str) -> bool:
    """True if the last code token of ``source`` is ``;`` (IPython's "suppress the result" marker)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    skip = (tokenize.ENDMARKER, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)
    last = next((t for t in reversed(tokens) if t.type not in skip), None)
    return last is not None and last.type == tokenize.OP and last.string == ";"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_trailing_semicolon(path: Path) -> None:
    """nbval runs cells with ``store_history=False``, so IPython ignores a trailing ``;``.

    The saved notebook then has no result but nbval's run has one: "Unexpected output fields from
    running code: {'text/plain'}" (nbval issue #194, IPython issue #14162). Assign instead: ``_ = f()``.
    """
    nb = nbformat.read(path, as_version=4)
    bad = [i for i, c in _code_cells(nb) if _ends_with_semicolon(c.source) and not _ignores_output(c)]
    assert not bad, (f"{path.name}: code cells {bad} end with ';' to hide their result; nbval does not honour "
                     "that (it runs cells without history). Write '_ = ...' instead")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_size(path: Path) -> None:
    mb = path.stat().st_size / 1e6
    assert mb < MAX_NOTEBOOK_MB, (f"{path.name} is {mb:.1f} MB (limit {MAX_NOTEBOOK_MB} MB): lower figure dpi, "
                                  "avoid printing large arrays, or clear widget state before saving")


# --------------------------------------------------------------------------------- sanitize file
def _sanitizers() -> list[tuple[str, str]]:
    # the exact parser nbval uses
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(SANITIZE_CFG.read_text())


def _sanitize(s: str) -> str:
    for regex, replace in _sanitizers():
        s = re.sub(regex, replace, s)
    return s


def test_sanitize_file_parses() -> None:
    pats = _sanitizers()
    names = re.findall(r"^\[(\w+)\]", SANITIZE_CFG.read_text(), flags=re.MULTILINE)
    assert len(pats) == len(names) >= 8, f"nbval read {len(pats)} patterns from {len(names)} sections"
    for regex, _ in pats:
        re.compile(regex)


@pytest.mark.parametrize("source, expected", [
    ("x.set(a=1);", True), ("x.set(a=1);  # back to the start", True), ("y = 1\nf(y);\n\n", True),
    ("f(1)", False), ("s = 'a;'", False), ("for i in range(2):\n    f(i);\nprint(1)", False),
    ("%time f(1)", False),
])
def test_semicolon_detection(source: str, expected: bool) -> None:
    assert _ends_with_semicolon(source) is expected


@pytest.mark.parametrize("raw, clean", [
    ("<nanonb.meta.MetaLearner object at 0x7f21257a73c0>", "<nanonb.meta.MetaLearner object at 0xADDRESS>"),
    ("meta-trained maml (took 12.3 s)", "meta-trained maml (took T s)"),
    ("evaluated in 850 ms; total 2 min", "evaluated in T s; total T s"),
    ("CPU times: user 1.5 ms, sys: 0 ns, total: 1.5 ms\nWall time: 1.51 ms\n",
     "CPU times: TIME\nWall time: TIME\n"),
    ("100%|██████████| 30/30 [00:01<00:00, 212.21it/s]", "100%|██████████| 30/30 [TQDM-TIME]"),
    ("<img src='data:image/png;base64,iVBORw0KG+5s/Rh5fO=' width=640.0/>",
     "<img src='data:image/png;base64,PNG' width=640.0/>"),
    ("cached in /root/.cache/nanonb/nanoalloys.npz", "cached in ~/.cache/nanonb/nanoalloys.npz"),
])
def test_sanitize_removes_volatile_text(raw: str, clean: str) -> None:
    assert _sanitize(raw) == clean


@pytest.mark.parametrize("result", [
    "MAE at k=5: 12.3 meV/atom (10 inner steps, 5 shots)",
    "log10 conductivity 0.85 ± 0.04 mS/cm",
    "21 tasks, 1680 clusters; held-out element Pt",
    "Spearman 0.61, top-10 recall 0.4",
    "HOMO-LUMO gap 2.31 eV",
])
def test_sanitize_keeps_results(result: str) -> None:
    assert _sanitize(result) == result


# --------------------------------------------------------------------- the nbval invocation itself
def _run_nbval(path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with",
           str(SANITIZE_CFG), "-p", "no:cacheprovider", "-q", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=path.parent, timeout=120)


def test_nbval_invocation_catches_changed_output(tmp_path: Path) -> None:
    """An executed notebook passes; the same notebook with one stored number changed fails."""
    pytest.importorskip("nbval")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import time\nt0 = time.perf_counter()\nprint(object())"),
                nbformat.v4.new_code_cell("mae = sum(range(10)) / 4\n"
                                          "print(f'MAE {mae:.2f} meV/atom (took {time.perf_counter() - t0:.3f} s)')")]
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    good = tmp_path / "good.ipynb"
    nbformat.write(nb, good)
    res = _run_nbval(good)
    assert res.returncode == 0, f"nbval failed on a freshly executed notebook:\n{res.stdout[-3000:]}"
    assert "2 passed" in res.stdout, res.stdout[-2000:]

    out = nb.cells[1].outputs[0]
    assert "MAE 11.25 meV/atom" in out["text"], out
    out["text"] = out["text"].replace("11.25", "11.26")
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    res = _run_nbval(bad)
    assert res.returncode != 0 and "1 failed" in res.stdout, f"nbval missed a changed result:\n{res.stdout[-3000:]}"
