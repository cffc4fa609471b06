"""A deep ensemble of Bayesian last layers (``bml-ens``): several ALPaCA learners, one mixture predictive.

:class:`BMLEnsemble` meta-trains ``n_members`` independent
:class:`~nanonb.learners.alpaca.BayesianMetaLearner` s that differ only in their seed (initial weights and
episode draws). Each conditions exactly on the support (no gradient steps); the ensemble's predictive is the
equal-weight mixture of the members' Gaussians: mean ``m = mean_i m_i`` and variance
``mean_i (s_i^2 + m_i^2) - m^2`` (the members' own uncertainty plus their disagreement).

Why: on the nanoalloys one Bayesian last layer's error on an unseen element varies with its seed by about as
much as with its width or budget; averaging five removes most of that variance. In a leave-one-element-out
selection inside the meta-train pairs of the quickstart (Pt held out, K = 5) five members reached
12.1 meV/atom against 12.9 for one (mean over the 6 meta-train elements).

Example
-------
>>> ens = BMLEnsemble(n_members=2, model="MLP", model_kwargs={"n_in": 3, "hidden": (8,)})
>>> len(ens.members), [m.config.seed for m in ens.members]
(2, [0, 1])
>>> ens.fit(meta_train).adapt(episode.support).predict_dist(episode.query)   # doctest: +SKIP
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .._io import load_state, save_state
from ..tasks import Task, TaskSet
from ._checks import check_int
from .alpaca import BayesConfig, BayesianMetaLearner
from .registry import register_learner

__all__ = ["BMLEnsemble", "BMLEnsemblePredictor", "mixture_moments"]


def mixture_moments(means: np.ndarray, stds: np.ndarray,
                    weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a mixture of Gaussians; inputs ``(n_members, n)``.

    ``weights``: one per member, summing to 1 (``None``: equal weights). The variance is the members'
    variance plus their disagreement, ``sum_i w_i (std_i^2 + mean_i^2) - mean^2``.

    Example
    -------
    >>> m, s = mixture_moments(np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]]))
    >>> float(m[0]), round(float(s[0]), 4)          # variance 1 + 1 (spread of the means)
    (1.0, 1.4142)
    >>> float(mixture_moments(np.array([[0.0], [2.0]]), np.zeros((2, 1)), np.array([0.75, 0.25]))[0][0])
    0.5
    """
    means, stds = np.asarray(means, dtype=np.float64), np.asarray(stds, dtype=np.float64)
    if weights is None:
        mean = means.mean(0)
        var = (stds**2 + means**2).mean(0) - mean**2
    else:
        w = np.asarray(weights, dtype=np.float64)
        mean = w @ means
        var = w @ (stds**2 + means**2) - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


class BMLEnsemblePredictor:
    """The adapted ensemble: every member conditioned on the same support (target units).

    Example
    -------
    >>> mean, std = ens.adapt(episode.support).predict_dist(episode.query)   # doctest: +SKIP
    """

    def __init__(self, adapted: list):
        self.adapted = adapted

    def member_dists(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """``(means, stds)``, each ``(n_members, n)``, target units."""
        dists = [a.predict_dist(inputs) for a in self.adapted]
        return np.stack([d[0] for d in dists]), np.stack([d[1] for d in dists])

    def predict_dist(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """Mixture mean and standard deviation (target units)."""
        return mixture_moments(*self.member_dists(inputs))

    def predict(self, inputs) -> np.ndarray:
        """Mixture mean: the average of the members' posterior means (target units)."""
        return self.member_dists(inputs)[0].mean(0)


@register_learner("bml-ens")
class BMLEnsemble:
    """``n_members`` Bayesian last layers (seeds ``seed, seed + 1, ...``) with a mixture predictive.

    Same verbs as every learner: ``fit(meta_train)``, ``adapt(support)`` (exact conditioning of every
    member), ``predict`` / ``predict_dist``; ``save`` / ``load`` (one file pair).
    Keyword arguments other than ``n_members`` and ``name`` are :class:`BayesConfig` fields shared by the
    members. Costs ``n_members`` times one BML to train and to adapt.

    Example
    -------
    >>> BMLEnsemble(n_members=3, model="MLP", n_iterations=250).name
    'bml-ens'
    """

    kind = "meta"

    def __init__(self, n_members: int = 5, config: BayesConfig | None = None, name: str = "bml-ens",
                 **overrides: Any):
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        self.config = BayesConfig(**cfg)
        self.n_members = check_int("BMLEnsemble", "n_members", n_members, 1)
        self.name = name
        self.members = [BayesianMetaLearner(self.config, name=f"{name}[{i}]", seed=self.config.seed + i)
                        for i in range(self.n_members)]

    def __repr__(self) -> str:
        return f"BMLEnsemble({self.name!r}, n_members={self.n_members}, model={self.config.model})"

    @property
    def scaler(self):
        """The first member's target scaler (all members fit the same meta-train statistics)."""
        return self.members[0].scaler

    def fit(self, train: TaskSet, val: TaskSet | None = None, n_iterations: int | None = None,
            progress: bool = True) -> BMLEnsemble:
        """Meta-train every member on ``train`` (see :meth:`BayesianMetaLearner.fit`)."""
        for m in self.members:
            m.fit(train, val=val, n_iterations=n_iterations, progress=progress)
        return self

    def adapt(self, support: Task | None) -> BMLEnsemblePredictor:
        """Condition every member on ``support`` (``None`` or empty: the members' priors)."""
        return BMLEnsemblePredictor([m.adapt(support) for m in self.members])

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.json`` and ``<path>.pt`` (every member's state, keys prefixed ``m<i>.``)."""
        if any(m.model is None for m in self.members):
            raise RuntimeError(f"Nothing to save: this {self.name} ensemble is not fitted yet; fit it first.")
        tensors = {f"m{i}.{k}": v for i, m in enumerate(self.members) for k, v in m._state().items()}
        cfg = asdict(self.config) | {"n_members": self.n_members}
        meta = {"algorithm": "bml-ens", "name": self.name, "config": cfg,
                "members": [m.state_meta() for m in self.members], "nanonb_format": 1}
        return save_state(path, meta, tensors)

    def load_state(self, meta: dict, tensors: dict) -> BMLEnsemble:
        """Restore every member from :meth:`save`'s ``meta`` (its JSON) and ``tensors``."""
        self.members = []
        for i, mm in enumerate(meta["members"]):
            own = {k[len(f"m{i}."):]: v for k, v in tensors.items() if k.startswith(f"m{i}.")}
            self.members.append(BayesianMetaLearner(BayesConfig(**mm["config"])).load_state(mm, own))
        self.n_members, self.name = len(self.members), meta.get("name", self.name)
        return self

    @classmethod
    def load(cls, path: str | Path) -> BMLEnsemble:
        """Load an ensemble written by :meth:`save` (also via :func:`nanonb.learners.registry.load`)."""
        meta, tensors = load_state(path)
        return cls(**meta["config"]).load_state(meta, tensors)

    def copy(self) -> BMLEnsemble:
        return copy.deepcopy(self)
