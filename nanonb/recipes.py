"""Ready-made learners for your own table: :func:`conductivity` and :func:`ranking`.

Each recipe returns an ordinary learner (``fit(meta_train)``, ``adapt(support).predict(x)``; ``predict_dist``
where the method has one) with the settings of nanonb's case studies as visible, documented arguments, so
nothing is hard-coded and nothing private is imported. Build the task set with
:meth:`TaskSet.from_frame <nanonb.tasks.TaskSet.from_frame>` (``roles=`` / ``units=`` for the temperature,
the concentration and a conductivity target), split it with ``group_kfold(key=...)`` and evaluate with
:func:`nanonb.evaluation.evaluate` (``seeds=range(20)`` for episodes you can re-create by hand).

Example
-------
>>> from nanonb import TaskSet, recipes, evaluate, summarize                            # doctest: +SKIP
>>> ts = TaskSet.from_frame(df, task="system", features=["frac_EC"], target="log_sigma", groups="salt",
...                         roles={"temperature": "T_C", "concentration": "molality"},
...                         units={"temperature": "degC", "concentration": "mol/kg",
...                                "target": "log10 S/cm"})                              # doctest: +SKIP
>>> train, test = ts.group_kfold(5, key="salt")[0]                                     # doctest: +SKIP
>>> learner = recipes.conductivity().fit(train)                                        # doctest: +SKIP
>>> summarize(evaluate([learner], test, shots=(5,), seeds=range(20)), "mae")           # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .baselines.nets import FineTune, Pooled, pooled_view
from .baselines.tabular import PooledRecalibration, PooledTrees, SupportRF
from .learners.registry import make_learner
from .learners.stack import StackPredictor
from .physics.vtfnet import vtf_model_kwargs
from .tasks import Task, TaskSet

__all__ = ["CONDUCTIVITY_METHODS", "PooledVTFFineTune", "RANKING_METHODS", "conductivity", "ranking"]

#: Methods of :func:`conductivity`.
CONDUCTIVITY_METHODS = ("pooled-finetune", "vtf-prior", "fomaml")
#: Methods of :func:`ranking`.
RANKING_METHODS = ("rf-support", "pooled-gbm+recal", "fomaml")


class PooledVTFFineTune:
    """VTF networks trained on all meta-train points pooled, then fine-tuned on each support (Adam).

    The ``pooled-vtf+finetune`` control of the CALiSol benchmark with its settings as arguments:
    ``hidden`` widths, ``mask_prefixes`` (feature names hidden from the body), ``epochs`` / ``batch_size``
    of the pooled training, ``steps`` / ``lr`` of the fine-tune. ``n_members > 1`` makes it an ensemble
    (``ft-ens`` in the CALiSol bench): networks pooled with seeds ``seed, seed + 1, ...`` (member 0 is the
    single-network learner), each fine-tuned on the support, predictions averaged; ``predict_dist`` then
    gives the members' spread (:class:`~nanonb.learners.stack.StackPredictor`, ``scale="mean"``). Averaging
    removes the part of the error that depends on the pooled network's random initialisation, which a
    five-point support cannot correct. ``prior > 0`` makes the fine-tune a MAP fit
    (:class:`~nanonb.baselines.nets.FineTune` ``prior``): the loss gets ``prior * ||w - w_pooled||^2``, a
    Gaussian prior on every weight centred on the pooled network, so more ``steps`` fit the support without
    leaving the pooled curve (``ft-map`` in the CALiSol bench: ``steps=200, prior=0.03``).

    Example
    -------
    >>> PooledVTFFineTune(steps=50, lr=3e-3).name, PooledVTFFineTune(n_members=3).name
    ('pooled-vtf+finetune', 'ft-ens')
    >>> PooledVTFFineTune(steps=200, prior=0.03).name
    'ft-map'
    """

    kind = "baseline"

    def __init__(self, hidden: tuple[int, ...] = (32, 32), mask_prefixes: tuple[str, ...] = (), epochs: int = 40,
                 batch_size: int = 128, steps: int = 50, lr: float = 3e-3, seed: int = 0, n_members: int = 1,
                 prior: float = 0.0):
        if int(n_members) < 1:
            raise ValueError(f"n_members must be >= 1, not {n_members}")
        if not float(prior) >= 0.0:
            raise ValueError(f"prior is the weight-prior strength (>= 0; 0 = plain fine-tune), not {prior}")
        self.prior = float(prior)
        self.hidden, self.mask_prefixes = tuple(hidden), tuple(mask_prefixes)
        self.epochs, self.batch_size, self.steps, self.lr, self.seed = epochs, batch_size, steps, lr, seed
        self.n_members = int(n_members)
        self.name = "pooled-vtf+finetune" if self.n_members == 1 else "ft-ens"
        if self.prior > 0:
            self.name = "ft-map" if self.n_members == 1 else "ft-map-ens"
        self.members: list[Pooled] = []

    @property
    def pooled(self) -> Pooled | None:
        """The first pooled network (seed ``seed``; None before ``fit``)."""
        return self.members[0] if self.members else None

    def fit(self, train: TaskSet, progress: bool = False, **_) -> PooledVTFFineTune:
        kw = vtf_model_kwargs(train, hidden=self.hidden, mask_prefixes=self.mask_prefixes)
        self.members = [Pooled(model="VTFNet", model_kwargs=kw, epochs=self.epochs, batch_size=self.batch_size,
                               seed=self.seed + i).fit(pooled_view(train), progress=progress)
                        for i in range(self.n_members)]
        return self

    def adapt(self, support: Task | None):
        """The fine-tuned copies (``support=None``: the pooled networks); ``.predict(x)`` in log10 mS/cm."""
        if not self.members:
            raise RuntimeError("Not fitted: call fit(meta_train) first.")
        if support is None or len(support) == 0:
            adapted = [p.adapt(None) for p in self.members]
        else:
            adapted = [FineTune(p, steps=self.steps, lr=self.lr, prior=self.prior).adapt(support)
                       for p in self.members]
        if len(adapted) == 1:
            return adapted[0]
        return StackPredictor(adapted, np.full(len(adapted), 1.0 / len(adapted)), "mean")

    def predict(self, inputs, support: Task | None = None):
        return self.adapt(support).predict(inputs)


def conductivity(method: str = "pooled-finetune", hidden: tuple[int, ...] = (32, 32),
                 mask_prefixes: tuple[str, ...] = (), epochs: int = 40, finetune_steps: int = 50,
                 finetune_lr: float = 3e-3, meta_iterations: int = 200, adapt_steps: int = 100, seed: int = 0,
                 n_members: int = 1, finetune_prior: float = 0.0):
    """A learner for few-shot ionic conductivity (targets in log10 mS/cm, inputs with a temperature column).

    Methods (all on a :class:`~nanonb.physics.vtfnet.VTFNet`, the Vogel-Tammann-Fulcher law as the head):

    - ``"pooled-finetune"`` (default): pooled network fine-tuned on the support (:class:`PooledVTFFineTune`,
      ``finetune_steps`` Adam steps at ``finetune_lr``). On CALiSol-23 leave-salt-out (``calisol-narrow``
      protocol, K = 5) it ties ``fomaml`` on random supports (0.104 vs 0.101 log10 mS/cm), is best on
      one-temperature supports (0.182) and needs no meta-training. ``n_members > 1``: an ensemble of that
      many pooled networks (seeds ``seed, seed + 1, ...``), each fine-tuned, predictions averaged.
      ``finetune_prior > 0``: MAP fine-tune under a Gaussian prior centred on the pooled weights; the
      CALiSol bench's ``ft-map`` is ``finetune_steps=200, finetune_prior=0.03`` (0.096 / 0.080 at K = 5 / 10
      against 0.100 / 0.086 for the plain fine-tune, README).
    - ``"vtf-prior"``: pooled network + MAP adaptation of the VTF head under an empirical-Bayes prior
      (:class:`~nanonb.learners.vtfprior.VTFPriorLearner`); falls back to the meta-learned curve when the
      support spans one temperature; has ``predict_dist``.
    - ``"fomaml"``: FOMAML from the pooled network (``epochs`` of pre-training, ``meta_iterations``
      meta-updates, 10 inner steps at 0.05 with gradient clip 2, ``adapt_steps`` SGD steps at test time).

    ``hidden``: body widths; ``mask_prefixes``: feature-name prefixes hidden from the body (e.g.
    ``("anion_",)`` when few salts would let the body memorise them); ``seed``: every model's seed.

    Example
    -------
    >>> type(conductivity()).__name__, type(conductivity("vtf-prior")).__name__
    ('PooledVTFFineTune', 'VTFPriorLearner')
    """
    if method == "vtf-prior":
        return make_learner("vtf-prior", hidden=tuple(hidden), epochs=epochs, mask_prefixes=tuple(mask_prefixes),
                            seed=seed)
    if method == "pooled-finetune":
        return PooledVTFFineTune(hidden, mask_prefixes, epochs, steps=finetune_steps, lr=finetune_lr, seed=seed,
                                 n_members=n_members, prior=finetune_prior)
    if method == "fomaml":
        return make_learner("fomaml", model="VTFNet",
                            model_kwargs={"hidden": list(hidden), "mask_prefixes": list(mask_prefixes)},
                            inner_lr=0.05, inner_steps=10, inner_grad_clip=2.0, outer_lr=1e-3, meta_batch_size=8,
                            k_support=(3, 12), k_query=32, n_iterations=meta_iterations, pretrain_epochs=epochs,
                            adapt_steps=adapt_steps, seed=seed)
    raise ValueError(f"conductivity(method={method!r}): use one of {CONDUCTIVITY_METHODS}.")


def ranking(method: str = "rf-support", n_estimators: int = 100, gbm_iter: int = 300,
            hidden: tuple[int, ...] = (64, 64), epochs: int = 20, meta_iterations: int = 150, adapt_steps: int = 50,
            seed: int = 0):
    """A learner that ranks a task's candidates from a few measured ones (e.g. LNP formulations by efficacy).

    Methods, best first on LNPDB leave-study-out (Spearman rho, see the README):

    - ``"rf-support"`` (default): a random forest of ``n_estimators`` trees on the support alone.
    - ``"pooled-gbm+recal"``: gradient boosting (``gbm_iter`` trees) on all meta-train points, linearly
      recalibrated on the support.
    - ``"fomaml"``: FOMAML on an MLP (``hidden``) pre-trained ``epochs`` on the pooled points,
      ``meta_iterations`` meta-updates, ``adapt_steps`` SGD steps at test time.

    Example
    -------
    >>> type(ranking()).__name__, type(ranking("pooled-gbm+recal")).__name__
    ('SupportRF', 'PooledRecalibration')
    """
    if method == "rf-support":
        return SupportRF(n_estimators=n_estimators, seed=seed)
    if method == "pooled-gbm+recal":
        return PooledRecalibration(PooledTrees("gbm", max_iter=gbm_iter, seed=seed))
    if method == "fomaml":
        return make_learner("fomaml", model="MLP", model_kwargs={"hidden": list(hidden)}, inner_lr=0.05,
                            inner_steps=10, inner_grad_clip=2.0, outer_lr=1e-3, meta_batch_size=8, k_support=(5, 35),
                            k_query=64, n_iterations=meta_iterations, pretrain_epochs=epochs, adapt_steps=adapt_steps,
                            seed=seed)
    raise ValueError(f"ranking(method={method!r}): use one of {RANKING_METHODS}.")
