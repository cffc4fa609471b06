"""π systems of molecule graphs and the reference Hückel parameters.

π-electron convention (used by :func:`pi_electrons`, :class:`nanonb.physics.tb.TBGapNet` and
:mod:`nanonb.data.flakes`): every C/B/N atom bonded to other heavy atoms is one π site
(H atoms are not sites). π electrons per site: **C 1; B 0; N 2 when three-coordinated** (graphitic
N in the lattice, or an N–H), **N 1 when two-coordinated** (pyridinic N whose lone pair lies in the
σ plane). The molecule's π-electron count is the sum minus the total charge.

:func:`build_pi_system` finds the sites and bonds of a :class:`nanonb.graphs.GraphBatch`,
:func:`reference_parameters` gives the standard heteroatom Hückel parameters (eV), and
:func:`reference_gap` / :func:`huckel_gaps` the plain Hückel HOMO–LUMO gap (eV), a physics baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nanonb.graphs import collate
from nanonb.physics.huckel import HuckelLayer

# ---------------------------------------------------------------------------- constants
ALPHA_C = -6.0  # eV, on-site energy of a C π site (sets only the absolute level position)
BETA_CC = -2.7  # eV, C–C hopping at 1.42 Å (graphene)
CC_BOND = 1.42  # Å
BETA_DECAY = 3.37  # dimensionless: beta(d) = beta0 * exp(-3.37 (d / 1.42 Å - 1)) (graphene strain TB)
BOND_CUTOFF = 1.7  # Å, heavy–heavy bond
H_BOND_CUTOFF = 1.25  # Å, X–H bond

#: π-site types: index -> (name, element, π electrons, Hückel h_X, k_CX). Reference parameters are
#: alpha_X = alpha_C + h_X * beta_CC (beta_CC < 0, so h > 0 lowers the level) and
#: beta_XY = k_CX * k_CY * beta_CC: Streitwieser / Van-Catledge heteroatom values (pyridine-type N
#: h=0.5, k=1.0; pyrrole-type N h=1.5, k=0.8; B h=-1.0, k=0.7). k_BN = 0.56 follows from the product.
SITE_TYPES: tuple[tuple[str, int, int, float, float], ...] = (
    ("C", 6, 1, 0.0, 1.0),
    ("B", 5, 0, -1.0, 0.7),
    ("N-pyridinic", 7, 1, 0.5, 1.0),
    ("N-graphitic", 7, 2, 1.5, 0.8),
)
PI_ELEMENTS = (5, 6, 7)



# ---------------------------------------------------------------------------- π system from a graph
@dataclass
class PiSystem:
    """The π sites and bonds of a batch of molecules (see :func:`build_pi_system`).

    ``atom_index`` (S,) maps sites to batch atoms; ``site_type`` (S,) indexes
    :data:`SITE_TYPES`; ``n_h``/``n_heavy`` (S,) count H and heavy neighbours; ``electrons`` (S,)
    π electrons per site; ``edge_i``/``edge_j`` (P,) site indices of each bond (once, i < j);
    ``bond_length`` (P,) in Å (differentiable w.r.t. positions); ``graph`` (S,) molecule index;
    ``n_sites`` and ``n_electrons`` (B,).

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> pi = build_pi_system(collate([benzene], cutoff=2.0))
    >>> pi.n_sites.tolist(), pi.n_electrons.tolist(), len(pi.edge_i)
    ([6], [6], 6)
    """

    atom_index: torch.Tensor
    site_type: torch.Tensor
    n_h: torch.Tensor
    n_heavy: torch.Tensor
    electrons: torch.Tensor
    edge_i: torch.Tensor
    edge_j: torch.Tensor
    bond_length: torch.Tensor
    graph: torch.Tensor
    n_sites: torch.Tensor
    n_electrons: torch.Tensor
    extra: dict = field(default_factory=dict)


def pi_electrons(z: torch.Tensor, coordination: torch.Tensor) -> torch.Tensor:
    """π electrons per site: C 1, B 0, N 2 if three-coordinated else 1 (see module docstring).

    ``coordination`` counts all bonded neighbours (heavy atoms and H).

    Example
    -------
    >>> import torch
    >>> pi_electrons(torch.tensor([6, 5, 7, 7]), torch.tensor([3, 3, 3, 2])).tolist()  # C, B, graphitic N, pyridinic N
    [1, 0, 2, 1]
    """
    z = torch.as_tensor(z)
    coordination = torch.as_tensor(coordination)
    out = torch.where(z == 6, 1, 0)
    out = torch.where(z == 7, torch.where(coordination >= 3, 2, 1), out)
    return out.to(torch.long)


def build_pi_system(batch, charge: torch.Tensor | int | Sequence[int] = 0,
                    bond_cutoff: float = BOND_CUTOFF, h_cutoff: float = H_BOND_CUTOFF) -> PiSystem:
    """Find the π sites and bonds of a :class:`nanonb.graphs.GraphBatch`.

    Sites are the C, B and N atoms; bonds are heavy–heavy pairs closer than ``bond_cutoff`` Å,
    X–H bonds are closer than ``h_cutoff`` Å. The batch's edge list (``edge_i``, ``edge_j``) must
    contain these pairs (in at least one direction), i.e. it was built with a neighbour cutoff of at
    least ``bond_cutoff``. Only H, B, C and N atoms are supported.

    Parameters
    ----------
    batch:
        Object with ``z``, ``pos`` (Å), ``edge_i``, ``edge_j``, ``graph``, ``n_atoms``.
    charge:
        Total charge per molecule (e), scalar or ``(B,)``; subtracted from the π-electron count.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> build_pi_system(collate([benzene], cutoff=2.0), charge=1).n_electrons.tolist()  # the cation
    [5]
    """
    z, pos, ei, ej = batch.z, batch.pos, batch.edge_i, batch.edge_j
    n_graphs = int(batch.n_atoms.shape[0])
    allowed = (z == 1) | (z == 5) | (z == 6) | (z == 7)
    if not bool(allowed.all()):
        bad = sorted({int(v) for v in z[~allowed].tolist()})
        raise ValueError(f"TB π model supports H, B, C, N only; found atomic numbers {bad}.")
    heavy = z != 1
    d = (pos[ej] - pos[ei]).norm(dim=-1)
    hh = heavy[ei] & heavy[ej] & (d < bond_cutoff) & (ei != ej)
    lo, hi = torch.minimum(ei[hh], ej[hh]), torch.maximum(ei[hh], ej[hh])
    n_atoms_total = int(z.shape[0])
    key = torch.unique(lo * n_atoms_total + hi)
    a_i, a_j = key // n_atoms_total, key % n_atoms_total
    xh = heavy[ei] & (z[ej] == 1) & (d < h_cutoff)
    hx = heavy[ej] & (z[ei] == 1) & (d < h_cutoff)
    h_key = torch.unique(torch.cat([ei[xh] * n_atoms_total + ej[xh], ej[hx] * n_atoms_total + ei[hx]]))
    n_h_atom = torch.bincount(h_key // n_atoms_total, minlength=n_atoms_total)
    n_heavy_atom = torch.bincount(torch.cat([a_i, a_j]), minlength=n_atoms_total)

    atom_index = torch.nonzero(heavy).flatten()
    site_of_atom = torch.cumsum(heavy.long(), 0) - 1
    zs = z[atom_index]
    n_h = n_h_atom[atom_index]
    n_heavy = n_heavy_atom[atom_index]
    coordination = n_h + n_heavy
    electrons = pi_electrons(zs, coordination)
    site_type = torch.where(zs == 6, 0, torch.where(zs == 5, 1, torch.where(coordination >= 3, 3, 2)))
    graph = batch.graph[atom_index]
    n_sites = torch.bincount(graph, minlength=n_graphs)
    if bool((n_sites == 0).any()):
        empty = torch.nonzero(n_sites == 0).flatten()[:5].tolist()
        raise ValueError(f"molecules {empty} have no π sites (no B/C/N atoms).")
    charge_t = torch.as_tensor(charge, dtype=torch.long, device=z.device).expand(n_graphs)
    n_el = torch.zeros(n_graphs, dtype=torch.long, device=z.device).index_add(0, graph, electrons) - charge_t
    isolated = (n_heavy == 0) & (n_sites[graph] > 1)
    if bool(isolated.any()):
        raise ValueError("some heavy atoms have no bonded heavy neighbour within "
                         f"{bond_cutoff} Å; was the batch collated with a neighbour cutoff >= {bond_cutoff} Å?")
    return PiSystem(
        atom_index=atom_index, site_type=site_type, n_h=n_h, n_heavy=n_heavy, electrons=electrons,
        edge_i=site_of_atom[a_i], edge_j=site_of_atom[a_j],
        bond_length=(pos[a_j] - pos[a_i]).norm(dim=-1),
        graph=graph, n_sites=n_sites, n_electrons=n_el,
    )


def _site_table(col: int) -> torch.Tensor:
    return torch.tensor([t[col] for t in SITE_TYPES], dtype=torch.float32)


def reference_parameters(pi: PiSystem, alpha_c: float = ALPHA_C, beta_cc: float = BETA_CC,
                         decay: float = BETA_DECAY) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard Hückel on-site energies (S,) and hoppings (P,) in eV for a π system.

    ``alpha_X = alpha_C + h_X beta_CC``, ``beta_XY = k_CX k_CY beta_CC exp(-decay (d/1.42 Å - 1))``
    with the heteroatom ``h``/``k`` of :data:`SITE_TYPES`.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> onsite, hop = reference_parameters(build_pi_system(collate([benzene], cutoff=2.0)))
    >>> round(onsite[0].item(), 3), round(hop[0].item(), 3)  # alpha_C, beta_CC at 1.42 Å (eV)
    (-6.0, -2.7)
    """
    dev, dt = pi.bond_length.device, pi.bond_length.dtype
    h = _site_table(3).to(dev, dt)[pi.site_type]
    k = _site_table(4).to(dev, dt)
    onsite = alpha_c + h * beta_cc
    hop = (k[pi.site_type[pi.edge_i]] * k[pi.site_type[pi.edge_j]] * beta_cc
           * torch.exp(-decay * (pi.bond_length / CC_BOND - 1.0)))
    return onsite, hop


