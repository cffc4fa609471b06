"""The adaptation explorer driven headlessly (:mod:`nanonb.widgets.explorer`; no browser, no kernel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("nglview")

from nanonb import pretrained  # noqa: E402
from nanonb.tasks import TaskSet  # noqa: E402
from nanonb.widgets.explorer import AdaptationExplorer  # noqa: E402


@pytest.fixture(scope="module")
def learner_and_tasks():
    torch.set_num_threads(1)
    train, test = pretrained.heldout_tasks()
    return pretrained.load_pretrained("nanoalloys-anil"), test.select(["Cu-Pt", "Au-Pt"])


@pytest.fixture(scope="module")
def bml_and_tasks():
    """The shipped default learner (Bayesian last layer on descriptors) and two held-out tasks."""
    torch.set_num_threads(1)
    _, test = pretrained.heldout_tasks()
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
    assert len(ex._plot.artists["bands"].get_segments()) == ex.result["n_query"]
    ex2 = AdaptationExplorer(learner, test, show_structures=False)
    assert len(ex2._plot.artists["bands"].get_segments()) == 0


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


class CountingLearner:
    """Wraps a learner and counts its adaptations (to see the explorer's cache at work)."""

    def __init__(self, learner):
        self.learner, self.name, self.calls = learner, learner.name, 0

    def adapt(self, support):
        self.calls += 1
        return self.learner.adapt(support)


def test_explorer_with_the_shipped_bayesian_learner(bml_and_tasks):
    """Descriptor learner on structure tasks: s.d. bars, ceiling, closed, 3D support structures, cache."""
    learner, test = bml_and_tasks
    ceiling = {"Cu-Pt": 0.0206, "Au-Pt": 0.0108}
    counting = CountingLearner(learner)
    ex = AdaptationExplorer(counting, test, shots=5, ceiling=ceiling)
    r = ex.result
    assert r["ok"] and r["has_std"] and ex.inner_steps.disabled and ex.inner_lr.disabled
    assert len(ex._plot.artists["bands"].get_segments()) == r["n_query"]
    assert ex._plot.artists["ceiling"].get_visible() and ex._plot.artists["ceiling"].get_xdata()[0] == 20.6
    assert r["ceiling_mae"] == 0.0206 and "in-task ceiling" in ex.readout_text
    ref = r["baseline_mae"]["support mean"]
    assert r["closed"] == pytest.approx((ref - r["mae"]) / (ref - 0.0206))
    if r["mae"] <= 0.0206:  # below the ceiling: said in words, not as a share over 100 %
        assert "below the in-task ceiling" in ex.readout_text and "closes" not in ex.readout_text
    else:
        assert f"closes {100 * r['closed']:.0f} %" in ex.readout_text
    # the same numbers as adapting the learner directly
    ep = test.episode("Cu-Pt", 5, seed=0)
    mean, std = learner.adapt(ep.support).predict_dist(ep.query)
    assert r["mae"] == pytest.approx(float(np.mean(np.abs(mean - ep.query.targets))))
    assert np.all(std > 0)
    # the 3D view shows the support clusters of the episode the learner adapted on
    assert len(ex.support_pick.options) == 5 and "Cu" in ex.structure_view.elements
    # everything a slider reaches is cached: revisiting 5 shots does not adapt again
    calls = counting.calls
    ex.shots.value = 6
    assert counting.calls == calls + 1
    ex.shots.value = 5
    assert counting.calls == calls + 1 and ex.result["mae"] == r["mae"]
    assert ex.time_updates(n=5, warmup=1)["median_ms"] < 1500


def test_explorer_computes_the_ceiling_once_per_task(bml_and_tasks, monkeypatch):
    from nanonb.widgets import explorer as explorer_module

    learner, test = bml_and_tasks
    calls = []
    monkeypatch.setattr(explorer_module, "_CEILING_CACHE", {})
    monkeypatch.setattr(explorer_module, "task_ceiling", lambda task: calls.append(task.name) or 0.01)
    ex = AdaptationExplorer(learner, test, shots=5, show_structures=False)
    ex.shots.value = 7
    ex.task.value = "Au-Pt"
    ex.task.value = "Cu-Pt"
    assert calls == ["Cu-Pt", "Au-Pt"] and ex.result["ceiling_mae"] == 0.01
    off = AdaptationExplorer(learner, test, shots=5, ceiling=False, show_structures=False)
    assert off.result["ceiling_mae"] is None and off.result["closed"] is None
    assert not off._plot.artists["ceiling"].get_visible() and "ceiling" not in off.readout_text


def test_explorer_on_descriptor_tasks_shows_the_matching_structures(bml_and_tasks):
    from nanonb.learners.descriptors import OnDescriptors

    learner, test = bml_and_tasks
    raw = learner.learner  # the BayesianMetaLearner itself, which needs tabular (descriptor) tasks
    tab = OnDescriptors.taskset(test)
    ex = AdaptationExplorer(raw, tab, shots=4, structures=test, ceiling=False)
    assert ex.result["ok"] and ex.structure_view is not None
    ep = tab.episode("Cu-Pt", 4, seed=0)
    assert [len(s) for s, _ in ex._support_structures] == [len(test["Cu-Pt"].inputs[i]) for i in ep.support_idx]
    wrapped = AdaptationExplorer(learner, test, shots=4, ceiling=False, show_structures=False)
    assert wrapped.result["mae"] == pytest.approx(ex.result["mae"])


def test_shots_moves_blit_on_a_cached_background_and_match_a_full_redraw(learner_and_tasks):
    """Moving "shots" keeps the figure's background (no full draw) and still equals a fresh full draw."""
    import io

    from PIL import Image

    learner, test = learner_and_tasks
    ex = AdaptationExplorer(learner, test, shots=5, inner_steps=3, show_structures=False)
    canvas = ex.figure.canvas
    full_draws = []
    draw = canvas.draw
    canvas.draw = lambda *a, **k: (full_draws.append(1), draw(*a, **k))[1]
    for k in (6, 7, 6, 5, 6):
        ex.shots.value = k
        assert ex.result["ok"] and ex.result["k"] == k
    assert len(full_draws) <= 1, f"{len(full_draws)} full redraws for 5 shots moves"
    fresh = AdaptationExplorer(learner, test, shots=6, inner_steps=3, show_structures=False)
    fresh._plot._xmax = dict(ex._plot._xmax)  # the same bar-axis range as the moved explorer kept
    fresh.update()  # a new background for that range, drawn in full, then the artists
    a, b = (np.asarray(Image.open(io.BytesIO(bytes(e.image.value))).convert("RGB"), dtype=int) for e in (ex, fresh))
    assert a.shape == b.shape and np.mean(np.any(a != b, axis=-1)) < 0.0005
