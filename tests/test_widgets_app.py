"""The no-code workshop app driven headlessly (:mod:`nanonb.widgets.app`; the browser test drives it in Voilà)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from nanonb import pretrained  # noqa: E402
from nanonb.widgets.app import WorkshopApp  # noqa: E402


@pytest.fixture(scope="module")
def app() -> WorkshopApp:
    _, test = pretrained.heldout_tasks()
    return WorkshopApp(pretrained.load_pretrained(), test.select(["Cu-Pt", "Au-Pt"]), pretrained.heldout_ceiling(),
                       task="Cu-Pt", shots=5)


def test_slider_drives_verdict_uncertainty_and_suggestion(app: WorkshopApp):
    r5 = dict(app.set(shots=5, seed=0))
    assert "With 5 measured clusters of Cu-Pt" in app.verdict_text
    assert f"{1000 * r5['mae']:.1f} meV/atom" in app.verdict_text  # the verdict is read from the numbers
    assert f"{1000 * r5['baseline_mae']['support mean']:.1f}" in app.verdict_text
    assert 0.0 <= r5["inside_1sd"] <= 1.0 and r5["mean_std"] > 0
    s5 = r5["suggested"]
    assert 1 <= s5["rank"] <= r5["n_query"] and f"#{s5['index'] + 1}" in app.suggestion_text
    assert app.picture.mode == "static" and app.picture.view.value[:4] == b"\x89PNG"
    app.explorer.shots.value = 12  # as the slider does: the explorer updates first, then the app
    r12 = app.result
    assert r12["k"] == 12 and app.explorer.result["k"] == 12
    assert "With 12 measured clusters" in app.verdict_text and r12["mae"] == app.explorer.result["mae"]
    # the suggestion is an unmeasured cluster of this episode, chosen by expected improvement
    ep = app.explorer.taskset.episode(app.explorer.taskset["Cu-Pt"], 12, seed=0)
    assert r12["suggested"]["true"] == pytest.approx(float(ep.query.targets[r12["suggested"]["index"]]))
    assert r12["suggested"]["best_measured"] == pytest.approx(float(np.min(ep.support.targets)))
    app.explorer.task.value = "Au-Pt"
    assert "of Au-Pt" in app.verdict_text and app.result["task"] == "Au-Pt"


def test_no_greyed_inner_loop_controls_for_a_learner_without_one(app: WorkshopApp):
    e = app.explorer
    assert e.inner_steps.disabled and e.inner_steps.layout.display == "none"
    assert e.shots.layout.display != "none"  # the explorer's Layout is shared; hiding must not hide shots


def test_invalid_settings_show_a_message_not_a_traceback(app: WorkshopApp):
    n = len(app.explorer.taskset["Cu-Pt"])
    app.explorer.max_shots = n
    app.explorer.shots.max = n
    r = app.set(task="Cu-Pt", shots=n)
    assert not r["ok"] and "⚠" in app.verdict.value and app.suggestion.value == ""
    assert app.set(shots=5)["ok"]
