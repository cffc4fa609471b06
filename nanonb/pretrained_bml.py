"""The shipped Bayesian last layer on cluster descriptors: settings chosen on meta-train tasks only.

Used by :mod:`nanonb.pretrained` (``python -m nanonb.pretrained build``). The learner is a
:class:`~nanonb.learners.alpaca.BayesianMetaLearner` (ALPaCA) on an MLP over the 12 cluster
descriptors, wrapped in :class:`~nanonb.learners.descriptors.OnDescriptors` so that it takes the
structure tasks directly.

**How the settings are chosen.** Every candidate of ``config["candidates"]`` (MLP width and
meta-training budget) is scored by leave-one-element-out *inside meta-train*: for each element of the
meta-train pairs in turn, a learner is meta-trained on the meta-train pairs without that element and
scored on the meta-train pairs with it (query MAE at ``k`` shots, ``episodes`` episodes per task,
mean over tasks, then over elements). The candidate with the lowest mean MAE wins and is meta-trained
on all meta-train pairs. The held-out (test) pairs are never looked at.

Example
-------
>>> from nanonb.pretrained import BUILD_CONFIG, heldout_tasks
>>> train, _ = heldout_tasks()                                                  # doctest: +SKIP
>>> best, table = select_settings(BUILD_CONFIG["learners"]["nanoalloys-bml"], train)  # doctest: +SKIP
>>> learner = train_bml(BUILD_CONFIG["learners"]["nanoalloys-bml"], best, train)       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .learners.alpaca import BayesianMetaLearner
from .learners.bml_ensemble import BMLEnsemble
from .learners.descriptors import OnDescriptors
from .tasks import TaskSet

__all__ = ["loeo_scores", "make_bml", "make_bml_ens", "select_settings", "train_bml", "train_bml_ens"]

#: Keys of a learner entry in ``BUILD_CONFIG`` that are not BayesianMetaLearner settings.
_NOT_SETTINGS = ("algorithm", "inputs", "candidates", "selection")


def _settings(config: dict, candidate: dict) -> dict:
    """``config``'s shared BayesianMetaLearner settings updated by one ``candidate``."""
    settings = {k: v for k, v in config.items() if k not in _NOT_SETTINGS}
    settings.update(candidate)
    kw = dict(settings.get("model_kwargs", {}))
    if "hidden" in kw:
        kw["hidden"] = tuple(kw["hidden"])
    settings["model_kwargs"] = kw
    settings["k_support"] = tuple(settings.get("k_support", (0, 20)))
    return settings


def make_bml(config: dict, candidate: dict, seed: int = 0, name: str = "bml") -> OnDescriptors:
    """An unfitted :class:`OnDescriptors` ``BayesianMetaLearner`` with ``config``'s shared settings
    updated by one ``candidate`` (e.g. ``{"model_kwargs": {"hidden": [64, 64]}, "n_iterations": 250}``).

    Example
    -------
    >>> make_bml({"model": "MLP"}, {"model_kwargs": {"hidden": [8]}}).name
    'bml'
    """
    return OnDescriptors(BayesianMetaLearner(name=name, seed=seed, **_settings(config, candidate)))


def make_bml_ens(config: dict, candidate: dict, n_members: int = 5, seed: int = 0,
                 name: str = "bml-ens") -> OnDescriptors:
    """Like :func:`make_bml`, but a :class:`~nanonb.learners.bml_ensemble.BMLEnsemble` of ``n_members``
    Bayesian last layers with those settings (seeds ``seed, seed + 1, ...``; mixture predictive).

    Example
    -------
    >>> make_bml_ens({"model": "MLP"}, {"model_kwargs": {"hidden": [8]}}, n_members=2).learner.n_members
    2
    """
    return OnDescriptors(BMLEnsemble(n_members=n_members, name=name, seed=seed, **_settings(config, candidate)))


def _val_mae(learner, val: TaskSet, k: int, episodes: int, seed: int) -> float:
    """Query MAE (target units) at ``k`` shots: mean over ``episodes`` episodes, then over tasks."""
    per_task = []
    for t in val:
        errs = []
        for e in range(episodes):
            ep = val.episode(t, k, seed=seed + e)
            errs.append(np.mean(np.abs(learner.adapt(ep.support).predict(ep.query) - ep.query.targets)))
        per_task.append(np.mean(errs))
    return float(np.mean(per_task))


def loeo_scores(make: Callable[[], Any], train: TaskSet, config: dict, seed: int = 0) -> dict[str, float]:
    """Leave-one-element-out query MAE (meV/atom) inside ``train``, one entry per element.

    For each element of ``train`` in turn, ``make()`` (an unfitted learner) is fitted on the tasks
    without it and scored on the tasks with it, at ``config["selection"]["k"]`` shots over
    ``config["selection"]["episodes"]`` episodes per task (the folds of :func:`select_settings`).

    Example
    -------
    >>> cfg = BUILD_CONFIG["learners"]["nanoalloys-bml"]                       # doctest: +SKIP
    >>> loeo_scores(lambda: make_bml(cfg, cfg["candidates"]["mlp 32, 250 it."]), train, cfg)  # doctest: +SKIP
    """
    sel = config["selection"]
    k, episodes = int(sel["k"]), int(sel["episodes"])
    per_el = {}
    for el in sorted(train.all_groups):
        fit_on, val = train.split_by_group(el)
        if len(val) == 0 or len(fit_on) == 0:
            continue
        learner = make().fit(fit_on, progress=False)
        per_el[el] = round(1000.0 * _val_mae(learner, val, k, episodes, seed), 3)
    return per_el


def select_settings(config: dict, train: TaskSet, seed: int = 0,
                    log: Callable[[str], None] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Leave-one-element-out selection inside ``train``; returns ``(best candidate name, rows)``.

    ``rows``: one dict per candidate with ``mae_mev_per_atom`` per validation element and their
    ``mean`` (meV/atom, query MAE at ``config["selection"]["k"]`` shots). Only ``train`` is used.
    """
    sel = config["selection"]
    k = int(sel["k"])
    rows = []
    for cname, cand in config["candidates"].items():
        per_el = loeo_scores(lambda c=cand: make_bml(config, c, seed=seed), train, config, seed)
        mean = round(float(np.mean(list(per_el.values()))), 3)
        rows.append({"candidate": cname, "settings": cand, "mae_mev_per_atom": per_el, "mean": mean})
        if log is not None:
            log(f"    {cname:24s} validation MAE at k={k}: {mean:.2f} meV/atom  {per_el}")
    best = min(rows, key=lambda r: r["mean"])["candidate"]
    return best, rows


def train_bml(config: dict, candidate: str, train: TaskSet, seed: int = 0) -> OnDescriptors:
    """Meta-train the chosen ``candidate`` (a key of ``config["candidates"]``) on all of ``train``."""
    return make_bml(config, config["candidates"][candidate], seed=seed).fit(train, progress=False)


def train_bml_ens(config: dict, candidate: str, train: TaskSet, n_members: int = 5, seed: int = 0) -> OnDescriptors:
    """Meta-train an ensemble of ``n_members`` with the chosen ``candidate``'s settings on all of ``train``."""
    return make_bml_ens(config, config["candidates"][candidate], n_members, seed=seed).fit(train, progress=False)
