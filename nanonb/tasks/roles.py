"""Column roles and physical units for :meth:`TaskSet.from_frame <nanonb.tasks.TaskSet.from_frame>`.

A user's table names its columns its own way (``T_C``, ``molality``, ``log_sigma``) and uses its own
units (°C, mmol/kg, log10 S/cm). Physics models need to know which column is the temperature and in
which unit the numbers are. ``from_frame(..., roles=..., units=...)`` says it explicitly:

- ``roles`` maps a role of :data:`ROLES` (``"temperature"``, ``"concentration"``) to a column; the
  column becomes a feature under the role's canonical name (``temperature_K``, ``concentration``),
  converted to the canonical unit (K; mol/kg or mol/l).
- ``units`` gives the unit of every role column (required) and, optionally, of the target.
  A conductivity target (:data:`CONDUCTIVITY_UNITS`: ``"S/cm"``, ``"log10 S/cm"``, ``"ln mS/cm"``,
  ...) is converted to ``log10(mS/cm)``, the unit the VTF priors of :mod:`nanonb.physics.vtf` assume.
- Every conversion is checked against the values' apparent scale (°C data declared as K, mS/cm
  declared as log10, mmol declared as mol): the error names the column, the declared unit, what
  the numbers look like and the fix.

:func:`column_report` lists what became of every column of the frame (``ts.column_report``).

Example
-------
>>> T, note = convert_role(np.array([25.0, 60.0]), "temperature", "degC", "T_C")
>>> T.tolist(), note                                          # K
([298.15, 333.15], 'T_C (degC) -> temperature_K (K): + 273.15')
>>> y, unit, note = convert_target(np.array([-2.0, -1.5]), "log10 S/cm", "log_sigma")
>>> y.tolist(), unit                                          # log10(k / mS/cm)
([1.0, 1.5], 'log10(mS/cm)')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["CONDUCTIVITY_UNITS", "LOG10_MS_PER_CM", "ROLES", "column_report", "convert_role", "convert_target",
           "is_log10_mS_per_cm"]

#: The canonical conductivity target unit (what :mod:`nanonb.physics.vtf` assumes).
LOG10_MS_PER_CM = "log10(mS/cm)"

# unit spelling -> (canonical unit, scale, offset): canonical = value * scale + offset
_TEMPERATURE = {
    "K": ("K", 1.0, 0.0), "kelvin": ("K", 1.0, 0.0),
    "degC": ("K", 1.0, 273.15), "°C": ("K", 1.0, 273.15), "C": ("K", 1.0, 273.15), "celsius": ("K", 1.0, 273.15),
    "degF": ("K", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0), "°F": ("K", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
}
_CONCENTRATION = {
    "mol/kg": ("mol/kg", 1.0, 0.0), "molal": ("mol/kg", 1.0, 0.0), "m": ("mol/kg", 1.0, 0.0),
    "mmol/kg": ("mol/kg", 1e-3, 0.0),
    "mol/l": ("mol/l", 1.0, 0.0), "mol/L": ("mol/l", 1.0, 0.0), "M": ("mol/l", 1.0, 0.0),
    "molar": ("mol/l", 1.0, 0.0), "mmol/l": ("mol/l", 1e-3, 0.0), "mmol/L": ("mol/l", 1e-3, 0.0),
}

#: Known roles: canonical feature name, accepted units, plausible range in the canonical unit and the hint
#: printed when the values fall outside it.
ROLES: dict[str, dict] = {
    "temperature": {"name": "temperature_K", "units": _TEMPERATURE, "range": (150.0, 500.0),
                    "hint": "electrolytes are measured at about 150-500 K (-120 to 230 °C)"},
    "concentration": {"name": "concentration", "units": _CONCENTRATION, "range": (-0.05, 25.0),
                      "hint": "salt concentrations are 0-25 mol/kg (mol/l)"},
}

_TO_MS_PER_CM = {"mS/cm": 1.0, "S/cm": 1e3, "S/m": 10.0, "mS/m": 1e-2, "uS/cm": 1e-3, "µS/cm": 1e-3}
#: Conductivity target units accepted by ``units={"target": ...}``: linear (``"S/cm"``), ``"log10 <unit>"``
#: and ``"ln <unit>"`` of the units in ``mS/cm, S/cm, S/m, mS/m, uS/cm``. Converted to log10(mS/cm).
CONDUCTIVITY_UNITS = tuple([*_TO_MS_PER_CM, *(f"log10 {u}" for u in _TO_MS_PER_CM),
                            *(f"log10({u})" for u in _TO_MS_PER_CM), *(f"ln {u}" for u in _TO_MS_PER_CM),
                            *(f"ln({u})" for u in _TO_MS_PER_CM)])
#: Plausible range of log10(k / mS/cm) for a liquid or polymer electrolyte (1e-12 to 2000 mS/cm).
_LOG10_K_RANGE = (-12.0, 3.3)


def is_log10_mS_per_cm(unit: str) -> bool:
    """True if ``unit`` spells log10(mS/cm) (``"log10(mS/cm)"``, ``"log10 mS/cm"``, ...).

    Example
    -------
    >>> is_log10_mS_per_cm("log10 mS/cm"), is_log10_mS_per_cm("log10(S/cm)")
    (True, False)
    """
    return _parse_conductivity(unit) == ("log10", "mS/cm")


def _parse_conductivity(unit: str) -> tuple[str, str] | None:
    u = str(unit).strip().replace("log10_", "log10 ").replace("_per_", "/")
    for kind in ("log10", "ln"):
        if u.startswith(kind):
            rest = u[len(kind):].strip()
            rest = rest[1:-1].strip() if rest.startswith("(") and rest.endswith(")") else rest
            return (kind, rest) if rest in _TO_MS_PER_CM else None
    return ("linear", u) if u in _TO_MS_PER_CM else None


def convert_role(values: np.ndarray, role: str, unit: str, column: str) -> tuple[np.ndarray, str]:
    """``values`` of ``column`` (role ``role``, declared ``unit``) in the role's canonical unit, and a note.

    Raises ``ValueError`` for an unknown role or unit, and when the converted values fall outside the
    role's plausible range (the message says which unit the numbers look like).

    Example
    -------
    >>> convert_role(np.array([298.0]), "temperature", "degC", "T")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Column 'T' is declared in degC, but its values (298 to 298) become 571.1 to 571.1 K; ... kelvin...
    """
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; known roles: {sorted(ROLES)} (other columns go in features=).")
    spec = ROLES[role]
    if unit not in spec["units"]:
        raise ValueError(f"Unknown {role} unit {unit!r} for column {column!r}; use one of {list(spec['units'])}.")
    canon, scale, offset = spec["units"][unit]
    v = np.asarray(values, dtype=np.float64)
    out = v * scale + offset
    lo, hi = spec["range"]
    if out.size and (out.min() < lo or out.max() > hi):
        guess = _guess(v, spec, lo, hi)
        raise ValueError(
            f"Column {column!r} is declared in {unit}, but its values ({v.min():.4g} to {v.max():.4g}) become "
            f"{out.min():.4g} to {out.max():.4g} {canon}; {spec['hint']}."
            + (f" They look like {guess}: declare units={{{role!r}: {_short(guess, spec)!r}}}." if guess else
               " Check the column and its unit."))
    note = f"{column} ({unit}) -> {spec['name']} ({canon})"
    if scale != 1.0 or offset != 0.0:
        note += (f": x {scale:.6g}" if scale != 1.0 else ":") + (f" + {offset:.6g}" if offset else "")
    return out, note


def _short(guess: str, spec: dict) -> str:
    return {"kelvin": "K", "degrees Celsius": "degC", "mmol": next((u for u in spec["units"] if u.startswith("mmol")),
                                                                    "mmol/kg")}.get(guess, guess)


def _guess(v: np.ndarray, spec: dict, lo: float, hi: float) -> str:
    """Which unit the raw values look like (empty when none fits)."""
    if spec["name"] == "temperature_K":
        if lo <= v.min() and v.max() <= hi:
            return "kelvin"
        if lo <= v.min() + 273.15 and v.max() + 273.15 <= hi:
            return "degrees Celsius"
        return ""
    return "mmol" if lo <= v.min() * 1e-3 and v.max() * 1e-3 <= hi else ""


def convert_target(values: np.ndarray, unit: str, column: str) -> tuple[np.ndarray, str, str]:
    """A target declared in ``unit``: ``(values, unit, note)``, conductivities converted to log10(mS/cm).

    A unit outside :data:`CONDUCTIVITY_UNITS` is kept as it is (no conversion, no check). A conductivity
    is checked: a linear unit needs positive values, and the result must lie in 1e-12 to 2000 mS/cm,
    else ``ValueError`` saying what the numbers look like.

    Example
    -------
    >>> convert_target(np.array([0.5, 2.0]), "eV/atom", "E")[1:]            # not a conductivity: kept
    ('eV/atom', 'E (eV/atom): kept as given')
    >>> convert_target(np.array([5.0, 12.0]), "log10 mS/cm", "k")   # mS/cm as log10  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Target 'k' is declared in log10 mS/cm, but its values (5 to 12) are 10^5.0 to 10^12.0 mS/cm; ...
    """
    parsed = _parse_conductivity(unit)
    v = np.asarray(values, dtype=np.float64)
    if parsed is None:
        return v, str(unit), f"{column} ({unit}): kept as given"
    kind, base = parsed
    f = _TO_MS_PER_CM[base]
    if kind == "linear":
        if (v <= 0).any():
            raise ValueError(
                f"Target {column!r} is declared in {unit} (linear) but has {int((v <= 0).sum())} values <= 0 "
                f"(min {v.min():.4g}); a conductivity is positive. If the column holds logarithms, declare "
                f"units={{'target': 'log10 {base}'}}; otherwise drop the rows with k <= 0.")
        out = np.log10(v * f)
    else:
        out = (v / math.log(10.0) if kind == "ln" else v) + math.log10(f)
    lo, hi = _LOG10_K_RANGE
    if out.size and (out.min() < lo or out.max() > hi):
        looks = ""
        if kind != "linear" and (v > 0).all() and lo <= np.log10(v * f).min() and np.log10(v * f).max() <= hi:
            looks = f" They look linear (not log): declare units={{'target': {base!r}}}."
        elif kind == "linear":
            looks = " They look like another unit (mS/cm vs S/cm?) or logarithms; check the column."
        raise ValueError(
            f"Target {column!r} is declared in {unit}, but its values ({v.min():.4g} to {v.max():.4g}) are "
            f"10^{out.min():.1f} to 10^{out.max():.1f} mS/cm; no electrolyte conducts above ~2000 mS/cm."
            + looks)
    note = f"{column} ({unit}) -> {LOG10_MS_PER_CM}"
    return out, LOG10_MS_PER_CM, note


def column_report(columns: Sequence, uses: Mapping[str, tuple[str, str, str]]) -> pd.DataFrame:
    """One row per frame column: ``column``, ``use`` (task, target, feature, role:..., group, meta or
    ``unused``), ``unit`` and ``note`` (the conversion applied). ``uses[col] = (use, unit, note)``.

    Example
    -------
    >>> column_report(["t", "x", "junk"], {"t": ("task", "", ""), "x": ("feature", "", "")})["use"].tolist()
    ['task', 'feature', 'unused']
    """
    rows = [{"column": str(c), **dict(zip(("use", "unit", "note"), uses.get(c, ("unused", "", ""))))}
            for c in columns]
    return pd.DataFrame(rows, columns=["column", "use", "unit", "note"])


def check_roles(roles: Mapping[str, str] | None, units: Mapping[str, str] | None,
                target_unit: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    """Validate ``roles`` and ``units`` of ``from_frame``: ``(roles, role units, target unit or None)``.

    Every role is known (:data:`ROLES`) and has a unit in ``units``; ``units`` names only roles and
    ``"target"``; a ``units["target"]`` that contradicts ``target_unit`` is refused.

    Example
    -------
    >>> check_roles({"temperature": "T_C"}, {"temperature": "degC", "target": "S/cm"}, "")
    ({'temperature': 'T_C'}, {'temperature': 'degC'}, 'S/cm')
    """
    roles, units = dict(roles or {}), dict(units or {})
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"Unknown role(s) {unknown}; known roles: {sorted(ROLES)} (other inputs go in features=).")
    stray = sorted(set(units) - set(roles) - {"target"})
    if stray:
        raise ValueError(f"units names {stray}, which are not roles given in roles= ({sorted(roles)}) nor 'target'.")
    cols = list(roles.values())
    if len(set(cols)) < len(cols):
        raise ValueError(f"roles gives one column to several roles: {roles}.")
    missing = [r for r in roles if r not in units]
    if missing:
        given = ", ".join(f"{r!r}: ..." for r in missing)
        raise ValueError(f"Declare the unit of every role column: units={{{given}}} "
                         "(e.g. " + ", ".join(f"{r}: {list(ROLES[r]['units'])[:3]}" for r in missing) + ").")
    t_unit = units.pop("target", None)
    if t_unit is not None and target_unit and t_unit != target_unit:
        raise ValueError(f"target_unit={target_unit!r} contradicts units['target']={t_unit!r}; give one of them.")
    return roles, units, t_unit if t_unit is not None else (target_unit or None)
