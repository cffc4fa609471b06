"""The generator of the nanoalloy data set: binary clusters, their descriptors and their EMT labels.

:func:`generate_pair` makes the clusters of one element pair; :func:`nanonb.data.nanoalloys.load_nanoalloys`
turns every pair into a task and caches the set on disk.

One task per element pair ``"A-B"`` (21 pairs of Al, Cu, Ag, Au, Ni, Pd, Pt, with A before B in
:data:`ELEMENTS`). Each data point is one cluster ``A_{N_A} B_{N_B}`` of ``N = N_A + N_B`` atoms
(13 ≤ N ≤ 147) with a random chemical ordering, generated as follows (all random numbers come from
one NumPy generator per pair, seeded by ``(seed, pair index)``, so pairs are independent and can be
generated in any order):

1. **Shape and size**: an entry of a fixed catalogue (:data:`CATALOGUE`) of ``ase.cluster``
   icosahedra, (Ino/Marks) decahedra and (truncated/cubo-) octahedra, drawn with probability
   proportional to ``N**-0.5`` so that small, cheap clusters are more frequent.
2. **Composition**: ``N_B`` uniform over ``1 .. N-1`` (the whole composition range, both elements
   always present); the ``N_B`` B atoms are placed on a uniformly random subset of the sites.
3. **Lattice constant**: Vegard's law between the fcc lattice constants of
   :data:`ase.data.reference_states`, ``a = [(1 - x_B) a_A + x_B a_B] (1 + strain)`` with
   ``x_B = N_B / N`` and ``strain ~ U(-0.01, 0.01)`` (dimensionless).
4. **Thermal rattle**: every Cartesian coordinate is displaced by Gaussian noise of standard
   deviation ``rattle_std_A ~ U(0, 0.05)`` Å (one value per structure).
5. **Label**: EMT total energy ``E`` (eV) and forces (eV/Å) from :class:`ase.calculators.emt.EMT`
   (non-periodic cluster).

Target: mixing (excess) energy per atom, in eV/atom::

    E_mix = [E_EMT(A_{N_A} B_{N_B}) - (N_A/N) E_EMT(A_N) - (N_B/N) E_EMT(B_N)] / N

where ``A_N`` and ``B_N`` are *pure* clusters of the same shape and size (same catalogue entry) at
each element's own fcc lattice constant, with no strain and no rattle. The references therefore do
not carry the alloy's strain and rattle, so the elastic energy of the strain and the thermal
energy of the rattle enter ``E_mix`` as condition effects (``strain`` and ``rattle_std_A`` are
recorded as condition variables and descriptors). ``E_mix < 0`` means the alloy is favoured over
the pure clusters. Clusters at the bulk lattice constant are under surface stress, so ``E_mix``
grows roughly linearly with ``strain`` (~4 eV/atom per unit strain). With the earlier ±3 % range a
quadratic fit in ``strain`` alone explained a median ~70 % of the within-pair variance, drowning the
chemistry, so the strain range is ±1 % (catalogue version 2): composition, size, chemical ordering
and rattle now carry most of the variance.

Per-structure descriptors (:data:`DESCRIPTOR_NAMES`, ``Task.descriptors``), a small float vector
comparable across pairs (used for leakage reports, similarity clustering and GP baselines):

============== ===========================================================================
``x_B``         B fraction ``N_B / N`` (dimensionless)
``n_inv_cbrt``  ``N**(-1/3)``, a size variable (~ surface-to-volume ratio)
``frac_AA``     fraction of nearest-neighbour bonds that are A-A
``frac_AB``     fraction of nearest-neighbour bonds that are A-B
``frac_BB``     fraction of nearest-neighbour bonds that are B-B. Bonds are pairs closer than
                1.2 × the nominal nearest-neighbour distance ``a / sqrt(2)`` of the cluster
                (``a`` = strained Vegard lattice constant)
``surface_x_B`` fraction of surface atoms (coordination < 12 with the same cutoff) that are B
``strain``      lattice strain (dimensionless, -0.01 .. 0.01)
``rattle_std_A`` standard deviation of the Gaussian displacements (Å)
``chi_mean``    composition-weighted Pauling electronegativity ``(1 - x_B) χ_A + x_B χ_B``
``chi_diff``    electronegativity difference ``|χ_A - χ_B|`` (constant within a pair)
``radius_mean_A`` composition-weighted metallic radius (Å), ``pymatgen.core.Element.metallic_radius``
``radius_mismatch`` relative radius mismatch ``|r_A - r_B| / ((r_A + r_B) / 2)`` (constant within a
                pair)
============== ===========================================================================

Example
-------
>>> from nanonb.data.alloy_clusters import generate_pair
>>> meta, structures = generate_pair("Cu", "Pt", n=2, seed=0)
>>> len(structures), bool((meta["n_A"] + meta["n_B"] == meta["n_atoms"]).all())
(2, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import numpy as np
import pandas as pd
from ase.calculators.emt import EMT
from ase.calculators.emt import parameters as _EMT_PARAMETERS

from nanonb.graphs import Structure

__all__ = [
    "ELEMENTS",
    "PAIRS",
    "DESCRIPTOR_NAMES",
    "CATALOGUE",
    "CATALOGUE_VERSION",
    "META_COLUMNS",
    "generate_pair",
    "emt_energy",
]

ELEMENTS: tuple[str, ...] = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
"""Elements of the data set (all fcc metals parametrized by ASE's EMT), in the fixed pair order."""

PAIRS: list[tuple[str, str]] = [(a, b) for i, a in enumerate(ELEMENTS) for b in ELEMENTS[i + 1:]]
"""The 21 element pairs ``(A, B)``, A before B in :data:`ELEMENTS`; the pair index seeds its RNG."""

DESCRIPTOR_NAMES: list[str] = [
    "x_B", "n_inv_cbrt", "frac_AA", "frac_AB", "frac_BB", "surface_x_B", "strain", "rattle_std_A",
    "chi_mean", "chi_diff", "radius_mean_A", "radius_mismatch",
]
"""Columns of ``Task.descriptors`` (see the module docstring for their definitions and units)."""

CATALOGUE_VERSION = 2
"""Bump when the catalogue, the sampling or the labels change: it is part of the cache key."""

#: (label, ase.cluster builder, builder arguments after the symbol, number of atoms)
CATALOGUE: tuple[tuple[str, str, tuple[int, ...], int], ...] = (
    ("Ih13", "icosahedron", (2,), 13),
    ("cubo13", "octahedron", (3, 1), 13),
    ("Dh13", "decahedron", (2, 2, 0), 13),
    ("Oh19", "octahedron", (3, 0), 19),
    ("Dh23", "decahedron", (3, 1, 0), 23),
    ("TO38", "octahedron", (4, 1), 38),
    ("Dh39", "decahedron", (3, 2, 0), 39),
    ("Oh44", "octahedron", (4, 0), 44),
    ("mDh49", "decahedron", (2, 1, 1), 49),
    ("Ih55", "icosahedron", (3,), 55),
    ("cubo55", "octahedron", (5, 2), 55),
    ("Dh55", "decahedron", (3, 3, 0), 55),
    ("mDh75", "decahedron", (2, 2, 1), 75),
    ("TO79", "octahedron", (5, 1), 79),
    ("Dh85", "decahedron", (4, 2, 0), 85),
    ("mDh101", "decahedron", (2, 3, 1), 101),
    ("TO116", "octahedron", (6, 2), 116),
    ("TO140", "octahedron", (6, 1), 140),
    ("mDh146", "decahedron", (3, 2, 1), 146),
    ("Ih147", "icosahedron", (4,), 147),
    ("cubo147", "octahedron", (7, 3), 147),
)

_SIZE_EXPONENT = -0.5  # catalogue weights ∝ N**_SIZE_EXPONENT
_STRAIN_MAX = 0.01
_RATTLE_MAX = 0.05  # Å
_BOND_FACTOR = 1.2  # neighbour cutoff in units of the nominal NN distance a/sqrt(2)
_BULK_COORDINATION = 12
META_COLUMNS: list[str] = [
    "shape", "cluster", "n_atoms", "n_A", "n_B", "x_B", "strain", "rattle_std_A", "lattice_constant_A",
    "energy_ev", "energy_pure_A_ev", "energy_pure_B_ev", "mixing_energy_ev_per_atom",
]


# ---------------------------------------------------------------------- EMT
def _check_emt_elements(symbols: Iterable[str]) -> None:
    bad = sorted(set(symbols) - set(_EMT_PARAMETERS))
    if bad:
        raise ValueError(
            f"Element(s) {bad} not supported by ASE's EMT calculator; it supports only "
            f"{', '.join(_EMT_PARAMETERS)}."
        )


def emt_energy(structure_or_atoms) -> tuple[float, np.ndarray]:
    """EMT total energy (eV) and forces (eV/Å) of a finite cluster.

    Parameters
    ----------
    structure_or_atoms:
        A :class:`nanonb.graphs.Structure` or an ``ase.Atoms``. An ``Atoms`` is copied, so its own
        calculator is left alone; it is evaluated as non-periodic.

    Returns
    -------
    energy, forces:
        Total potential energy in eV and forces in eV/Å, shape ``(n_atoms, 3)``.

    Raises
    ------
    ValueError
        If the structure contains an element that EMT does not parametrize.

    Example
    -------
    >>> from ase import Atoms
    >>> energy, forces = emt_energy(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]]))
    >>> forces.shape
    (2, 3)
    """
    if isinstance(structure_or_atoms, Structure):
        atoms = structure_or_atoms.to_atoms()
    else:
        atoms = structure_or_atoms.copy()
        atoms.pbc = False
    _check_emt_elements(atoms.get_chemical_symbols())
    atoms.calc = EMT()
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces(), dtype=np.float64)
    return energy, forces


