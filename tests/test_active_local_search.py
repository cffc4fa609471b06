"""Tests of nanonb.active.local_search and the acquisition local search of the live loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nanonb.active.live import run_live_campaign
from nanonb.active.local_search import local_search
from nanonb.active.oracle import AlloyOracle
from nanonb.active.store import CampaignStore

torch.set_num_threads(1)


def _line(rng, d, n):
    return [{"v": d["v"] + int(s)} for s in rng.permutation([-2, -1, 1, 2])[:n]]


def _x(ds):
    return np.array([[d["v"]] for d in ds], float)


def test_local_search_climbs_to_the_maximum_and_never_returns_seen_designs():
    def score(x):
        return -np.abs(x[:, 0] - 9)

    seen = {json.dumps({"v": 3})}  # e.g. a measured design on the way
    designs, x = local_search(score, _line, _x, [{"v": 0}], np.array([-9.0]), seen, np.random.default_rng(0),
                              steps=20, n_neighbours=4)
    keys = [json.dumps(d, sort_keys=True) for d in designs]
    assert {"v": 9} in designs and len(set(keys)) == len(keys) and not seen & set(keys)
    assert {"v": 0} not in designs  # the start belongs to the caller's pool already
    np.testing.assert_array_equal(x, _x(designs))
    # a chain stops at a local maximum: with one step it only sees the start's neighbours
    one, _ = local_search(score, _line, _x, [{"v": 0}], np.array([-9.0]), set(), np.random.default_rng(0), steps=1)
    assert sorted(d["v"] for d in one) == [-2, -1, 1, 2]


def _round1(search_steps: int) -> tuple[dict, int]:
    store = CampaignStore(":memory:")
    run_live_campaign(AlloyOracle("Cu", "Pt", max_atoms=19), "gp", budget=4, n_init=3, n_candidates=12, seed=0,
                      store=store, search_steps=search_steps, search_starts=3, search_neighbours=6)
    frame = store.to_frame()
    n_scored = store.conn.execute("SELECT n_candidates FROM rounds WHERE round = 1").fetchone()[0]
    return frame.iloc[3].to_dict(), n_scored


def test_live_local_search_widens_the_pool_and_raises_the_acquisition():
    plain, n_plain = _round1(0)
    searched, n_searched = _round1(4)
    assert n_plain <= 12 < n_searched  # the searched designs were scored too
    # same measured designs and generated set, so the same GP: maximizing over a superset can only gain
    assert searched["acq_value"] > plain["acq_value"] and searched["candidate"] != plain["candidate"]


def test_local_search_needs_an_oracle_with_moves():
    class NoMoves:  # an oracle that can generate and measure but has no local moves
        goal, name = "min", "no-moves"

        def config(self):
            return {"oracle": "no-moves"}

    with pytest.raises(ValueError, match="neighbours"):
        run_live_campaign(NoMoves(), "gp", budget=4, n_candidates=8, search_steps=2)
