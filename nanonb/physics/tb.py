"""TBGapNet: a graph network with a Hückel layer inside (HOMO–LUMO gaps of B/C/N/H π systems, eV).

:class:`TBBody` is a small message-passing network over the π-site graph; :class:`TBHead`
predicts Hückel on-site energies and hoppings around the reference parameters
(:func:`nanonb.physics.pisystem.reference_parameters`), solves the eigenvalue problem with
:class:`nanonb.physics.huckel.HuckelLayer` and applies an affine calibration, so the gap comes out
of a Schrödinger equation instead of a read-out MLP. :class:`TBGapNet` (``head(body(x))``, so ANIL
adapts only the Hückel corrections and the calibration) registers itself with
:func:`nanonb.models.registry.register_model`; :func:`tb_model_kwargs` builds its keyword arguments from a
meta-train set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nanonb.models.registry import register_model
from nanonb.physics.calibration import fit_calibration
from nanonb.physics.huckel import HuckelLayer, HuckelOutput
from nanonb.physics.pisystem import (
    ALPHA_C,
    BETA_CC,
    BOND_CUTOFF,
    SITE_TYPES,
    PiSystem,
    build_pi_system,
    huckel_gaps,
    reference_parameters,
)
from nanonb.scaling import standardization


@dataclass
class TBFeatures:
    """What :class:`TBBody` hands to :class:`TBHead`: the π system, site features ``h`` (S, F),
    bond features ``e`` (P, R) and the reference Hückel parameters (eV).

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> f = TBGapNet(hidden=8)(collate([benzene], cutoff=2.0), output="features")
    >>> tuple(f.h.shape), tuple(f.onsite0.shape)
    ((6, 8), (6,))
    """

    pi: PiSystem
    h: torch.Tensor
    e: torch.Tensor
    onsite0: torch.Tensor
    hop0: torch.Tensor

    def detach(self) -> TBFeatures:
        """A copy with the network outputs detached (ANIL's frozen body features)."""
        return TBFeatures(pi=self.pi, h=self.h.detach(), e=self.e.detach(), onsite0=self.onsite0.detach(),
                          hop0=self.hop0.detach())


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.SiLU(), nn.Linear(n_hidden, n_out))