# ---------------------------------------------------------------------- geometry
def _check_elements(elements: Iterable[str]) -> list[str]:
    els = [str(e) for e in elements]
    bad = [e for e in els if e not in ELEMENTS]
    if bad:
        raise ValueError(
            f"Element(s) {bad} not supported: the nanoalloy data set needs fcc metals parametrized by "
            f"ASE's EMT calculator, i.e. one of {', '.join(ELEMENTS)}."
        )
    return els


@cache
def _template(label: str) -> np.ndarray:
    """Positions of catalogue entry ``label`` at lattice constant 1 (centred), shape (N, 3)."""
    from ase.cluster import Decahedron, Icosahedron, Octahedron

    builders = {"icosahedron": Icosahedron, "decahedron": Decahedron, "octahedron": Octahedron}
    entry = _CATALOGUE_BY_LABEL[label]
    atoms = builders[entry[1]]("Cu", *entry[2], latticeconstant=1.0)
    if len(atoms) != entry[3]:  # pragma: no cover - guards against ASE changing its builders
        raise RuntimeError(f"Catalogue entry {label} has {len(atoms)} atoms, expected {entry[3]}.")
    pos = atoms.get_positions()
    pos = pos - pos.mean(axis=0)
    pos.setflags(write=False)
    return pos