def reference_gap(batch, charge: torch.Tensor | int | Sequence[int] = 0, alpha_c: float = ALPHA_C,
                  beta_cc: float = BETA_CC) -> torch.Tensor:
    """Plain Hückel HOMO–LUMO gap (eV, ``(B,)``) with the reference parameters, no network.

    ``batch`` is a :class:`nanonb.graphs.GraphBatch` collated with a neighbour cutoff of at least
    :data:`BOND_CUTOFF` Å; ``charge`` (e) as in :func:`build_pi_system`.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> round(float(reference_gap(collate([benzene], cutoff=2.0))[0]), 3)  # 2|β| = 5.4 eV
    5.4
    """
    pi = build_pi_system(batch, charge=charge)
    onsite, hop = reference_parameters(pi, alpha_c, beta_cc)
    return HuckelLayer()(onsite, hop, pi.edge_i, pi.edge_j, pi.n_sites, pi.n_electrons).gap


def huckel_gaps(inputs) -> np.ndarray:
    """Plain Hückel gaps (eV, float64, reference parameters) of a task's structures or a list of them.


    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> huckel_gaps([generate_flake("hexagonal-zigzag", 1.5).structure]).round(3).tolist()  # benzene: 2|beta| (eV)
    [5.4]
    """
    structures = inputs.inputs if hasattr(inputs, "inputs") else list(inputs)
    with torch.no_grad():
        return reference_gap(collate(structures, cutoff=2.0)).double().numpy()
