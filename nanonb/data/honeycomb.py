"""Graphene nanoflake and nanoribbon structures cut from the honeycomb lattice.

The structures of :mod:`nanonb.data.flakes` (which labels them with GFN2-xTB). Every structure is
cut from an ideal honeycomb lattice (C–C 1.42 Å), cleaned so that it is a closed-shell, Kekulé π
system, hydrogen-terminated (C–H 1.09 Å along the missing bond) and optionally doped with a *pair*
of substitutional B and/or N atoms.

Families (one :class:`~nanonb.tasks.Task` each) are ``"<shape>|<dopant>"`` with

* shapes: ``hexagonal-zigzag``, ``hexagonal-armchair``, ``triangular-armchair``, ``rectangular``,
  ``ribbon-zigzag``, ``ribbon-armchair`` (a convex polygon cut from the lattice; the polygon centre
  is either a hexagon centre, giving symmetric flakes such as benzene, coronene and
  circumcoronene, or a random point, giving ragged edges);
* dopants: ``none``; ``N`` (two *pyridinic* N on edge sites: aza-PAHs, isoelectronic with the
  parent); ``BN`` (one B anywhere and one *graphitic* N on an interior site: isoelectronic with the
  parent); ``B`` (two B, p-doped: two π electrons fewer; not in the default set, see below).

Cleaning rules (applied until nothing changes): a heavy atom with fewer than two heavy neighbours is
removed; an empty lattice site with two or more heavy neighbours is filled (otherwise two C–H bonds
would point at the same site and their H atoms would sit ~0.6 Å apart). The largest connected piece
is kept. A flake is kept only if its carbon skeleton has a perfect matching (a Kekulé structure):
for benzenoids this is equivalent to the Hückel spectrum having no zero eigenvalue, so non-Kekulé
flakes such as triangulene, whose zero modes make them open-shell, are excluded.

Dopant and electron-count convention (shared with :mod:`nanonb.physics.pisystem`). π electrons per site:
C 1; B 0 (three-coordinated, an edge B keeps its H as B–H); N 2 when three-coordinated (graphitic,
interior); N 1 when two-coordinated (pyridinic: an edge N loses its H, lone pair in the σ plane).
A Kekulé flake has an even number of sites, so the rules above give an even π count for every
family: ``N`` and ``BN`` keep the parent's count, ``B`` removes two electrons. Two dopants of the
same element are never bonded (no B–B or N–N bonds). Every structure is therefore neutral,
even-electron and labelled as a closed shell (``uhf=0``). Single dopants (odd electron count,
radicals) are not generated. The ``B`` family is opt-in: removing two electrons from a symmetric
flake half-empties a degenerate HOMO pair; in our measurement (seed 0, 20 flakes per shape,
<= 48 heavy atoms, 120 flakes) the median gap was 0.22 eV and 23 % were below 0.1 eV:
near-diradicals for which a closed-shell single point is a poor label.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nanonb.data._lattice import (
    A1,
    A2,
    CC_BOND,
    HEX_CENTRE,
    SQ3,
    clean,
    get_lattice,
    is_kekule,
    polygon_mask,
    rectangle,
    regular_polygon,
    terminate,
)
from nanonb.graphs import Structure

SHAPES = (
    "hexagonal-zigzag",
    "hexagonal-armchair",
    "triangular-armchair",
    "rectangular",
    "ribbon-zigzag",
    "ribbon-armchair",
)
DOPANTS = ("none", "N", "BN", "B")
DEFAULT_DOPANTS = ("none", "N", "BN")
DESCRIPTOR_NAMES = (
    "n_C", "n_B", "n_N", "n_H", "n_heavy", "radius_gyration", "edge_fraction",
    "zigzag_edge_fraction", "armchair_edge_fraction", "dopant_separation",
)



@dataclass
class Flake:
    """A generated flake before labelling.

    ``structure`` holds atomic numbers and positions (Å, z = 0 plane); ``info`` the generation
    parameters and simple descriptors (see :data:`DESCRIPTOR_NAMES`).

    Example
    -------
    >>> generate_flake("hexagonal-zigzag", 4.5).info["n_C"]  # coronene
    24
    """

    structure: Structure
    info: dict


def _shape_cut(shape: str, size: float, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Half-plane description of the cutting polygon for a shape and size (Å)."""
    if shape == "hexagonal-zigzag":  # edges parallel to x (zigzag): normals at 90° + k·60°
        return regular_polygon(6, size, 30.0)
    if shape == "hexagonal-armchair":  # edges parallel to y (armchair): normals at k·60°
        return regular_polygon(6, size, 0.0)
    if shape == "triangular-armchair":  # armchair edges; corners truncated by 2 - aspect (aspect=1: none)
        n_tri, o_tri = regular_polygon(3, size, 0.0)
        n_cut, o_cut = regular_polygon(3, size * (2.0 - 0.7 * (1.0 - aspect) / 1.0), 60.0)
        return np.concatenate([n_tri, n_cut]), np.concatenate([o_tri, o_cut])
    if shape == "rectangular":  # zigzag edges top/bottom, armchair edges left/right
        return rectangle(size, size * aspect)
    if shape == "ribbon-zigzag":  # long along x (zigzag long edges), narrow in y
        return rectangle(size, aspect)
    if shape == "ribbon-armchair":  # long along y (armchair long edges), narrow in x
        return rectangle(aspect, size)
    raise ValueError(f"Unknown shape {shape!r}; choose one of {SHAPES}.")


