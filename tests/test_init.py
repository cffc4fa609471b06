"""The top-level namespace: one import line for notebooks, lazily loaded."""

import subprocess
import sys

import pytest

import nanonb


def test_every_exported_name_resolves_to_its_module():
    for module, names in nanonb.API.items():
        for name in names:
            obj = getattr(nanonb, name)
            assert module.startswith("nanonb")
            owner = getattr(obj, "__module__", None)
            assert owner is None or owner.startswith("nanonb"), (name, owner)
    assert sorted(nanonb.__all__) == nanonb.__all__ and len(set(nanonb.__all__)) == len(nanonb.__all__)


def test_no_name_is_exported_twice():
    names = [n for ns in nanonb.API.values() for n in ns]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_every_learner_and_tabular_baseline_is_exported():
    """A learner a user can name (``make_learner``) or a support/pooled baseline is importable from nanonb."""
    from nanonb.baselines import tabular
    from nanonb.learners import registry

    api = {n for ns in nanonb.API.values() for n in ns}
    classes = {getattr(v, "func", v).__name__ for v in registry.LEARNERS.values()}
    missing = sorted(n for n in classes | set(tabular.__all__) if n not in api)
    assert not missing, f"add {missing} to nanonb.API"


def test_import_is_lazy_and_light():
    code = "import sys, nanonb; print('torch' in sys.modules, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"], out


def test_unknown_name_says_where_to_look():
    with pytest.raises(AttributeError, match="nanonb.API"):
        _ = nanonb.no_such_thing  # noqa: B018


def test_notebooks_import_from_nanonb_in_one_line():
    import re
    from pathlib import Path

    import nbformat

    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        pattern = r"^[ \t]*(?:from nanonb\S*[ \t]+import|import nanonb)"
        lines = [s.strip() for s in re.findall(pattern, src, flags=re.MULTILINE)]
        assert lines == ["from nanonb import"], f"{path.name}: nanonb imports {lines}; use one 'from nanonb import ...'"
