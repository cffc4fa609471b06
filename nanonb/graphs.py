"""3D structures as graphs: neighbour lists from ASE and padding-free batching.

A :class:`Structure` is a finite cluster or molecule (atomic numbers, positions in Å, optional
forces in eV/Å, optional per-structure condition variables such as strain or temperature).
:func:`collate` concatenates many structures of different sizes into one :class:`GraphBatch` (nodes
stacked, edge indices offset, a node-to-graph index), so a batch costs exactly the sum of its atoms
and edges: no padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

DEFAULT_CUTOFF = 4.0  # Å: covers the first and second neighbour shells of fcc metals


@dataclass
class Structure:
    """A finite atomic structure.

    numbers: atomic numbers, shape ``(n,)``; positions: Å, shape ``(n, 3)``;
    forces: eV/Å, shape ``(n, 3)`` or ``None``; conditions: per-structure condition variables
    (e.g. strain, temperature in K), shape ``(c,)`` or ``None``, global inputs of a graph network
    built with ``n_conditions=c``.

    Example
    -------
    >>> dimer = Structure([29, 29], [[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])   # Cu2, 2.5 Å apart
    >>> len(dimer), dimer.positions.dtype
    (2, dtype('float64'))
    >>> dimer.edges(cutoff=3.0)                       # directed neighbour pairs within 3 Å
    (array([0, 1]), array([1, 0]))
    >>> dimer.edges(cutoff=2.0)[0].size               # none within 2 Å
    0
    >>> dimer.to_atoms().get_chemical_formula()
    'Cu2'
    """

    numbers: np.ndarray
    positions: np.ndarray
    forces: np.ndarray | None = None
    conditions: np.ndarray | None = None
    _edges: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.numbers) != len(self.positions):
            raise ValueError("numbers and positions must have the same length")
        if len(self.numbers) == 0:
            raise ValueError("a Structure needs at least one atom")
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        if self.conditions is not None:
            self.conditions = np.asarray(self.conditions, dtype=np.float64).reshape(-1)

    def __len__(self) -> int:
        return len(self.numbers)

    @classmethod
    def from_atoms(cls, atoms, forces: np.ndarray | None = None) -> Structure:
        """From an ``ase.Atoms`` (non-periodic)."""
        return cls(atoms.get_atomic_numbers(), atoms.get_positions(), forces)

    def to_atoms(self):
        """As an ``ase.Atoms`` (for viewing with nglview or re-labelling with a calculator)."""
        from ase import Atoms

        return Atoms(numbers=self.numbers, positions=self.positions)

    def edges(self, cutoff: float = DEFAULT_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
        """Directed neighbour pairs ``(i, j)`` with ``|r_j - r_i| < cutoff`` (Å), cached."""
        if cutoff not in self._edges:
            from ase.neighborlist import neighbor_list

            i, j = neighbor_list("ij", self.to_atoms(), cutoff)
            self._edges[cutoff] = (i.astype(np.int64), j.astype(np.int64))
        return self._edges[cutoff]


@dataclass
class GraphBatch:
    """Many structures as one disconnected graph.

    z: ``(N,)`` atomic numbers; pos: ``(N, 3)`` Å; edge_i/edge_j: ``(E,)`` directed edges;
    graph: ``(N,)`` index of the structure each atom belongs to; n_atoms: ``(B,)``.
    """

    z: torch.Tensor
    pos: torch.Tensor
    edge_i: torch.Tensor
    edge_j: torch.Tensor
    graph: torch.Tensor
    n_atoms: torch.Tensor
    forces: torch.Tensor | None = None  # (N, 3) eV/Å when every structure carries forces
    conditions: torch.Tensor | None = None  # (B, C) per-structure conditions when every structure has them

    @property
    def n_graphs(self) -> int:
        return int(self.n_atoms.shape[0])

    def __len__(self) -> int:
        return self.n_graphs

    def to(self, device) -> GraphBatch:
        """The same batch with every tensor on ``device`` (``"cpu"``, ``"cuda"``); ``self`` if already there."""
        if self.pos.device == torch.device(device):
            return self
        return GraphBatch(*(None if t is None else t.to(device) for t in (
            self.z, self.pos, self.edge_i, self.edge_j, self.graph, self.n_atoms, self.forces, self.conditions)))


def collate(structures: Sequence[Structure], cutoff: float = DEFAULT_CUTOFF,
            dtype: torch.dtype = torch.float32) -> GraphBatch:
    """Concatenate structures into a :class:`GraphBatch` without padding.

    Atoms are stacked, edge indices offset, and ``graph`` maps each atom to its structure; edges join
    atoms closer than ``cutoff`` (Å). ``forces`` (eV/Å) and ``conditions`` (stacked to ``(B, c)``) are kept
    only when every structure has them.

    Example
    -------
    >>> dimer = Structure([29, 29], [[0.0, 0.0, 0.0], [0.0, 0.0, 2.5]])                 # Cu2
    >>> trimer = Structure([78, 78, 78], [[0.0, 0.0, 0.0], [2.7, 0.0, 0.0], [1.35, 2.34, 0.0]])  # Pt3
    >>> batch = collate([dimer, trimer], cutoff=3.0)
    >>> batch.n_graphs, batch.n_atoms.tolist(), batch.graph.tolist()
    (2, [2, 3], [0, 0, 1, 1, 1])
    >>> batch.pos.shape, batch.edge_i.numel(), batch.forces is None   # 2 + 6 directed edges, no forces
    (torch.Size([5, 3]), 8, True)
    """
    if len(structures) == 0:
        raise ValueError("collate needs at least one structure")
    zs, ps, ei, ej, gs, ns, fs = [], [], [], [], [], [], []
    offset = 0
    for k, s in enumerate(structures):
        i, j = s.edges(cutoff)
        zs.append(s.numbers)
        ps.append(s.positions)
        ei.append(i + offset)
        ej.append(j + offset)
        gs.append(np.full(len(s), k))
        ns.append(len(s))
        fs.append(s.forces)
        offset += len(s)
    forces = None if any(f is None for f in fs) else torch.from_numpy(np.concatenate(fs)).to(dtype)
    cs = [s.conditions for s in structures]
    conditions = None if any(c is None for c in cs) else torch.from_numpy(np.stack(cs)).to(dtype)
    return GraphBatch(
        z=torch.from_numpy(np.concatenate(zs)),
        pos=torch.from_numpy(np.concatenate(ps)).to(dtype),
        edge_i=torch.from_numpy(np.concatenate(ei)),
        edge_j=torch.from_numpy(np.concatenate(ej)),
        graph=torch.from_numpy(np.concatenate(gs)),
        n_atoms=torch.tensor(ns, dtype=torch.long),
        forces=forces,
        conditions=conditions,
    )
