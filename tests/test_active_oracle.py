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


def test_fixed_composition_oracle_keeps_shape_and_composition_and_labels_by_emt():
    with pytest.raises(ValueError, match="composition"):
        AlloyOracle("Cu", "Pt", composition=1.0)
    with pytest.raises(ValueError, match="unknown cluster"):
        AlloyOracle("Cu", "Pt", cluster="Ih56")
    oracle = AlloyOracle("Ag", "Pt", cluster="Ih55", composition=0.5)
    rng = np.random.default_rng(1)
    first = oracle.initial(rng, 6)
    cands = oracle.candidates(rng, first, 40)
    moves = oracle.neighbours(rng, first[0], 30)
    for d in first + cands + moves:  # 28 = 27.5 rounded half up; swaps only, never a flip
        assert d["cluster"] == "Ih55" and len(d["b_sites"]) == 28 == len(set(d["b_sites"]))
    assert all(m["b_sites"] != first[0]["b_sites"] for m in moves)  # every move changes the ordering
    assert oracle.config()["cluster"] == "Ih55" and oracle.config()["composition"] == 0.5
    assert "cluster" not in AlloyOracle("Ag", "Pt").config()
    x = oracle.describe(first + moves)
    col = dict(zip(DESCRIPTOR_NAMES, x.T))
    assert np.allclose(col["x_B"], 28 / 55) and np.allclose(col["n_inv_cbrt"], 55 ** (-1 / 3))
    assert np.ptp(col["frac_AB"]) > 0  # the ordering descriptors still vary
    e = [v for _, v in oracle.measure_batch(list(enumerate(first[:2])))]
    assert e == [pytest.approx(mixing_energy("Ag", "Pt", d)) for d in first[:2]] and e[0] != e[1]
    # a composition alone keeps each shape's own N_B; the default oracle still flips (composition changes)
    free = AlloyOracle("Cu", "Pt", max_atoms=19, composition=0.25)
    assert {(d["cluster"], len(d["b_sites"])) for d in free.initial(rng, 30)} <= {("Ih13", 3), ("cubo13", 3),
                                                                                   ("Dh13", 3), ("Oh19", 5)}
    base = AlloyOracle("Cu", "Pt", max_atoms=13).neighbours(rng, {"cluster": "Ih13", "b_sites": [0, 1, 2]}, 40)
    assert {len(m["b_sites"]) for m in base} > {3}
