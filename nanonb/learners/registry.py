"""Learner registry: algorithm name -> class, :func:`make_learner` and :func:`load`.

==========  ==========================================
name        class
==========  ==========================================
``maml``    :class:`~nanonb.learners.maml.MAML` (``first_order=False``)
``fomaml``  :class:`~nanonb.learners.maml.MAML` (``first_order=True``)
``anil``    :class:`~nanonb.learners.anil.ANIL`
``metasgd`` :class:`~nanonb.learners.metasgd.MetaSGD`
``bml``     :class:`~nanonb.learners.alpaca.BayesianMetaLearner` (registers itself)
``ensemble`` :class:`~nanonb.learners.ensemble.EnsembleMetaLearner` (registers itself)
``vtf-prior`` :class:`~nanonb.learners.vtfprior.VTFPriorLearner` (imported on first use, :data:`LAZY`)
``stack``   :class:`~nanonb.learners.stack.StackLearner` (imported on first use, :data:`LAZY`)
==========  ==========================================

:data:`ALGORITHMS` are the gradient-based algorithms (the values of ``MetaConfig.algorithm``);
:data:`LEARNERS` holds every registered name. ``bml`` and ``ensemble`` live above this module
(the ensemble builds its members with :func:`make_learner`) and register themselves with the
:func:`register_learner` decorator; ``nanonb/learners/__init__.py`` imports them, so any import of
``nanonb.learners.*`` (this module included) sees them, whatever the import order.

A saved learner's JSON stores its registered name (``algorithm``, top level or in ``config``);
:func:`load` builds the class registered under that name from the saved config and restores its
state, so saved files never name a Python class path.

Example
-------
>>> from nanonb.learners.registry import load, make_learner
>>> learner = make_learner("anil", model="MLP", n_iterations=100)   # doctest: +SKIP
>>> learner.fit(meta_train).save("runs/anil")                       # doctest: +SKIP
>>> again = load("runs/anil")                                       # an ANIL again  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .._io import load_state
from .anil import ANIL
from .base import MetaConfig
from .maml import MAML
from .metasgd import MetaSGD

#: Registered learners: name -> factory ``(config=None, **overrides) -> learner``.
LEARNERS: dict[str, Callable[..., Any]] = {
    "maml": partial(MAML, first_order=False),
    "fomaml": partial(MAML, first_order=True),
    "anil": ANIL,
    "metasgd": MetaSGD,
}
#: The gradient-based algorithms (values of ``MetaConfig.algorithm``).
ALGORITHMS = tuple(LEARNERS)
#: Learners that register themselves when their module is imported, imported on first use by name
#: (they sit above the baselines, which this package's modules are imported by).
LAZY = {"vtf-prior": "nanonb.learners.vtfprior", "stack": "nanonb.learners.stack"}


def register_learner(name: str, factory: Callable[..., Any] | None = None):
    """Register a learner class (or factory) under ``name`` for :func:`make_learner` and :func:`load`.

    ``factory(config=None, **overrides)`` builds a new learner; its instances have
    ``load_state(meta, tensors) -> self``. Without ``factory`` it is a class decorator.

    Example
    -------
    >>> @register_learner("my-bml")                                   # doctest: +SKIP
    ... class MyBML(BayesianMetaLearner): ...
    """
    if factory is None:
        def decorate(cls):
            LEARNERS[name] = cls
            return cls
        return decorate
    LEARNERS[name] = factory
    return factory


def make_learner(name: str | None = None, config: Any = None, **overrides: Any):
    """A new learner registered as ``name`` from its config and/or keyword overrides.

    Without ``name``: ``overrides["algorithm"]``, then ``config.algorithm``, then
    :class:`MetaConfig`'s default (``fomaml``). With ``name``, ``algorithm`` stays an override (the
    ensemble's member algorithm: ``make_learner("ensemble", algorithm="anil", n_members=3)``).

    Example
    -------
    >>> make_learner("anil", model="MLP", model_kwargs={"n_in": 2, "hidden": (4,)}).name
    'anil'
    >>> type(make_learner("bml", model="MLP", model_kwargs={"n_in": 2, "hidden": (4,)})).__name__
    'BayesianMetaLearner'
    """
    if name is None:
        given = overrides.pop("algorithm", None)
        name = given or getattr(config, "algorithm", None) or MetaConfig.algorithm
    if name not in LEARNERS and name in LAZY:
        importlib.import_module(LAZY[name])
    if name not in LEARNERS:
        raise ValueError(f"algorithm must be one of {tuple(dict.fromkeys([*LEARNERS, *LAZY]))}, not {name!r}")
    return LEARNERS[name](config=config, **overrides)


def load(path: str | Path, device: str | None = None):
    """Load any registered learner saved with its ``save(path)`` (``<path>.json`` + ``<path>.pt``).

    The class comes from the saved name (``algorithm`` at the top level of the JSON, else in its
    ``config``); tensors are read with ``torch.load(weights_only=True)`` (no pickle). ``device``
    overrides the saved ``config.device`` of a MAML-family learner; a learner trained on a GPU loads
    on the CPU when no GPU is present.

    Example
    -------
    >>> learner = load("runs/anil")          # a MAML / ANIL / MetaSGD / BML, as saved  # doctest: +SKIP
    """
    meta, tensors = load_state(path)
    cfg = dict(meta["config"])
    name = meta.get("algorithm") or cfg.get("algorithm")
    if name is None:
        raise ValueError(f"{path}: the saved learner names no algorithm; registered: {tuple(LEARNERS)}")
    if "device" in cfg and (device is not None or str(cfg["device"]).startswith("cuda")):
        cfg["device"] = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return make_learner(name, **cfg).load_state(meta, tensors)