def _sample_shape_params(shape: str, rng: np.random.Generator, max_heavy: int) -> tuple[float, float]:
    """Random polygon size (Å) and aspect/width parameter for a shape, scaled to ``max_heavy``."""
    # area per heavy atom in graphene: 3√3/4 a² ≈ 2.62 Å²
    area_max = max_heavy * 3 * SQ3 / 4 * CC_BOND**2
    if shape.startswith("hexagonal"):
        apothem_max = np.sqrt(area_max / (2 * SQ3))
        return float(rng.uniform(1.0, apothem_max * 1.05)), 1.0
    if shape == "triangular-armchair":
        apothem_max = np.sqrt(area_max / (3 * SQ3))
        truncation = 1.0 if rng.uniform() < 0.4 else float(rng.uniform(0.0, 1.0))
        return float(rng.uniform(1.2, apothem_max * 1.25)), truncation
    if shape == "rectangular":
        aspect = float(rng.uniform(0.6, 1.6))
        half_x = np.sqrt(area_max / (4 * aspect))
        return float(rng.uniform(1.2, half_x * 1.05)), aspect
    # ribbons: half-width (aspect) small, half-length sized to the atom budget
    if shape == "ribbon-zigzag":
        half_w = float(rng.uniform(1.3, 4.0))
    else:
        half_w = float(rng.uniform(1.6, 4.5))
    half_l_max = area_max / (4 * half_w)
    return float(rng.uniform(min(2.5, half_l_max), max(2.6, half_l_max * 1.05))), half_w


