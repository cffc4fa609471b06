"""Designed nanoalloy clusters for a live campaign: generate candidates, describe them, label them by EMT.

A candidate is a plain dict ``{"cluster": label, "b_sites": [site indices]}``: a catalogue entry of
:mod:`nanonb.data.alloy_clusters` (shape and size) and the sites that hold element B (composition
and chemical ordering). Unlike the data set's random clusters, a designed cluster sits at the
Vegard lattice constant with no strain and no rattle (``strain = rattle_std_A = 0``), so its mixing
energy (eV/atom, the data set's definition) is a function of the design alone.

- :func:`describe` gives the 12 descriptors of :data:`~nanonb.data.alloy_clusters.DESCRIPTOR_NAMES`;
- :func:`mixing_energy` runs EMT (about 10 ms for 55 atoms);
- :func:`random_designs` draws shape, composition and ordering; :func:`swap_moves` makes local moves
  from an incumbent (swap an A and a B site, or flip one site: composition +- 1 atom). Both take a
  fixed-composition goal (given shapes, ``composition``; swaps only), a search over chemical ordering alone.

Example
-------
>>> d = {"cluster": "Ih13", "b_sites": [0, 1, 2]}
>>> describe("Cu", "Pt", [d]).shape
(1, 12)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..graphs import Structure
from .alloy_clusters import (
    CATALOGUE,
    _bond_descriptors,
    _element_props,
    _lattice_constant,
    _pair_index,
    _pure_energy,
    _template,
    emt_energy,
)

__all__ = ["check_design_space", "cluster_sizes", "composition_count", "describe", "design_structure", "mixing_energy",
           "random_designs", "swap_moves"]


def cluster_sizes(max_atoms: int = 55) -> dict[str, int]:
    """Catalogue labels with at most ``max_atoms`` atoms -> their number of atoms.

    Example
    -------
    >>> sorted(cluster_sizes(13))
    ['Dh13', 'Ih13', 'cubo13']
    """
    return {c[0]: c[3] for c in CATALOGUE if c[3] <= max_atoms}


def check_design_space(cluster: str | None = None, composition: float | None = None) -> None:
    """Raise a ``ValueError`` that names the problem if ``cluster`` is not a catalogue label or
    ``composition`` (the B fraction) is not strictly between 0 and 1; ``None`` means "free".

    Example
    -------
    >>> check_design_space("Ih55", 0.5)
    >>> check_design_space("Ih56")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown cluster 'Ih56'; catalogue labels: ['Dh13', ...]
    """
    if cluster is not None and cluster not in {c[0] for c in CATALOGUE}:
        raise ValueError(f"unknown cluster {cluster!r}; catalogue labels: {sorted(c[0] for c in CATALOGUE)}")
    if composition is not None and not 0.0 < composition < 1.0:
        raise ValueError(f"composition is the B fraction, strictly between 0 and 1; got {composition}")


def _mask(design: dict) -> tuple[str, np.ndarray]:
    label = design["cluster"]
    n = len(_template(label))
    is_b = np.zeros(n, dtype=bool)
    is_b[np.asarray(design["b_sites"], dtype=int)] = True
    return label, is_b


def design_structure(a: str, b: str, design: dict) -> Structure:
    """The cluster of ``design`` (positions in Å at the Vegard lattice constant, no strain or rattle).

    Example
    -------
    >>> design_structure("Cu", "Pt", {"cluster": "Ih13", "b_sites": [0]}).numbers.tolist().count(78)
    1
    """
    from ase.data import atomic_numbers

    _pair_index(a, b)
    label, is_b = _mask(design)
    x_b = is_b.mean()
    lattice = (1.0 - x_b) * _lattice_constant(a) + x_b * _lattice_constant(b)
    return Structure(np.where(is_b, atomic_numbers[b], atomic_numbers[a]), _template(label) * lattice)


def describe(a: str, b: str, designs: Sequence[dict]) -> np.ndarray:
    """Descriptors ``(n, 12)`` of the designs, in the units of ``DESCRIPTOR_NAMES`` (the data set's).

    Example
    -------
    >>> float(describe("Cu", "Pt", [{"cluster": "Ih13", "b_sites": list(range(13))[:13 // 2]}])[0, 0])
    0.46153846153846156
    """
    (chi_a, r_a), (chi_b, r_b) = _element_props(a), _element_props(b)
    a_a, a_b = _lattice_constant(a), _lattice_constant(b)
    out = np.empty((len(designs), 12))
    for i, d in enumerate(designs):
        label, is_b = _mask(d)
        n = len(is_b)
        x_b = float(is_b.mean())
        lattice = (1.0 - x_b) * a_a + x_b * a_b
        faa, fab, fbb, sxb = _bond_descriptors(_template(label) * lattice, is_b, lattice / np.sqrt(2.0))
        out[i] = [x_b, n ** (-1.0 / 3.0), faa, fab, fbb, sxb, 0.0, 0.0, (1 - x_b) * chi_a + x_b * chi_b,
                  abs(chi_a - chi_b), (1 - x_b) * r_a + x_b * r_b, abs(r_a - r_b) / (0.5 * (r_a + r_b))]
    return out


def mixing_energy(a: str, b: str, design: dict) -> float:
    """EMT mixing energy (eV/atom) of a design, against pure clusters of the same catalogue entry.

    Example
    -------
    >>> mixing_energy("Cu", "Pt", {"cluster": "Ih13", "b_sites": []})
    0.0
    """
    label, is_b = _mask(design)
    n, n_b = len(is_b), int(is_b.sum())
    e = emt_energy(design_structure(a, b, design))[0]
    return float((e - (n - n_b) / n * _pure_energy(label, a) - n_b / n * _pure_energy(label, b)) / n)


def composition_count(n_atoms: int, composition: float) -> int:
    """Number of B atoms of a fixed-composition design: ``composition * n_atoms`` rounded half up, kept in
    ``1 .. n_atoms - 1`` (both elements present).

    Example
    -------
    >>> composition_count(55, 0.5)
    28
    """
    check_design_space(composition=composition)
    return int(min(max(np.floor(composition * n_atoms + 0.5), 1), n_atoms - 1))


def random_designs(rng: np.random.Generator, n: int, max_atoms: int = 55, clusters: Sequence[str] | None = None,
                   composition: float | None = None) -> list[dict]:
    """``n`` random designs: catalogue entry uniform among those with ``<= max_atoms`` atoms (or among
    ``clusters``), ``N_B`` uniform in ``1 .. N-1`` (or fixed: :func:`composition_count` of ``composition``,
    the B fraction), B sites a uniformly random subset.

    Example
    -------
    >>> len(random_designs(np.random.default_rng(0), 4))
    4
    >>> {len(d["b_sites"]) for d in random_designs(np.random.default_rng(0), 4, clusters=["Ih55"], composition=0.5)}
    {28}
    """
    sizes = cluster_sizes(max_atoms) if clusters is None else {c: len(_template(c)) for c in clusters}
    labels = sorted(sizes)
    out = []
    for _ in range(int(n)):
        label = labels[int(rng.integers(len(labels)))]
        n_atoms = sizes[label]
        n_b = int(rng.integers(1, n_atoms)) if composition is None else composition_count(n_atoms, composition)
        out.append({"cluster": label, "b_sites": sorted(int(i) for i in rng.permutation(n_atoms)[:n_b])})
    return out


def swap_moves(rng: np.random.Generator, design: dict, n: int, max_changes: int = 3, flips: bool = True
               ) -> list[dict]:
    """``n`` neighbours of ``design``: 1..``max_changes`` random A<->B swaps (same composition), or one
    site flipped (composition +- 1 atom, both elements kept), chosen with equal odds; ``flips=False``:
    swaps only (shape, size and composition kept: a search over chemical ordering alone).

    Example
    -------
    >>> moves = swap_moves(np.random.default_rng(0), {"cluster": "Ih13", "b_sites": [0, 1]}, 5)
    >>> all(1 <= len(m["b_sites"]) <= 12 for m in moves)
    True
    >>> {len(m["b_sites"]) for m in swap_moves(np.random.default_rng(0), {"cluster": "Ih13", "b_sites": [0, 1]}, 5,
    ...                                        flips=False)}
    {2}
    """
    label, is_b = _mask(design)
    out = []
    for _ in range(int(n)):
        new = is_b.copy()
        if not flips or rng.random() < 0.5:
            for _k in range(int(rng.integers(1, max_changes + 1))):
                ib, ia = np.flatnonzero(new), np.flatnonzero(~new)
                if len(ib) == 0 or len(ia) == 0:
                    break
                new[rng.choice(ib)], new[rng.choice(ia)] = False, True
        else:
            i = int(rng.integers(len(new)))
            new[i] = not new[i]
            if new.all() or not new.any():
                new[i] = not new[i]
        out.append({"cluster": label, "b_sites": [int(i) for i in np.flatnonzero(new)]})
    return out