_CATALOGUE_BY_LABEL = {c[0]: c for c in CATALOGUE}


def _lattice_constant(element: str) -> float:
    from ase.data import atomic_numbers, reference_states

    return float(reference_states[atomic_numbers[element]]["a"])


@cache
def _pure_energy(label: str, element: str) -> float:
    """EMT energy (eV) of the pure, unstrained, unrattled cluster ``label`` of ``element``."""
    from ase.data import atomic_numbers

    pos = _template(label) * _lattice_constant(element)
    numbers = np.full(len(pos), atomic_numbers[element])
    return emt_energy(Structure(numbers, pos))[0]


@cache
def _element_props(element: str) -> tuple[float, float]:
    """(Pauling electronegativity, metallic radius in Å) from pymatgen."""
    from pymatgen.core import Element

    el = Element(element)
    return float(el.X), float(el.metallic_radius)


def _bond_descriptors(positions: np.ndarray, is_b: np.ndarray, d_nn: float) -> tuple[float, ...]:
    """(frac_AA, frac_AB, frac_BB, surface_x_B) with bonds shorter than 1.2 d_nn (Å)."""
    from scipy.spatial.distance import pdist, squareform

    d = pdist(positions)
    bonded = d < _BOND_FACTOR * d_nn
    n = len(positions)
    i, j = np.triu_indices(n, k=1)
    bi, bj = is_b[i[bonded]], is_b[j[bonded]]
    n_bonds = max(int(bonded.sum()), 1)
    frac_bb = float(np.sum(bi & bj)) / n_bonds
    frac_aa = float(np.sum(~bi & ~bj)) / n_bonds
    frac_ab = 1.0 - frac_aa - frac_bb
    coord = squareform(bonded).sum(axis=1)
    surface = coord < _BULK_COORDINATION
    surface_x_b = float(is_b[surface].mean()) if surface.any() else 0.0
    return frac_aa, frac_ab, frac_bb, surface_x_b


def _pair_index(a: str, b: str) -> int:
    _check_elements([a, b])
    if a == b:
        raise ValueError(f"A pair needs two different elements, got {a!r} twice.")
    if (a, b) not in PAIRS:
        raise ValueError(
            f"Pair ({a!r}, {b!r}) is not in canonical order: use ({b!r}, {a!r}) "
            f"(A before B in ELEMENTS = {ELEMENTS})."
        )
    return PAIRS.index((a, b))


