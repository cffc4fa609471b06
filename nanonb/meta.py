"""Gradient-based meta-learning on ``higher``: MAML, first-order MAML, ANIL and Meta-SGD.

All four share one inner loop (:meth:`MetaLearner._inner_loop`), written with
``higher.innerloop_ctx``: starting from the meta-learned initial weights, take ``inner_steps`` SGD
steps on the support loss, then score the adapted weights on the query set. The algorithms differ
only in three switches:

============  ===================  ==========================  ==========================
algorithm     adapted parameters   meta-gradient               inner learning rate
============  ===================  ==========================  ==========================
``maml``      all                  second order (through SGD)  fixed scalar
``fomaml``    all                  first order (query grad at  fixed scalar
                                   the adapted weights)
``anil``      head only            second order                fixed scalar
``metasgd``   all                  second order (or first)     learned, one per weight
============  ===================  ==========================  ==========================

Targets (and tabular inputs) are standardized with meta-train statistics; predictions are
returned in the task's own units. ``adapt`` never touches the meta-weights: it works on a
``higher``-patched copy whose fast weights are detached.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import higher
import numpy as np
import torch
from torch import nn

from . import physics  # noqa: F401  (registers TBGapNet and VTFNet, so saved learners load in any import order)
from .graphs import DEFAULT_CUTOFF, GraphBatch, collate
from .models import build_model
from .tasks import Task, TaskSet, standardization

ALGORITHMS = ("maml", "fomaml", "anil", "metasgd")


# ---------------------------------------------------------------------- inputs and scaling
@dataclass
class Scaler:
    """Standardization of targets (and of tabular inputs) with meta-train statistics."""

    y_mean: float = 0.0
    y_std: float = 1.0
    x_mean: list[float] | None = None
    x_std: list[float] | None = None

    @classmethod
    def fit(cls, tasks: TaskSet) -> Scaler:
        return cls(**standardization(tasks))

    def y(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.asarray(y) - self.y_mean) / self.y_std, dtype=torch.float32)

    def y_inv(self, z: torch.Tensor | np.ndarray) -> np.ndarray:
        z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
        return z.astype(np.float64) * self.y_std + self.y_mean

    def x(self, inputs, cutoff: float = DEFAULT_CUTOFF) -> torch.Tensor | GraphBatch:
        """Model input: a standardized float tensor (tabular) or a :class:`GraphBatch`."""
        if isinstance(inputs, Task):
            inputs = inputs.inputs
        if isinstance(inputs, np.ndarray) or isinstance(inputs, torch.Tensor):
            x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
            if self.x_mean is not None:
                x = (x - torch.tensor(self.x_mean, dtype=torch.float32)) / torch.tensor(
                    self.x_std, dtype=torch.float32)
            return x
        return collate(list(inputs), cutoff=cutoff)


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean()


def predict_energy_forces(model, batch: GraphBatch, create_graph: bool = True):
    """Per-atom target and conservative forces ``-dE/dpos`` from a (possibly patched) graph model.

    Returns ``(per_atom (B,), forces (N, 3))`` in the model's (standardized) units.
    """
    pos = batch.pos.detach().requires_grad_(True)
    energy = model(batch, output="energy", pos=pos)
    forces = -torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)[0]
    return energy / batch.n_atoms.to(energy.dtype), forces


def pooled_train(model: nn.Module, train: TaskSet, scaler: Scaler, epochs: int, batch_size: int = 32,
                 lr: float = 2e-3, seed: int = 0, progress: bool = False, desc: str = "pooled pre-training",
                 force_weight: float = 0.0) -> list[float]:
    """Train ``model`` on all points of ``train`` pooled together (minibatch Adam, cosine schedule).

    Returns the mean training loss (standardized MSE) per epoch. Used by the pooled baselines and
    by :meth:`MetaLearner.pretrain`.
    """
    from tqdm.auto import tqdm

    cutoff = getattr(model, "cutoff", DEFAULT_CUTOFF)
    points = [(t.name, i) for t in train for i in range(len(t))]
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    history = []
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = rng.permutation(len(points))
        losses = []
        for b in range(0, len(order), batch_size):
            by_task: dict[str, list[int]] = {}
            for j in order[b: b + batch_size]:
                by_task.setdefault(points[j][0], []).append(points[j][1])
            sub = [train[n].subset(ix) for n, ix in by_task.items()]
            inputs = np.vstack([s.inputs for s in sub]) if sub[0].is_tabular else [x for t in sub for x in t.inputs]
            x, y = scaler.x(inputs, cutoff), scaler.y(np.concatenate([s.targets for s in sub]))
            opt.zero_grad(set_to_none=True)
            if force_weight > 0 and isinstance(x, GraphBatch) and x.forces is not None:
                pred, f_pred = predict_energy_forces(model, x)
                loss = _mse(pred, y) + force_weight * _mse(f_pred, x.forces / scaler.y_std)
            else:
                loss = _mse(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        history.append(float(np.mean(losses)))
    return history


# ---------------------------------------------------------------------- config
@dataclass
class MetaConfig:
    """Hyper-parameters of a :class:`MetaLearner` (all JSON-serializable).

    ``k_support`` is the range of support sizes sampled during meta-training (so one learner
    serves 1- to 10-shot use); ``k_query`` the query size per training episode.
    ``inner_lr`` is the SGD step on the standardized-target MSE (the initial value for Meta-SGD).
    ``inner_grad_clip`` rescales each inner-loop gradient to at most this global norm
    (differentiably), which keeps deep graph networks from diverging in the inner loop.
    ``force_weight > 0`` adds a force term to every loss (inner and outer) for structure tasks whose
    structures carry forces: forces are predicted as ``-dE/dpositions`` of the model's extensive
    energy (conservative by construction), in standardized units ``F / y_std`` (per Å). Not for ANIL,
    whose inner loop never sees positions. ``pretrain_epochs > 0`` first trains the network on all
    meta-train points pooled (as the pooled baseline does), then meta-trains from there.
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
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {self.algorithm!r}")
        self.k_support = tuple(self.k_support)  # type: ignore[assignment]
        if self.first_order is None:
            self.first_order = self.algorithm == "fomaml"
        if self.algorithm == "fomaml" and not self.first_order:
            raise ValueError("fomaml is first order by definition; use algorithm='maml' for second order")


