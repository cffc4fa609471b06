"""Learner registry: algorithm name -> class, :func:`make_learner` and :func:`load`.

==========  ==========================================
name        class
==========  ==========================================
``maml``    :class:`~nanonb.learners.maml.MAML` (``first_order=False``)
``fomaml``  :class:`~nanonb.learners.maml.MAML` (``first_order=True``)
``anil``    :class:`~nanonb.learners.anil.ANIL`
``metasgd`` :class:`~nanonb.learners.metasgd.MetaSGD`
==========  ==========================================

A saved learner's JSON stores ``config.algorithm``; :func:`load` builds the class registered under
that name, so saved files never name a Python class path.

Example
-------
>>> from nanonb.learners.registry import load, make_learner
>>> learner = make_learner("anil", model="MLP", n_iterations=100)   # doctest: +SKIP
>>> learner.fit(meta_train).save("runs/anil")                       # doctest: +SKIP
>>> again = load("runs/anil")                                       # an ANIL again  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .._io import load_state
from .anil import ANIL
from .base import MetaConfig, MetaLearner
from .maml import MAML
from .metasgd import MetaSGD

#: Registered algorithms: name -> factory ``(config, **overrides) -> MetaLearner``.
LEARNERS: dict[str, Callable[..., MetaLearner]] = {
    "maml": partial(MAML, first_order=False),
    "fomaml": partial(MAML, first_order=True),
    "anil": ANIL,
    "metasgd": MetaSGD,
}
ALGORITHMS = tuple(LEARNERS)


def register_learner(name: str, factory: Callable[..., MetaLearner]) -> None:
    """Register a learner class (or factory) under ``name`` for :func:`make_learner` and :func:`load`."""
    LEARNERS[name] = factory


def make_learner(name: str | None = None, config: MetaConfig | None = None, **overrides: Any) -> MetaLearner:
    """A new learner of algorithm ``name`` from a :class:`MetaConfig` and/or keyword overrides.

    ``name`` defaults to ``overrides["algorithm"]``, then to ``config.algorithm``, then to
    :class:`MetaConfig`'s default (``fomaml``).
    """
    given = overrides.pop("algorithm", None)
    name = name or given or (config.algorithm if config is not None else MetaConfig.algorithm)
    if name not in LEARNERS:
        raise ValueError(f"algorithm must be one of {tuple(LEARNERS)}, not {name!r}")
    return LEARNERS[name](config, **overrides)


def load(path: str | Path) -> MetaLearner:
    """Load a learner saved by :meth:`MetaLearner.save <nanonb.learners.base.MetaLearner.save>`.

    The class comes from the saved ``config.algorithm``; tensors are read with
    ``torch.load(weights_only=True)`` (no pickle).
    """
    meta, tensors = load_state(path)
    learner = make_learner(config=MetaConfig(**meta["config"]))
    return learner.load_state(meta, tensors)
