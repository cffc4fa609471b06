"""Rows, ``closed`` and verdict of the nanoalloys protocol, and the descriptor view of structure tasks."""

import numpy as np
import pytest

from nanonb.bench.nanoalloy_report import ceiling_rows, closed_rows, verdict
from nanonb.learners.descriptors import OnDescriptors
from nanonb.tasks import Task
from nanonb.tasks import descriptor_task as descriptor_view


def _row(method, k, mean, kind="baseline"):
    return {"split": "s", "method": method, "kind": kind, "k": k, "metric": "mae", "mean": mean, "sem": 0.1,
            "median": mean, "n_tasks": 6}


def test_ceiling_rows_repeat_the_task_mean_per_k_in_mev():
    rows = ceiling_rows({"a": 0.010, "b": 0.020}, (1, 5), "s")
    assert [r["k"] for r in rows] == [1, 5]
    assert rows[0]["mean"] == pytest.approx(15.0) and rows[0]["n_tasks"] == 2


def test_closed_rows_and_verdict():
    rows = [_row("support mean", 5, 32.0), _row("in-task ceiling", 5, 16.0), _row("gp", 5, 30.0),
            _row("best=bml", 5, 18.0, "meta"), _row("pooled", 5, 48.0)]
    closed = {r["method"]: r["mean"] for r in closed_rows(rows, "s")}
    assert closed == pytest.approx({"gp": 0.125, "best=bml": 0.875, "pooled": -1.0})
    line = verdict(rows, "best=bml")
    assert line.startswith("best learner: bml; at K=5 it closes 88 % of the learnable error")
    assert "0.56x support mean" in line and "0.60x GP on support" in line and "ceiling 16.0" in line


def test_descriptor_view_swaps_inputs_for_descriptors():
    task = Task("t", [object()] * 3, np.arange(3.0), descriptors=np.ones((3, 12)), groups=("Cu",))
    view = descriptor_view(task)
    assert view.inputs.shape == (3, 12) and view.inputs.dtype == np.float32
    assert np.array_equal(view.targets, task.targets) and view.groups == ("Cu",)
    with pytest.raises(ValueError, match="no descriptors"):
        descriptor_view(Task("x", [object()] * 2, np.zeros(2)))

    class Mean:
        name = "m"

        def adapt(self, support):
            value = float(support.inputs[:, 0].mean())

            class P:
                def predict(self, q):
                    return np.full(len(q), value)
            return P()

    assert OnDescriptors(Mean()).adapt(task).predict(task).tolist() == [1.0, 1.0, 1.0]


def test_loeo_summary_counts_wins_against_every_baseline_and_checks_holdouts():
    from nanonb.bench.nanoalloys_loeo import loeo_summary, run_nanoalloys_loeo

    def rows(el, best, gp):
        return [{"split": f"holdout-{el}", "method": m, "metric": "mae", "k": 5, "mean": v}
                for m, v in [("best=bml", best), ("gp", gp), ("support mean", 30.0), ("pooled", 50.0)]]

    s = loeo_summary(rows("Cu", 15.0, 25.0) + rows("Pt", 20.0, 19.0), {"Cu": "bml", "Pt": "bml"})
    assert s["wins"] == 1 and s["n_elements"] == 2
    assert s["per_element"]["Pt"] == {"best": "bml", "mae": 20.0, "best_baseline": "gp", "baseline_mae": 19.0,
                                      "beats_every_baseline": False}
    with pytest.raises(ValueError, match="holdouts must be elements"):
        run_nanoalloys_loeo(holdouts="Cu,Fe")


def test_loeo_fanned_out_over_two_processes_gives_the_in_process_numbers():
    """Each held-out element run in a worker process gives the rows it gives in this process (exactly:
    same code, same machine, one thread), in the order of ``holdouts``."""
    from nanonb.bench.nanoalloys_loeo import run_nanoalloys_loeo

    tiny = dict(quick=True, progress=False, log=lambda *a: None, algorithms=(), descriptor_learners=("bml",),
                shots=(5,), iterations={"bml": 5}, pooled_epochs=1, scratch_steps=2, finetune_steps=1, n_episodes=1)
    serial = run_nanoalloys_loeo(holdouts="Cu", **tiny)
    fanned = run_nanoalloys_loeo(holdouts="Cu,Pt", workers=2, **tiny)
    assert fanned["config"]["workers"] == 2 and serial["config"]["workers"] == 1
    assert [r["split"] for r in fanned["results"]] == ["holdout-Cu"] * len(serial["results"]) + ["holdout-Pt"] * (
        len(fanned["results"]) - len(serial["results"]))
    assert fanned["results"][: len(serial["results"])] == serial["results"]
    assert fanned["loeo"]["per_element"]["Cu"] == serial["loeo"]["per_element"]["Cu"]
    assert list(fanned["runs"]) == ["Cu", "Pt"]