def generate_flake(
    shape: str,
    size: float,
    aspect: float = 1.0,
    centre: str | Sequence[float] = "hexagon",
    dopant: str = "none",
    rng: np.random.Generator | None = None,
    irregularity: float = 0.0,
    centrosymmetric: bool = False,
    max_dopant_tries: int = 50,
) -> Flake | None:
    """Cut one H-terminated (optionally doped) flake from the honeycomb lattice.

    Parameters
    ----------
    shape:
        One of :data:`SHAPES`.
    size:
        Polygon apothem (hexagons, triangles) or half-length along x (rectangles, zigzag ribbons)
        or along y (armchair ribbons), in Å.
    aspect:
        Rectangle aspect ratio (half_y / half_x), the ribbon half-width in Å, or for triangles the
        corner truncation (1: sharp corners, 0: corners cut at 1.3 apothems from the centre).
    centre:
        ``"hexagon"`` (polygon centred on a hexagon centre: symmetric flakes), ``"random"`` (a
        random point of the unit cell, needs ``rng``), or an explicit (x, y) offset in Å.
    dopant:
        One of :data:`DOPANTS`: ``"none"``, ``"N"`` (two pyridinic edge N), ``"BN"`` (one B, one
        graphitic interior N) or ``"B"`` (two B).
    rng:
        Random generator used for a random centre, irregular edges and the dopant sites.
    irregularity:
        Relative random change of each edge's distance from the centre (0: regular polygon;
        0.3: each edge moved by up to ±30 %), giving flakes with unequal sides.
    centrosymmetric:
        Move opposite edges together (even-sided polygons). With ``centre="hexagon"`` (an
        inversion centre of the lattice, which swaps the sublattices) the flake is then
        sublattice-balanced, which zigzag-edged flakes need to be Kekulé.
    max_dopant_tries:
        Dopant placements to try before giving up (placements with same-element bonds are
        rejected).

    Returns
    -------
    Flake or None
        ``None`` when the cut gives no valid closed-shell flake (empty, non-Kekulé, or no
        acceptable dopant placement).

    Example
    -------
    >>> f = generate_flake("hexagonal-zigzag", 1.5)  # benzene
    >>> sorted(f.structure.numbers.tolist()) == [1] * 6 + [6] * 6
    True
    """
    if dopant not in DOPANTS:
        raise ValueError(f"Unknown dopant {dopant!r}; choose one of {DOPANTS}.")
    rng = rng if rng is not None else np.random.default_rng(0)
    normals, offsets = _shape_cut(shape, size, aspect)
    if irregularity > 0:
        jitter = rng.uniform(-irregularity, irregularity, len(offsets))
        if centrosymmetric:
            if len(offsets) % 2:
                raise ValueError(f"shape {shape!r} has an odd number of edges: it cannot be centrosymmetric")
            jitter[len(offsets) // 2:] = jitter[: len(offsets) // 2]
        offsets = offsets * (1.0 + jitter)
    pos, sub, nb = get_lattice(float(np.max(offsets)) * 2.5 + 6.0)
    if isinstance(centre, str):
        if centre == "hexagon":
            c = HEX_CENTRE
        elif centre == "random":
            c = rng.uniform(0, 1) * A1 + rng.uniform(0, 1) * A2
        else:
            raise ValueError(f"centre must be 'hexagon', 'random' or (x, y); got {centre!r}")
    else:
        c = np.asarray(centre, dtype=float)
    # crop the lattice to a disc around the polygon (vertices lie within 2.1 apothems), remap neighbours
    sel = np.flatnonzero(np.linalg.norm(pos - c, axis=1) <= 2.1 * float(np.max(offsets)) + 4 * CC_BOND)
    remap = -np.ones(len(pos) + 1, dtype=int)
    remap[sel] = np.arange(len(sel))
    pos, sub, nb = pos[sel], sub[sel], remap[nb[sel]]
    occ = clean(polygon_mask(pos - c, normals, offsets), nb)
    if occ.sum() < 6 or not is_kekule(occ, sub, nb):
        return None
    if (nb[occ] < 0).any():  # pragma: no cover - the patch is sized to avoid this
        raise RuntimeError("lattice patch too small for this flake; please report")
    idx = np.flatnonzero(occ)
    local = -np.ones(len(occ), dtype=int)
    local[idx] = np.arange(len(idx))
    heavy_nb = [[int(local[j]) for j in nb[i] if j >= 0 and occ[j]] for i in idx]
    xy = pos[idx] - c
    h_xy, h_owner = terminate(xy, heavy_nb)
    numbers = np.full(len(idx), 6, dtype=np.int64)
    has_h = np.zeros(len(idx), dtype=bool)
    has_h[h_owner] = True

    dopant_sites: list[int] = []
    if dopant != "none":
        edge_sites = np.flatnonzero(has_h)
        interior_sites = np.flatnonzero(~has_h)
        all_sites = np.arange(len(idx))
        pools, elements = {"N": ((edge_sites, edge_sites), (7, 7)),
                           "BN": ((all_sites, interior_sites), (5, 7)),
                           "B": ((all_sites, all_sites), (5, 5))}[dopant]
        if min(len(p) for p in pools) == 0:
            return None
        for _ in range(max_dopant_tries):
            sites = [int(rng.choice(pools[0])), int(rng.choice(pools[1]))]
            if sites[0] == sites[1]:
                continue
            if elements[0] == elements[1] and sites[1] in heavy_nb[sites[0]]:
                continue  # no B–B / N–N bonds
            dopant_sites = sites
            break
        else:
            return None
        for s_, zz in zip(dopant_sites, elements):
            numbers[s_] = zz
    keep_h = np.array([not (numbers[o] == 7) for o in h_owner], dtype=bool)  # pyridinic N: no H
    h_xy, h_owner = h_xy[keep_h], h_owner[keep_h]

    all_xy = np.concatenate([xy, h_xy])
    positions = np.concatenate([all_xy, np.zeros((len(all_xy), 1))], axis=1)
    z = np.concatenate([numbers, np.ones(len(h_xy), dtype=np.int64)])
    structure = Structure(z, positions)
    info = {"shape": shape, "dopant": dopant, "size": float(size), "aspect": float(aspect),
            "irregularity": float(irregularity), "centre_x": float(c[0]), "centre_y": float(c[1])}
    info.update(_descriptors(structure, heavy_nb, dopant_sites))
    return Flake(structure, info)


def _descriptors(s: Structure, heavy_nb: list[list[int]], dopant_sites: list[int]) -> dict:
    """Element counts, radius of gyration of the heavy atoms (Å), and edge descriptors.

    Edge sites are heavy atoms with two heavy neighbours. ``zigzag_edge_fraction``: edge sites
    with no edge neighbour (isolated "solo" C–H, as along a zigzag edge), per heavy atom;
    ``armchair_edge_fraction``: edge sites bonded to another edge site ("duo"/"trio"/"quarto"
    C–H, as along an armchair edge or at acene ends), per heavy atom. ``dopant_separation``: Å
    between the two dopants (0 when undoped).
    """
    z = s.numbers
    heavy = z != 1
    xy = s.positions[heavy]
    n_heavy = int(heavy.sum())
    edge = np.array([len(n) == 2 for n in heavy_nb])
    armchair = np.array([e and any(edge[j] for j in heavy_nb[i]) for i, e in enumerate(edge)])
    zigzag = edge & ~armchair
    sep = float(np.linalg.norm(xy[dopant_sites[0]] - xy[dopant_sites[1]])) if dopant_sites else 0.0
    return {
        "n_C": int((z == 6).sum()), "n_B": int((z == 5).sum()), "n_N": int((z == 7).sum()),
        "n_H": int((z == 1).sum()), "n_heavy": n_heavy,
        "radius_gyration": float(np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean())),
        "edge_fraction": float(edge.mean()),
        "zigzag_edge_fraction": float(zigzag.mean()),
        "armchair_edge_fraction": float(armchair.mean()),
        "dopant_separation": sep,
    }


