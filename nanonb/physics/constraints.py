"""Constraint checks for proposals and data.

Non-negativity (:func:`check_nonnegative`), mass balance (fractions on the simplex,
:func:`check_mass_balance`), Euclidean projection onto the simplex (:func:`project_simplex`),
charge neutrality of formulas (pymatgen oxidation-state guesses, :func:`check_charge_neutrality`)
and a one-table :func:`constraint_report`. Every check returns a :class:`CheckResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import torch


@dataclass
class CheckResult:
    """Outcome of one constraint check: which items violate it and why.

    Example
    -------
    >>> str(check_nonnegative([1.0, -2.0], name="conductivity"))
    'nonnegative: conductivity: 1 of 2 items violate ([1] conductivity = -2 < 0)'
    """

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

    Example
    -------
    >>> check_nonnegative([0.5, -1.0, float("nan")]).violations
    [1, 2]
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
    """Each row of ``fractions`` (n, k) must lie in [0, 1] and sum to 1 (within ``tol``).

    Example
    -------
    >>> check_mass_balance([[0.5, 0.5], [0.7, 0.6]]).violations  # the second row sums to 1.3
    [1]
    """
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

    Example
    -------
    >>> project_simplex([0.7, 0.6]).round(3).tolist()
    [0.55, 0.45]
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

    Example
    -------
    >>> check_charge_neutrality(["NaCl", "NaCl2"]).violations  # doctest: +SKIP
    [1]
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
