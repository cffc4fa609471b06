"""Models that run inside ``higher``'s differentiable inner loops.

Every model is ``head(body(x))``: ``body`` maps inputs to a feature vector per sample and ``head`` is
one linear layer to the (standardized) target. ANIL adapts only the head; a Bayesian last layer puts
a posterior on it. No BatchNorm and no in-place parameter updates, so ``higher.monkeypatch`` works.

- :class:`MLP` for tabular inputs (electrolytes, LNPs).
- :class:`InvariantGNN`: a SchNet-style continuous-filter convolution network for 3D structures.
  It sees only interatomic distances (rotation and translation invariant) and sums over atoms
  (permutation invariant). Elements enter through physical descriptors (electronegativity, radius,
  group, period, mass, ionization energy from pymatgen), so an element never seen in meta-training
  still has a meaningful representation. The readout is a sum of per-atom energies, so
  ``energy(batch)`` is extensive; ``forward`` returns it per atom (intensive targets such as a
  mixing energy in eV/atom).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .graphs import DEFAULT_CUTOFF, GraphBatch

ELEMENT_FEATURES = (
    "pauling_electronegativity",
    "atomic_radius_angstrom",
    "group",
    "period",
    "atomic_mass_amu",
    "first_ionization_energy_ev",
)
MAX_Z = 86


@lru_cache(maxsize=1)
def element_table() -> np.ndarray:
    """Standardized physical descriptors of elements Z = 1..86, shape ``(MAX_Z + 1, 6)``.

    Columns are :data:`ELEMENT_FEATURES`, taken from pymatgen's element data, each standardized
    over Z = 1..86 (row 0 is unused). Missing values are filled with the column median.
    """
    import warnings

    from pymatgen.core.periodic_table import Element

    rows = []
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")  # noble gases: NaN, filled below
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)

        def val(f, _el=el):
            try:
                v = f(_el)
                return float(v) if v is not None else np.nan
            except Exception:
                return np.nan

        rows.append([
            val(lambda e: e.X),
            val(lambda e: e.atomic_radius),
            val(lambda e: e.group),
            val(lambda e: e.row),
            val(lambda e: e.atomic_mass),
            val(lambda e: e.ionization_energy),
        ])
    t = np.array(rows, dtype=np.float64)
    med = np.nanmedian(t, axis=0)
    t = np.where(np.isnan(t), med, t)
    t = (t - t.mean(0)) / t.std(0)
    return np.vstack([np.zeros((1, t.shape[1])), t]).astype(np.float32)


class MLP(nn.Module):
    """Fully connected network for tabular inputs: ``head(body(x))``.

    Parameters: ``n_in`` input features, ``hidden`` widths of the body, ``activation`` a
    ``torch.nn`` activation class name.
    """

    def __init__(self, n_in: int, hidden: tuple[int, ...] = (64, 64), activation: str = "SiLU"):
        super().__init__()
        layers: list[nn.Module] = []
        d = n_in
        for h in hidden:
            layers += [nn.Linear(d, h), getattr(nn, activation)()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, 1)
        self.n_features = d

    def forward(self, x: torch.Tensor, output: str = "target") -> torch.Tensor:
        """``output="target"``: predictions ``(n,)``; ``"features"``: body features ``(n, width)``."""
        f = self.body(x)
        return f if output == "features" else self.head(f).squeeze(-1)


def cosine_cutoff(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Smooth cutoff 0.5 (cos(pi d / r_c) + 1) for d < r_c, else 0."""
    return 0.5 * (torch.cos(math.pi * d / cutoff) + 1.0) * (d < cutoff).to(d.dtype)


class RadialBasis(nn.Module):
    """Gaussian radial basis exp(-gamma (d - mu_k)^2), centres mu_k evenly on [0, cutoff] Å."""

    def __init__(self, n_rbf: int = 16, cutoff: float = DEFAULT_CUTOFF):
        super().__init__()
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n_rbf))
        self.gamma = 0.5 / (cutoff / (n_rbf - 1)) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (d[:, None] - self.centers[None, :]) ** 2)


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