# ---------------------------------------------------------------------- adapted predictor
class AdaptedModel:
    """A model adapted to one task's support set. ``predict`` returns values in target units."""

    def __init__(self, learner: MetaLearner, fmodel: nn.Module, head_only: bool):
        self.learner = learner
        self.fmodel = fmodel
        self.head_only = head_only

    @torch.no_grad()
    def predict(self, inputs: Task | np.ndarray | list) -> np.ndarray:
        x = self.learner.scaler.x(inputs, self.learner.cutoff)
        if self.head_only:
            out = self.fmodel(self.learner.model(x, output="features")).squeeze(-1)
        else:
            out = self.fmodel(x)
        return self.learner.scaler.y_inv(out)

    def features(self, inputs) -> torch.Tensor:
        """Body features of the adapted model (used by Bayesian last layers)."""
        x = self.learner.scaler.x(inputs, self.learner.cutoff)
        with torch.no_grad():
            if self.head_only:
                return self.learner.model(x, output="features")
            return self.fmodel(x, output="features")


# ---------------------------------------------------------------------- meta-learner
class MetaLearner:
    """MAML-family meta-learner with scikit-learn-like verbs.

    >>> learner = MetaLearner(config=MetaConfig(algorithm="anil"), n_in=None)  # doctest: +SKIP
    >>> learner.fit(meta_train, val=meta_val)                                   # doctest: +SKIP
    >>> adapted = learner.adapt(episode.support)                                # doctest: +SKIP
    >>> adapted.predict(episode.query)                                          # doctest: +SKIP
    """

    kind = "meta"

    def __init__(self, config: MetaConfig | None = None, **overrides: Any):
        cfg = asdict(config) if config is not None else {}
        cfg.update(overrides)
        self.config = MetaConfig(**cfg)
        self.model: nn.Module | None = None
        self.inner_lrs = nn.ParameterList()
        self.cutoff = DEFAULT_CUTOFF
        if not (self.config.model == "MLP" and "n_in" not in self.config.model_kwargs):
            self._build()
        self.scaler = Scaler()
        self.history: dict[str, list] = {"iteration": [], "train_loss": [], "val_iteration": [], "val_loss": []}
        self.fit_time_s = 0.0

    def _build(self, n_in: int | None = None) -> None:
        """Create the network (MLP input width inferred from the data when not given)."""
        if n_in is not None:
            self.config.model_kwargs = {**self.config.model_kwargs, "n_in": int(n_in)}
        torch.manual_seed(self.config.seed)
        self.model = build_model(self.config.model, **self.config.model_kwargs)
        self.cutoff = getattr(self.model, "cutoff", DEFAULT_CUTOFF)
        if self.config.algorithm == "metasgd":
            self.inner_lrs = nn.ParameterList(
                [nn.Parameter(torch.full_like(p, self.config.inner_lr)) for p in self.model.parameters()])

    @property
    def name(self) -> str:
        return self.config.algorithm

    def __repr__(self) -> str:
        return f"MetaLearner({self.config.algorithm}, model={self.config.model}{self.config.model_kwargs})"

    # ---------------------------------------------------------------- inner loop
    def _adapted_module(self) -> nn.Module:
        return self.model.head if self.config.algorithm == "anil" else self.model

    def _inner_loop(self, x_s, y_s: torch.Tensor, steps: int, lr: float | None, track: bool):
        """Run the inner SGD loop from the meta-weights; returns the patched module.

        With ``track=True`` the returned module's fast weights are differentiable functions of the
        meta-parameters (and of the learned step sizes for Meta-SGD).
        """
        algo = self.config.algorithm
        module = self._adapted_module()
        inp = self.model(x_s, output="features") if algo == "anil" else x_s
        if algo == "anil" and not track:
            inp = inp.detach()
        params = list(module.parameters())
        override = None
        if algo == "metasgd" and lr is None:
            opt = torch.optim.SGD([{"params": [p]} for p in params], lr=self.config.inner_lr)
            override = {"lr": list(self.inner_lrs)}
        else:
            opt = torch.optim.SGD(params, lr=self.config.inner_lr if lr is None else lr)
        detach = track and bool(self.config.first_order)
        clip = self.config.inner_grad_clip

        def grad_callback(grads):
            grads = [None if g is None else (g.detach() if detach else g) for g in grads]
            if clip is not None:
                norm = torch.sqrt(sum((g * g).sum() for g in grads if g is not None) + 1e-12)
                scale = torch.clamp(clip / (norm + 1e-12), max=1.0)
                grads = [None if g is None else g * scale for g in grads]
            return grads

        with higher.innerloop_ctx(module, opt, copy_initial_weights=False, track_higher_grads=track,
                                  override=override) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(self._loss(fmodel, inp, y_s), grad_callback=grad_callback)
        return fmodel

    def _use_forces(self, x) -> bool:
        return (self.config.force_weight > 0 and self.config.algorithm != "anil"
                and isinstance(x, GraphBatch) and x.forces is not None)

    def _loss(self, fmodel, x, y: torch.Tensor) -> torch.Tensor:
        """MSE on standardized targets, plus the weighted force MSE when forces are used."""
        if self._use_forces(x):
            pred, f_pred = predict_energy_forces(fmodel, x)
            f_true = x.forces / self.scaler.y_std
            return _mse(pred, y) + self.config.force_weight * _mse(f_pred, f_true)
        out = fmodel(x)
        return _mse(out.squeeze(-1) if out.dim() > 1 else out, y)

    def _query_pred(self, fmodel, x_q):
        if self.config.algorithm == "anil":
            return fmodel(self.model(x_q, output="features")).squeeze(-1)
        return fmodel(x_q)

    def _episode_loss(self, ep) -> torch.Tensor:
        """Query loss after adaptation; accumulates the meta-gradient into ``.grad``."""
        x_s, y_s = self.scaler.x(ep.support, self.cutoff), self.scaler.y(ep.support.targets)
        x_q, y_q = self.scaler.x(ep.query, self.cutoff), self.scaler.y(ep.query.targets)
        if self.config.algorithm == "fomaml":
            # First order: the query gradient at the adapted weights is used as the meta-gradient.
            fmodel = self._inner_loop(x_s, y_s, self.config.inner_steps, None, track=False)
            loss = self._loss(fmodel, x_q, y_q)
            grads = torch.autograd.grad(loss, list(fmodel.parameters()), allow_unused=True)
            for p, g in zip(self.model.parameters(), grads):
                if g is not None:
                    p.grad = g.detach().clone() if p.grad is None else p.grad + g.detach()
            return loss.detach()
        fmodel = self._inner_loop(x_s, y_s, self.config.inner_steps, None, track=True)
        if self.config.algorithm == "anil":
            loss = _mse(self._query_pred(fmodel, x_q), y_q)
        else:
            loss = self._loss(fmodel, x_q, y_q)
        loss.backward()
        return loss.detach()

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
        from tqdm.auto import tqdm

        cfg = self.config
        n_iter = cfg.n_iterations if n_iterations is None else n_iterations
        kmin, kmax = cfg.k_support
        eligible = train.filter(min_points=kmax + 2)
        if len(eligible) == 0:
            raise ValueError(f"No meta-train task has more than {kmax + 1} points (k_support={cfg.k_support}).")
        if self.model is None:
            if not train[0].is_tabular:
                raise ValueError("model='MLP' needs tabular tasks; use model='InvariantGNN' for structures")
            self._build(n_in=train[0].inputs.shape[1])
        if not self.history["iteration"]:
            self.scaler = Scaler.fit(train)
            if cfg.pretrain_epochs > 0 and "warm_start" not in self.history:
                self.history["pretrain_loss"] = pooled_train(
                    self.model, train, self.scaler, cfg.pretrain_epochs, seed=cfg.seed, progress=progress,
                    desc=f"pre-train {cfg.algorithm}", force_weight=cfg.force_weight)
        opt = torch.optim.Adam(self.parameters(), lr=cfg.outer_lr)
        rng = np.random.default_rng(cfg.seed + len(self.history["iteration"]))
        start = len(self.history["iteration"])
        t0 = time.perf_counter()
        bar = tqdm(range(n_iter), desc=f"meta-train {cfg.algorithm}", disable=not progress, leave=False)
        for it in bar:
            opt.zero_grad(set_to_none=True)
            losses = []
            for _ in range(cfg.meta_batch_size):
                task = eligible[int(rng.integers(len(eligible)))]
                k = int(rng.integers(kmin, kmax + 1))
                kq = min(cfg.k_query, len(task) - k)
                ep = eligible.episode(task, k, kq, seed=int(rng.integers(2**31 - 1)))
                losses.append(self._episode_loss(ep))
            mean_loss = float(torch.stack(losses).mean())
            if not np.isfinite(mean_loss):
                raise FloatingPointError(
                    f"{cfg.algorithm} meta-training diverged at iteration {start + it + 1} (query loss "
                    f"{mean_loss}): lower inner_lr (now {cfg.inner_lr}), set inner_grad_clip (now "
                    f"{cfg.inner_grad_clip}) or lower outer_lr (now {cfg.outer_lr}).")
            for p in self.parameters():
                if p.grad is not None:
                    p.grad /= cfg.meta_batch_size
            torch.nn.utils.clip_grad_norm_(self.parameters(), cfg.grad_clip)
            opt.step()
            if cfg.algorithm == "metasgd":
                with torch.no_grad():
                    for a in self.inner_lrs:
                        a.clamp_(min=0.0)
            step = start + it + 1
            self.history["iteration"].append(step)
            self.history["train_loss"].append(mean_loss)
            if val is not None and (step % cfg.val_every == 0 or it == n_iter - 1):
                self.history["val_iteration"].append(step)
                self.history["val_loss"].append(self.validation_loss(val))
                bar.set_postfix(val=f"{self.history['val_loss'][-1]:.3f}")
            if callback is not None:
                callback(self, step)
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
            raise RuntimeError("This learner is not fitted yet: call fit(meta_train) or MetaLearner.load(path).")
        steps = self.config.inner_steps if steps is None else steps
        head_only = self.config.algorithm == "anil"
        if support is None or len(support) == 0 or steps == 0:
            module = self._adapted_module()
            return AdaptedModel(self, higher.monkeypatch(module, copy_initial_weights=True,
                                                         track_higher_grads=False), head_only)
        x_s, y_s = self.scaler.x(support, self.cutoff), self.scaler.y(support.targets)
        fmodel = self._inner_loop(x_s, y_s, steps, lr, track=False)
        fmodel.update_params([p.detach() for p in fmodel.parameters()])
        return AdaptedModel(self, fmodel, head_only)

    def predict(self, inputs, support: Task | None = None) -> np.ndarray:
        """Predict ``inputs`` after adapting on ``support`` (zero-shot if ``support`` is None)."""
        return self.adapt(support).predict(inputs)

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        sd.update({f"inner_lrs.{i}": p.detach() for i, p in enumerate(self.inner_lrs)})
        return sd

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.pt`` (tensors only) and ``<path>.json`` (config, scaler, history)."""
        path = Path(path).with_suffix("")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path.with_suffix(".pt"))
        meta = {"config": asdict(self.config), "scaler": asdict(self.scaler), "history": self.history,
                "fit_time_s": self.fit_time_s, "nanonb_format": 1}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MetaLearner:
        """Load a learner saved by :meth:`save` (``torch.load(weights_only=True)``: no pickle)."""
        path = Path(path).with_suffix("")
        meta = json.loads(path.with_suffix(".json").read_text())
        learner = cls(MetaConfig(**meta["config"]))
        sd = torch.load(path.with_suffix(".pt"), weights_only=True)
        learner.model.load_state_dict({k[6:]: v for k, v in sd.items() if k.startswith("model.")})
        with torch.no_grad():
            for i, p in enumerate(learner.inner_lrs):
                p.copy_(sd[f"inner_lrs.{i}"])
        learner.scaler = Scaler(**meta["scaler"])
        learner.history = meta["history"]
        learner.fit_time_s = meta.get("fit_time_s", 0.0)
        return learner

    def copy(self) -> MetaLearner:
        return copy.deepcopy(self)
