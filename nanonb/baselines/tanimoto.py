"""A Gaussian process on molecular fingerprints with the Tanimoto kernel (the standard molecular GP baseline).

``k(a, b) = s^2 * T(a, b)`` with ``T(a, b) = <a, b> / (|a|^2 + |b|^2 - <a, b>)`` the Tanimoto
(Jaccard) similarity of 0/1 fingerprints (1 for identical bit sets), plus noise ``n^2``. The prior mean
is the support mean. ``fit(meta_train)`` chooses ``s^2`` and ``n^2`` once, on a grid, by the summed
marginal likelihood of the meta-train tasks (each centred on its own mean): a meta-informed GP, with
no per-episode hyper-parameter fit (which K = 1-10 points cannot support). The fingerprint is the last
``n_bits`` input columns of a tabular task (the layout of :mod:`nanonb.data.electrolyte_tasks`).

Example
-------
>>> gp = SupportTanimotoGP(n_bits=128).fit(meta_train)                          # doctest: +SKIP
>>> mean, std = gp.adapt(episode.support).predict_dist(episode.query)     # target units  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch

from ..learners.tanimoto_gp import tanimoto as _tanimoto
from ..tasks import Task, TaskSet

__all__ = ["SupportTanimotoGP", "tanimoto"]


def tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity matrix ``(len(a), len(b))`` of 0/1 fingerprint rows (two empty rows: 1).

    Example
    -------
    >>> tanimoto(np.array([[1, 1, 0]]), np.array([[1, 0, 0], [1, 1, 0]]))
    array([[0.5, 1. ]])
    """
    a, b = torch.as_tensor(np.asarray(a, dtype=np.float64)), torch.as_tensor(np.asarray(b, dtype=np.float64))
    return _tanimoto(a, b).numpy()  # the one formula, in learners.tanimoto_gp


class _TanimotoPredictor:
    def __init__(self, gp: SupportTanimotoGP, support: Task | None):
        self.gp = gp
        if support is None or len(support) == 0:
            self.fp_s, self.alpha, self.chol, self.mean0 = None, None, None, gp.y_mean
            return
        self.fp_s = gp._fp(support)
        y = support.targets
        self.mean0 = float(y.mean())
        k = gp.signal_var * tanimoto(self.fp_s, self.fp_s) + gp.noise_var * np.eye(len(y))
        self.chol = np.linalg.cholesky(k)
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, y - self.mean0))

    def predict_dist(self, task: Task) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation (target units, noise included)."""
        n = len(task)
        prior = self.gp.signal_var + self.gp.noise_var
        if self.fp_s is None:
            return np.full(n, self.mean0), np.full(n, np.sqrt(prior))
        ks = self.gp.signal_var * tanimoto(self.gp._fp(task), self.fp_s)
        v = np.linalg.solve(self.chol, ks.T)
        var = np.maximum(prior - (v * v).sum(0), 1e-12)
        return self.mean0 + ks @ self.alpha, np.sqrt(var)

    def predict(self, task: Task) -> np.ndarray:
        """Predictive mean (target units)."""
        return self.predict_dist(task)[0]


class SupportTanimotoGP:
    """GP baseline with the Tanimoto kernel on the last ``n_bits`` input columns (see the module docstring).

    Parameters
    ----------
    n_bits:
        Fingerprint length (the last ``n_bits`` columns of ``task.inputs``).
    grid:
        Candidate signal and noise standard deviations, as fractions of the pooled within-task standard
        deviation of the meta-train targets.
    name:
        Display name.

    Example
    -------
    >>> x = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 0]], dtype=float)
    >>> t = Task("demo", x, [4.0, 4.2, 5.0, 4.4], target_unit="V vs Li/Li+")
    >>> gp = SupportTanimotoGP(n_bits=4).fit(TaskSet([t]))
    >>> mean, std = gp.adapt(t.subset([0, 1])).predict_dist(t.subset([3]))
    >>> bool(4.0 <= mean[0] <= 4.2), bool(std[0] > 0)
    (True, True)
    """

    kind = "baseline"

    def __init__(self, n_bits: int = 128, grid: tuple[float, ...] = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0),
                 name: str = "tanimoto-gp"):
        self.n_bits, self.grid, self.name = int(n_bits), tuple(grid), name

    def _fp(self, task: Task) -> np.ndarray:
        return np.asarray(task.inputs, dtype=np.float64)[:, -self.n_bits:]

    def fit(self, train: TaskSet, **_) -> SupportTanimotoGP:
        """Choose ``signal_var`` and ``noise_var`` by the summed marginal likelihood of the meta-train tasks."""
        tasks = [t for t in train if len(t) > 1]
        if not tasks:
            raise ValueError("SupportTanimotoGP.fit needs meta-train tasks with at least 2 points.")
        self.y_mean = float(np.concatenate([t.targets for t in train]).mean())
        scale = float(np.sqrt(np.mean([t.targets.var() for t in tasks]))) or 1.0
        kernels = [(tanimoto(self._fp(t), self._fp(t)), t.targets - t.targets.mean()) for t in tasks]
        best = (-np.inf, 1.0, 1.0)
        for s in self.grid:
            for n in self.grid:
                sv, nv = (s * scale) ** 2, (n * scale) ** 2
                ll = 0.0
                for k, r in kernels:
                    c = np.linalg.cholesky(sv * k + nv * np.eye(len(r)))
                    a = np.linalg.solve(c, r)
                    ll -= 0.5 * a @ a + np.log(np.diag(c)).sum()
                if ll > best[0]:
                    best = (ll, sv, nv)
        _, self.signal_var, self.noise_var = best
        return self

    def adapt(self, support: Task | None) -> _TanimotoPredictor:
        """Condition on ``support`` (``None``: the meta-train mean with the prior variance)."""
        return _TanimotoPredictor(self, support)