def fingerprint(s: Structure) -> tuple:
    """Isomorphism-invariant key of a flake: composition + spectrum of an element-weighted adjacency.

    Heavy atoms closer than 1.7 Å are bonded; the diagonal holds ``Z / 6``; eigenvalues are rounded
    to 1e-5. Identical molecules (up to rotation, translation, reflection and atom order) get the
    same key.

    Example
    -------
    >>> a = generate_flake("hexagonal-zigzag", 1.5).structure  # benzene
    >>> fingerprint(a) == fingerprint(generate_flake("hexagonal-armchair", 1.6).structure)
    True
    """
    heavy = s.numbers != 1
    xy = s.positions[heavy]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    a = ((d > 0.1) & (d < 1.7)).astype(float)
    a[np.diag_indices_from(a)] = s.numbers[heavy] / 6.0
    ev = np.round(np.linalg.eigvalsh(a), 5) + 0.0
    return (tuple(np.bincount(s.numbers, minlength=8)), tuple(ev))


def generate_family(
    shape: str,
    dopant: str,
    n: int,
    seed: int = 0,
    min_heavy: int = 6,
    max_heavy: int = 60,
    max_tries: int = 4000,
    exclude: set | None = None,
) -> list[Flake]:
    """``n`` distinct flakes of one family (shape × dopant), deterministic for ``seed``.

    Sizes are drawn so that heavy-atom counts span ``[min_heavy, max_heavy]``; duplicates (up to
    symmetry and isomorphism, by :func:`fingerprint`) are skipped, and so are molecules whose
    fingerprint is in ``exclude`` (the set is updated with the new ones, so that families generated
    in turn share no molecule). Fewer than ``n`` flakes are returned (with a warning) when the
    family has fewer distinct members in the size range.

    Example
    -------
    >>> [f.info["n_heavy"] for f in generate_family("rectangular", "BN", n=3, seed=0, max_heavy=20)]  # doctest: +SKIP
    [10, 14, 16]
    """
    if shape not in SHAPES:
        raise ValueError(f"Unknown shape {shape!r}; choose one of {SHAPES}.")
    key = int.from_bytes(hashlib.sha256(f"{shape}|{dopant}".encode()).digest()[:4], "little")
    rng = np.random.default_rng([seed, key])
    out: list[Flake] = []
    seen: set = exclude if exclude is not None else set()
    last_new = 0
    for k in range(max_tries):
        if len(out) >= n or k - last_new > 600:  # stop once the family looks exhausted
            break
        size, aspect = _sample_shape_params(shape, rng, max_heavy)
        centre = "hexagon" if rng.uniform() < 0.4 else "random"
        irregularity = 0.0 if rng.uniform() < 0.3 else 0.35
        centro = shape.startswith("hexagonal") and centre == "hexagon"
        f = generate_flake(shape, size, aspect, centre=centre, dopant=dopant, rng=rng,
                           irregularity=irregularity, centrosymmetric=centro)
        if f is None or not (min_heavy <= f.info["n_heavy"] <= max_heavy):
            continue
        fp = fingerprint(f.structure)
        if fp in seen:
            continue
        seen.add(fp)
        out.append(f)
        last_new = k
    if len(out) < n:
        warnings.warn(f"family {shape}|{dopant}: only {len(out)} distinct flakes of {n} requested "
                      f"with {min_heavy}-{max_heavy} heavy atoms", stacklevel=2)
    out.sort(key=lambda f: (f.info["n_heavy"], f.info["n_H"]))
    return out

