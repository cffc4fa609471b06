"""Honeycomb lattice geometry for the flake generator (:mod:`nanonb.data.honeycomb`).

Lattice sites and their neighbour table, convex polygon cuts, the cleaning rules (prune dangling
atoms, fill enclosed sites, keep the largest piece), the Kekulé (perfect matching) test and the
C–H termination. Lengths in Å; C–C bond :data:`CC_BOND`, C–H bond :data:`CH_BOND`.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, maximum_bipartite_matching

CC_BOND = 1.42  # Å, ideal graphene C–C bond length
CH_BOND = 1.09  # Å, ideal aromatic C–H bond length
SQ3 = np.sqrt(3.0)
A1 = np.array([SQ3 * CC_BOND, 0.0])
A2 = np.array([SQ3 * CC_BOND / 2, 1.5 * CC_BOND])
HEX_CENTRE = np.array([SQ3 * CC_BOND / 2, CC_BOND / 2])


def lattice(extent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Honeycomb sites of a rhombic patch covering the disc of radius ``extent`` (Å).

    Returns positions (M, 2) in Å, the sublattice (0 = A, 1 = B) and the (M, 3) neighbour table
    (index of each of the three lattice neighbours, -1 outside the patch). Zigzag chains run along
    x, armchair chains along y. Site A(n, m) sits at n·a1 + m·a2, B(n, m) at A(n, m) + (0, a).
    """
    k = int(np.ceil(2 * extent / CC_BOND)) + 2
    side = 2 * k + 1
    n, m = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij")
    n, m = n.ravel(), m.ravel()
    cell = n[:, None] * A1 + m[:, None] * A2
    pos = np.concatenate([cell, cell + np.array([0.0, CC_BOND])])
    sub = np.concatenate([np.zeros(len(cell), int), np.ones(len(cell), int)])

    def index(nn: np.ndarray, mm: np.ndarray, s: int) -> np.ndarray:
        ok = (np.abs(nn) <= k) & (np.abs(mm) <= k)
        return np.where(ok, s * side * side + (nn + k) * side + (mm + k), -1)

    nb_a = np.stack([index(n, m, 1), index(n + 1, m - 1, 1), index(n, m - 1, 1)], axis=1)
    nb_b = np.stack([index(n, m, 0), index(n - 1, m + 1, 0), index(n, m + 1, 0)], axis=1)
    return pos, sub, np.concatenate([nb_a, nb_b])


_LATTICE_CACHE: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def get_lattice(extent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    extent = float(8.0 * np.ceil(extent / 8.0))
    if extent not in _LATTICE_CACHE:
        _LATTICE_CACHE[extent] = lattice(extent)
    return _LATTICE_CACHE[extent]


def polygon_mask(xy: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Points inside the convex polygon {x : n_k · x <= o_k for all k}."""
    return np.all(xy @ normals.T <= offsets[None, :] + 1e-9, axis=1)


def regular_polygon(n_sides: int, apothem: float, first_normal_deg: float) -> tuple[np.ndarray, np.ndarray]:
    ang = np.deg2rad(first_normal_deg + 360.0 / n_sides * np.arange(n_sides))
    return np.stack([np.cos(ang), np.sin(ang)], axis=1), np.full(n_sides, apothem)


def rectangle(half_x: float, half_y: float) -> tuple[np.ndarray, np.ndarray]:
    normals = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    return normals, np.array([half_x, half_x, half_y, half_y])


def clean(inside: np.ndarray, nb: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Prune dangling atoms, fill sites with >=2 occupied neighbours, keep the largest piece."""
    occ = inside.copy()
    for _ in range(max_iter):
        cnt = np.where(nb >= 0, occ[np.clip(nb, 0, None)], False).sum(1)
        remove = occ & (cnt < 2)
        if remove.any():  # prune first, fill only once nothing dangles (no oscillation)
            occ = occ & ~remove
            continue
        add = ~occ & (cnt >= 2)
        if not add.any():
            break
        occ = occ | add
    else:  # pragma: no cover - convex cuts converge in a few passes
        raise RuntimeError("flake cleaning did not converge")
    idx = np.flatnonzero(occ)
    if len(idx) == 0:
        return occ
    # largest connected component
    local = -np.ones(len(occ), dtype=int)
    local[idx] = np.arange(len(idx))
    rows, cols = [], []
    for k in range(3):
        j = nb[idx, k]
        ok = (j >= 0) & occ[np.clip(j, 0, None)]
        rows.append(local[idx[ok]])
        cols.append(local[j[ok]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    g = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(idx), len(idx)))
    n_comp, lab = connected_components(g, directed=False)
    if n_comp > 1:
        big = np.argmax(np.bincount(lab))
        occ = np.zeros_like(occ)
        occ[idx[lab == big]] = True
        return clean(occ, nb, max_iter)
    return occ


def is_kekule(occ: np.ndarray, sub: np.ndarray, nb: np.ndarray) -> bool:
    """True when the occupied honeycomb sites admit a perfect matching (a Kekulé structure)."""
    a = np.flatnonzero(occ & (sub == 0))
    b = np.flatnonzero(occ & (sub == 1))
    if len(a) != len(b) or len(a) == 0:
        return False
    bl = -np.ones(len(occ), dtype=int)
    bl[b] = np.arange(len(b))
    rows, cols = [], []
    for k in range(3):
        j = nb[a, k]
        ok = (j >= 0) & occ[np.clip(j, 0, None)]
        rows.append(np.arange(len(a))[ok])
        cols.append(bl[j[ok]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    m = csr_matrix((np.ones(len(r)), (r, c)), shape=(len(a), len(b)))
    match = maximum_bipartite_matching(m, perm_type="column")
    return bool(np.all(match >= 0))


def terminate(heavy_xy: np.ndarray, heavy_nb: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Add one H per two-coordinated heavy atom, 1.09 Å along the missing bond.

    Returns the H positions (k, 2) and the index of the heavy atom each H is bonded to.
    """
    hs, owner = [], []
    for i, nbs in enumerate(heavy_nb):
        if len(nbs) == 2:
            u = sum((heavy_xy[j] - heavy_xy[i]) / CC_BOND for j in nbs)
            d = -u / np.linalg.norm(u)
            hs.append(heavy_xy[i] + CH_BOND * d)
            owner.append(i)
    return np.asarray(hs).reshape(-1, 2), np.asarray(owner, dtype=int)
