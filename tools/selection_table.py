"""Print the nested selection's choice per outer fold and K of a case-study result, as markdown tables.

Usage (from the repository root)::

    python tools/selection_table.py notebooks/results/calisol.json            # the latest run's choice
    python tools/selection_table.py notebooks/results/lnpdb.json --all        # every merged run's choice

The latest run's choice is ``folds[...]["selection"]["chosen"]`` (the ``selected`` row); the earlier runs merged
by ``tools/add_methods.py --rename selected=<name>`` keep theirs under ``folds[...]["selection_<name>"]``. The
README's "selected per fold" tables are this script's output (``tests/test_readme_case_studies.py`` checks it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MAX_GROUPS_SHOWN = 3


def runs(result: dict) -> list[str]:
    """``selected`` first, then the earlier runs' names in the order they were merged (newest first)."""
    first = next(iter(result["folds"].values()))
    older = [k.removeprefix("selection_") for k in first if k.startswith("selection_")]
    return ["selected", *reversed(older)]


def _key(run: str) -> str:
    """The fold record of a run's selection: ``selection`` for the latest, ``selection_<run>`` for earlier ones."""
    return "selection" if run == "selected" else f"selection_{run}"


def _fold_label(tag: str, groups: list[str]) -> str:
    fold = tag.rsplit("/", 1)[-1]
    shown = ", ".join(groups[:MAX_GROUPS_SHOWN]) + (f" + {len(groups) - MAX_GROUPS_SHOWN}"
                                                    if len(groups) > MAX_GROUPS_SHOWN else "")
    return f"fold {fold}: {shown}"


def selection_table(result: dict, run: str = "selected") -> str:
    """Markdown table: one row per K, one column per outer fold (its held-out groups), the chosen candidate.

    Example
    -------
    >>> res = {"folds": {"s/0": {"test_groups": ["LiPF6"], "selection": {"chosen": {"5": "a", "10": "b"}}}}}
    >>> print(selection_table(res))
    | K | fold 0: LiPF6 |
    |---|---|
    | 5 | `a` |
    | 10 | `b` |
    """
    folds = result["folds"]
    chosen = {tag: f[_key(run)]["chosen"] for tag, f in folds.items()}
    shots = sorted({int(k) for c in chosen.values() for k in c})
    lines = ["| K | " + " | ".join(_fold_label(t, f["test_groups"]) for t, f in folds.items()) + " |",
             "|---|" + "---|" * len(folds)]
    lines += [f"| {k} | " + " | ".join(f"`{chosen[t][str(k)]}`" for t in folds) + " |" for k in shots]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result")
    ap.add_argument("--all", action="store_true", help="every merged run, newest first")
    args = ap.parse_args()
    result = json.loads(Path(args.result).read_text())
    for run in runs(result) if args.all else ["selected"]:
        n = len(next(iter(result["folds"].values()))[_key(run)]["candidates"])
        print(f"`{run}` (among {n} candidates):\n\n{selection_table(result, run)}\n")


if __name__ == "__main__":
    main()