class TBBody(nn.Module):
    """Invariant message passing over the π-site graph.

    Site input: one-hot site type (C, B, pyridinic N, graphitic N), number of H and heavy
    neighbours. Bond input: Gaussian expansion of the bond length (Å). Messages
    ``m_ij = MLP([h_i, h_j, rbf(d_ij)])`` are summed over both directions of each bond (divided by
    3, the maximum coordination), with residual updates. Only distances enter, so the features
    are invariant to rotation, translation and atom permutation.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> TBBody(hidden=8)(collate([benzene], cutoff=2.0)).h.shape
    torch.Size([6, 8])
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
    """Hückel parameters → eigenvalue problem → calibrated gap (eV) → model target.

    ``onsite = onsite0 + max_onsite_shift · tanh(w_a · h_i)``;
    ``hop = hop0 + max_hop_shift · tanh(w_b · [h_i + h_j, h_i ⊙ h_j, rbf])`` (symmetric in i, j);
    ``gap = scale · gap_Hückel + shift`` (eV). The correction layers start at zero, so an untrained
    head is plain Hückel theory with the standard parameters (scale 1, shift 0 unless given).

    ``nonnegative=True`` stores the calibration as ``scale = softplus(scale_raw)`` and
    ``shift = softplus(shift_raw)``: since the Hückel gap (LUMO − HOMO of sorted levels) is >= 0,
    the predicted gap is then >= 0 by construction, whatever the weights (also after any
    inner-loop update). ``calib_scale``/``calib_shift`` are always the effective values in eV
    (clipped to >= 1e-6 in that mode). The head returns ``(gap − target_mean) / target_std``, so a
    meta-learner that standardizes targets with these statistics sees its usual units;
    :meth:`gap` returns eV.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> f = TBBody(hidden=8)(collate([benzene], cutoff=2.0))
    >>> round(TBHead(hidden=8).gap(f).item(), 3)  # untrained head: plain Hückel, 2|beta| (eV)
    5.4
    """

    def __init__(self, hidden: int = 32, n_rbf: int = 8, max_onsite_shift: float = 2.0,
                 max_hop_shift: float = 1.0, calib_scale: float = 1.0, calib_shift: float = 0.0,
                 degeneracy_tol: float = 1e-4, nonnegative: bool = False, target_mean: float = 0.0,
                 target_std: float = 1.0):
        super().__init__()
        if target_std <= 0:
            raise ValueError(f"target_std must be > 0 (eV), got {target_std}")
        self.onsite_out = nn.Linear(hidden, 1)
        self.hop_out = nn.Linear(2 * hidden + n_rbf, 1)
        for lin in (self.onsite_out, self.hop_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.max_onsite_shift, self.max_hop_shift = float(max_onsite_shift), float(max_hop_shift)
        self.nonnegative = bool(nonnegative)
        self.target_mean, self.target_std = float(target_mean), float(target_std)
        self.scale = nn.Parameter(torch.tensor(self._raw(float(calib_scale))))
        self.shift = nn.Parameter(torch.tensor(self._raw(float(calib_shift))))
        self.huckel = HuckelLayer(degeneracy_tol=degeneracy_tol)

    def _raw(self, value: float) -> float:
        """Stored parameter for an effective calibration value (inverse softplus if nonnegative)."""
        if not self.nonnegative:
            return value
        value = max(value, 1e-6)
        return float(value + np.log(-np.expm1(-value)))  # log(exp(v) - 1), stable for large v

    def calibration(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective ``(scale, shift)`` of ``gap = scale · gap_Hückel + shift`` (shift in eV)."""
        if self.nonnegative:
            return nn.functional.softplus(self.scale), nn.functional.softplus(self.shift)
        return self.scale, self.shift

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

    def gap(self, f: TBFeatures) -> torch.Tensor:
        """Calibrated gap (eV), ``(B,)``."""
        scale, shift = self.calibration()
        return scale * self.spectrum(f).gap + shift

    def forward(self, f: TBFeatures) -> torch.Tensor:
        return (self.gap(f) - self.target_mean) / self.target_std


