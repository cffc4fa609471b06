"""Graph networks for 3D structures: one atom-wise base, an invariant and an equivariant interaction stack.

Both networks are ``head(body(batch))`` with the same interface (``body``/``head``, ``cutoff`` in Å,
``n_features``, ``forward(batch, output="target"|"energy"|"features", pos=None)``). Their bodies share
:class:`_AtomwiseBody`: element descriptors (:func:`~nanonb.models.elements.element_table`) are
embedded, a Gaussian radial basis expands the distances, interaction blocks update the atom features
and the per-structure features are the mean of atom features. The readout of the networks
(:class:`_AtomwiseGNN`) is a sum of per-atom energies ``head(phi_i)``, so ``energy(batch)`` is
extensive and ``forward`` returns it per atom (intensive targets such as a mixing energy in eV/atom).

**Conditions.** Built with ``n_conditions=c > 0``, both networks take per-structure condition variables
(strain, rattle amplitude, temperature, concentration: ``GraphBatch.conditions``, ``(B, c)``, from
:attr:`nanonb.graphs.Structure.conditions`) as global inputs: standardized with ``condition_mean`` /
``condition_std`` (physical units, e.g. meta-train statistics), embedded by a small MLP and added to every
atom's features of that structure before the atom MLP, so they reach the energy readout and the features.

- :class:`InvariantGNN`: SchNet-style continuous-filter convolutions; sees only interatomic
  distances (rotation and translation invariant) and sums over atoms (permutation invariant).
- :class:`EquivariantGNN`: PaiNN-style scalar + vector features; can represent bond directions.

No BatchNorm and no in-place parameter updates, so ``higher.monkeypatch`` works (also with forces,
double backward).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..graphs import DEFAULT_CUTOFF, GraphBatch
from .elements import ELEMENT_FEATURES, MAX_Z, element_table
from .registry import register_model


def cosine_cutoff(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth cutoff 0.5 (cos(pi d / r_c) + 1) for d < r_c, else 0 (``d`` and ``cutoff`` in Å)."""
    return 0.5 * (torch.cos(math.pi * d / cutoff) + 1.0) * (d < cutoff).to(d.dtype)


class RadialBasis(nn.Module):
    """Gaussian radial basis exp(-gamma (d - mu_k)^2), centres mu_k evenly on [0, cutoff] Å."""

    def __init__(self, n_rbf: int = 16, cutoff: float = DEFAULT_CUTOFF):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 0.5 / (cutoff / (n_rbf - 1)) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (d[:, None] - self.centers[None, :]) ** 2)


