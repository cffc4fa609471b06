"""Constrained proposals: mixtures whose fractions sum to 1 inside literature ranges, as part of the search.

A :class:`MixtureSpace` names the inputs, their bounds and the group of mixture fractions that must sum
to 1. :func:`propose_mixtures` maximizes a BoTorch acquisition over that polytope with
``optimize_acqf`` (box bounds + a linear *equality* constraint, SLSQP), so every proposal is feasible by
construction rather than filtered afterwards; the surrogate can be any nanonb learner through
:func:`~nanonb.active.botorch_model.learner_model` (gradients by finite differences: ``with_grad=False``).
:func:`unconstrained_proposals` runs the same optimizer with only ``0 <= x <= 1``-style boxes, and
:func:`mixture_report` counts, per check, the violations of either set (one table, built on
:func:`nanonb.physics.constraints.constraint_report`).

Spaces shipped:

- :data:`LNP_SPACE`: molar fractions ionizable / helper / cholesterol / PEG-lipid, sum 1, in the ranges of
  published LNP formulations (ionizable 0.30-0.60, helper 0.05-0.30, cholesterol 0.20-0.50, PEG 0.005-0.05;
  e.g. the 50/10/38.5/1.5 of Onpattro and the mRNA vaccines).
- :data:`ELECTROLYTE_SPACE`: solvent mass fractions EC / PC / DMC / EMC, sum 1, each 0-1, and the salt
  molality 0.2-3.0 mol/kg (outside the sum).

Example
-------
>>> LNP_SPACE.names
('ionizable', 'helper', 'cholesterol', 'peg')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler

from ..physics.constraints import CheckResult, check_mass_balance, constraint_report

__all__ = ["ELECTROLYTE_SPACE", "LNP_SPACE", "MixtureSpace", "mixture_report", "propose_mixtures",
           "unconstrained_proposals"]


@dataclass(frozen=True)
class MixtureSpace:
    """Inputs ``names`` with ``lower``/``upper`` bounds; the inputs at ``mixture`` (indices) sum to 1.

    ``wide_lower``/``wide_upper`` are the boxes an unconstrained optimizer would use (physical limits
    only, e.g. every fraction in 0..1).

    Example
    -------
    >>> s = MixtureSpace(("a", "b"), (0.2, 0.2), (0.8, 0.8), (0, 1))
    >>> s.bounds().tolist()
    [[0.2, 0.2], [0.8, 0.8]]
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    mixture: tuple[int, ...]
    wide_lower: tuple[float, ...] | None = None
    wide_upper: tuple[float, ...] | None = None

    def bounds(self, wide: bool = False) -> torch.Tensor:
        """``(2, d)`` float64 tensor of lower and upper bounds (``wide``: the physical boxes)."""
        lo = self.wide_lower if wide and self.wide_lower is not None else self.lower
        hi = self.wide_upper if wide and self.wide_upper is not None else self.upper
        return torch.tensor([lo, hi], dtype=torch.float64)

    def equality(self) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        """BoTorch form of ``sum(x[mixture]) = 1``."""
        idx = torch.tensor(self.mixture, dtype=torch.long)
        return [(idx, torch.ones(len(idx), dtype=torch.float64), 1.0)]

    def checks(self, x: np.ndarray, tol: float = 1e-9) -> list[CheckResult]:
        """Mass balance of the mixture (to ``tol``) and each input's range, for proposals ``x`` ``(n, d)``."""
        x = np.asarray(x, dtype=np.float64)
        mix_name = "+".join(self.names[i] for i in self.mixture)
        out = [check_mass_balance(x[:, list(self.mixture)], tol=tol, name=mix_name)]
        for j, name in enumerate(self.names):
            bad = [i for i in range(len(x)) if not self.lower[j] - tol <= x[i, j] <= self.upper[j] + tol]
            out.append(CheckResult(f"range: {name} in {self.lower[j]:g}..{self.upper[j]:g}", len(x), bad,
                                   [f"{name} = {x[i, j]:.4g}" for i in bad]))
        return out


