"""The hyper-parameters of the MAML-family meta-learners: :class:`MetaConfig` (validated, JSON-serializable).

Example
-------
>>> MetaConfig(algorithm="maml", backend="higher").first_order
False
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._checks import check_int, check_k_range, check_positive
from .functional import BACKENDS


@dataclass
class MetaConfig:
    """Hyper-parameters of a :class:`MetaLearner` (all JSON-serializable).

    ``algorithm`` is the registered name (set by the learner class; see
    :data:`nanonb.learners.registry.LEARNERS`). ``k_support`` is the range of support sizes sampled
    during meta-training (so one learner serves 1- to 10-shot use); ``k_query`` the query size per
    training episode. ``inner_lr`` is the SGD step on the standardized-target MSE (the initial value
    for Meta-SGD). ``inner_grad_clip`` rescales each inner-loop gradient to at most this global norm
    (differentiably), which keeps deep graph networks from diverging in the inner loop.
    ``force_weight > 0`` adds a force term to every loss (inner and outer) for structure tasks whose
    structures carry forces: forces are predicted as ``-dE/dpositions`` of the model's extensive
    energy (conservative by construction), in standardized units ``F / y_std`` (per Å). Not for ANIL,
    whose inner loop never sees positions. ``pretrain_epochs > 0`` first trains the network on all
    meta-train points pooled (as the pooled baseline does), then meta-trains from there.
    ``center="support"`` adapts around the support mean (per-task standardization): the inner loop fits
    the support targets minus their mean with the network's support predictions minus theirs, and a
    query is predicted as ``f(x) - mean_s f + mean_s y``, so the task's offset never has to be learned
    by gradient steps (at K = 1 the prediction is the support value plus the network's difference);
    targets are then divided by the pooled within-task standard deviation of meta-train (not the
    overall one, which the task offsets inflate), so ``inner_lr`` acts on the within-task variation.
    ``adapt_steps``: inner steps of :meth:`MetaLearner.adapt` at test time (``None``: ``inner_steps``);
    more steps than in meta-training let the adapted model fit its support. ``backend``: ``"func"``
    (:mod:`nanonb.learners.functional`, ``torch.func``, ``vmap`` over tabular meta-batches; faster) or
    ``"higher"`` (the reference); both give the same gradients. ``device``: where the network and the
    episode tensors live (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Example
    -------
    >>> MetaConfig(algorithm="anil", inner_lr=0.1).first_order
    False
    """

    algorithm: str = "fomaml"
    model: str = "InvariantGNN"
    model_kwargs: dict = field(default_factory=dict)
    inner_lr: float = 0.05
    inner_steps: int = 5
    outer_lr: float = 2e-3
    meta_batch_size: int = 4
    k_support: tuple[int, int] = (1, 10)
    k_query: int = 15
    n_iterations: int = 200
    first_order: bool | None = None
    val_every: int = 25
    val_episodes: int = 4
    grad_clip: float = 10.0
    inner_grad_clip: float | None = None
    force_weight: float = 0.0
    pretrain_epochs: int = 0
    center: str = "none"
    adapt_steps: int | None = None
    seed: int = 0
    backend: str = "func"
    device: str = "cpu"

    def __post_init__(self) -> None:
        """Validate every field up front (errors name the field, the value and the fix)."""
        own = "MetaConfig"
        self.k_support = check_k_range(own, self.k_support, 1, " Meta-training episodes need at least one support "
                                       "point to adapt on (zero-shot use is adapt(None)).")  # type: ignore[assignment]
        for name, minimum in (("k_query", 1), ("inner_steps", 0), ("meta_batch_size", 1), ("n_iterations", 0),
                              ("val_every", 1), ("val_episodes", 1), ("pretrain_epochs", 0)):
            setattr(self, name, check_int(own, name, getattr(self, name), minimum))
        lr_hint = " It is a step size, e.g. {}=0.01."
        for name in ("inner_lr", "outer_lr", "grad_clip"):
            check_positive(own, name, getattr(self, name), hint=lr_hint.format(name) if "lr" in name else "")
        if self.inner_grad_clip is not None:
            check_positive(own, "inner_grad_clip", self.inner_grad_clip, hint=" (None: no inner-loop clipping)")
        check_positive(own, "force_weight", self.force_weight, allow_zero=True)
        if self.backend not in BACKENDS:
            raise ValueError(f"MetaConfig.backend must be one of {BACKENDS}, got {self.backend!r}.")
        if self.center not in ("none", "support"):
            raise ValueError(f"MetaConfig.center must be 'none' or 'support', got {self.center!r}.")
        if self.first_order is None:
            self.first_order = self.algorithm == "fomaml"
        if self.algorithm == "fomaml" and not self.first_order:
            raise ValueError("fomaml is first order by definition; use algorithm='maml' for second order")


