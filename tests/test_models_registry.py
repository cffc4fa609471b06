"""Tests for nanonb.models.registry: lookups by name in any import order, named missing arguments, input kinds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nanonb.models.registry import build_model, check_input_kind, missing_kwargs
from nanonb.tasks import TaskSet


def test_vtfnet_resolves_by_name_in_a_fresh_process():
    code = ("from nanonb.models.registry import build_model; "
            "print(type(build_model('VTFNet', n_in=3, hidden=(4,))).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "VTFNet"


def test_missing_arguments_are_named():
    assert missing_kwargs("VTFNet", {}) == ["n_in"]
    with pytest.raises(ValueError, match="VTFNet needs n_in.*vtf_model_kwargs"):
        build_model("VTFNet")


def test_graph_default_on_tabular_tasks_is_a_clear_error_before_any_work():
    from nanonb.learners.registry import make_learner
    ts = TaskSet.from_arrays(np.random.default_rng(0).random((30, 2)), np.arange(30.0), ["a"] * 15 + ["b"] * 15)
    with pytest.raises(ValueError, match="model='InvariantGNN' is a network for structures.*model='MLP'"):
        make_learner("fomaml", n_iterations=1).fit(ts, progress=False)      # default model is the GNN
    check_input_kind("MLP", tabular=True)
    with pytest.raises(ValueError, match="takes a feature table"):
        check_input_kind("MLP", tabular=False)
