"""Tests of nanonb.active.flake_oracle: new graphene flakes in a size budget, labelled by GFN2-xTB in the loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tblite")

from nanonb.active.flake_oracle import FlakeOracle  # noqa: E402
from nanonb.active.live import run_live_campaign  # noqa: E402
from nanonb.data.flakes import xtb_gap  # noqa: E402
from nanonb.data.honeycomb import DESCRIPTOR_NAMES, fingerprint  # noqa: E402


def test_campaign_labels_each_proposal_with_xtb_gap_of_that_flake():
    oracle = FlakeOracle("BN", min_heavy=10, max_heavy=16)
    res = run_live_campaign(oracle, "random", budget=4, n_init=2, n_candidates=8, seed=0)
    assert len(res.values) == 4 and len(oracle.xtb_seconds) == 4  # one xTB call per proposal, none repeated
    fresh = FlakeOracle("BN", min_heavy=10, max_heavy=16)  # regenerated from the logged recipe alone
    keys = set()
    for cand, value, desc in zip(res.frame["candidate"], res.frame["value"], res.frame["descriptors"]):
        flake = fresh.flake(json.loads(cand))
        assert 10 <= flake.info["n_heavy"] <= 16 and sorted(set(flake.structure.numbers)) == [1, 5, 6, 7]
        assert value == xtb_gap(flake.structure)[0]  # eV, exactly the data set's label function
        assert json.loads(desc) == pytest.approx([flake.info[k] for k in DESCRIPTOR_NAMES])
        keys.add(fingerprint(flake.structure))
    assert len(keys) == 4  # four different molecules


def test_candidates_stay_in_budget_and_skip_measured_and_excluded_molecules():
    oracle = FlakeOracle("N", min_heavy=21, max_heavy=30)
    rng = np.random.default_rng(3)
    incumbents = oracle.initial(rng, 3)
    cands = oracle.candidates(np.random.default_rng(4), incumbents, 24)
    assert len(cands) >= 20
    moved = [c for c in cands if c["seed"] in {d["seed"] for d in incumbents}]
    assert moved  # local moves from the incumbents (same dopant seed: grown, shrunk, reshaped or shifted)
    fps = [fingerprint(oracle.structure(c)) for c in cands]
    assert all(21 <= oracle.flake(c).info["n_heavy"] <= 30 for c in cands)
    assert len(set(fps)) == len(fps) and not set(fps) & {fingerprint(oracle.structure(d)) for d in incumbents}
    banned = FlakeOracle("N", min_heavy=21, max_heavy=30, exclude=set(fps[:5]))
    again = banned.candidates(np.random.default_rng(4), incumbents, 24)
    assert not {fingerprint(banned.structure(c)) for c in again} & set(fps[:5])
    x = oracle.describe(cands)
    assert x.shape == (len(cands), len(DESCRIPTOR_NAMES)) and np.isfinite(x).all()