class _GNNBody(nn.Module):
    def __init__(self, width, n_blocks, n_rbf, cutoff):
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("elements", torch.from_numpy(element_table()))
        self.embed = nn.Sequential(nn.Linear(len(ELEMENT_FEATURES), width), nn.SiLU(), nn.Linear(width, width))
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.blocks = nn.ModuleList([CFConv(width, n_rbf, cutoff) for _ in range(n_blocks)])
        self.atom_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU())

    def atom_features(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        pos = batch.pos if pos is None else pos
        if int(batch.z.max()) > MAX_Z:
            raise ValueError(f"InvariantGNN supports elements up to Z={MAX_Z}, got Z={int(batch.z.max())}")
        h = self.embed(self.elements[batch.z])
        vec = pos[batch.edge_j] - pos[batch.edge_i]
        d = torch.sqrt((vec * vec).sum(-1) + 1e-12)
        rbf = self.rbf(d)
        for block in self.blocks:
            h = block(h, rbf, d, batch.edge_i, batch.edge_j)
        return self.atom_mlp(h)

    def forward(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Per-structure features: the mean of atom features (sum / n_atoms)."""
        h = self.atom_features(batch, pos)
        summed = torch.zeros(batch.n_graphs, h.shape[1], dtype=h.dtype).index_add(0, batch.graph, h)
        return summed / batch.n_atoms[:, None].to(h.dtype)


class InvariantGNN(nn.Module):
    """E(3)- and permutation-invariant graph network (SchNet-like).

    ``energy(batch)`` is a sum of per-atom contributions ``head(phi_i)`` (extensive, in target
    units × atoms); ``forward(batch)`` returns ``energy / n_atoms`` (per atom), which equals
    ``head(mean_i phi_i)`` because the head is linear.

    Parameters: ``width`` feature size, ``n_blocks`` interaction blocks, ``n_rbf`` radial basis
    functions, ``cutoff`` in Å (must match the cutoff used to build the batch's edges).
    """

    def __init__(self, width: int = 32, n_blocks: int = 2, n_rbf: int = 16, cutoff: float = DEFAULT_CUTOFF):
        super().__init__()
        self.body = _GNNBody(width, n_blocks, n_rbf, cutoff)
        self.head = nn.Linear(width, 1)
        self.cutoff = cutoff
        self.n_features = width

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
            return torch.zeros(batch.n_graphs, dtype=per_atom.dtype).index_add(0, batch.graph, per_atom)
        f = self.body(batch, pos)
        if output == "features":
            return f
        if output != "target":
            raise ValueError(f"output must be 'target', 'energy' or 'features', not {output!r}")
        return self.head(f).squeeze(-1)

    def energy(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Extensive energy per structure: sum over atoms of the per-atom head output."""
        return self(batch, output="energy", pos=pos)


MODELS = {"MLP": MLP, "InvariantGNN": InvariantGNN}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Register a model class so saved learners can rebuild it by name (usable as a decorator)."""
    MODELS[cls.__name__] = cls
    return cls


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate a model by class name (used when loading saved learners)."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name](**kwargs)


# ====================================================================== E(3)-equivariant network
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


class _EquivariantBody(nn.Module):
    def __init__(self, width, n_blocks, n_rbf, cutoff):
        super().__init__()
        self.cutoff = cutoff
        self.register_buffer("elements", torch.from_numpy(element_table()))
        self.embed = nn.Sequential(nn.Linear(len(ELEMENT_FEATURES), width), nn.SiLU(), nn.Linear(width, width))
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.messages = nn.ModuleList([_PaiNNMessage(width, n_rbf, cutoff) for _ in range(n_blocks)])
        self.updates = nn.ModuleList([_PaiNNUpdate(width) for _ in range(n_blocks)])
        self.atom_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU())

    def atom_features(self, batch: GraphBatch, pos: torch.Tensor | None = None,
                      return_vectors: bool = False):
        pos = batch.pos if pos is None else pos
        if int(batch.z.max()) > MAX_Z:
            raise ValueError(f"EquivariantGNN supports elements up to Z={MAX_Z}, got Z={int(batch.z.max())}")
        elements = self.elements.to(pos.dtype)
        s = self.embed(elements[batch.z])
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        vec = pos[batch.edge_j] - pos[batch.edge_i]
        d = torch.sqrt((vec * vec).sum(-1) + 1e-12)
        unit = vec / d[:, None]
        rbf = self.rbf(d)
        for msg, upd in zip(self.messages, self.updates):
            s, v = msg(s, v, rbf, d, unit, batch.edge_i, batch.edge_j)
            s, v = upd(s, v)
        s = self.atom_mlp(s)
        return (s, v) if return_vectors else s

    def forward(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Per-structure features: the mean of invariant atom features (sum / n_atoms)."""
        h = self.atom_features(batch, pos)
        summed = torch.zeros(batch.n_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, batch.graph, h)
        return summed / batch.n_atoms[:, None].to(h.dtype)


class EquivariantGNN(nn.Module):
    """E(3)-equivariant message-passing network (PaiNN-style scalar + vector features).

    Every atom carries invariant scalars ``s_i`` (``width``) and equivariant vectors ``v_i``
    (``3 × width``); vector messages are built from unit bond vectors, so ``v_i`` rotates and
    reflects with the structure while ``s_i`` does not change. Energies are sums of per-atom
    ``head(s_i)`` and hence invariant to rotations, reflections, translations and permutations;
    forces ``-dE/dpos`` are equivariant (rotate with the structure). Compared with
    :class:`InvariantGNN`, which sees only distances, it can represent angular (bond-direction)
    information within ``n_blocks`` hops. Elements enter through :func:`element_table`
    descriptors, as in :class:`InvariantGNN`, so unseen elements are not blank.

    Same interface as :class:`InvariantGNN`: ``body``/``head``, ``cutoff`` (Å), ``n_features`` and
    ``forward(batch, output="target"|"energy"|"features", pos=None)``. Built out of place (no
    in-place parameter updates), so it runs inside ``higher``'s inner loops, also with forces
    (double backward).

    Parameters: ``width`` channels, ``n_blocks`` message + update blocks, ``n_rbf`` radial basis
    functions, ``cutoff`` in Å (must match the cutoff used to build the batch's edges).
    """

    def __init__(self, width: int = 32, n_blocks: int = 2, n_rbf: int = 16, cutoff: float = DEFAULT_CUTOFF):
        super().__init__()
        self.body = _EquivariantBody(width, n_blocks, n_rbf, cutoff)
        self.head = nn.Linear(width, 1)
        self.cutoff = cutoff
        self.n_features = width

    def forward(self, batch: GraphBatch, output: str = "target", pos: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Predictions per structure (same outputs as :meth:`InvariantGNN.forward`).

        ``output="target"``: per-atom value ``(B,)``; ``"energy"``: extensive sum of per-atom
        contributions ``(B,)``; ``"features"``: mean invariant atom features ``(B, width)``.
        ``pos`` (Å) overrides ``batch.pos`` (e.g. a tensor with ``requires_grad`` for forces).
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

    def vectors(self, batch: GraphBatch, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Equivariant vector features ``(N, 3, width)`` of the last block (rotate with the structure)."""
        return self.body.atom_features(batch, pos, return_vectors=True)[1]


register_model(EquivariantGNN)
