"""A stacked learner: the weighted average of several learners' predictions, each put on a common scale per task.

Description
    Learners whose errors are partly independent (on LNPDB the meta-learned Tanimoto GP beats the random
    forest on the support on about half of the held-out tasks) can be averaged. Every member is adapted to
    the same support and predicts the same points ``x_1 .. x_n`` (the query of one task); member ``i``
    gives means ``p_i`` (and standard deviations ``s_i``; 0 for a member without ``predict_dist``). With
    weights ``w_i`` (non-negative, normalised to sum 1):

    - ``scale="zscore"`` (for ranking): each member's predictions are standardised over the points,
      ``z_i = (p_i - mean(p_i)) / sd(p_i)`` (``z_i = 0`` for a member whose predictions are constant: it
      carries no ranking information), and mapped back to target units with the weighted mean level and
      spread of the members, ``mu = m + s * sum_i w_i z_i`` with ``m = sum_i w_i mean(p_i)`` and
      ``s = sum_i w_i sd(p_i)``. Member ``i``'s rescaled mean is ``mu_i = m + s z_i`` and its rescaled
      standard deviation ``s_i s / sd(p_i)``. The ranking of ``mu`` is the ranking of the average z-score;
      it does not depend on the members' scales. For a single point every ``z_i`` is 0 and ``mu = m``.
    - ``scale="mean"`` (for regression): plain weighted mean, ``mu_i = p_i``, ``mu = sum_i w_i p_i``.

    ``predict_dist`` returns ``mu`` and the standard deviation of the members' mixture,
    ``var = sum_i w_i (std_i^2 + mu_i^2) - mu^2`` (member variance plus their disagreement;
    :func:`nanonb.learners.bml_ensemble.mixture_moments`, the rule of the BML ensemble).

    ``support_cv = n`` (``n >= 2``) re-weights the members per task from its support: the support is dealt
    into ``n`` parts (point ``j`` into part ``j mod n``; episode supports are drawn at random), every member
    is adapted to the other parts and predicts each part, and member ``i``'s weight becomes
    ``w_i max(rho_i, 0)`` (normalised), ``rho_i`` its mean Spearman correlation over the parts; the fixed
    weights when every ``rho_i <= 0`` or the support has fewer than ``2 n`` points. Members the support
    ranks badly on a task are dropped for that task; a member is adapted ``n + 1`` times per support.

    Members are used as given: :meth:`StackLearner.fit` fits the members that have ``fit``; pass members
    that are already fitted and skip it (the LNPDB bench shares one fitted Tanimoto GP between its own row
    and the stack). The weights are fixed (equal by default); the case-study benches choose between the
    stack and its members by their nested inner validation (:func:`nanonb.bench.casestudy_gp.nested_select`),
    never on test folds. Not saved to disk (members may be any object).

Example
    >>> from nanonb.baselines.tabular import SupportRF                                    # doctest: +SKIP
    >>> stack = StackLearner([tanimoto_gp, SupportRF()], scale="zscore")                 # doctest: +SKIP
    >>> mean, std = stack.adapt(ep.support).predict_dist(ep.query)                       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

from ..tasks import Task, TaskSet
from .bml_ensemble import mixture_moments
from .registry import register_learner

__all__ = ["SCALES", "StackLearner", "StackPredictor", "combine"]

#: How member predictions are put on a common scale before averaging.
SCALES = ("zscore", "mean")


def combine(means: Sequence[np.ndarray], stds: Sequence[np.ndarray], weights: Sequence[float],
            scale: str = "zscore") -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` of the stack from its members' ``means`` and ``stds`` over the same points (module doc).

    Example
    -------
    >>> m, s = combine([np.array([0.0, 1.0, 2.0]), np.array([10.0, 30.0, 20.0])], [np.zeros(3)] * 2, [0.5, 0.5])
    >>> np.round(m, 3)
    array([ 5.  , 13.25, 13.25])
    >>> m, s = combine([np.array([0.0, 2.0])] * 2, [np.ones(2)] * 2, [0.5, 0.5], scale="mean")
    >>> m.tolist(), s.tolist()
    ([0.0, 2.0], [1.0, 1.0])
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    w = np.asarray(weights, dtype=np.float64)
    p = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in means])
    sd = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in stds])
    if scale == "zscore":
        level, spread = p.mean(1), p.std(1)
        ok = spread > 1e-12 * np.maximum(1.0, np.abs(level))
        z = np.where(ok[:, None], (p - level[:, None]) / np.where(ok, spread, 1.0)[:, None], 0.0)
        m, s = float(w @ level), float(w @ spread)
        p = m + s * z
        sd = sd * np.where(ok, s / np.where(ok, spread, 1.0), 1.0)[:, None]
    return mixture_moments(p, sd, w)


class StackPredictor:
    """The members of a :class:`StackLearner` adapted to one support; predictions combined by :func:`combine`.

    Example
    -------
    >>> StackLearner([a, b]).adapt(support).predict(query)   # doctest: +SKIP
    """

    def __init__(self, adapted: Sequence, weights: np.ndarray, scale: str):
        self.adapted, self.weights, self.scale = list(adapted), weights, scale

    def member_dists(self, inputs) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each member's ``(means, stds)`` at ``inputs`` (std 0 for a member without ``predict_dist``)."""
        means, stds = [], []
        for a in self.adapted:
            if hasattr(a, "predict_dist"):
                m, s = a.predict_dist(inputs)
            else:
                m = a.predict(inputs)
                s = np.zeros(len(np.asarray(m).reshape(-1)))
            means.append(np.asarray(m, dtype=np.float64).reshape(-1))
            stds.append(np.asarray(s, dtype=np.float64).reshape(-1))
        return means, stds

    def predict_dist(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` at ``inputs`` (a task or an ``(n, d)`` array), target units."""
        return combine(*self.member_dists(inputs), self.weights, self.scale)

    def predict(self, inputs) -> np.ndarray:
        """The stack's mean at ``inputs``."""
        return self.predict_dist(inputs)[0]


@register_learner("stack")
class StackLearner:
    """Weighted average of several learners, each put on a common scale per task (module docstring).

    Parameters
    ----------
    members:
        Learners with ``adapt(support)`` returning an object with ``predict`` (and ideally ``predict_dist``).
    weights:
        One non-negative weight per member (normalised to sum 1); ``None``: equal weights.
    scale:
        ``"zscore"`` (per-task standardised predictions, for ranking) or ``"mean"`` (plain mean, regression).
    name:
        Display name in result tables.
    support_cv:
        0 (default): the fixed ``weights``; ``n >= 2``: re-weighted per task by ``n``-fold cross-validation
        of the members' Spearman correlation on the support (module docstring).

    Example
    -------
    >>> from nanonb.baselines.tabular import SupportRF
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(30, 3)); t = Task("t", x, x[:, 0] + 0.1 * rng.normal(size=30))
    >>> stack = StackLearner([SupportRF(n_estimators=10), SupportRF(n_estimators=10, seed=1)]).fit(TaskSet([t]))
    >>> stack.adapt(t.subset(range(20))).predict(t.subset(range(20, 30))).shape
    (10,)
    """

    kind = "meta"

    def __init__(self, members: Sequence, weights: Sequence[float] | None = None, scale: str = "zscore",
                 name: str = "stack", config=None, support_cv: int = 0):
        if config is not None:
            raise ValueError("StackLearner takes its members as objects, not a saved config; it is not saved to disk.")
        if len(members) < 1:
            raise ValueError("StackLearner needs at least one member learner.")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, not {weights}")
        if support_cv == 1 or support_cv < 0:
            raise ValueError(f"support_cv must be 0 (fixed weights) or at least 2 parts, not {support_cv}")
        self.members, self.weights, self.scale, self.name = list(members), w / w.sum(), scale, name
        self.support_cv = int(support_cv)

    def fit(self, meta_train: TaskSet, progress: bool = False) -> StackLearner:
        """Fit every member that has ``fit`` on ``meta_train``; returns ``self``."""
        for m in self.members:
            if hasattr(m, "fit"):
                m.fit(meta_train)
        return self

    def adapt(self, support: Task | None) -> StackPredictor:
        """Adapt every member to ``support`` (with ``support_cv``, the weights too)."""
        w = self.weights
        if self.support_cv and support is not None and len(support) >= 2 * self.support_cv:
            w = self.cv_weights(support)
        return StackPredictor([m.adapt(support) for m in self.members], w, self.scale)

    def cv_weights(self, support: Task) -> np.ndarray:
        """The members' weights for one task from ``support_cv``-fold cross-validation on its ``support``.

        Example
        -------
        >>> stack = StackLearner([good, bad], support_cv=3)   # doctest: +SKIP
        >>> stack.cv_weights(support)                          # doctest: +SKIP
        array([1., 0.])
        """
        part = np.arange(len(support)) % self.support_cv
        rho = np.zeros((len(self.members), self.support_cv))
        for p in range(self.support_cv):
            fit_on, held = support.subset(np.flatnonzero(part != p)), support.subset(np.flatnonzero(part == p))
            for i, m in enumerate(self.members):
                pred = np.asarray(m.adapt(fit_on).predict(held), dtype=np.float64).reshape(-1)
                if np.ptp(pred) > 0 and np.ptp(held.targets) > 0:
                    r = spearmanr(pred, held.targets).statistic
                    rho[i, p] = r if np.isfinite(r) else 0.0
        w = self.weights * np.clip(rho.mean(1), 0.0, None)
        return w / w.sum() if w.sum() > 0 else self.weights
