"""Physics layers and physical constraint checks.

Two parts:

* A differentiable tight-binding (Hückel) layer. :func:`huckel_hamiltonian` builds the π
  Hamiltonian from on-site energies and hopping integrals (eV), :class:`HuckelLayer` diagonalises
  a batch of them with :func:`torch.linalg.eigh` and reads the HOMO–LUMO gap by electron counting,
  and :class:`TBGapNet` is a small message-passing network that predicts the Hückel parameters of
  each π site and bond, so that the gap comes out of a Schrödinger equation instead of a read-out
  MLP. Everything is built out of place, so the layers run inside ``higher.innerloop_ctx``.
* Constraint checks for proposals and data: non-negativity, mass balance (fractions on the
  simplex), Euclidean projection onto the simplex, charge neutrality of formulas (pymatgen oxidation
  state guesses) and a one-table :func:`constraint_report`.

π-electron convention (used by :func:`pi_electrons`, :class:`TBGapNet` and
:mod:`nanonb.data.flakes`): every C/B/N atom bonded to other heavy atoms is one π site
(H atoms are not sites). π electrons per site: **C 1; B 0; N 2 when three-coordinated** (graphitic
N in the lattice, or an N–H), **N 1 when two-coordinated** (pyridinic N whose lone pair lies in the
σ plane). The molecule's π-electron count is the sum minus the total charge.

Degenerate levels. Only eigenvalues are used, never eigenvectors. The eigenvalue gradient is then
``dλ_k/dH = v_k v_kᵀ`` with no ``1/(λ_i − λ_j)`` factor, so it stays finite even for exactly
degenerate levels (benzene's e₁g HOMO pair). It is, however, not unique there: it depends on which
basis of the degenerate subspace LAPACK returns. :class:`HuckelLayer` therefore defines HOMO (LUMO)
as the *mean* of the occupied (empty) levels within ``degeneracy_tol`` eV of the HOMO (LUMO). The
mean of a degenerate group has gradient ``P/m`` (``P`` the projector on the subspace), which is
basis-independent and symmetric; the value changes by at most ``degeneracy_tol``.
Second-order gradients (MAML differentiating through inner-loop updates) differentiate
``v_k v_kᵀ`` again and so need eigenvector derivatives, which contain ``1/(λ_i − λ_j)``. With
``torch.linalg.eigh`` we measured NaN for exactly degenerate levels (the constant padding block:
the meta-gradient of a ``higher`` inner loop was NaN) and basis-dependent values for numerically
degenerate ones (benzene). :func:`eigh_broadened` replaces that factor by the Lorentzian
``d/(d² + ε)`` in its (differentiable) backward: first-order gradients stay exact, second-order
ones are finite, and for the averaged (projector) HOMO/LUMO they match finite differences. The
tests check all of this, plus ``gradcheck`` in double precision for a non-degenerate batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from torch import nn

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


# ---------------------------------------------------------------------------- Hamiltonian
def huckel_hamiltonian(
    n_sites: int,
    edge_i: torch.Tensor,
    edge_j: torch.Tensor,
    onsite: torch.Tensor,
    hopping: torch.Tensor,
) -> torch.Tensor:
    """Symmetric Hückel Hamiltonian ``H`` (n_sites × n_sites, eV), built out of place.

    Parameters
    ----------
    n_sites:
        Number of π sites.
    edge_i, edge_j:
        ``(E,)`` site indices of the bonds, **each bond listed once** (either orientation).
    onsite:
        ``(n_sites,)`` on-site energies ``H_ii`` in eV.
    hopping:
        ``(E,)`` hopping integrals ``H_ij = H_ji`` in eV (negative for bonding overlap).

    Returns
    -------
    torch.Tensor
        ``(n_sites, n_sites)`` with ``H = diag(onsite) + A + Aᵀ``. No in-place operation touches
        ``onsite`` or ``hopping``, so this works inside ``higher`` patched modules.
    """
    edge_i = torch.as_tensor(edge_i, dtype=torch.long)
    edge_j = torch.as_tensor(edge_j, dtype=torch.long)
    if onsite.shape != (n_sites,):
        raise ValueError(f"onsite must have shape ({n_sites},), got {tuple(onsite.shape)}")
    if hopping.shape != edge_i.shape or edge_i.shape != edge_j.shape:
        raise ValueError(f"hopping {tuple(hopping.shape)}, edge_i {tuple(edge_i.shape)} and edge_j "
                         f"{tuple(edge_j.shape)} must have the same shape (one value per bond)")
    if edge_i.numel():
        if bool((edge_i == edge_j).any()):
            raise ValueError("edge list contains self-loops (i == j); put on-site terms in `onsite`.")
        lo, hi = torch.minimum(edge_i, edge_j), torch.maximum(edge_i, edge_j)
        if torch.unique(lo * n_sites + hi).numel() != edge_i.numel():
            raise ValueError("a bond is listed twice (maybe as both (i, j) and (j, i)); list each bond once.")
        if int(hi.max()) >= n_sites or int(lo.min()) < 0:
            raise ValueError(f"edge indices must lie in [0, {n_sites - 1}]")
    dtype = torch.promote_types(onsite.dtype, hopping.dtype)
    a = torch.zeros(n_sites, n_sites, dtype=dtype, device=onsite.device)
    a = a.index_put((edge_i, edge_j), hopping.to(dtype), accumulate=True)
    return torch.diag(onsite.to(dtype)) + a + a.transpose(0, 1)


def huckel_spectrum_analytic_benzene(alpha: float, beta: float) -> np.ndarray:
    """Analytic Hückel levels of benzene (eV, ascending): α ± 2β, α ± β (each twice)."""
    levels = alpha + 2.0 * beta * np.cos(2.0 * np.pi * np.arange(6) / 6.0)
    return np.sort(levels)


def huckel_spectrum_analytic_polyene(n: int, alpha: float, beta: float) -> np.ndarray:
    """Analytic Hückel levels of a linear polyene of ``n`` sites (eV, ascending).

    ``E_k = α + 2β cos(kπ / (n + 1))``, ``k = 1..n``.
    """
    if n < 1:
        raise ValueError(f"a polyene needs n >= 1 sites, got {n}")
    return np.sort(alpha + 2.0 * beta * np.cos(np.arange(1, n + 1) * np.pi / (n + 1)))


# ---------------------------------------------------------------------------- eigensolver
class _BroadenedEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` whose backward is written in differentiable torch ops.

    ``gA = V (diag(gλ) + F ∘ (Vᵀ gV)) Vᵀ`` (symmetrised) with the Lorentzian-broadened
    ``F_ij = d_ij / (d_ij² + ε)``, ``d_ij = λ_j − λ_i``, instead of ``1 / d_ij``. When only
    eigenvalues are used (``gV = 0``) this is exact. Double backward (MAML through an inner loop)
    differentiates ``V`` and hits ``F``: with plain ``1/d`` it is NaN for exactly degenerate levels
    (the padding block) and ill-conditioned for nearly degenerate ones; the broadening keeps it
    finite, and within a degenerate group (d = 0) it contributes zero, which is the exact answer
    for quantities invariant to rotations inside the group (such as the group's mean level).
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, eps: float):  # noqa: D102
        w, v = torch.linalg.eigh(a)
        ctx.save_for_backward(w, v)
        ctx.eps = eps
        return w, v

    @staticmethod
    def backward(ctx, gw: torch.Tensor | None, gv: torch.Tensor | None):  # noqa: D102
        w, v = ctx.saved_tensors
        vt = v.transpose(-2, -1)
        inner = torch.zeros_like(v)
        if gw is not None:
            inner = inner + torch.diag_embed(gw)
        if gv is not None:
            d = w[..., None, :] - w[..., :, None]
            inner = inner + d / (d * d + ctx.eps) * (vt @ gv)
        ga = v @ inner @ vt
        return 0.5 * (ga + ga.transpose(-2, -1)), None


def eigh_broadened(a: torch.Tensor, broadening: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric eigendecomposition with finite gradients at degeneracies (see :class:`_BroadenedEigh`).

    ``broadening`` (eV) sets ``ε = broadening²``; eigenvalue gradients are exact regardless.
    """
    return _BroadenedEigh.apply(a, float(broadening) ** 2)


