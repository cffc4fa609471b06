"""Calibrated Hückel theory: ``gap ≈ scale · gap_Hückel + shift`` (eV).

:func:`fit_calibration` is the (ridge-regularized, optionally non-negative) least-squares fit used
by :meth:`nanonb.physics.tb.TBGapNet.calibrate_`, :func:`nanonb.physics.tb.tb_model_kwargs` and
:class:`HuckelCalibration`, the physics baseline of the ``tb`` benchmark (plain Hückel gaps with a
few-shot affine calibration; it needs no learner, so it lives here rather than in
:mod:`nanonb.baselines`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import lsq_linear

from nanonb.physics.pisystem import huckel_gaps


def fit_calibration(huckel_gap: np.ndarray, target: np.ndarray, nonnegative: bool = False,
                    prior: tuple[float, float] | None = None, ridge: float = 0.0) -> tuple[float, float]:
    """Fit ``target ≈ scale · huckel_gap + shift`` (eV) by (ridge-regularized) least squares.

    Parameters
    ----------
    huckel_gap, target:
        ``(n,)`` Hückel gaps and reference gaps in eV.
    nonnegative:
        Constrain ``scale, shift >= 0`` (non-negative least squares).
    prior, ridge:
        Shrink ``(scale, shift)`` towards ``prior = (s0, b0)`` with the penalty
        ``ridge · ((scale − s0)² + (shift − b0)²)`` added to the squared error (eV²); with
        ``ridge > 0`` a single point suffices (the few-shot calibration of :class:`HuckelCalibration`).

    Example
    -------
    >>> import numpy as np
    >>> g = np.array([1.0, 2.0, 3.0])
    >>> [round(v, 6) for v in fit_calibration(g, 0.5 * g + 0.2)]  # (scale, shift in eV)
    [0.5, 0.2]
    """
    g = np.asarray(huckel_gap, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if g.shape != y.shape:
        raise ValueError(f"huckel_gap {g.shape} and target {y.shape} must have the same length")
    a = np.stack([g, np.ones_like(g)], axis=1)
    if ridge > 0:
        if prior is None:
            raise ValueError("ridge > 0 needs a prior (scale, shift) to shrink towards")
        r = np.sqrt(ridge)
        a = np.vstack([a, np.diag([r, r])])
        y = np.concatenate([y, r * np.asarray(prior, dtype=np.float64)])
    elif len(g) < 2 or np.ptp(g) < 1e-12:
        raise ValueError("calibration needs at least two molecules with different Hückel gaps (or ridge > 0)")
    bounds = (0.0, np.inf) if nonnegative else (-np.inf, np.inf)
    sol = lsq_linear(a, y, bounds=bounds).x
    return float(sol[0]), float(sol[1])


class _AffinePredictor:
    def __init__(self, scale: float, shift: float):
        self.scale, self.shift = scale, shift

    def predict(self, inputs) -> np.ndarray:
        return self.scale * huckel_gaps(inputs) + self.shift


class HuckelCalibration:
    """Physics baseline: plain Hückel gap (reference parameters) with a few-shot affine calibration.

    ``fit(train)`` fits ``gap ≈ scale · gap_Hückel + shift`` (eV) on all meta-train molecules (the
    prior) and picks the ridge strength (from ``ridges``) that minimizes the 1- and 5-shot query MAE
    on meta-train episodes. ``adapt(support)`` refits ``(scale, shift)`` on the support, shrunk
    towards the prior (:func:`fit_calibration`); ``adapt(None)`` uses the prior (zero-shot). Not
    constrained (``nonnegative=False`` by default): a negative shift can give negative gaps.

    Example
    -------
    >>> base = HuckelCalibration().fit(meta_train)            # doctest: +SKIP
    >>> base.adapt(support).predict(query)                    # gaps in eV  # doctest: +SKIP
    >>> base.adapt(None).predict(query)                       # zero-shot: the meta-train prior  # doctest: +SKIP
    """

    kind = "baseline"
    name = "huckel+calibration"
    zero_shot = True  # adapt(None) predicts with the meta-train prior

    def __init__(self, ridges: Sequence[float] = (0.01, 0.1, 1.0, 10.0), nonnegative: bool = False, seed: int = 0):
        self.ridges, self.nonnegative, self.seed = tuple(ridges), nonnegative, seed
        self.prior: tuple[float, float] | None = None
        self.ridge = float(self.ridges[0])

    def fit(self, train, **_) -> HuckelCalibration:
        g = {t.name: huckel_gaps(t) for t in train}
        self.prior = fit_calibration(np.concatenate(list(g.values())), np.concatenate([t.targets for t in train]),
                                     self.nonnegative)
        rng = np.random.default_rng(self.seed)
        scores = {}
        for ridge in self.ridges:
            errs = []
            for t in train:
                for k in (1, 5):
                    if len(t) <= k:
                        continue
                    for _ in range(3):
                        perm = rng.permutation(len(t))
                        s, q = perm[:k], perm[k:]
                        a, b = fit_calibration(g[t.name][s], t.targets[s], self.nonnegative, self.prior, ridge)
                        errs.append(np.abs(a * g[t.name][q] + b - t.targets[q]).mean())
            scores[ridge] = float(np.mean(errs))
        self.ridge = min(scores, key=scores.get)
        return self

    def adapt(self, support=None) -> _AffinePredictor:
        if self.prior is None:
            raise RuntimeError("HuckelCalibration is not fitted: call fit(meta_train) first.")
        if support is None or len(support) == 0:
            return _AffinePredictor(*self.prior)
        return _AffinePredictor(*fit_calibration(huckel_gaps(support), support.targets, self.nonnegative,
                                                 self.prior, self.ridge))
