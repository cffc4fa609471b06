"""The shared machinery of the gradient-based meta-learners: config, inner loop, fit, adapt, save.

Every algorithm (:class:`~nanonb.learners.maml.MAML`, :class:`~nanonb.learners.anil.ANIL`,
:class:`~nanonb.learners.metasgd.MetaSGD`) is a subclass of :class:`MetaLearner` that overrides a
few hooks; nothing here branches on the algorithm name:

============  ===================  ==========================  ==========================
algorithm     adapted parameters   meta-gradient               inner learning rate
============  ===================  ==========================  ==========================
``maml``      all                  second order (through SGD)  fixed scalar
``fomaml``    all                  first order (query grad at  fixed scalar
                                   the adapted weights)
``anil``      head only            second order                fixed scalar
``metasgd``   all                  second order (or first)     learned, one per weight
============  ===================  ==========================  ==========================

The inner loop (:meth:`MetaLearner._inner_loop`): starting from the meta-learned initial weights,
``inner_steps`` SGD steps on the support loss with the clip / first-order rule of
:mod:`nanonb.learners.inner`. ``backend="func"`` (default) runs it with ``torch.func``
(:mod:`nanonb.learners.functional`; tabular meta-batches of the plain MLP as one batched ``bmm``
computation, :mod:`nanonb.learners.batched`, other tabular models as one ``vmap``); ``backend="higher"`` on
``higher.innerloop_ctx`` with :func:`~nanonb.learners.inner.prepare_grads` as its gradient callback
(the reference: same gradients, slower).
Targets (and tabular inputs) are standardized with meta-train statistics (:class:`Scaler`);
predictions are returned in the task's own units. ``adapt`` never touches the meta-weights: it works
on a ``higher``-patched copy whose fast weights are detached.

Build learners by name with :func:`nanonb.learners.registry.make_learner` and load saved ones with
:func:`nanonb.learners.registry.load`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import higher
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import physics  # noqa: F401  (registers TBGapNet and VTFNet: saved learners load in any import order)
from .._io import save_state
from ..graphs import DEFAULT_CUTOFF, GraphBatch
from ..models import build_model
from ..models.registry import check_input_kind, missing_kwargs, model_kwargs_for
from ..tasks import Task, TaskSet, sample_episode
from ._checks import all_finite, check_finite_tensors, check_int, check_positive
from .adapted import AdaptedModel
from .config import MetaConfig
from .functional import FunctionalModule, inner_loop, meta_batch
from .inner import prepare_grads
from .sharding import all_reduce_sum, rank_world
from .task_cache import TaskTensors
from .training import Scaler, mse, pooled_train, predict_energy_forces

FORMAT_VERSION = 1


# ---------------------------------------------------------------------- meta-learner
class MetaLearner:
    """Base class of the MAML-family meta-learners, with scikit-learn-like verbs.

    Subclasses set ``algorithm`` (the registered name) and override the hooks: ``head_only`` and
    :meth:`_adapted_module` / :meth:`_inner_input` / :meth:`_query_pred` (ANIL),
    :meth:`_inner_optimizer` / :meth:`_extra_parameters` / :meth:`_after_outer_step` (Meta-SGD),
    :meth:`_episode_loss` (first-order MAML). Not instantiated directly: use a subclass or
    :func:`nanonb.learners.registry.make_learner`.

    Example
    -------
    >>> from nanonb.learners.registry import make_learner
    >>> learner = make_learner("anil", model="MLP", n_iterations=200)   # doctest: +SKIP
    >>> learner.fit(meta_train, val=meta_val)                           # doctest: +SKIP
    >>> adapted = learner.adapt(episode.support)                        # doctest: +SKIP
    >>> adapted.predict(episode.query)                                  # target units  # doctest: +SKIP
    """

    kind = "meta"
    algorithm: str | None = None
    #: Only the head is adapted (the inner loop sees body features, never positions).
    head_only = False
    #: Standardized tensors of the meta-train tasks while :meth:`fit` runs (reassigned, never mutated).
    _task_tensors: dict = {}

    def __init__(self, config: MetaConfig | None = None, **overrides: Any):
        if self.algorithm is None:
            raise TypeError("MetaLearner is the base class: use make_learner(name, ...) from "
                            "nanonb.learners.registry, or MAML / ANIL / MetaSGD")
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        cfg["algorithm"] = self._algorithm_name(cfg)
        self.config = MetaConfig(**cfg)
        self.model: nn.Module | None = None
        self.inner_lrs = nn.ParameterList()
        self.cutoff = DEFAULT_CUTOFF
        if not missing_kwargs(self.config.model, self.config.model_kwargs):
            self._build()  # else built at fit, its missing arguments filled from the meta-train tasks
        self.scaler = Scaler()
        self.history: dict[str, list] = {"iteration": [], "train_loss": [], "val_iteration": [], "val_loss": []}
        self.fit_time_s = 0.0

    def _algorithm_name(self, cfg: dict) -> str:
        """The name stored in the config (MAML: ``maml`` or ``fomaml`` by its first-order flag)."""
        return self.algorithm

    def _build(self, n_in: int | None = None) -> None:
        """Create the network (MLP input width inferred from the data when not given)."""
        if n_in is not None:
            self.config.model_kwargs = {**self.config.model_kwargs, "n_in": int(n_in)}
        torch.manual_seed(self.config.seed)
        self.model = build_model(self.config.model, **self.config.model_kwargs).to(self.config.device)
        self.cutoff = getattr(self.model, "cutoff", DEFAULT_CUTOFF)
        self._extra_parameters()

    def _extra_parameters(self) -> None:
        """Create algorithm parameters besides the network's (Meta-SGD: per-weight step sizes)."""

    @property
    def name(self) -> str:
        return self.config.algorithm

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.algorithm}, model={self.config.model}{self.config.model_kwargs})"

    # ---------------------------------------------------------------- inner loop hooks
    def _adapted_module(self) -> nn.Module:
        """The module whose parameters the inner loop adapts."""
        return self.model

    def _inner_input(self, x, track: bool):
        """What the adapted module sees (ANIL: body features)."""
        return x

    def _step_sizes(self, lr: float | None):
        """Inner step size: ``lr``, else ``inner_lr`` (Meta-SGD: its learned per-weight tensors, a list)."""
        return self.config.inner_lr if lr is None else lr

    def _inner_optimizer(self, params: list, lr: float | None):
        """``(torch optimizer, higher override)`` of the ``higher`` inner loop, from :meth:`_step_sizes`."""
        sizes = self._step_sizes(lr)
        if isinstance(sizes, list):
            return torch.optim.SGD([{"params": [p]} for p in params], lr=self.config.inner_lr), {"lr": sizes}
        return torch.optim.SGD(params, lr=sizes), None

    def _query_pred(self, fmodel, x_q):
        """Predictions of the adapted module on query inputs (standardized units)."""
        return fmodel(x_q)

    def _inner_loop(self, x_s, y_s: torch.Tensor, steps: int, lr: float | None, track: bool):
        """Run the inner SGD loop from the meta-weights; returns the patched module.

        With ``track=True`` the returned module's fast weights are differentiable functions of the
        meta-parameters (and of the learned step sizes for Meta-SGD). ``backend="func"``:
        :func:`nanonb.learners.functional.inner_loop` (same steps, a :class:`FunctionalModule`).
        """
        if self.config.backend == "func":
            return inner_loop(self, x_s, y_s, steps, lr, track)
        module = self._adapted_module()
        inp = self._inner_input(x_s, track)
        opt, override = self._inner_optimizer(list(module.parameters()), lr)
        first_order = track and bool(self.config.first_order)
        clip = self.config.inner_grad_clip

        def grad_callback(grads):
            return prepare_grads(grads, clip=clip, first_order=first_order)

        with higher.innerloop_ctx(module, opt, copy_initial_weights=False, track_higher_grads=track,
                                  override=override) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(self._loss(fmodel, inp, y_s), grad_callback=grad_callback)
        return fmodel

    def _use_forces(self, x) -> bool:
        return (self.config.force_weight > 0 and not self.head_only
                and isinstance(x, GraphBatch) and x.forces is not None)

    def _centred(self, pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pred, y)`` minus their means with ``center="support"`` (the inner loss), else unchanged."""
        if self.config.center == "support":
            return pred - pred.mean(), y - y.mean()
        return pred, y

    def _loss(self, fmodel, x, y: torch.Tensor) -> torch.Tensor:
        """MSE on standardized targets (support-centred with ``center="support"``), plus the weighted
        force MSE when forces are used. This is the inner-loop (support) loss."""
        if self._use_forces(x):
            pred, f_pred = predict_energy_forces(fmodel, x)
            f_true = x.forces / self.scaler.y_std
            return mse(*self._centred(pred, y)) + self.config.force_weight * mse(f_pred, f_true)
        out = fmodel(x)
        return mse(*self._centred(out.squeeze(-1) if out.dim() > 1 else out, y))

    def _anchor(self, fmodel, x_s, y_s: torch.Tensor) -> torch.Tensor | float:
        """Offset added to query predictions (standardized units): ``mean_s y - mean_s f`` with
        ``center="support"`` (adapt around the support mean), else 0."""
        if self.config.center != "support" or len(y_s) == 0:
            return 0.0
        return y_s.mean() - self._query_pred(fmodel, x_s).reshape(-1).mean()

    def _query_loss(self, fmodel, x_q, y_q: torch.Tensor, anchor: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Query MSE (standardized) of the adapted module, shifted by the support ``anchor``."""
        if self.config.center != "support":
            return self._loss(fmodel, x_q, y_q)
        loss = mse(self._query_pred(fmodel, x_q).reshape(-1) + anchor, y_q)
        if self._use_forces(x_q):
            _, f_pred = predict_energy_forces(fmodel, x_q)
            loss = loss + self.config.force_weight * mse(f_pred, x_q.forces / self.scaler.y_std)
        return loss

    def inputs(self, inputs):
        """Model input on ``config.device``: standardized tensor (tabular) or :class:`GraphBatch`."""
        return self.scaler.x(inputs, self.cutoff).to(self.config.device)

    def targets(self, y) -> torch.Tensor:
        """Standardized targets on ``config.device``."""
        return self.scaler.y(y).to(self.config.device)

    def _episode_data(self, ep):
        """``(x_s, y_s, x_q, y_q)`` model tensors of an episode; during :meth:`fit`, rows of the task's cached
        standardized tensors (the same numbers: standardization is elementwise; :mod:`.task_cache`)."""
        cached = self._task_tensors.episode(ep) if self._task_tensors else None
        if cached is not None:
            return cached
        return (self.inputs(ep.support), self.targets(ep.support.targets),
                self.inputs(ep.query), self.targets(ep.query.targets))

    def _cache_tensors(self, tasks: TaskSet) -> TaskTensors:
        """Standardized model tensors of whole tabular tasks (for :meth:`fit`; :class:`TaskTensors`)."""
        return TaskTensors.build(tasks, self.inputs, self.targets)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_task_tensors", None)  # a copy made during fit does not carry the task tensors
        return state

    def _episode_loss(self, ep) -> torch.Tensor:
        """Query loss after adaptation; accumulates the meta-gradient into ``.grad`` (second order)."""
        x_s, y_s, x_q, y_q = self._episode_data(ep)
        fmodel = self._inner_loop(x_s, y_s, self.config.inner_steps, None, track=True)
        loss = self._query_loss(fmodel, x_q, y_q, self._anchor(fmodel, x_s, y_s))
        loss.backward()
        return loss.detach()

    def _meta_batch_grads(self, episodes: list) -> float:
        """Summed query loss of a meta-batch; the summed meta-gradient goes to ``.grad``.

        Under ``torch.distributed`` (e.g. ``torchrun``, :mod:`nanonb.train`) each rank takes the episodes
        ``rank::world_size`` and the gradients and losses are summed over ranks (:mod:`.sharding`).
        """
        rank, world = rank_world()
        mine = episodes[rank::world]
        if self.config.backend == "func":
            losses = meta_batch(self, mine)
        else:
            losses = [self._episode_loss(ep) for ep in mine]
        total = torch.stack(losses).sum() if losses else torch.zeros((), device=self.config.device)
        return all_reduce_sum(self.parameters(), total) if world > 1 else float(total)

    def _after_outer_step(self) -> None:
        """Called after every meta-update (Meta-SGD keeps its step sizes non-negative)."""

    # ---------------------------------------------------------------- fit
    def warm_start(self, model: nn.Module) -> MetaLearner:
        """Start meta-training from the weights of a trained network of the same architecture
        (e.g. the pooled baseline's), instead of pre-training again."""
        if self.model is None:
            n_in = model.body[0].in_features if self.config.model == "MLP" else None
            self._build(n_in=n_in)
        self.model.load_state_dict(model.state_dict())
        self.history["warm_start"] = [type(model).__name__]
        return self

    def parameters(self):
        return list(self.model.parameters()) + list(self.inner_lrs)

    def fit(self, train: TaskSet, val: TaskSet | None = None, n_iterations: int | None = None,
            progress: bool = True, callback=None) -> MetaLearner:
        """Meta-train on ``train``; track the query loss on ``val`` every ``val_every`` iterations.

        ``callback(learner, iteration)`` is called after each iteration (e.g. live plots).
        Continues from the current weights if called again (iterative refinement).
        """
        cfg = self.config
        n_iter = cfg.n_iterations if n_iterations is None else n_iterations
        if not isinstance(train, TaskSet):
            raise TypeError(f"{cfg.algorithm}.fit expects a TaskSet of meta-train tasks, got {type(train).__name__}.")
        kmin, kmax = cfg.k_support
        largest = max(len(t) for t in train)
        if largest < kmax + 2:
            fit_k = max(1, largest - 2)
            raise ValueError(
                f"{cfg.algorithm}: no meta-train task has more than {kmax + 1} points (the largest has {largest}); "
                f"k_support={cfg.k_support} needs tasks of at least k_support[1] + 2 = {kmax + 2} points. Lower "
                f"k_support (e.g. k_support=({min(kmin, fit_k)}, {fit_k})) or use larger tasks.")
        eligible = train.filter(min_points=kmax + 2)
        check_input_kind(cfg.model, train[0].is_tabular)
        if self.model is None:
            self.config.model_kwargs = model_kwargs_for(cfg.model, train, cfg.model_kwargs)
            self._build()
        if not self.history["iteration"]:
            self.scaler = Scaler.fit(train)
            if cfg.center == "support":  # per-task standardization: the unit is the within-task spread
                self.scaler.y_std = float(np.sqrt(np.mean([np.var(t.targets) for t in train])) + 1e-12)
            if cfg.pretrain_epochs > 0 and "warm_start" not in self.history:
                self.history["pretrain_loss"] = pooled_train(
                    self.model, train, self.scaler, cfg.pretrain_epochs, seed=cfg.seed, progress=progress,
                    desc=f"pre-train {cfg.algorithm}", force_weight=cfg.force_weight)
        params = self.parameters()
        opt = torch.optim.Adam(params, lr=cfg.outer_lr, foreach=True)
        rng = np.random.default_rng(cfg.seed + len(self.history["iteration"]))
        start = len(self.history["iteration"])
        t0 = time.perf_counter()
        bar = tqdm(range(n_iter), desc=f"meta-train {cfg.algorithm}", disable=not progress, leave=False)
        self._task_tensors = self._cache_tensors(eligible)
        pool = list(eligible)
        try:
            for it in bar:
                opt.zero_grad(set_to_none=True)
                episodes = []
                for _ in range(cfg.meta_batch_size):
                    task = pool[int(rng.integers(len(pool)))]
                    k = int(rng.integers(kmin, kmax + 1))
                    kq = min(cfg.k_query, len(task) - k)
                    episodes.append(sample_episode(task, k, kq, int(rng.integers(2**31 - 1))))
                mean_loss = self._meta_batch_grads(episodes) / cfg.meta_batch_size
                if not np.isfinite(mean_loss):
                    raise FloatingPointError(
                        f"{cfg.algorithm} meta-training diverged at iteration {start + it + 1} (query loss "
                        f"{mean_loss}): lower inner_lr (now {cfg.inner_lr}), set inner_grad_clip (now "
                        f"{cfg.inner_grad_clip}) or lower outer_lr (now {cfg.outer_lr}).")
                grads = [p.grad for p in params if p.grad is not None]
                torch._foreach_div_(grads, cfg.meta_batch_size)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
                opt.step()
                self._after_outer_step()
                step = start + it + 1
                self.history["iteration"].append(step)
                self.history["train_loss"].append(mean_loss)
                if val is not None and (step % cfg.val_every == 0 or it == n_iter - 1):
                    self.history["val_iteration"].append(step)
                    self.history["val_loss"].append(self.validation_loss(val))
                    bar.set_postfix(val=f"{self.history['val_loss'][-1]:.3f}")
                if callback is not None:
                    callback(self, step)
        finally:
            self._task_tensors = {}
        self.fit_time_s += time.perf_counter() - t0
        return self

    def validation_loss(self, val: TaskSet, k: int = 5, seed: int = 12345) -> float:
        """Mean standardized query MSE after adaptation on fixed validation episodes."""
        losses = []
        for i, task in enumerate(val):
            if len(task) <= k:
                continue
            for e in range(self.config.val_episodes):
                ep = val.episode(task, k, min(50, len(task) - k), seed=seed + 1000 * i + e)
                pred = self.adapt(ep.support).predict(ep.query)
                z = (pred - ep.query.targets) / self.scaler.y_std
                losses.append(float(np.mean(z**2)))
        return float(np.mean(losses)) if losses else float("nan")

    # ---------------------------------------------------------------- adapt / predict
    def adapt(self, support: Task | None, steps: int | None = None, lr: float | None = None) -> AdaptedModel:
        """Adapt to a support set; the meta-weights are left untouched.

        ``steps``/``lr`` override the inner-loop settings (Meta-SGD uses its learned per-weight
        step sizes unless ``lr`` is given). ``support=None`` or an empty support returns the
        meta-learned initialization (zero-shot).
        """
        if self.model is None:
            raise RuntimeError("This learner is not fitted yet: call fit(meta_train) or "
                               "nanonb.learners.registry.load(path).")
        if steps is None:
            steps = self.config.inner_steps if self.config.adapt_steps is None else self.config.adapt_steps
        steps = check_int(f"{self.name}.adapt", "steps", steps, 0)
        if lr is not None:
            lr = check_positive(f"{self.name}.adapt", "lr", lr, hint=" (None: the learner's inner_lr / learned steps)")
        if support is None or len(support) == 0:
            module = self._adapted_module()
            if self.config.backend == "func":
                return AdaptedModel(self, FunctionalModule(module, {n: p.detach() for n, p in
                                                                   module.named_parameters()}), self.head_only)
            return AdaptedModel(self, higher.monkeypatch(module, copy_initial_weights=True,
                                                         track_higher_grads=False), self.head_only)
        x_s, y_s = self.inputs(support), self.targets(support.targets)
        if not all_finite(y_s, x_s if torch.is_tensor(x_s) else getattr(x_s, "pos", None)):
            raise ValueError(f"{self.name}.adapt: the support set {support.name!r} contains NaN/inf "
                             f"{'targets' if not all_finite(y_s) else 'inputs'}; remove or fill those points.")
        fmodel = self._inner_loop(x_s, y_s, steps, lr, track=False)
        if isinstance(fmodel, FunctionalModule):
            fmodel.params = {n: p.detach() for n, p in fmodel.params.items()}
        else:
            fmodel.update_params([p.detach() for p in fmodel.parameters()])
        with torch.no_grad():
            offset = float(self._anchor(fmodel, x_s, y_s))
        if lr is None and not len(self.inner_lrs):
            lr = self.config.inner_lr
        return AdaptedModel(self, fmodel, self.head_only, lr=lr, steps=steps, offset=offset)

    def support_loss(self, support: Task, steps: int | None = None, lr: float | None = None) -> float:
        """The inner-loop loss on ``support`` after ``steps`` adaptation steps (0: the meta-learned start).

        Standardized MSE (support-centred with ``center="support"``, as the inner loop sees it); a learner
        whose adaptation works makes it much smaller than at ``steps=0``.

        Example
        -------
        >>> learner.support_loss(ep.support, steps=0), learner.support_loss(ep.support)  # doctest: +SKIP
        (0.41, 0.06)
        """
        pred = torch.as_tensor(self.scaler.y(self.adapt(support, steps=steps, lr=lr).predict(support)))
        return float(mse(*self._centred(pred, self.scaler.y(support.targets))))

    def predict(self, inputs, support: Task | None = None) -> np.ndarray:
        """Predict ``inputs`` after adapting on ``support`` (zero-shot if ``support`` is None)."""
        return self.adapt(support).predict(inputs)

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"model.{k}": v.cpu() for k, v in self.model.state_dict().items()}  # saved files load anywhere
        sd.update({f"inner_lrs.{i}": p.detach().cpu() for i, p in enumerate(self.inner_lrs)})
        return sd

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.pt`` (tensors only) and ``<path>.json`` (config, scaler, history).

        Load with :func:`nanonb.learners.registry.load`, which picks the class from ``config.algorithm``.
        """
        if self.model is None:
            raise RuntimeError(f"Nothing to save: this {self.name} learner is not fitted yet; fit it first "
                               "(learner.fit(meta_train)), then save.")
        meta = {"config": asdict(self.config), "scaler": asdict(self.scaler), "history": self.history,
                "fit_time_s": self.fit_time_s, "nanonb_format": FORMAT_VERSION}
        return save_state(path, meta, self.state_dict())

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> MetaLearner:
        """Restore weights, scaler and history written by :meth:`save` (``meta``: its JSON).

        Weights with NaN/inf are refused (``ValueError``).
        """
        check_finite_tensors(tensors, self.name)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        with torch.no_grad():
            for i, p in enumerate(self.inner_lrs):
                p.copy_(tensors[f"inner_lrs.{i}"])
        self.scaler = Scaler(**meta["scaler"])
        self.history = meta["history"]
        self.fit_time_s = meta.get("fit_time_s", 0.0)
        return self

    def copy(self) -> MetaLearner:
        return copy.deepcopy(self)