# ---------------------------------------------------------------------------- batched layer
@dataclass
class HuckelOutput:
    """Result of :class:`HuckelLayer` for ``B`` molecules (energies in eV).

    ``eigenvalues`` is ``(B, n_max)`` ascending, NaN beyond each molecule's ``n_sites`` (``mask``
    marks the real entries). ``homo``, ``lumo``, ``gap`` are ``(B,)``; ``n_electrons`` ``(B,)``.
    """

    eigenvalues: torch.Tensor
    mask: torch.Tensor
    homo: torch.Tensor
    lumo: torch.Tensor
    gap: torch.Tensor
    n_electrons: torch.Tensor


class HuckelLayer(nn.Module):
    """Solve the Hückel problem of a batch of molecules and read HOMO, LUMO and gap.

    Molecules of different sizes are placed in a zero-padded ``(B, n_max, n_max)`` tensor; padding
    sites get a diagonal value above the Gershgorin bound of every real block (detached), so their
    eigenvalues sort after the real ones and never mix with them. Electron counting: with ``n``
    π electrons (closed shell, or one singly occupied level for odd ``n``), HOMO is level
    ``ceil(n/2) - 1`` and LUMO the next one. See the module docstring for degenerate levels.

    Parameters
    ----------
    degeneracy_tol:
        Levels within this many eV of the HOMO (LUMO), on the occupied (empty) side, are averaged.
        0 disables averaging (gradients at exact degeneracy then depend on LAPACK's basis).
    eigh_dtype:
        Precision of the eigensolver (float64 by default; results are cast back).
    broadening:
        Lorentzian broadening (eV) of the eigenvector derivative, used only by second-order
        gradients (see :func:`eigh_broadened`); first-order gradients are exact.
    """

    def __init__(self, degeneracy_tol: float = 1e-4, eigh_dtype: torch.dtype | None = torch.float64,
                 broadening: float = 1e-4):
        super().__init__()
        self.degeneracy_tol = float(degeneracy_tol)
        self.broadening = float(broadening)
        self.eigh_dtype = eigh_dtype

    def forward(
        self,
        onsite: torch.Tensor,
        hopping: torch.Tensor,
        edge_i: torch.Tensor,
        edge_j: torch.Tensor,
        n_sites: torch.Tensor | Sequence[int],
        n_electrons: torch.Tensor | Sequence[int],
    ) -> HuckelOutput:
        """Eigenvalues, HOMO, LUMO and gap (eV).

        Parameters
        ----------
        onsite:
            ``(S,)`` on-site energies of all sites, molecules concatenated in order.
        hopping:
            ``(E,)`` hopping integrals, one per bond (each bond once).
        edge_i, edge_j:
            ``(E,)`` *global* site indices (into the concatenated sites); both ends of a bond must
            belong to the same molecule.
        n_sites:
            ``(B,)`` sites per molecule (sum ``S``).
        n_electrons:
            ``(B,)`` π electrons per molecule (e.g. from :func:`pi_electrons`).
        """
        device = onsite.device
        n_sites = torch.as_tensor(n_sites, dtype=torch.long, device=device)
        n_el = torch.as_tensor(n_electrons, dtype=torch.long, device=device)
        edge_i = torch.as_tensor(edge_i, dtype=torch.long, device=device)
        edge_j = torch.as_tensor(edge_j, dtype=torch.long, device=device)
        b, s = int(n_sites.numel()), int(n_sites.sum())
        if onsite.shape != (s,):
            raise ValueError(f"onsite has shape {tuple(onsite.shape)} but n_sites sums to {s}")
        if hopping.shape != edge_i.shape:
            raise ValueError(f"hopping {tuple(hopping.shape)} must match edge_i {tuple(edge_i.shape)}")
        if n_el.shape != (b,):
            raise ValueError(f"n_electrons must have shape ({b},), got {tuple(n_el.shape)}")
        if bool((n_sites < 1).any()):
            raise ValueError("every molecule needs at least one π site")
        homo_idx = (n_el + 1) // 2 - 1
        if bool((homo_idx < 0).any()) or bool((homo_idx + 1 >= n_sites).any()):
            bad = torch.nonzero((homo_idx < 0) | (homo_idx + 1 >= n_sites)).flatten()[:5].tolist()
            raise ValueError(f"molecules {bad}: no HOMO or no LUMO (π electrons must be in [1, 2·n_sites - 1] "
                             f"and leave an empty level); check the electron count and charge.")

        dtype = self.eigh_dtype or onsite.dtype
        graph = torch.repeat_interleave(torch.arange(b, device=device), n_sites)
        offset = torch.cumsum(n_sites, 0) - n_sites
        local = torch.arange(s, device=device) - offset[graph]
        if edge_i.numel() and bool((graph[edge_i] != graph[edge_j]).any()):
            raise ValueError("a bond joins two different molecules; check edge indices and n_sites")
        n_max = int(n_sites.max())

        on = onsite.to(dtype)
        hop = hopping.to(dtype)
        # Gershgorin upper bound of every block (detached): padding levels go above it
        with torch.no_grad():
            radius = torch.zeros(s, dtype=dtype, device=device)
            radius = radius.index_add(0, edge_i, hop.abs()).index_add(0, edge_j, hop.abs())
            pad = float((on + radius).max()) + 1.0
        ge = graph[edge_i]
        h = torch.zeros(b, n_max, n_max, dtype=dtype, device=device)
        h = h.index_put((ge, local[edge_i], local[edge_j]), hop, accumulate=True)
        h = h + h.transpose(1, 2)
        diag = torch.full((b, n_max), pad, dtype=dtype, device=device)
        diag = diag.index_put((graph, local), on)
        h = h + torch.diag_embed(diag)

        evals, _ = eigh_broadened(h, self.broadening)  # (B, n_max) ascending; padding at the top
        cols = torch.arange(n_max, device=device)[None, :]
        mask = cols < n_sites[:, None]
        rows = torch.arange(b, device=device)
        e_h = evals[rows, homo_idx]
        e_l = evals[rows, homo_idx + 1]
        if self.degeneracy_tol > 0:
            ref_h, ref_l = e_h.detach()[:, None], e_l.detach()[:, None]
            w_h = (mask & (cols <= homo_idx[:, None]) & ((evals.detach() - ref_h).abs() <= self.degeneracy_tol))
            w_l = (mask & (cols > homo_idx[:, None]) & ((evals.detach() - ref_l).abs() <= self.degeneracy_tol))
            w_h, w_l = w_h.to(dtype), w_l.to(dtype)
            e_h = (evals * w_h).sum(1) / w_h.sum(1)
            e_l = (evals * w_l).sum(1) / w_l.sum(1)
        out_dtype = onsite.dtype
        nan = torch.full_like(evals, float("nan"))
        return HuckelOutput(
            eigenvalues=torch.where(mask, evals, nan).to(out_dtype),
            mask=mask,
            homo=e_h.to(out_dtype),
            lumo=e_l.to(out_dtype),
            gap=(e_l - e_h).to(out_dtype),
            n_electrons=n_el,
        )


