"""Tests of nanonb.active.oracle and nanonb.data.alloy_design: live EMT labels and the human (CSV) oracle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nanonb.active.live import run_live_campaign
from nanonb.active.oracle import AlloyOracle, CSVDropOracle
from nanonb.active.store import CampaignStore
from nanonb.data.alloy_clusters import DESCRIPTOR_NAMES, _pure_energy, emt_energy
from nanonb.data.alloy_design import describe, design_structure, mixing_energy, swap_moves


def test_designs_are_described_and_labelled_like_the_data_set():
    d = {"cluster": "Ih13", "b_sites": [0, 3, 5, 7]}
    x = describe("Cu", "Pt", [d])[0]
    col = dict(zip(DESCRIPTOR_NAMES, x))
    assert col["x_B"] == pytest.approx(4 / 13) and col["strain"] == 0 and col["rattle_std_A"] == 0
    assert col["frac_AA"] + col["frac_AB"] + col["frac_BB"] == pytest.approx(1.0)
    e = emt_energy(design_structure("Cu", "Pt", d))[0]
    ref = (e - 9 / 13 * _pure_energy("Ih13", "Cu") - 4 / 13 * _pure_energy("Ih13", "Pt")) / 13
    assert mixing_energy("Cu", "Pt", d) == pytest.approx(ref)
    assert mixing_energy("Cu", "Pt", {"cluster": "Ih13", "b_sites": list(range(13))}) == pytest.approx(0.0, abs=1e-12)
    for m in swap_moves(np.random.default_rng(0), d, 50):
        assert abs(len(m["b_sites"]) - 4) <= 1 and 1 <= len(m["b_sites"]) <= 12


def test_human_oracle_waits_for_the_csv_drop_and_the_campaign_continues(tmp_path):
    oracle = CSVDropOracle(AlloyOracle("Cu", "Pt", max_atoms=13), tmp_path / "drop", poll_s=0.01, timeout_s=0.05)
    store = CampaignStore(tmp_path / "lab.sqlite")
    kw = dict(strategy="random", budget=4, n_init=2, batch_size=2, n_candidates=10, seed=0, store=store, name="lab")
    with pytest.raises(TimeoutError, match="no result yet"):
        run_live_campaign(oracle, **kw)
    props = pd.read_csv(oracle.proposals_csv)
    assert len(props) == 2 and len(store.pending(1)) == 2
    # the lab measures the first design only: it is recorded, the other is still asked for
    first = json.loads(props["design"][0])
    pd.DataFrame({"proposal_id": [props["proposal_id"][0]],
                  "value": [mixing_energy("Cu", "Pt", first)]}).to_csv(oracle.results_csv, index=False)
    with pytest.raises(TimeoutError):
        run_live_campaign(oracle, **kw)
    assert len(store.pending(1)) == 1
    # the lab answers every request it sees (here: EMT stands in for it), and the campaign runs to its budget
    answered = {}

    def answer(*_):
        p = pd.read_csv(oracle.proposals_csv)
        for pid, des in zip(p["proposal_id"], p["design"]):
            answered.setdefault(int(pid), mixing_energy("Cu", "Pt", json.loads(des)))
        pd.DataFrame({"proposal_id": list(answered), "value": list(answered.values())}).to_csv(
            oracle.results_csv, index=False)

    lab = CSVDropOracle(oracle.designer, oracle.drop_dir, poll_s=0.01, timeout_s=5, on_request=answer)
    res = run_live_campaign(lab, **kw)
    df = store.to_frame()
    assert len(df) == 4 and df["value"].notna().all() and set(df["source"]) == {"human"}
    assert len(res.values) == 4