@register_model
class TBGapNet(nn.Module):
    """Tight-binding-embedded graph model: HOMO–LUMO gap (eV) of B/C/N/H π systems.

    ``body`` (:class:`TBBody`) computes invariant site features on the π graph; ``head``
    (:class:`TBHead`) predicts Hückel on-site energies (around ``alpha_c``, eV) and hoppings
    (around ``beta_cc`` · heteroatom factors · bond-length decay, eV), diagonalises the Hamiltonian
    and applies the trainable affine calibration ``scale · gap + shift`` (xTB or DFT gaps are not
    Hückel gaps). No BatchNorm and no in-place parameter updates: safe in ``higher.innerloop_ctx``.

    ``forward(batch)`` returns ``(gap − target_mean) / target_std`` (``(B,)``; the gap in eV with
    the defaults 0 and 1), with ``batch`` a :class:`nanonb.graphs.GraphBatch` collated with a
    neighbour cutoff (``cutoff``, Å) of at least 1.7 Å. ``forward(batch, output="features")``
    returns the body's :class:`TBFeatures` (what ANIL freezes), ``output="gap"`` the gap in eV.
    ``nonnegative=True`` makes every predicted gap >= 0 by construction (see :class:`TBHead`).
    Registered with :func:`nanonb.models.registry.register_model`, so
    ``make_learner(name, model="TBGapNet", model_kwargs=tb_model_kwargs(train))`` works (ANIL adapts the
    head: Hückel corrections and calibration).

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> from nanonb.graphs import collate
    >>> benzene = generate_flake("hexagonal-zigzag", 1.5).structure
    >>> model = TBGapNet(hidden=8, n_layers=1)
    >>> round(model(collate([benzene], cutoff=model.cutoff), output="gap").item(), 3)  # untrained: Hückel gap (eV)
    5.4
    >>> kw = tb_model_kwargs(meta_train)                                          # doctest: +SKIP
    >>> learner = make_learner("anil", model="TBGapNet", model_kwargs=kw)         # doctest: +SKIP
    """

    input_kind = "structures"

    def __init__(self, hidden: int = 32, n_layers: int = 2, n_rbf: int = 8,
                 alpha_c: float = ALPHA_C, beta_cc: float = BETA_CC,
                 calib_scale: float = 1.0, calib_shift: float = 0.0, charge: int = 0,
                 max_onsite_shift: float = 2.0, max_hop_shift: float = 1.0, degeneracy_tol: float = 1e-4,
                 nonnegative: bool = False, target_mean: float = 0.0, target_std: float = 1.0,
                 cutoff: float = 2.0):
        super().__init__()
        if cutoff < BOND_CUTOFF:
            raise ValueError(f"cutoff must be >= {BOND_CUTOFF} Å so that every π bond is an edge, got {cutoff}")
        self.body = TBBody(hidden, n_layers, n_rbf, alpha_c, beta_cc, charge)
        self.head = TBHead(hidden, n_rbf, max_onsite_shift, max_hop_shift, calib_scale, calib_shift,
                           degeneracy_tol, nonnegative, target_mean, target_std)
        self.cutoff = float(cutoff)
        self.n_features = hidden

    def forward(self, batch, output: str = "target"):
        if output == "features":
            return self.body(batch)
        if output == "gap":
            return self.head.gap(self.body(batch))
        if output != "target":
            raise ValueError(f"TBGapNet output must be 'target', 'gap' or 'features', not {output!r}")
        return self.head(self.body(batch))

    def spectrum(self, batch) -> HuckelOutput:
        """Uncalibrated Hückel spectrum (eV) of the predicted Hamiltonians."""
        return self.head.spectrum(self.body(batch))

    @torch.no_grad()
    def calibrate_(self, batch, targets: torch.Tensor | np.ndarray) -> tuple[float, float]:
        """Least-squares fit of the calibration (scale, shift) to ``targets`` (eV), in place.

        Use before training (outside any ``higher`` context) so the head starts from a sensible
        linear map between Hückel and reference gaps. With ``nonnegative=True`` the fit is
        non-negative least squares (scale, shift >= 0). Returns the effective ``(scale, shift)``.
        """
        g = self.spectrum(batch).gap.double().cpu().numpy()
        scale, shift = fit_calibration(g, np.asarray(targets, dtype=np.float64), self.head.nonnegative)
        self.head.scale.copy_(torch.tensor(self.head._raw(scale)))
        self.head.shift.copy_(torch.tensor(self.head._raw(shift)))
        s, b = self.head.calibration()
        return float(s), float(b)



def tb_model_kwargs(train, hidden: int = 32, n_layers: int = 2, nonnegative: bool = True, **kw) -> dict:
    """``model_kwargs`` for ``make_learner(name, model="TBGapNet")`` / ``Pooled(model="TBGapNet")`` on ``train``.

    Sets ``target_mean``/``target_std`` to the meta-learner's target standardization
    (:func:`nanonb.scaling.standardization` of ``train``, eV) and the initial calibration to the
    (non-negative, with ``nonnegative=True``) least-squares fit of the meta-train gaps on the plain
    Hückel gaps, so an untrained model is calibrated Hückel theory. JSON-serializable.

    Example
    -------
    >>> kw = tb_model_kwargs(meta_train, hidden=16)      # doctest: +SKIP
    >>> sorted(kw)                                       # doctest: +SKIP
    ['calib_scale', 'calib_shift', 'hidden', 'n_layers', 'nonnegative', 'target_mean', 'target_std']
    """
    stats = standardization(train)
    g = np.concatenate([huckel_gaps(t) for t in train])
    y = np.concatenate([t.targets for t in train])
    scale, shift = fit_calibration(g, y, nonnegative)
    return {"hidden": int(hidden), "n_layers": int(n_layers), "nonnegative": bool(nonnegative),
            "target_mean": stats["y_mean"], "target_std": stats["y_std"], "calib_scale": scale,
            "calib_shift": shift, **kw}