# ---------------------------------------------------------------------------- π system from a graph
@dataclass
class PiSystem:
    """The π sites and bonds of a batch of molecules (see :func:`build_pi_system`).

    ``atom_index`` (S,) maps sites to batch atoms; ``site_type`` (S,) indexes
    :data:`SITE_TYPES`; ``n_h``/``n_heavy`` (S,) count H and heavy neighbours; ``electrons`` (S,)
    π electrons per site; ``edge_i``/``edge_j`` (P,) site indices of each bond (once, i < j);
    ``bond_length`` (P,) in Å (differentiable w.r.t. positions); ``graph`` (S,) molecule index;
    ``n_sites`` and ``n_electrons`` (B,).
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
    """
    dev, dt = pi.bond_length.device, pi.bond_length.dtype
    h = _site_table(3).to(dev, dt)[pi.site_type]
    k = _site_table(4).to(dev, dt)
    onsite = alpha_c + h * beta_cc
    hop = (k[pi.site_type[pi.edge_i]] * k[pi.site_type[pi.edge_j]] * beta_cc
           * torch.exp(-decay * (pi.bond_length / CC_BOND - 1.0)))
    return onsite, hop


# ---------------------------------------------------------------------------- TB-embedded network
@dataclass
class TBFeatures:
    """What :class:`TBBody` hands to :class:`TBHead`: the π system, site features ``h`` (S, F),
    bond features ``e`` (P, R) and the reference Hückel parameters (eV)."""

    pi: PiSystem
    h: torch.Tensor
    e: torch.Tensor
    onsite0: torch.Tensor
    hop0: torch.Tensor


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


