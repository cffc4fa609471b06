"""Widgets driven headlessly: StructureView and AdaptationExplorer (no browser, no kernel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("nglview")

from nanonb import pretrained  # noqa: E402
from nanonb.graphs import Structure  # noqa: E402
from nanonb.tasks import TaskSet  # noqa: E402
from nanonb.widgets import AdaptationExplorer, StructureView, element_color  # noqa: E402


@pytest.fixture(scope="module")
def learner_and_tasks():
    torch.set_num_threads(1)
    train, test = pretrained.heldout_tasks()
    return pretrained.load_pretrained(), test.select(["Cu-Pt", "Au-Pt"])


class CountingBaseline:
    """A baseline that predicts the support median and counts its adaptations."""

    name, kind = "median", "baseline"

    def __init__(self):
        self.calls = 0

    def adapt(self, support):
        self.calls += 1
        med = float(np.median(support.targets))

        class P:
            def predict(self, task):
                return np.full(len(task), med)

        return P()


def _ngl_calls(view) -> list[dict]:
    return [m for m in view._ngl_msg_archive if m.get("type") == "call_method"]


def test_structure_view_colours_by_element_with_legend():
    s = Structure(numbers=[29, 29, 78], positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    v = StructureView(s, title="Cu2Pt")
    assert v.elements == ["Cu", "Pt"] and v.n_atoms == 3
    assert "Cu × 2" in v.legend_text and "Pt × 1" in v.legend_text
    assert element_color("Cu") in v.legend.value and element_color("Pt") in v.legend.value
    reprs = [m for m in _ngl_calls(v.view) if m["methodName"] == "addRepresentation"]
    assert {m["kwargs"]["sele"] for m in reprs} == {"_CU", "_PT"}
    assert {m["kwargs"]["color"] for m in reprs} == {element_color("Cu"), element_color("Pt")}
    # replacing the structure keeps exactly one component and updates the legend
    from ase.cluster import Icosahedron

    v.set_structure(Icosahedron("Au", 2), title="Au13")
    assert len(v.view._ngl_component_ids) == 1
    assert v.elements == ["Au"] and "Au × 13" in v.legend_text and "Au13" in v.title.value
    with pytest.raises(TypeError, match="ase.Atoms"):
        StructureView("not a structure")


def test_explorer_controls_readout_and_redraw(learner_and_tasks):
    learner, test = learner_and_tasks
    base = CountingBaseline()
    ex = AdaptationExplorer(learner, test, [base], shots=5, inner_steps=5)
    assert (ex.task.description, ex.shots.description, ex.inner_steps.description, ex.inner_lr.description) == (
        "task", "shots", "inner steps", "inner lr")
    assert ex.new_episode.description == "new episode"
    assert ex.result["ok"] and "MAE" in ex.readout.value and ex.message.value == ""
    assert set(ex.result["baseline_mae"]) == {"median", "support mean"}
    png0, readout0, mae0 = ex.image.value, ex.readout.value, ex.result["mae"]
    assert png0[:8] == b"\x89PNG\r\n\x1a\n"

    ex.shots.value = 10  # the observer re-adapts without any cell being re-run
    assert ex.result["k"] == 10 and ex.result["n_query"] == len(test["Cu-Pt"]) - 10
    assert ex.readout.value != readout0 and ex.image.value != png0 and ex.result["mae"] != mae0
    calls = base.calls
    ex.inner_steps.value = 20  # baselines do not depend on the inner loop: served from the cache
    assert base.calls == calls and ex.result["inner_steps"] == 20
    mae20 = ex.result["mae"]
    ex.inner_steps.value = 0  # zero steps = the meta-learned initialization, a different prediction
    assert ex.result["mae"] != mae20
    # adapting more steps changes the head's predictions exactly as MetaLearner.adapt does (fast path check)
    ep = test.episode("Cu-Pt", 10, seed=ex.seed)
    ex.inner_steps.value = 7
    direct = learner.adapt(ep.support, steps=7, lr=ex.inner_lr.value).predict(ep.query)
    assert ex.result["mae"] == pytest.approx(float(np.mean(np.abs(direct - ep.query.targets))), rel=1e-5)

    title0 = ex.structure_view.title.value
    ex.task.value = "Au-Pt"
    assert ex.result["task"] == "Au-Pt" and "Au-Pt" in ex.readout.value
    assert ex.structure_view.title.value != title0 and "Au" in ex.structure_view.elements
    assert len(ex.support_pick.options) == 10
    ex.support_pick.value = 3
    assert "support point 4" in ex.structure_view.title.value

    seed0, idx0 = ex.seed, ex._shown_support
    ex.new_episode.click()
    assert ex.seed == seed0 + 1 and ex._shown_support != idx0
    assert len(ex.timings) == 7 and all(t > 0 for t in ex.timings)


def test_explorer_invalid_settings_show_a_message_not_a_traceback(learner_and_tasks):
    learner, test = learner_and_tasks
    ex = AdaptationExplorer(learner, test, shots=5)
    n = len(test["Cu-Pt"])
    assert ex.shots.max == n  # the invalid end of the slider is reachable
    ex.shots.value = n
    assert not ex.result["ok"] and "no query point is left" in ex.message.value
    assert f"shots ≤ {n - 1}" in ex.message.value and "MAE" in ex.readout.value
    ex.shots.value = 3
    assert ex.result["ok"] and ex.message.value == ""
    ex.set(inner_lr=1.0, inner_steps=50)  # a divergent inner loop is explained, not raised
    assert ex.result["ok"] and "inner lr" in ex.message.value
    assert not np.isfinite(ex.result["mae"]) or ex.result["mae"] > 10 * ex.result["baseline_mae"]["support mean"]
    ex.set(inner_lr=0.1, inner_steps=5)
    assert ex.message.value == ""


def test_explorer_errors_inside_adapt_are_reported(learner_and_tasks):
    _, test = learner_and_tasks

    class Broken:
        name = "broken"

        def adapt(self, support, steps=None, lr=None):
            raise RuntimeError("the model exploded")

    ex = AdaptationExplorer(Broken(), test)
    assert not ex.result["ok"] and "the model exploded" in ex.message.value
    with pytest.raises(ValueError, match="Unknown setting"):
        ex.set(shot=3)


def test_explorer_uncertainty_hook_draws_bands(learner_and_tasks):
    learner, test = learner_and_tasks

    class WithDist:
        name = "anil+sd"

        def adapt(self, support, steps=None, lr=None):
            a = learner.adapt(support, steps=steps, lr=lr)

            class D:
                def predict(self, task):
                    return a.predict(task)

                def predict_dist(self, task):
                    m = a.predict(task)
                    return m, np.full(len(m), 0.01)

            return D()

    ex = AdaptationExplorer(WithDist(), test, show_structures=False)
    assert ex.result["ok"] and ex.structure_view is None
    assert len(ex._artists["bands"].get_segments()) == ex.result["n_query"]
    ex2 = AdaptationExplorer(learner, test, show_structures=False)
    assert len(ex2._artists["bands"].get_segments()) == 0


def test_explorer_on_tabular_tasks_and_speed(learner_and_tasks):
    from nanonb.learners.registry import make_learner

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3)).astype(np.float32)
    ids = np.repeat(np.arange(6), 40)
    y = x @ np.array([1.0, -2.0, 0.5]) + ids * 0.3
    ts = TaskSet.from_arrays(x, y, ids)
    m = make_learner("maml", model="MLP", model_kwargs={"hidden": [16]}, n_iterations=3, seed=0)
    m.fit(ts, progress=False)
    ex = AdaptationExplorer(m, ts, scale=1.0, unit="a.u.")
    assert ex.result["ok"] and ex.structure_view is None and "a.u." in ex.readout.value
    # speed on the shipped learner (5 shots x 10 inner steps + redraw); loose bound for shared CI machines
    learner, test = learner_and_tasks
    ex = AdaptationExplorer(learner, test, shots=5, inner_steps=10)
    t = ex.time_updates(n=8, warmup=1)
    assert t["median_ms"] < 1500, t


def test_live_figure_and_support_mean():
    from nanonb.widgets import LiveFigure, SupportMean

    live = LiveFigure(figsize=(3, 2), dpi=50)
    live.ax.plot([0, 1], [0, 1])
    live.refresh()
    first = bytes(live.value)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    live.clear()
    live.ax.plot([0, 1], [1, 0], color="r")
    live.refresh()
    assert bytes(live.value) != first

    rng = np.random.default_rng(0)
    ts = TaskSet.from_arrays(rng.normal(size=(20, 2)), rng.normal(size=20), np.zeros(20))
    ep = ts.episode(0, 4, seed=0)
    pred = SupportMean().fit(ts).adapt(ep.support).predict(ep.query)
    assert pred.shape == (16,) and np.allclose(pred, ep.support.targets.mean())
    with pytest.raises(ValueError, match="at least one support point"):
        SupportMean().adapt(None)


def test_blitted_redraw_matches_a_full_redraw(learner_and_tasks):
    """A slider move redraws only the moving artists; the picture must equal a fresh full draw."""
    import io

    from PIL import Image

    learner, test = learner_and_tasks
    moved = AdaptationExplorer(learner, test, shots=5, inner_steps=2, show_structures=False)
    moved.inner_steps.value = 9  # same episode: background reused, artists blitted
    fresh = AdaptationExplorer(learner, test, shots=5, inner_steps=9, show_structures=False)
    a = np.asarray(Image.open(io.BytesIO(bytes(moved.image.value))).convert("RGB"), dtype=int)
    b = np.asarray(Image.open(io.BytesIO(bytes(fresh.image.value))).convert("RGB"), dtype=int)
    assert a.shape == b.shape
    differ = np.mean(np.any(a != b, axis=-1))
    print(f"blit vs full redraw: {100 * differ:.3f}% of pixels differ")
    assert differ < 0.0005, f"{100 * differ:.2f}% of pixels differ between blitted and full redraw"
    before = np.asarray(Image.open(io.BytesIO(bytes(AdaptationExplorer(
        learner, test, shots=5, inner_steps=2, show_structures=False).image.value))).convert("RGB"), dtype=int)
    assert np.mean(np.any(a != before, axis=-1)) > 0.001  # and the move did change the picture
