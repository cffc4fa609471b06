"""Tests for nanonb.physics.pisystem: π sites, electron counting and the plain Hückel gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _physics_helpers import benzene, flake

from nanonb.graphs import Structure, collate
from nanonb.physics.pisystem import build_pi_system, huckel_gaps, reference_gap
from nanonb.physics.tb import TBGapNet

torch.set_num_threads(1)
BETA = -2.7



def test_reference_gap_on_real_geometry_matches_analytic_benzene():
    gap = reference_gap(collate([benzene()], dtype=torch.float64))
    assert abs(float(gap[0]) - 2 * abs(BETA)) < 1e-6

def test_pi_system_electron_counting_of_dopants():
    s_n, s_bn = flake("N"), flake("BN")
    pi = build_pi_system(collate([s_n, s_bn]))
    z = collate([s_n, s_bn]).z[pi.atom_index]
    n_sites = pi.n_sites.tolist()
    # "N": two pyridinic N (two-coordinated, 1 electron) -> same count as the all-carbon parent
    assert int(pi.n_electrons[0]) == n_sites[0]
    n_mask = (z == 7) & (pi.graph == 0)
    assert (pi.electrons[n_mask] == 1).all() and (pi.n_heavy[n_mask] == 2).all() and (pi.n_h[n_mask] == 0).all()
    # "BN": B gives 0, graphitic N gives 2 -> again the parent count, and even
    assert int(pi.n_electrons[1]) == n_sites[1]
    assert (pi.electrons[(z == 7) & (pi.graph == 1)] == 2).all()
    assert (pi.electrons[(z == 5)] == 0).all()
    assert (pi.n_electrons % 2 == 0).all()
    assert (pi.edge_i < pi.edge_j).all()

def test_unsupported_elements_raise():
    s = Structure([6, 8], [[0, 0, 0], [1.2, 0, 0]])
    with pytest.raises(ValueError, match="supports H, B, C, N only"):
        TBGapNet()(collate([s]))


def test_reference_gap_is_an_untrained_tbgapnet_and_huckel_gaps_agree():
    structs = [benzene(), flake("N")]
    batch = collate(structs, cutoff=2.0)
    with torch.no_grad():
        assert torch.allclose(reference_gap(batch), TBGapNet(hidden=8)(batch, output="gap"), atol=1e-6)
    g = huckel_gaps(structs)
    assert g.dtype == np.float64 and np.allclose(g, reference_gap(batch).double().numpy())
    with pytest.raises(ValueError, match="supports H, B, C, N only"):
        reference_gap(collate([Structure([6, 8], [[0, 0, 0], [1.2, 0, 0]])]))