class TBBody(nn.Module):
    """Invariant message passing over the π-site graph.

    Site input: one-hot site type (C, B, pyridinic N, graphitic N), number of H and heavy
    neighbours. Bond input: Gaussian expansion of the bond length (Å). Messages
    ``m_ij = MLP([h_i, h_j, rbf(d_ij)])`` are summed over both directions of each bond (divided by
    3, the maximum coordination), with residual updates. Only distances enter, so the features
    are invariant to rotation, translation and atom permutation.
    """

    def __init__(self, hidden: int = 32, n_layers: int = 2, n_rbf: int = 8,
                 alpha_c: float = ALPHA_C, beta_cc: float = BETA_CC, charge: int = 0):
        super().__init__()
        self.alpha_c, self.beta_cc, self.charge = float(alpha_c), float(beta_cc), int(charge)
        self.register_buffer("rbf_centres", torch.linspace(1.2, 1.7, n_rbf))
        self.rbf_width = 0.5 / max(n_rbf - 1, 1)
        self.embed = nn.Linear(len(SITE_TYPES) + 2, hidden)
        self.messages = nn.ModuleList([_mlp(2 * hidden + n_rbf, hidden, hidden) for _ in range(n_layers)])
        self.updates = nn.ModuleList([_mlp(2 * hidden, hidden, hidden) for _ in range(n_layers)])

    def forward(self, batch) -> TBFeatures:
        pi = build_pi_system(batch, charge=self.charge)
        dtype = batch.pos.dtype
        x = torch.cat([
            nn.functional.one_hot(pi.site_type, len(SITE_TYPES)).to(dtype),
            pi.n_h.to(dtype)[:, None],
            pi.n_heavy.to(dtype)[:, None] / 3.0,
        ], dim=1)
        e = torch.exp(-((pi.bond_length[:, None] - self.rbf_centres.to(dtype)) / self.rbf_width) ** 2)
        h = nn.functional.silu(self.embed(x))
        src = torch.cat([pi.edge_i, pi.edge_j])
        dst = torch.cat([pi.edge_j, pi.edge_i])
        e2 = torch.cat([e, e])
        for msg, upd in zip(self.messages, self.updates):
            m = msg(torch.cat([h[dst], h[src], e2], dim=1))
            agg = torch.zeros_like(h).index_add(0, dst, m) / 3.0
            h = h + upd(torch.cat([h, agg], dim=1))
        onsite0, hop0 = reference_parameters(pi, self.alpha_c, self.beta_cc)
        return TBFeatures(pi=pi, h=h, e=e, onsite0=onsite0, hop0=hop0)


