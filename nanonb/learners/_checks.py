"""Argument and NaN checks shared by the learners: every message names the argument, the value and the fix.

- :func:`check_int`, :func:`check_positive`, :func:`check_k_range`: hyper-parameters of the configs
  (``MetaConfig``, ``BayesConfig``), validated when the config is made, before any work.
- :func:`check_finite_tensors`: loaded weights (NaN/inf refused at load time).
- :func:`nonfinite_error`: the error raised when a prediction comes out NaN/inf, with its likely cause.

Example
-------
>>> check_int("MetaConfig", "meta_batch_size", 4, 1)
4
>>> check_int("MetaConfig", "meta_batch_size", 0, 1)
Traceback (most recent call last):
...
ValueError: MetaConfig.meta_batch_size must be an integer >= 1, got 0. Use e.g. meta_batch_size=1.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def check_int(owner: str, arg: str, value, minimum: int, hint: str = "") -> int:
    """``value`` as an ``int`` >= ``minimum`` (whole floats such as ``5.0`` are accepted), else an error.

    Example
    -------
    >>> check_int("BayesConfig", "n_iterations", 5.0, 0)
    5
    """
    ok_float = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and \
        math.isfinite(value) and float(value).is_integer()
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, numbers.Integral) or ok_float):
        raise TypeError(f"{owner}.{arg} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})."
                        f"{hint or f' Use e.g. {arg}={max(minimum, 1)}.'}")
    if value < minimum:
        raise ValueError(f"{owner}.{arg} must be an integer >= {minimum}, got {value!r}."
                         f"{hint or f' Use e.g. {arg}={max(minimum, 1)}.'}")
    return int(value)


def check_positive(owner: str, arg: str, value, allow_zero: bool = False, hint: str = "") -> float:
    """``value`` as a finite ``float`` > 0 (>= 0 with ``allow_zero``), else an error naming it.

    Example
    -------
    >>> check_positive("MetaConfig", "inner_lr", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: MetaConfig.inner_lr must be a finite number > 0, got nan.
    """
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}.{arg} must be a finite number {bound}, got {value!r} ({type(value).__name__}).{hint}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{owner}.{arg} must be a finite number {bound}, got {value!r}.{hint}")
    return value


def check_k_range(owner: str, value, minimum: int, hint: str = "") -> tuple[int, int]:
    """``k_support`` as ``(kmin, kmax)`` with ``minimum <= kmin <= kmax``, else an error naming it.

    Example
    -------
    >>> check_k_range("MetaConfig", [1, 10], 1)
    (1, 10)
    >>> check_k_range("MetaConfig", (5, 1), 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: MetaConfig.k_support must be (kmin, kmax) with 1 <= kmin <= kmax, got (5, 1). Did you mean ...
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        one = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum
        fix = f" For exactly {value} support points use k_support=({value}, {value})." if one else \
            f" Use e.g. k_support=({max(minimum, 1)}, 10)."
        raise TypeError(f"{owner}.k_support must be a pair (kmin, kmax) of support sizes, got {value!r}.{fix}")
    kmin, kmax = (check_int(owner, f"k_support[{i}]", v, minimum, hint) for i, v in enumerate(value))
    if kmax < kmin:
        raise ValueError(f"{owner}.k_support must be (kmin, kmax) with {minimum} <= kmin <= kmax, got "
                         f"{tuple(value)}. Did you mean k_support=({kmax}, {kmin})?")
    return kmin, kmax


def check_finite_tensors(tensors: dict[str, torch.Tensor], owner: str, source: str = "the loaded file") -> None:
    """Raise ``ValueError`` if a floating-point tensor holds NaN or inf (names the first one).

    Example
    -------
    >>> check_finite_tensors({"w": torch.tensor([1.0, float("nan")])}, "maml", "run.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: maml: weight 'w' in run.pt contains NaN/inf (1 of 2 values). The file is damaged or ...
    """
    for name, t in tensors.items():
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{owner}: weight {name!r} in {source} contains NaN/inf ({bad} of {t.numel()} values). "
                             "The file is damaged or was saved from a learner whose training diverged: re-train it "
                             "or restore a good copy.")


def all_finite(*arrays) -> bool:
    """Whether every tensor / array given is free of NaN and inf (``None`` counts as finite).

    Example
    -------
    >>> all_finite(torch.ones(2), np.zeros(3), None), all_finite(np.array([np.inf]))
    (True, False)
    """
    for a in arrays:
        if a is None:
            continue
        if torch.is_tensor(a):
            if a.is_floating_point() and not bool(torch.isfinite(a).all()):
                return False
        elif not np.isfinite(np.asarray(a, dtype=np.float64)).all():
            return False
    return True


def nonfinite_error(learner: str, checks: list[tuple[bool, str]]) -> FloatingPointError:
    """The error for a NaN/inf prediction of ``learner``: the first failed check of ``checks`` is the likely cause.

    ``checks`` are ``(ok, cause)`` pairs in the order the causes should be considered.

    Example
    -------
    >>> str(nonfinite_error("maml", [(True, "a"), (False, "the support targets contain NaN/inf")]))
    'maml: the prediction is NaN/inf. Likely cause: the support targets contain NaN/inf.'
    """
    cause = next((c for ok, c in checks if not ok), "the network output overflowed (no NaN/inf in the weights or "
                 "inputs): check the scale of the inputs")
    return FloatingPointError(f"{learner}: the prediction is NaN/inf. Likely cause: {cause}.")