# ---------------------------------------------------------------------- shared atom-wise base
class _AtomwiseBody(nn.Module):
    """Element embedding -> interaction blocks -> atom MLP; per-structure features are atom means.

    Subclasses create their interaction blocks in :meth:`_make_blocks` (called between the radial
    basis and the atom MLP, which fixes the parameter order and hence the initialization for a
    seed) and implement :meth:`_interact` (initial atom features and bond geometry -> updated atom
    features, plus equivariant vectors or ``None``).
    """

    network = "GNN"

    def __init__(self, width, n_blocks, n_rbf, cutoff, n_conditions=0, condition_mean=None, condition_std=None):
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("elements", torch.from_numpy(element_table()))
        self.embed = nn.Sequential(nn.Linear(len(ELEMENT_FEATURES), width), nn.SiLU(), nn.Linear(width, width))
        self.rbf = RadialBasis(n_rbf, cutoff)
        self._make_blocks(width, n_blocks, n_rbf, cutoff)
        self.atom_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU())
        self.n_conditions = int(n_conditions)
        if self.n_conditions > 0:  # created last: networks without conditions keep their seeded initialization
            mean = torch.zeros(n_conditions) if condition_mean is None else torch.as_tensor(condition_mean)
            std = torch.ones(n_conditions) if condition_std is None else torch.as_tensor(condition_std)
            if mean.shape != (n_conditions,) or std.shape != (n_conditions,) or not bool((std > 0).all()):
                raise ValueError(f"condition_mean / condition_std need {n_conditions} values (std > 0), got "
                                 f"{condition_mean!r} / {condition_std!r}")
            self.register_buffer("condition_mean", mean.float())
            self.register_buffer("condition_std", std.float())
            self.condition_mlp = nn.Sequential(nn.Linear(n_conditions, width), nn.SiLU(), nn.Linear(width, width))

    def _condition_shift(self, batch: GraphBatch, dtype: torch.dtype) -> torch.Tensor:
        """Per-atom ``(N, width)`` embedding of the structure's standardized conditions."""
        c = batch.conditions
        if c is None or c.shape[-1] != self.n_conditions:
            got = "none" if c is None else f"{c.shape[-1]}"
            raise ValueError(f"this {self.network} was built with n_conditions={self.n_conditions} but the batch "
                             f"carries {got}: give every Structure its conditions (Structure.conditions, e.g. "
                             "nanonb.tasks.condition_tasks) or build the network with n_conditions=0")
        c = (c.to(dtype) - self.condition_mean.to(dtype)) / self.condition_std.to(dtype)
        return self.condition_mlp(c)[batch.graph]

    def _make_blocks(self, width, n_blocks, n_rbf, cutoff) -> None:
        raise NotImplementedError

    def _interact(self, h, vec, d, batch: GraphBatch):
        """Interaction blocks: ``(atom features, bond vectors (E, 3) Å, lengths (E,) Å)`` -> ``(h, v or None)``."""
        raise NotImplementedError

    def atom_features(self, batch: GraphBatch, pos: torch.Tensor | None = None, return_vectors: bool = False):
        """Invariant atom features ``(N, width)`` (and the equivariant vectors if the body has them)."""
        pos = batch.pos if pos is None else pos
        if int(batch.z.max()) > MAX_Z:
            raise ValueError(f"{self.network} supports elements up to Z={MAX_Z}, got Z={int(batch.z.max())}")
        h = self.embed(self.elements.to(pos.dtype)[batch.z])
        vec = pos[batch.edge_j] - pos[batch.edge_i]
        d = torch.sqrt((vec * vec).sum(-1) + 1e-12)
        h, v = self._interact(h, vec, d, batch)
        if self.n_conditions > 0:
            h = h + self._condition_shift(batch, h.dtype)
        h = self.atom_mlp(h)
        return (h, v) if return_vectors else h

    def forward(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Per-structure features: the mean of invariant atom features (sum / n_atoms)."""
        h = self.atom_features(batch, pos)
        summed = torch.zeros(batch.n_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, batch.graph, h)
        return summed / batch.n_atoms[:, None].to(h.dtype)


class _AtomwiseGNN(nn.Module):
    """``head(body(batch))`` with an extensive per-atom energy readout (shared by both networks)."""

    body_class: type[_AtomwiseBody] = _AtomwiseBody
    input_kind = "structures"

    def __init__(self, width: int = 32, n_blocks: int = 2, n_rbf: int = 16, cutoff: float = DEFAULT_CUTOFF,
                 n_conditions: int = 0, condition_mean=None, condition_std=None,
                 device: str | torch.device | None = None):
        super().__init__()
        self.body = self.body_class(width, n_blocks, n_rbf, cutoff, n_conditions, condition_mean, condition_std)
        self.head = nn.Linear(width, 1)
        self.cutoff = cutoff
        self.n_features = width
        if device is not None:  # parameters and buffers (element table, radial centres) on the device
            self.to(device)

    def forward(self, batch: GraphBatch, output: str = "target", pos: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Predictions per structure.

        ``output="target"``: per-atom value ``(B,)`` (= energy / n_atoms); ``"energy"``: extensive
        sum of per-atom contributions ``(B,)``; ``"features"``: mean atom features ``(B, width)``.
        ``pos`` (Å) overrides ``batch.pos``, e.g. a tensor with ``requires_grad`` for forces.
        All outputs go through ``forward`` so they also work on ``higher``-patched copies.
        """
        if output == "energy":
            per_atom = self.head(self.body.atom_features(batch, pos)).squeeze(-1)
            zero = torch.zeros(batch.n_graphs, dtype=per_atom.dtype, device=per_atom.device)
            return zero.index_add(0, batch.graph, per_atom)
        f = self.body(batch, pos)
        if output == "features":
            return f
        if output != "target":
            raise ValueError(f"output must be 'target', 'energy' or 'features', not {output!r}")
        return self.head(f).squeeze(-1)

    def energy(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Extensive energy per structure: sum over atoms of the per-atom head output."""
        return self(batch, output="energy", pos=pos)


# ---------------------------------------------------------------------- invariant (SchNet-like)
class CFConv(nn.Module):
    """Continuous-filter convolution (SchNet interaction block) with a residual update."""

    def __init__(self, width: int, n_rbf: int, cutoff: float):
        super().__init__()
        self.cutoff = cutoff
        self.filter = nn.Sequential(nn.Linear(n_rbf, width), nn.SiLU(), nn.Linear(width, width))
        self.in_proj = nn.Linear(width, width, bias=False)
        self.out = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, h, rbf, d, edge_i, edge_j):
        w = self.filter(rbf) * cosine_cutoff(d, self.cutoff)[:, None]
        msg = self.in_proj(h)[edge_j] * w
        agg = torch.zeros_like(h).index_add(0, edge_i, msg)
        return h + self.out(agg)


class _GNNBody(_AtomwiseBody):
    network = "InvariantGNN"

    def _make_blocks(self, width, n_blocks, n_rbf, cutoff) -> None:
        self.blocks = nn.ModuleList([CFConv(width, n_rbf, cutoff) for _ in range(n_blocks)])

    def _interact(self, h, vec, d, batch):
        rbf = self.rbf(d)
        for block in self.blocks:
            h = block(h, rbf, d, batch.edge_i, batch.edge_j)
        return h, None


@register_model
class InvariantGNN(_AtomwiseGNN):
    """E(3)- and permutation-invariant graph network (SchNet-like).

    ``energy(batch)`` is a sum of per-atom contributions ``head(phi_i)`` (extensive, in target
    units × atoms); ``forward(batch)`` returns ``energy / n_atoms`` (per atom), which equals
    ``head(mean_i phi_i)`` because the head is linear.

    Parameters: ``width`` feature size, ``n_blocks`` interaction blocks, ``n_rbf`` radial basis
    functions, ``cutoff`` in Å (must match the cutoff used to build the batch's edges);
    ``n_conditions``, ``condition_mean``, ``condition_std`` as in :class:`InvariantGNN`; ``device``.

    Example
    -------
    >>> from nanonb.graphs import collate
    >>> model = InvariantGNN(width=8, n_blocks=1)             # doctest: +SKIP
    >>> model(collate(list_of_ase_atoms)).shape               # (n_structures,)  # doctest: +SKIP
    """

    body_class = _GNNBody


# ---------------------------------------------------------------------- equivariant (PaiNN-like)
class _PaiNNMessage(nn.Module):
    """PaiNN message block: scalar and vector messages from neighbours (Schütt et al., ICML 2021).

    ``Δs_i = Σ_j φ_s(s_j) W_s(r_ij)``; ``Δv_i = Σ_j v_j φ_vv(s_j) W_vv(r_ij) + r̂_ij φ_vs(s_j) W_vs(r_ij)``,
    with filters ``W(r) = Linear(rbf(r)) · f_cut(r)``. Vectors enter only linearly and through
    the unit vectors ``r̂_ij``, so ``Δv`` rotates (and reflects) with the structure and ``Δs`` is invariant.
    """

    def __init__(self, width: int, n_rbf: int, cutoff: float):
        super().__init__()
        self.cutoff = cutoff
        self.phi = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 3 * width))
        self.filter = nn.Linear(n_rbf, 3 * width)

    def forward(self, s, v, rbf, d, unit, edge_i, edge_j):
        width = s.shape[1]
        x = self.phi(s)[edge_j] * self.filter(rbf) * cosine_cutoff(d, self.cutoff)[:, None]
        ds, dvv, dvs = x[:, :width], x[:, width:2 * width], x[:, 2 * width:]
        msg_v = v[edge_j] * dvv[:, None, :] + unit[:, :, None] * dvs[:, None, :]  # (E, 3, F)
        s = s + torch.zeros_like(s).index_add(0, edge_i, ds)
        v = v + torch.zeros_like(v).index_add(0, edge_i, msg_v)
        return s, v


class _PaiNNUpdate(nn.Module):
    """PaiNN update block: mixes scalar and vector channels of each atom.

    ``Δv = a_vv ⊙ (U v)``; ``Δs = a_ss + a_sv ⊙ <U v, V v>`` with ``(a_vv, a_sv, a_ss) =
    MLP([s, ‖V v‖])``. Only norms and inner products of vectors reach the scalars: O(3) invariant.
    """

    def __init__(self, width: int):
        super().__init__()
        self.u = nn.Linear(width, width, bias=False)
        self.w = nn.Linear(width, width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, s, v):
        width = s.shape[1]
        uv, wv = self.u(v), self.w(v)  # (N, 3, F): linear maps over channels commute with rotations
        norm = torch.sqrt((wv * wv).sum(1) + 1e-8)  # smooth at v = 0 (finite force derivatives)
        a = self.mlp(torch.cat([s, norm], dim=1))
        a_vv, a_sv, a_ss = a[:, :width], a[:, width:2 * width], a[:, 2 * width:]
        return s + a_ss + a_sv * (uv * wv).sum(1), v + a_vv[:, None, :] * uv


class _EquivariantBody(_AtomwiseBody):
    network = "EquivariantGNN"

    def _make_blocks(self, width, n_blocks, n_rbf, cutoff) -> None:
        self.messages = nn.ModuleList([_PaiNNMessage(width, n_rbf, cutoff) for _ in range(n_blocks)])
        self.updates = nn.ModuleList([_PaiNNUpdate(width) for _ in range(n_blocks)])

    def _interact(self, s, vec, d, batch):
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        unit = vec / d[:, None]  # before the radial basis: keeps autograd's accumulation order (same floats)
        rbf = self.rbf(d)
        for msg, upd in zip(self.messages, self.updates):
            s, v = msg(s, v, rbf, d, unit, batch.edge_i, batch.edge_j)
            s, v = upd(s, v)
        return s, v


@register_model
class EquivariantGNN(_AtomwiseGNN):
    """E(3)-equivariant message-passing network (PaiNN-style scalar + vector features).

    Every atom carries invariant scalars ``s_i`` (``width``) and equivariant vectors ``v_i``
    (``3 × width``); vector messages are built from unit bond vectors, so ``v_i`` rotates and
    reflects with the structure while ``s_i`` does not change. Energies are sums of per-atom
    ``head(s_i)`` and hence invariant to rotations, reflections, translations and permutations;
    forces ``-dE/dpos`` are equivariant (rotate with the structure). Compared with
    :class:`InvariantGNN`, which sees only distances, it can represent angular (bond-direction)
    information within ``n_blocks`` hops. Elements enter through :func:`element_table`
    descriptors, as in :class:`InvariantGNN`, so unseen elements are not blank.

    Same interface as :class:`InvariantGNN` (shared :class:`_AtomwiseGNN` readout). Built out of
    place (no in-place parameter updates), so it runs inside ``higher``'s inner loops, also with
    forces (double backward).

    Parameters: ``width`` channels, ``n_blocks`` message + update blocks, ``n_rbf`` radial basis
    functions, ``cutoff`` in Å (must match the cutoff used to build the batch's edges);
    ``n_conditions`` per-structure condition variables (global inputs, standardized with
    ``condition_mean`` / ``condition_std``; see the module docstring); ``device``
    where the parameters live (``"cpu"``, ``"cuda"``; batches go there with ``GraphBatch.to``).

    Example
    -------
    >>> model = EquivariantGNN(width=8, n_blocks=1)           # doctest: +SKIP
    >>> model.vectors(batch).shape                            # (n_atoms, 3, 8)  # doctest: +SKIP
    """

    body_class = _EquivariantBody

    def vectors(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Equivariant vector features ``(N, 3, width)`` of the last block (rotate with the structure)."""
        return self.body.atom_features(batch, pos, return_vectors=True)[1]