def generate_pair(a: str, b: str, n: int, seed: int = 0) -> tuple[pd.DataFrame, list[Structure]]:
    """Generate ``n`` random ``A-B`` nanoalloy clusters and their EMT labels.

    Parameters
    ----------
    a, b:
        The two elements, in the order of :data:`ELEMENTS` (e.g. ``"Cu", "Pt"``).
    n:
        Number of structures.
    seed:
        Base seed (non-negative); the pair's generator is seeded by ``(seed, pair index)``, so a
        pair's data do not depend on which other pairs are generated.

    Returns
    -------
    meta, structures:
        ``meta`` has one row per structure with :data:`META_COLUMNS` (energies in eV, the mixing
        energy in eV/atom, ``strain`` dimensionless, ``rattle_std_A`` and ``lattice_constant_A``
        in Å) followed by the :data:`DESCRIPTOR_NAMES` columns not already present.
        ``structures`` holds the alloy clusters (positions in Å, EMT forces in eV/Å).

    Example
    -------
    >>> meta, structures = generate_pair("Cu", "Pt", n=3, seed=0)
    >>> len(meta), structures[0].forces.shape[1]
    (3, 3)
    """
    from ase.data import atomic_numbers

    if int(n) < 1:
        raise ValueError(f"n must be a positive number of structures, got {n}.")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    idx = _pair_index(a, b)
    rng = np.random.default_rng([int(seed), idx])
    sizes = np.array([c[3] for c in CATALOGUE], dtype=float)
    weights = sizes**_SIZE_EXPONENT
    weights /= weights.sum()
    z_a, z_b = atomic_numbers[a], atomic_numbers[b]
    a_a, a_b = _lattice_constant(a), _lattice_constant(b)
    (chi_a, r_a), (chi_b, r_b) = _element_props(a), _element_props(b)

    rows, structures = [], []
    for _ in range(int(n)):
        label, shape, _args, n_atoms = CATALOGUE[int(rng.choice(len(CATALOGUE), p=weights))]
        n_b = int(rng.integers(1, n_atoms))  # 1 .. N-1
        is_b = np.zeros(n_atoms, dtype=bool)
        is_b[rng.permutation(n_atoms)[:n_b]] = True
        strain = float(rng.uniform(-_STRAIN_MAX, _STRAIN_MAX))
        rattle = float(rng.uniform(0.0, _RATTLE_MAX))
        x_b = n_b / n_atoms
        lattice = ((1.0 - x_b) * a_a + x_b * a_b) * (1.0 + strain)
        pos = _template(label) * lattice + rng.normal(0.0, rattle, size=(n_atoms, 3))
        numbers = np.where(is_b, z_b, z_a)
        s = Structure(numbers, pos)
        energy, forces = emt_energy(s)
        s.forces = forces
        e_pa, e_pb = _pure_energy(label, a), _pure_energy(label, b)
        n_a = n_atoms - n_b
        e_mix = (energy - n_a / n_atoms * e_pa - n_b / n_atoms * e_pb) / n_atoms
        frac_aa, frac_ab, frac_bb, surf_b = _bond_descriptors(pos, is_b, lattice / np.sqrt(2.0))
        desc = {
            "x_B": x_b, "n_inv_cbrt": n_atoms ** (-1.0 / 3.0),
            "frac_AA": frac_aa, "frac_AB": frac_ab, "frac_BB": frac_bb, "surface_x_B": surf_b,
            "strain": strain, "rattle_std_A": rattle,
            "chi_mean": (1.0 - x_b) * chi_a + x_b * chi_b, "chi_diff": abs(chi_a - chi_b),
            "radius_mean_A": (1.0 - x_b) * r_a + x_b * r_b,
            "radius_mismatch": abs(r_a - r_b) / (0.5 * (r_a + r_b)),
        }
        row = {
            "shape": shape, "cluster": label, "n_atoms": n_atoms, "n_A": n_a, "n_B": n_b, "x_B": x_b,
            "strain": strain, "rattle_std_A": rattle, "lattice_constant_A": lattice,
            "energy_ev": energy, "energy_pure_A_ev": e_pa, "energy_pure_B_ev": e_pb,
            "mixing_energy_ev_per_atom": e_mix,
        }
        row.update({k: v for k, v in desc.items() if k not in row})
        rows.append(row)
        structures.append(s)
    return pd.DataFrame(rows), structures

