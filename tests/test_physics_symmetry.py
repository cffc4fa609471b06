"""Tests for nanonb.physics.symmetry: the checks themselves (they pass for invariant models, fail otherwise).

Model-level uses of the checks (EquivariantGNN, InvariantGNN) live in the model tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _physics_helpers import benzene, flake, random_head
from ase.cluster import Icosahedron
from torch import nn

from nanonb.graphs import Structure
from nanonb.physics.symmetry import check_force_equivariance, check_invariance, closed_loop_work, random_rotation
from nanonb.physics.tb import TBGapNet

torch.set_num_threads(1)


def small_cluster(seed: int = 0) -> Structure:
    atoms = Icosahedron("Cu", 2)  # 13 atoms
    rng = np.random.default_rng(seed)
    z = atoms.get_atomic_numbers()
    z[rng.choice(len(z), 4, replace=False)] = 78
    return Structure(z, atoms.get_positions() + rng.normal(scale=0.08, size=(len(z), 3)))

class _XCoordinateEnergy(nn.Module):
    """Not invariant: energy = Σ_i (w · r_i) + per-element term (for testing that the checks can fail)."""

    cutoff = 4.0

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.3, -0.2, 0.1]))

    def forward(self, batch, output="target", pos=None):
        pos = batch.pos if pos is None else pos
        per_atom = pos @ self.w.to(pos.dtype) + 0.01 * batch.z.to(pos.dtype)
        e = torch.zeros(batch.n_graphs, dtype=pos.dtype).index_add(0, batch.graph, per_atom ** 2)
        return e if output == "energy" else e / batch.n_atoms

def test_invariance_check_detects_a_non_invariant_model():
    dev = check_invariance(_XCoordinateEnergy(), small_cluster(), n_trials=2)
    assert dev["rotation"] > 1e-2 and dev["reflection"] > 1e-2 and dev["translation"] > 1e-2
    assert dev["permutation"] < 1e-9  # a sum over atoms is still permutation invariant

def test_force_check_detects_non_equivariant_forces():
    dev = check_force_equivariance(_XCoordinateEnergy(), small_cluster(), n_trials=2)
    assert dev["rotation"] > 1e-2 and dev["translation"] > 1e-2

def test_closed_loop_work_detects_a_non_conservative_field():
    s = small_cluster(6)
    omega = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)

    def curl_field(pos):  # F = ω × r: a pure rotation field, ∮ F·dr = 2 ω · (enclosed area) != 0
        return torch.linalg.cross(omega.expand_as(pos), pos)

    res = closed_loop_work(None, s, force_fn=curl_field, amplitude=0.05)
    assert res["relative"] > 1e-2
    with pytest.raises(ValueError, match="model or a force_fn"):
        closed_loop_work(None, s)


def test_random_rotation_is_orthogonal_with_the_requested_determinant():
    rng = np.random.default_rng(0)
    for proper in (True, False):
        q = random_rotation(rng, proper=proper)
        assert np.allclose(q @ q.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(q), 1.0 if proper else -1.0)


def test_check_invariance_of_tbgapnet():
    m = random_head(TBGapNet(hidden=8))
    dev = check_invariance(m, [flake("BN"), benzene()], n_trials=2)
    assert dev["scale"] > 0.1
    assert max(dev[k] for k in ("rotation", "reflection", "translation", "permutation")) < 1e-5
