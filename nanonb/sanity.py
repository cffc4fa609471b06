"""Sanity checks: the claims a notebook's text makes, checked against its numbers.

A notebook says "the ensemble covers 85–95 % of the query points" or "symmetry deviations stay below 1e-12".
:func:`check` states such a claim next to the number it rests on. It prints one line
(``sanity check ✓ ...``) and raises :class:`ClaimError` when the number no longer supports the claim, so a
test run of the notebook fails on a changed *result*, never on a changed last digit: floating-point output
differs between CPUs, BLAS kernels and thread counts, claims do not.

Use bands wide enough for honest run-to-run and machine-to-machine variation, and exact comparison
(``equals=``) only for what is exact: counts, names, shapes, seeds.

Example
-------
>>> from nanonb.sanity import check
>>> _ = check("coverage of the 90 % interval", 0.89, between=(0.80, 0.97))
sanity check ✓ coverage of the 90 % interval: 0.89 (expected between 0.8 and 0.97)
>>> _ = check("held-out tasks", 6, equals=6)
sanity check ✓ held-out tasks: 6 (expected exactly 6)
>>> check("symmetry deviation in float64", 3e-3, below=1e-12)
Traceback (most recent call last):
...
nanonb.sanity.ClaimError: sanity check failed: symmetry deviation in float64: 0.003 (expected below 1e-12). ...
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["ClaimError", "check"]


class ClaimError(AssertionError):
    """A notebook's claim is not supported by the number it rests on."""


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return repr(v) if isinstance(v, str) else str(v)
    if isinstance(v, int):
        return str(v)
    if v == 0 or not math.isfinite(v):
        return str(v)
    return f"{v:.3g}"


def _expectation(between, below, above, equals) -> str:
    if equals is not None:
        return f"exactly {_fmt(equals) if not isinstance(equals, (list, tuple)) else list(equals)}"
    parts = []
    if between is not None:
        parts.append(f"between {_fmt(between[0])} and {_fmt(between[1])}")
    if above is not None:
        parts.append(f"above {_fmt(above)}")
    if below is not None:
        parts.append(f"below {_fmt(below)}")
    return " and ".join(parts)


def check(claim: str, value: Any, *, between: Sequence[float] | None = None, below: float | None = None,
          above: float | None = None, equals: Any = None, quiet: bool = False) -> Any:
    """Check that ``value`` supports ``claim``; print the check, raise :class:`ClaimError` if it fails.

    Args:
        claim: what the notebook's text says, in words (e.g. ``"ANIL beats the pooled network at K=5"``).
        value: the computed number (or, with ``equals``, any exact value: a count, a name, a shape).
        between: ``(low, high)``, inclusive bounds, in the unit of ``value``.
        below: ``value`` must be strictly smaller.
        above: ``value`` must be strictly larger.
        equals: exact comparison, for exact outputs only (counts, names, shapes, seeds).
        quiet: do not print the passing line.

    Returns:
        ``value``, unchanged, so a check can wrap an expression.

    Raises:
        ClaimError: the value does not support the claim (also for a NaN or infinite value with a numeric
            bound), or no bound was given.

    Example:
        >>> check("MAE below the support mean's (meV/atom)", 17.2, below=32.1)
        sanity check ✓ MAE below the support mean's (meV/atom): 17.2 (expected below 32.1)
        17.2
    """
    if all(b is None for b in (between, below, above, equals)):
        raise ClaimError(f"check({claim!r}) needs a bound: between=, below=, above= or equals=")
    if between is not None and (len(between) != 2 or between[0] > between[1]):
        raise ClaimError(f"check({claim!r}): between must be (low, high) with low <= high, got {between!r}")
    ok = True
    if equals is not None:
        ok = value == equals if not isinstance(equals, (list, tuple)) else list(value) == list(equals)
    else:
        try:
            v = float(value)
        except (TypeError, ValueError) as err:
            raise ClaimError(f"sanity check {claim!r}: {value!r} is not a number") from err
        if not math.isfinite(v):
            ok = False
        if between is not None:
            ok = ok and between[0] <= v <= between[1]
        if below is not None:
            ok = ok and v < below
        if above is not None:
            ok = ok and v > above
    expected = _expectation(between, below, above, equals)
    shown = _fmt(value) if not isinstance(value, (list, tuple)) else str(list(value))
    if not ok:
        raise ClaimError(f"sanity check failed: {claim}: {shown} (expected {expected}). The text around this "
                         "check no longer matches the numbers: find out what changed before editing the bound.")
    if not quiet:
        print(f"sanity check ✓ {claim}: {shown} (expected {expected})")
    return value
