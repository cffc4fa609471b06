"""The methods of the ``nanoalloys`` protocol: graph-network and descriptor learners, and meta-validation.

Two input views of the same tasks (same points, same order, so the same episodes):

- the MAML family (MAML, FOMAML, ANIL, Meta-SGD) and the network baselines see the *structures*
  (graph network, :mod:`nanonb.models.gnn`);
- the Bayesian last layer (``bml``, ALPaCA), an ensemble of them (``bml-ens``), deep kernel
  transfer (``dkt``) and the deep ensemble
  (``ensemble``) see the 12 cluster *descriptors* through an MLP. :class:`OnDescriptors` lets them
  take structure-task episodes: it swaps the inputs for the descriptors before every call.

:func:`meta_validate` scores fitted learners on validation tasks split from meta-train (never the
meta-test tasks). Errors in the tasks' target units (eV/atom for the nanoalloys).

Example
-------
>>> from nanonb.learners.alpaca import BayesianMetaLearner
>>> bml = OnDescriptors(BayesianMetaLearner(model="MLP", n_iterations=200))   # doctest: +SKIP
>>> bml.fit(meta_train).adapt(episode.support).predict(episode.query)       # eV/atom  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluation import evaluate
from ..learners.alpaca import BayesianMetaLearner
from ..learners.bml_ensemble import BMLEnsemble
from ..learners.descriptors import OnDescriptors
from ..learners.dkt import DKT
from ..learners.ensemble import EnsembleMetaLearner
from ..learners.registry import make_learner
from ..tasks import TaskSet

#: The learners on descriptors, in table order.
DESCRIPTOR_LEARNERS = ("bml", "bml-ens", "dkt", "ensemble")


def graph_learner(cfg, algo: str, pooled_model=None):
    """An unfitted MAML-family learner ``algo`` on structures with the protocol's settings (``cfg`` a
    :class:`~nanonb.bench.nanoalloys.NanoalloyConfig`), warm-started from ``pooled_model`` if given."""
    learner = make_learner(algo, model_kwargs=cfg.model_kwargs, n_iterations=cfg.iterations[algo],
                           inner_lr=cfg.inner_lr[algo], inner_steps=cfg.inner_steps, outer_lr=cfg.outer_lr,
                           meta_batch_size=cfg.meta_batch_size, inner_grad_clip=cfg.inner_grad_clip,
                           center=cfg.center, seed=cfg.seed)
    if cfg.warm_start and pooled_model is not None:
        learner.warm_start(pooled_model)
    return learner


def descriptor_learner(cfg, name: str) -> OnDescriptors:
    """An unfitted descriptor learner ``name`` (``bml``, ``bml-ens``, ``dkt`` or ``ensemble``) with the protocol's
    settings.

    ``bml``: ALPaCA on an MLP (64, 64), the settings of notebook 05; ``bml-ens``: ``cfg.bml_members`` of them
    (seeds ``seed, seed + 1, ...``) with a mixture predictive (:class:`BMLEnsemble`); ``dkt``: :class:`DKT` defaults
    (chosen by nested selection on meta-train elements); ``ensemble``: ANIL members on the same MLP.
    """
    hidden = {"hidden": tuple(cfg.descriptor_hidden)}
    if name == "bml":
        learner = BayesianMetaLearner(model="MLP", model_kwargs=hidden, n_iterations=cfg.iterations.get("bml", 250),
                                      meta_batch_size=8, k_support=(0, 20), seed=cfg.seed)
    elif name == "bml-ens":
        learner = BMLEnsemble(n_members=cfg.bml_members, model="MLP", model_kwargs=hidden,
                              n_iterations=cfg.iterations.get("bml-ens", 250), meta_batch_size=8, k_support=(0, 20),
                              seed=cfg.seed)
    elif name == "dkt":
        learner = DKT(n_iterations=cfg.iterations.get("dkt", 200), seed=cfg.seed)
    elif name == "ensemble":
        learner = EnsembleMetaLearner(n_members=cfg.ensemble_members, algorithm="anil", model="MLP",
                                      model_kwargs=hidden, n_iterations=cfg.iterations.get("ensemble", 80),
                                      inner_lr=0.1, seed=cfg.seed)
    else:
        raise ValueError(f"descriptor learner must be one of {DESCRIPTOR_LEARNERS}, not {name!r}")
    return OnDescriptors(learner, name)


def meta_validate(learners: Sequence, val: TaskSet, k: int = 5, n_episodes: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean MAE (target units) at ``k`` shots on the validation tasks ``val`` for every fitted learner.

    ``val`` must come from meta-train (e.g. the pairs of one meta-train element that the learners were
    not trained on); the protocol never passes meta-test tasks here. Episodes are seeded apart from the
    test episodes (``seed + 7919``).

    Example
    -------
    >>> meta_validate([bml, anil], val, k=5)        # {"bml": 0.021, "anil": 0.035}  # doctest: +SKIP
    """
    df = evaluate(learners, val, shots=(k,), n_episodes=n_episodes, seed=seed + 7919, progress=False,
                  metrics=("mae",), desc="meta-validation")
    per_task = df.groupby(["method", "task"], sort=False)["mae"].mean()
    return {m: float(per_task[m].mean()) for m in dict.fromkeys(df["method"])}
