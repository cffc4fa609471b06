"""The differentiable Hückel (tight-binding π) layer.

:func:`huckel_hamiltonian` builds the π Hamiltonian of one molecule from on-site energies and
hopping integrals (eV); :class:`HuckelLayer` diagonalises a padded batch of them with
:func:`eigh_broadened` and reads HOMO, LUMO and gap by electron counting. Everything is built out
of place, so the layer runs inside ``higher.innerloop_ctx``. The π-site conventions and the
reference parameters live in :mod:`nanonb.physics.pisystem`.

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
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


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

    Example
    -------
    >>> import torch
    >>> i, j = torch.arange(6), (torch.arange(6) + 1) % 6  # benzene ring
    >>> h = huckel_hamiltonian(6, i, j, torch.full((6,), -6.0), torch.full((6,), -2.7))
    >>> round(torch.linalg.eigvalsh(h)[0].item(), 4)  # α + 2β (eV)
    -11.4
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
    """Analytic Hückel levels of benzene (eV, ascending): α ± 2β, α ± β (each twice).

    Example
    -------
    >>> huckel_spectrum_analytic_benzene(-6.0, -2.7).round(2).tolist()
    [-11.4, -8.7, -8.7, -3.3, -3.3, -0.6]
    """
    levels = alpha + 2.0 * beta * np.cos(2.0 * np.pi * np.arange(6) / 6.0)
    return np.sort(levels)


def huckel_spectrum_analytic_polyene(n: int, alpha: float, beta: float) -> np.ndarray:
    """Analytic Hückel levels of a linear polyene of ``n`` sites (eV, ascending).

    ``E_k = α + 2β cos(kπ / (n + 1))``, ``k = 1..n``.

    Example
    -------
    >>> huckel_spectrum_analytic_polyene(2, 0.0, -1.0).round(6).tolist()  # ethylene: ±β
    [-1.0, 1.0]
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

    Example
    -------
    >>> import torch
    >>> a = torch.eye(3, dtype=torch.float64, requires_grad=True)  # threefold degenerate
    >>> w, v = eigh_broadened(a)
    >>> bool(torch.isfinite(torch.autograd.grad(v.sum(), a)[0]).all())
    True
    """
    return _BroadenedEigh.apply(a, float(broadening) ** 2)


# ---------------------------------------------------------------------------- batched layer
@dataclass
class HuckelOutput:
    """Result of :class:`HuckelLayer` for ``B`` molecules (energies in eV).

    ``eigenvalues`` is ``(B, n_max)`` ascending, NaN beyond each molecule's ``n_sites`` (``mask``
    marks the real entries). ``homo``, ``lumo``, ``gap`` are ``(B,)``; ``n_electrons`` ``(B,)``.

    Example
    -------
    >>> HuckelLayer()(torch.full((2,), -6.0), torch.tensor([-2.7]), [0], [1], [2], [2]).gap  # ethylene
    tensor([5.4000])
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

    Example
    -------
    >>> import torch
    >>> ring = torch.arange(6), (torch.arange(6) + 1) % 6
    >>> out = HuckelLayer()(torch.full((6,), -6.0), torch.full((6,), -2.7), *ring, n_sites=[6], n_electrons=[6])
    >>> round(out.gap.item(), 4)  # benzene: 2|β| (eV)
    5.4
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


