"""Network baselines, reported next to every meta-learner on the same episodes.

All share the meta-learners' verbs: ``fit(meta_train)`` then ``adapt(support)`` returning an object
with ``predict(task_or_inputs)`` in target units. (The Gaussian-process baseline is in
:mod:`nanonb.baselines.gp`.)

- :class:`Scratch`: the same network, freshly initialized, trained on the support set only.
- :class:`Pooled`: the same network trained on all meta-train points pooled together; no
  adaptation (zero-shot transfer).
- :class:`FineTune`: the pooled network fine-tuned on the support set.
- :class:`SupportMean`: predict the support mean everywhere, the floor every method must clear.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from ..learners.training import Scaler, mse, pooled_train
from ..models import build_model
from ..models.registry import missing_kwargs, model_kwargs_for
from ..tasks import Task, TaskSet


class _NetPredictor:
    def __init__(self, model: nn.Module, scaler: Scaler, cutoff: float):
        self.model, self.scaler, self.cutoff = model, scaler, cutoff

    @torch.no_grad()
    def predict(self, inputs) -> np.ndarray:
        return self.scaler.y_inv(self.model(self.scaler.x(inputs, self.cutoff)))


class _NetBaseline:
    kind = "baseline"

    def __init__(self, model: str = "InvariantGNN", model_kwargs: dict | None = None, seed: int = 0):
        self.model_name = model
        self.model_kwargs = dict(model_kwargs or {})
        self.seed = seed
        self.scaler = Scaler()
        self.fit_time_s = 0.0

    def _new_model(self, train_or_task) -> nn.Module:
        kw = dict(self.model_kwargs)
        first = train_or_task if isinstance(train_or_task, Task) else train_or_task[0]
        if missing_kwargs(self.model_name, kw):
            kw = model_kwargs_for(self.model_name, [first] if isinstance(train_or_task, Task) else train_or_task, kw)
        torch.manual_seed(self.seed)
        return build_model(self.model_name, **kw)

    def _train(self, model: nn.Module, x, y: torch.Tensor, steps: int, lr: float, prior: float = 0.0) -> nn.Module:
        """``steps`` Adam steps on the standardized-target MSE; ``prior > 0`` adds ``prior * ||w - w_start||^2``
        (a Gaussian prior centred on the starting weights: MAP fine-tuning, L2-SP)."""
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        start = [w.detach().clone() for w in model.parameters()] if prior > 0 else []
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = mse(model(x), y)
            if prior > 0:
                loss = loss + prior * sum(((w - w0) ** 2).sum() for w, w0 in zip(model.parameters(), start))
            loss.backward()
            opt.step()
        return model


class Scratch(_NetBaseline):
    """The same network trained from a fresh initialization on the support only (Adam).

    Parameters: ``steps`` Adam steps at learning rate ``lr`` on the standardized-target MSE;
    ``model``/``model_kwargs``/``seed`` as for the meta-learners. Only the target standardization
    comes from meta-train.

    Example
    -------
    >>> scratch = Scratch(model="MLP", steps=100).fit(meta_train)          # doctest: +SKIP
    >>> scratch.adapt(episode.support).predict(episode.query)              # target units  # doctest: +SKIP
    """

    name = "scratch"

    def __init__(self, steps: int = 100, lr: float = 1e-2, **kw):
        super().__init__(**kw)
        self.steps, self.lr = steps, lr

    def fit(self, train: TaskSet, **_) -> Scratch:
        self.scaler = Scaler.fit(train)  # only standardization statistics come from meta-train
        self._template = train
        return self

    def adapt(self, support: Task) -> _NetPredictor:
        model = self._new_model(self._template)
        cutoff = getattr(model, "cutoff", 0.0)
        model = self._train(model, self.scaler.x(support, cutoff), self.scaler.y(support.targets), self.steps, self.lr)
        return _NetPredictor(model, self.scaler, cutoff)


class Pooled(_NetBaseline):
    """The network trained on all meta-train points pooled (minibatch Adam); no adaptation.

    Parameters: ``epochs``, ``batch_size`` and ``lr`` of :func:`~nanonb.learners.training.pooled_train`;
    ``model``/``model_kwargs``/``seed`` as for the meta-learners.

    Example
    -------
    >>> pooled = Pooled(model_kwargs={"width": 32}, epochs=20).fit(meta_train)   # doctest: +SKIP
    >>> pooled.adapt(None).predict(task)                                         # zero-shot  # doctest: +SKIP
    """

    name = "pooled"

    def __init__(self, epochs: int = 30, batch_size: int = 32, lr: float = 2e-3, **kw):
        super().__init__(**kw)
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.model: nn.Module | None = None
        self.history: list[float] = []

    def fit(self, train: TaskSet, progress: bool = False) -> Pooled:
        t0 = time.perf_counter()
        self.scaler = Scaler.fit(train)
        self.model = self._new_model(train)
        self.history = pooled_train(self.model, train, self.scaler, self.epochs, self.batch_size, self.lr,
                                    self.seed, progress)
        self.fit_time_s = time.perf_counter() - t0
        return self

    def adapt(self, support: Task | None = None) -> _NetPredictor:
        if self.model is None:
            raise RuntimeError("Pooled baseline is not fitted: call fit(meta_train) first.")
        return _NetPredictor(self.model, self.scaler, getattr(self.model, "cutoff", 0.0))


class FineTune:
    """A fitted :class:`Pooled` network fine-tuned on the support (a copy; Adam, ``steps`` steps).

    ``prior > 0``: MAP fine-tuning, the loss gets ``prior * ||w - w_pooled||^2`` (a Gaussian prior on every
    weight centred on the pooled network's, variance ``1 / (2 prior)`` in units of the standardized-target
    MSE), so many steps on a tiny support stay near the pooled curve instead of relying on early stopping.

    Example
    -------
    >>> finetune = FineTune(pooled, steps=20, lr=1e-3)                      # doctest: +SKIP
    >>> finetune.adapt(episode.support).predict(episode.query)              # doctest: +SKIP
    """

    kind = "baseline"
    name = "pooled+finetune"

    def __init__(self, pooled: Pooled, steps: int = 20, lr: float = 1e-3, prior: float = 0.0):
        self.pooled, self.steps, self.lr, self.prior = pooled, steps, lr, float(prior)

    def fit(self, train: TaskSet, **kw) -> FineTune:
        if self.pooled.model is None:
            self.pooled.fit(train, **kw)
        return self

    def adapt(self, support: Task) -> _NetPredictor:
        p = self.pooled
        model = copy.deepcopy(p.model)
        cutoff = getattr(model, "cutoff", 0.0)
        model = p._train(model, p.scaler.x(support, cutoff), p.scaler.y(support.targets), self.steps, self.lr,
                         self.prior)
        return _NetPredictor(model, p.scaler, cutoff)


class _Constant:
    def __init__(self, value: float):
        self.value = value

    def predict(self, task) -> np.ndarray:
        return np.full(len(task), self.value)


class SupportMean:
    """Trivial few-shot reference: predict the mean of the support targets for every query point.

    A learner that does not beat it has not learned anything usable from the support set.

    Example
    -------
    >>> SupportMean().adapt(episode.support).predict(episode.query)        # doctest: +SKIP
    """

    name, kind = "support mean", "baseline"

    def fit(self, train=None, **_) -> SupportMean:
        return self

    def adapt(self, support: Task) -> _Constant:
        if support is None or len(support) == 0:
            raise ValueError("SupportMean needs at least one support point.")
        return _Constant(float(np.mean(support.targets)))


def pooled_view(train: TaskSet) -> TaskSet:
    """All meta-train points as one task (same points, same scaler statistics, same loader attributes).

    :class:`nanonb.baselines.nets.Pooled` builds a sub-task per task in every minibatch; with one merged
    task it builds one, which makes pooled pre-training ~10× faster on these tabular sets.

    Example
    -------
    >>> ts = TaskSet.from_arrays(np.ones((4, 2)), np.arange(4.0), ["a", "a", "b", "b"])
    >>> pooled_view(ts), len(pooled_view(ts)[0])
    (TaskSet(' pooled', 1 tasks, 4 points), 4)
    """
    x = np.vstack([t.inputs for t in train])
    y = np.concatenate([t.targets for t in train])
    return train.with_tasks([Task("pooled", x, y, descriptors=x[:, :1], target_name=train[0].target_name,
                                  target_unit=train[0].target_unit)], name=f"{train.name} pooled")
