"""Tests for nanonb.data.honeycomb: flake structures cut from the honeycomb lattice."""

from __future__ import annotations

import numpy as np
import pytest

from nanonb.data import _lattice as lattice
from nanonb.data._lattice import CC_BOND, CH_BOND
from nanonb.data.honeycomb import SHAPES, fingerprint, generate_family, generate_flake
from nanonb.graphs import collate
from nanonb.physics.pisystem import build_pi_system


def _bonds(s):
    d = np.linalg.norm(s.positions[:, None] - s.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d

def _check_geometry(s):
    z = s.numbers
    d = _bonds(s)
    heavy = z != 1
    hh = d[np.ix_(heavy, heavy)]
    nb_heavy = (hh < 1.6).sum(1)
    # heavy-heavy bonds are exactly 1.42 Å; every heavy atom has 2 or 3 heavy neighbours
    assert np.allclose(hh[hh < 1.6], CC_BOND, atol=1e-6)
    assert set(nb_heavy.tolist()) <= {2, 3}
    # H: exactly one bond, 1.09 Å, to a heavy atom
    for h in np.flatnonzero(~heavy):
        close = np.flatnonzero(d[h] < 1.2)
        assert len(close) == 1 and heavy[close[0]]
        assert abs(d[h, close[0]] - CH_BOND) < 1e-6
    # termination: C and B with two heavy neighbours carry one H; three-coordinated atoms none
    n_h = (d[np.ix_(heavy, ~heavy)] < 1.2).sum(1)
    zh = z[heavy]
    for zz, nh, nb in zip(zh, n_h, nb_heavy):
        if zz == 7:
            assert nh == 0  # pyridinic (2 heavy nb) or graphitic (3)
        else:
            assert nh == (1 if nb == 2 else 0)
    # no steric clash: H-H >= 1.7 Å (bay regions are ~1.75 Å), nothing closer than 1.0 Å
    hd = d[np.ix_(~heavy, ~heavy)]
    assert hd.min() > 1.7 if hd.size > 1 else True
    assert d.min() > 1.0

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dopant", ["none", "N", "BN", "B"])
def test_generated_flakes_are_terminated_neutral_even_electron(shape, dopant):
    fam = generate_family(shape, dopant, n=3, seed=1, min_heavy=6, max_heavy=40)
    assert len(fam) == 3
    for f in fam:
        s = f.structure
        _check_geometry(s)
        assert int(s.numbers.sum()) % 2 == 0  # neutral molecule with an even electron count
        pi = build_pi_system(collate([s]))
        assert int(pi.n_electrons[0]) % 2 == 0
        z = s.numbers
        counts = {"none": (0, 0), "N": (0, 2), "BN": (1, 1), "B": (2, 0)}[dopant]
        assert ((z == 5).sum(), (z == 7).sum()) == counts
        assert f.info["n_heavy"] == int((z != 1).sum()) and f.info["n_H"] == int((z == 1).sum())
        expected_pi = f.info["n_heavy"] - (2 if dopant == "B" else 0)
        assert int(pi.n_electrons[0]) == expected_pi

def test_known_flakes_benzene_and_coronene():
    benz = generate_flake("hexagonal-zigzag", 1.5)
    assert sorted(benz.structure.numbers.tolist()) == [1] * 6 + [6] * 6
    coronene = generate_flake("hexagonal-zigzag", 4.5)
    assert (coronene.info["n_C"], coronene.info["n_H"]) == (24, 12)
    circum = generate_flake("hexagonal-zigzag", 6.5)
    assert (circum.info["n_C"], circum.info["n_H"]) == (54, 18)
    # edge sites: coronene's CH come in bonded pairs (armchair-like "duo" H), pentacene has 6 "solo"
    # zigzag CH on its long edges and 2 x 4 bonded CH at its ends
    assert coronene.info["zigzag_edge_fraction"] == 0.0
    assert coronene.info["armchair_edge_fraction"] == pytest.approx(12 / 24)
    pentacene = generate_flake("ribbon-zigzag", 7.0, 1.5)
    assert (pentacene.info["n_C"], pentacene.info["n_H"]) == (22, 14)
    assert pentacene.info["zigzag_edge_fraction"] == pytest.approx(6 / 22)
    assert pentacene.info["armchair_edge_fraction"] == pytest.approx(8 / 22)
    assert pentacene.info["edge_fraction"] == pytest.approx(14 / 22)

def test_non_kekule_triangulene_is_rejected():
    pos, sub, nb = lattice.get_lattice(20.0)
    # zigzag-edged triangle centred on a B-sublattice atom: [3]triangulene, C22 with 12 A / 10 B
    normals, offsets = lattice.regular_polygon(3, 3.0, 90.0)
    occ = lattice.clean(lattice.polygon_mask(pos - np.array([0.0, CC_BOND]), normals, offsets), nb)
    n_a, n_b = int((occ & (sub == 0)).sum()), int((occ & (sub == 1)).sum())
    assert (n_a, n_b) == (12, 10)  # sublattice imbalance 2: two zero modes, open shell
    assert not lattice.is_kekule(occ, sub, nb)
    cut = lattice.regular_polygon(6, 4.5, 30.0)
    hexagon = lattice.clean(lattice.polygon_mask(pos - lattice.HEX_CENTRE, *cut), nb)
    assert hexagon.sum() == 24 and lattice.is_kekule(hexagon, sub, nb)  # coronene

def test_dopant_chemistry():
    for f in generate_family("rectangular", "N", n=4, seed=0, min_heavy=10, max_heavy=30):
        s = f.structure
        d = _bonds(s)
        n_idx = np.flatnonzero(s.numbers == 7)
        heavy = s.numbers != 1
        assert all(((d[i] < 1.6) & heavy).sum() == 2 for i in n_idx)  # pyridinic
        assert d[n_idx[0], n_idx[1]] > 1.6  # no N-N bond
    for f in generate_family("rectangular", "BN", n=4, seed=0, min_heavy=10, max_heavy=30):
        s = f.structure
        d = _bonds(s)
        (n_i,) = np.flatnonzero(s.numbers == 7)
        assert ((d[n_i] < 1.6) & (s.numbers != 1)).sum() == 3  # graphitic
        assert f.info["dopant_separation"] > 1.0

def test_family_is_deterministic_distinct_and_in_size_range():
    a = generate_family("ribbon-armchair", "BN", n=6, seed=3, min_heavy=10, max_heavy=36)
    b = generate_family("ribbon-armchair", "BN", n=6, seed=3, min_heavy=10, max_heavy=36)
    c = generate_family("ribbon-armchair", "BN", n=6, seed=4, min_heavy=10, max_heavy=36)
    assert all(np.array_equal(x.structure.positions, y.structure.positions) for x, y in zip(a, b))
    assert not all(np.array_equal(x.structure.numbers, y.structure.numbers)
                   and x.structure.positions.shape == y.structure.positions.shape
                   and np.allclose(x.structure.positions, y.structure.positions) for x, y in zip(a, c))
    assert len({fingerprint(f.structure) for f in a}) == 6
    assert all(10 <= f.info["n_heavy"] <= 36 for f in a)

def test_unknown_shape_or_dopant_raise():
    with pytest.raises(ValueError, match="Unknown shape"):
        generate_family("circle", "none", 1)
    with pytest.raises(ValueError, match="Unknown dopant"):
        generate_flake("rectangular", 3.0, dopant="P")


def test_fingerprint_ignores_rigid_motions_and_atom_order():
    s = generate_flake("hexagonal-zigzag", 4.5).structure  # coronene
    perm = np.random.default_rng(0).permutation(len(s))
    moved = type(s)(s.numbers[perm], s.positions[perm] @ np.diag([-1.0, 1.0, 1.0]) + 3.0)
    assert fingerprint(moved) == fingerprint(s)
    assert fingerprint(generate_flake("hexagonal-zigzag", 1.5).structure) != fingerprint(s)