class TBHead(nn.Module):
    """Hückel parameters → eigenvalue problem → calibrated gap (eV).

    ``onsite = onsite0 + max_onsite_shift · tanh(w_a · h_i)``;
    ``hop = hop0 + max_hop_shift · tanh(w_b · [h_i + h_j, h_i ⊙ h_j, rbf])`` (symmetric in i, j);
    ``gap = scale · gap_Hückel + shift``. The correction layers start at zero, so an untrained
    head is plain Hückel theory with the standard parameters (scale 1, shift 0 unless given).
    """

    def __init__(self, hidden: int = 32, n_rbf: int = 8, max_onsite_shift: float = 2.0,
                 max_hop_shift: float = 1.0, calib_scale: float = 1.0, calib_shift: float = 0.0,
                 degeneracy_tol: float = 1e-4):
        super().__init__()
        self.onsite_out = nn.Linear(hidden, 1)
        self.hop_out = nn.Linear(2 * hidden + n_rbf, 1)
        for lin in (self.onsite_out, self.hop_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.max_onsite_shift, self.max_hop_shift = float(max_onsite_shift), float(max_hop_shift)
        self.scale = nn.Parameter(torch.tensor(float(calib_scale)))
        self.shift = nn.Parameter(torch.tensor(float(calib_shift)))
        self.huckel = HuckelLayer(degeneracy_tol=degeneracy_tol)

    def parameters_tb(self, f: TBFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted on-site energies (S,) and hoppings (P,) in eV."""
        hi, hj = f.h[f.pi.edge_i], f.h[f.pi.edge_j]
        onsite = f.onsite0 + self.max_onsite_shift * torch.tanh(self.onsite_out(f.h).squeeze(-1))
        pair = torch.cat([hi + hj, hi * hj, f.e], dim=1)
        hop = f.hop0 + self.max_hop_shift * torch.tanh(self.hop_out(pair).squeeze(-1))
        return onsite, hop

    def spectrum(self, f: TBFeatures) -> HuckelOutput:
        onsite, hop = self.parameters_tb(f)
        return self.huckel(onsite, hop, f.pi.edge_i, f.pi.edge_j, f.pi.n_sites, f.pi.n_electrons)

    def forward(self, f: TBFeatures) -> torch.Tensor:
        return self.scale * self.spectrum(f).gap + self.shift


class TBGapNet(nn.Module):
    """Tight-binding-embedded graph model: HOMO–LUMO gap (eV) of B/C/N/H π systems.

    ``body`` (:class:`TBBody`) computes invariant site features on the π graph; ``head``
    (:class:`TBHead`) predicts Hückel on-site energies (around ``alpha_c``, eV) and hoppings
    (around ``beta_cc`` · heteroatom factors · bond-length decay, eV), diagonalises the Hamiltonian
    and applies the trainable affine calibration ``scale · gap + shift`` (xTB or DFT gaps are not
    Hückel gaps). No BatchNorm and no in-place parameter updates: safe in ``higher.innerloop_ctx``.

    ``forward(batch) -> (B,)`` gaps in eV, with ``batch`` a :class:`nanonb.graphs.GraphBatch`
    collated with a neighbour cutoff of at least 1.7 Å.
    """

    def __init__(self, hidden: int = 32, n_layers: int = 2, n_rbf: int = 8,
                 alpha_c: float = ALPHA_C, beta_cc: float = BETA_CC,
                 calib_scale: float = 1.0, calib_shift: float = 0.0, charge: int = 0,
                 max_onsite_shift: float = 2.0, max_hop_shift: float = 1.0, degeneracy_tol: float = 1e-4):
        super().__init__()
        self.body = TBBody(hidden, n_layers, n_rbf, alpha_c, beta_cc, charge)
        self.head = TBHead(hidden, n_rbf, max_onsite_shift, max_hop_shift, calib_scale, calib_shift,
                           degeneracy_tol)

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.body(batch))

    def spectrum(self, batch) -> HuckelOutput:
        """Uncalibrated Hückel spectrum (eV) of the predicted Hamiltonians."""
        return self.head.spectrum(self.body(batch))

    @staticmethod
    def huckel_only(batch, charge: int = 0, alpha_c: float = ALPHA_C, beta_cc: float = BETA_CC) -> torch.Tensor:
        """Plain Hückel gap (eV) with the reference parameters, no network (a physics baseline)."""
        pi = build_pi_system(batch, charge=charge)
        onsite, hop = reference_parameters(pi, alpha_c, beta_cc)
        return HuckelLayer()(onsite, hop, pi.edge_i, pi.edge_j, pi.n_sites, pi.n_electrons).gap

    @torch.no_grad()
    def calibrate_(self, batch, targets: torch.Tensor | np.ndarray) -> tuple[float, float]:
        """Least-squares fit of the calibration (scale, shift) to ``targets`` (eV), in place.

        Use before training (outside any ``higher`` context) so the head starts from a sensible
        linear map between Hückel and reference gaps. Returns ``(scale, shift)``.
        """
        g = self.spectrum(batch).gap.double()
        y = torch.as_tensor(np.asarray(targets, dtype=np.float64)).to(g.device)
        if g.numel() < 2 or float(g.std()) < 1e-12:
            raise ValueError("calibration needs at least two molecules with different Hückel gaps")
        a = torch.stack([g, torch.ones_like(g)], dim=1)
        sol = torch.linalg.lstsq(a, y[:, None]).solution.flatten()
        self.head.scale.copy_(sol[0])
        self.head.shift.copy_(sol[1])
        return float(sol[0]), float(sol[1])


# ---------------------------------------------------------------------------- constraints
@dataclass
class CheckResult:
    """Outcome of one constraint check: which items violate it and why."""

    check: str
    n_items: int
    violations: list[int | tuple] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def n_violations(self) -> int:
        return len(self.violations)

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        if self.ok:
            return f"{self.check}: all {self.n_items} items pass"
        ex = "; ".join(f"[{i}] {r}" for i, r in zip(self.violations[:3], self.reasons[:3]))
        return f"{self.check}: {self.n_violations} of {self.n_items} items violate ({ex})"


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def check_nonnegative(values, name: str = "values") -> CheckResult:
    """Flag negative or non-finite entries (concentrations, conductivities, gaps, ...).

    Indices are ints for 1-D input and tuples for higher dimensions.
    """
    v = _to_numpy(values)
    res = CheckResult(f"nonnegative: {name}", int(v.size))
    for idx in np.argwhere(~(v >= 0)):  # NaN fails v >= 0 too
        key = tuple(int(i) for i in idx)
        val = v[key]
        res.violations.append(key[0] if v.ndim == 1 else key)
        res.reasons.append(f"{name} = {val:.6g} is not finite" if not np.isfinite(val)
                           else f"{name} = {val:.6g} < 0")
    return res


def check_mass_balance(fractions, tol: float = 1e-6, name: str = "fractions") -> CheckResult:
    """Each row of ``fractions`` (n, k) must lie in [0, 1] and sum to 1 (within ``tol``)."""
    f = _to_numpy(fractions)
    if f.ndim == 1:
        f = f[None, :]
    if f.ndim != 2:
        raise ValueError(f"fractions must be 1-D or 2-D (rows = compositions), got shape {f.shape}")
    res = CheckResult(f"mass balance: {name}", int(f.shape[0]))
    for r, row in enumerate(f):
        why = []
        if not np.all(np.isfinite(row)):
            why.append("non-finite entries")
        else:
            lo, hi = np.flatnonzero(row < -tol), np.flatnonzero(row > 1 + tol)
            why += [f"component {c} = {row[c]:.6g} < 0" for c in lo[:2]]
            why += [f"component {c} = {row[c]:.6g} > 1" for c in hi[:2]]
            if abs(row.sum() - 1.0) > tol:
                why.append(f"sums to {row.sum():.6g}, not 1")
        if why:
            res.violations.append(r)
            res.reasons.append("; ".join(why))
    return res


def project_simplex(fractions):
    """Euclidean projection of each row onto the probability simplex {x >= 0, Σx = 1}.

    Sort-based algorithm (Held et al. 1974; Duchi et al. 2008), O(k log k) per row. Accepts numpy
    arrays (returns float64) or torch tensors (differentiable almost everywhere, same dtype).
    """
    is_torch = isinstance(fractions, torch.Tensor)
    x = fractions if is_torch else torch.as_tensor(np.asarray(fractions, dtype=np.float64))
    squeeze = x.ndim == 1
    if squeeze:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"project_simplex expects (k,) or (n, k) with k >= 1, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("project_simplex got NaN/inf entries; clean them first.")
    u = torch.sort(x, dim=1, descending=True).values
    css = torch.cumsum(u, dim=1) - 1.0
    k = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device)
    cond = u - css / k > 0
    rho = cond.to(torch.long).cumsum(1).argmax(1, keepdim=True)  # last index where cond holds
    theta = css.gather(1, rho) / (rho + 1).to(x.dtype)
    out = torch.clamp(x - theta, min=0.0)
    if squeeze:
        out = out[0]
    return out if is_torch else out.numpy()


@lru_cache(maxsize=4096)
def _oxi_guess(formula: str) -> str:
    """'' if a charge-neutral oxidation-state assignment exists, else the reason."""
    from pymatgen.core import Composition, Element

    try:
        comp = Composition(formula)
    except Exception as err:  # pymatgen raises several error types for bad formulas
        return f"cannot parse formula: {err}"
    bad = [str(e) for e in comp.elements if not Element.is_valid_symbol(str(e))]
    if bad:
        return f"unknown element(s) {bad}"
    if len(comp) == 0:
        return "empty formula"
    guesses = comp.oxi_state_guesses()
    return "" if guesses else "no charge-neutral combination of common oxidation states"


def check_charge_neutrality(formulas: Sequence[str], name: str = "formulas") -> CheckResult:
    """Flag formulas without a charge-neutral oxidation-state assignment (pymatgen guesses).

    A formula passes when ``Composition(f).oxi_state_guesses()`` finds at least one assignment of
    common oxidation states summing to zero ("NaCl" passes, "NaCl2" fails). Meant for ionic
    compounds: intermetallics such as "CuPt" have no ionic assignment and are flagged.
    """
    if isinstance(formulas, str):
        formulas = [formulas]
    formulas = list(formulas)
    res = CheckResult(f"charge neutrality: {name}", len(formulas))
    for i, f in enumerate(formulas):
        why = _oxi_guess(str(f))
        if why:
            res.violations.append(i)
            res.reasons.append(f"{f}: {why}")
    return res


def constraint_report(**named) -> pd.DataFrame:
    """Run checks and collect them in one table (one row per check).

    Each keyword is a label and either a :class:`CheckResult` (used as is) or data whose check is
    inferred: a list of strings → :func:`check_charge_neutrality`; a 2-D numeric array →
    :func:`check_mass_balance`; a 1-D numeric array → :func:`check_nonnegative`.

    Returns
    -------
    pandas.DataFrame
        Columns ``check, n_items, n_violations, status, examples``; ``df.attrs["summary"]`` is a
        one-line readable summary (also the frame's ``str`` footer when printed via
        ``print(df.attrs["summary"])``).

    Examples
    --------
    >>> constraint_report(conductivity=[1.0, -2.0], formulas=["NaCl", "NaCl2"]).attrs["summary"]
    '0 of 2 checks pass; failing: nonnegative: conductivity, charge neutrality: formulas'
    """
    if not named:
        raise ValueError("constraint_report needs at least one named input, e.g. fractions=X")
    results: list[CheckResult] = []
    for label, value in named.items():
        if isinstance(value, CheckResult):
            results.append(value)
        elif isinstance(value, str) or (isinstance(value, (list, tuple, np.ndarray, pd.Series))
                                        and len(value) and all(isinstance(v, str) for v in value)):
            results.append(check_charge_neutrality(value, name=label))
        else:
            arr = _to_numpy(value)
            if arr.ndim == 2:
                results.append(check_mass_balance(arr, name=label))
            else:
                results.append(check_nonnegative(arr, name=label))
    rows = [{
        "check": r.check, "n_items": r.n_items, "n_violations": r.n_violations,
        "status": "pass" if r.ok else "FAIL",
        "examples": "; ".join(f"[{i}] {why}" for i, why in zip(r.violations[:3], r.reasons[:3])),
    } for r in results]
    df = pd.DataFrame(rows, columns=["check", "n_items", "n_violations", "status", "examples"])
    n_pass = int((df["status"] == "pass").sum())
    failing = [r.check for r in results if not r.ok]
    df.attrs["summary"] = (f"{n_pass} of {len(df)} checks pass"
                           + (f"; failing: {', '.join(failing)}" if failing else ""))
    return df


__all__ = [
    "ALPHA_C", "BETA_CC", "SITE_TYPES", "CheckResult", "HuckelLayer", "HuckelOutput", "PiSystem",
    "TBBody", "TBFeatures", "TBGapNet", "TBHead", "build_pi_system", "check_charge_neutrality", "eigh_broadened",
    "check_mass_balance", "check_nonnegative", "constraint_report", "huckel_hamiltonian",
    "huckel_spectrum_analytic_benzene", "huckel_spectrum_analytic_polyene", "pi_electrons",
    "project_simplex", "reference_parameters",
]
