"""Tests of nanonb.widgets.campaign: the campaign dashboard and the human oracle's entry form."""

from __future__ import annotations

import pandas as pd

from nanonb.active.oracle import AlloyOracle
from nanonb.widgets.campaign import CampaignDashboard, results_form


def test_dashboard_runs_one_round_per_click_and_shows_the_proposal():
    dash = CampaignDashboard(AlloyOracle("Cu", "Pt", max_atoms=13), "gp", budget=5, n_init=3, n_candidates=12)
    assert dash.button.description == "run next round"
    dash.button.click()  # round 0: the random designs
    assert len(dash.result.values) == 3 and "round 0" in dash.readout.value
    dash.run_round()
    assert len(dash.result.values) == 4 and "round 1" in dash.readout.value and "±" in dash.readout.value
    assert dash.view is not None and dash.view.n_atoms == 13 and "Cu" in dash.view.legend_text
    dash.run_round()
    assert dash.done and dash.button.disabled and len(dash.figure.value) > 0


def test_results_form_appends_rows(tmp_path):
    form = results_form(tmp_path)
    (pid, value, save), status = form.children[0].children, form.children[1]
    for i, v in ((3, -0.1), (4, 0.2)):
        pid.value, value.value = i, v
        save.click()
    df = pd.read_csv(tmp_path / "results.csv")
    assert df["proposal_id"].tolist() == [3, 4] and df["value"].tolist() == [-0.1, 0.2] and "saved" in status.value
