"""Tests of tools/add_methods.py: shared methods must match, unless --allow-drift records how much they differ."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location("add_methods", Path(__file__).parents[1] / "tools" / "add_methods.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)


def _run(path: Path, maes: dict[str, float], folds: dict | None = None) -> str:
    rows = [{"split": "s", "method": m, "kind": "meta", "task": t, "k": 5, "episode": e, "mae": v + 0.01 * i,
             "adapt_s": 0.0} for m, v in maes.items() for i, t in enumerate("ab") for e in range(2)]
    pd.DataFrame(rows).to_csv(str(path).replace(".json", "_episodes.csv.gz"), index=False)
    path.write_text(json.dumps({"protocol": "calisol", "runtime_s": 1.0, "config": {"seed": 0}, "timings": {},
                                "leakage": {}, "folds": folds or {}}))
    return str(path)


def _main(monkeypatch, *argv):
    monkeypatch.setattr(sys, "argv", ["add_methods.py", "calisol", *argv])
    am.main()


def test_a_shared_method_that_drifted_stops_the_merge_unless_allowed(tmp_path, monkeypatch):
    base = _run(tmp_path / "base.json", {"ctrl": 0.1, "selected": 0.2})
    new = _run(tmp_path / "new.json", {"ctrl": 0.1 + 1e-4, "selected": 0.3, "extra": 0.05})
    with pytest.raises(SystemExit, match="ctrl: per-episode scores differ"):
        _main(monkeypatch, base, new, "--rename", "selected=selected-old")
    _main(monkeypatch, base, new, "--rename", "selected=selected-old", "--allow-drift")
    res = json.loads(Path(base).read_text())
    drift = res["config"]["added_from"]["drift"]
    assert list(drift) == ["ctrl"] and drift["ctrl"]["max_episode_diff"] == pytest.approx(1e-4)
    assert drift["ctrl"]["mean_change"]["mae k=5"] == pytest.approx(1e-4)
    eps = pd.read_csv(base.replace(".json", "_episodes.csv.gz"))
    means = eps.groupby("method").mae.mean()
    assert means["ctrl"] == pytest.approx(0.105) and means["selected-old"] == pytest.approx(0.205)  # base rows kept
    assert means["selected"] == pytest.approx(0.305) and means["extra"] == pytest.approx(0.055)


def test_several_renames_keep_one_copy_of_the_selection_records(tmp_path, monkeypatch):
    base = _run(tmp_path / "base.json", {"ctrl": 0.1, "selected": 0.2},
                folds={"f0": {"test_groups": ["a"], "selection": {"5": "ctrl"}}})
    new = _run(tmp_path / "new.json", {"ctrl": 0.1, "selected": 0.3},
               folds={"f0": {"test_groups": ["a"], "selection": {"5": "ctrl-2"}}})
    _main(monkeypatch, base, new, "--rename", "selected=selected-old", "--rename", "ctrl=ctrl-old")
    fold = json.loads(Path(base).read_text())["folds"]["f0"]
    assert fold["selection"] == {"5": "ctrl-2"} and fold["selection_selected-old"] == {"5": "ctrl"}
    assert sorted(fold) == ["selection", "selection_selected-old", "test_groups"]   # no selection_ctrl-old
