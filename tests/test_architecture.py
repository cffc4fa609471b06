"""The shape of the package: an acyclic import graph and files a reader can take in one sitting.

Every module of ``nanonb/`` is parsed with :mod:`ast` (nothing is imported); every ``import`` and
``from ... import`` statement counts, also inside functions, with relative imports resolved. An edge
``a -> b`` means module ``a`` imports module ``b`` (``from pkg import name`` points at ``pkg.name`` when
that is a module, else at ``pkg``). Parent packages that Python initializes implicitly are not edges.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nanonb"
MAX_LINES = 500
MEDIAN_LINES = 250


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: {imported package modules}}`` from the source of every module."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for t in targets:
                while t and t not in modules and "." in t:  # `import nanonb.x.y` of a non-module attribute
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` if the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_graph_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "nanonb.tasks" in graph["nanonb.evaluation"]          # top-level relative import
    assert "nanonb.learners.base" in graph["nanonb.learners.maml"]  # sibling in a subpackage
    assert "nanonb.models" in graph["nanonb.learners.base"]     # `from ..models import build_model`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_files_fit_in_one_sitting():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in _modules().values()}
    too_long = {f: n for f, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not too_long, f"files over {MAX_LINES} lines: {too_long}"
    modules = [n for f, n in sizes.items() if not f.endswith("__init__.py")]
    median = statistics.median(modules)
    assert median < MEDIAN_LINES, f"median module length {median} lines (>= {MEDIAN_LINES})"
