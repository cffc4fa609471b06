"""The explorer's readout text follows the numbers (nanonb/widgets/explorer_figure.py)."""

from nanonb.widgets.explorer_figure import readout_html

R = {"mae": 0.017, "baseline_mae": {"support mean": 0.032}, "ceiling_mae": 0.015, "closed": 0.88,
     "n_query": 75, "task": "Cu-Pt", "k": 5}


def test_readout_states_share_of_gap_closed():
    text = readout_html(R, "bml", 1000.0, "meV/atom")
    assert "closes 88 %" in text and "bml beats" in text


def test_readout_below_ceiling_says_so_instead_of_a_share_over_100():
    text = readout_html({**R, "mae": 0.0141, "closed": (0.032 - 0.0141) / (0.032 - 0.015)}, "bml", 1000.0, "meV/atom")
    assert "below the in-task ceiling" in text and "closes" not in text


def test_readout_worse_than_support_mean_has_no_gap_share():
    text = readout_html({**R, "mae": 0.040, "closed": (0.032 - 0.040) / (0.032 - 0.015)}, "bml", 1000.0, "meV/atom")
    assert "does not beat" in text and "closes" not in text