LNP_SPACE = MixtureSpace(("ionizable", "helper", "cholesterol", "peg"), (0.30, 0.05, 0.20, 0.005),
                         (0.60, 0.30, 0.50, 0.05), (0, 1, 2, 3), (0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0))
"""LNP lipid molar fractions (dimensionless), literature ranges; all four sum to 1."""

ELECTROLYTE_SPACE = MixtureSpace(("EC", "PC", "DMC", "EMC", "salt_mol_per_kg"), (0.0, 0.0, 0.0, 0.0, 0.2),
                                 (1.0, 1.0, 1.0, 1.0, 3.0), (0, 1, 2, 3), (0.0, 0.0, 0.0, 0.0, 0.0),
                                 (1.0, 1.0, 1.0, 1.0, 5.0))
"""Solvent mass fractions (sum 1) and salt molality (mol/kg, 0.2-3.0; wide box 0-5)."""


def _acqf(model, best_f: float, seed: int):
    return qLogExpectedImprovement(model, best_f=best_f, sampler=SobolQMCNormalSampler(torch.Size([128]), seed=seed))


def propose_mixtures(model, space: MixtureSpace, best_f: float, q: int = 1, num_restarts: int = 4,
                     raw_samples: int = 64, seed: int = 0) -> np.ndarray:
    """``q`` proposals ``(q, d)`` maximizing qLogEI of ``model`` (BoTorch) inside ``space``.

    ``best_f``: the best measured score (the model's sign convention: BoTorch maximizes). The mixture is
    made to sum to 1 exactly after SLSQP (its last fraction absorbs the solver's residual, < 1e-6),
    and the result is checked against the bounds.

    Example
    -------
    >>> x = propose_mixtures(learner_model(bml, x_measured, y_measured), LNP_SPACE, best_f=y.max())  # doctest: +SKIP
    """
    torch.manual_seed(seed)
    x, _ = optimize_acqf(_acqf(model, best_f, seed), bounds=space.bounds(), q=q, num_restarts=num_restarts,
                         raw_samples=raw_samples, equality_constraints=space.equality(),
                         options={"with_grad": False, "maxiter": 100})
    x = x.detach().numpy().reshape(q, -1).astype(np.float64)
    mix = list(space.mixture)
    resid = 1.0 - x[:, mix].sum(axis=1)
    if np.any(np.abs(resid) > 1e-6):
        raise RuntimeError(f"SLSQP left a mass-balance residual of {np.abs(resid).max():.2e}; raise maxiter")
    x[:, mix[-1]] += resid
    return x


def unconstrained_proposals(model, space: MixtureSpace, best_f: float, q: int = 1, num_restarts: int = 4,
                            raw_samples: int = 64, seed: int = 0) -> np.ndarray:
    """What an optimizer without the constraints proposes: the same acquisition on the wide box only.

    Example
    -------
    >>> free = unconstrained_proposals(model, LNP_SPACE, best_f=0.0)     # doctest: +SKIP
    >>> mixture_report(LNP_SPACE, nanonb=x, unconstrained=free)        # doctest: +SKIP
    """
    torch.manual_seed(seed)
    x, _ = optimize_acqf(_acqf(model, best_f, seed), bounds=space.bounds(wide=True), q=q,
                         num_restarts=num_restarts, raw_samples=raw_samples,
                         options={"with_grad": False, "maxiter": 100})
    return x.detach().numpy().reshape(q, -1).astype(np.float64)


def mixture_report(space: MixtureSpace, tol: float = 1e-9, **proposals: np.ndarray) -> pd.DataFrame:
    """One table of violations per check (mass balance to ``tol``, each range) for each named proposal set.

    Example
    -------
    >>> r = mixture_report(LNP_SPACE, nanonb=np.array([[0.5, 0.1, 0.385, 0.015]]))
    >>> int(r["n_violations"].sum())
    0
    """
    frames = []
    for name, x in proposals.items():
        named = {c.check: c for c in space.checks(x, tol)}
        frames.append(constraint_report(**named).assign(proposals=name))
    return pd.concat(frames, ignore_index=True)
