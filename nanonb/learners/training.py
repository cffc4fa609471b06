"""Standardization and pooled training, shared by the meta-learners and the network baselines.

- :class:`Scaler`: targets (and tabular inputs) standardized with meta-train statistics.
- :func:`mse`: the loss on standardized targets.
- :func:`predict_energy_forces`: per-atom target and conservative forces ``-dE/dpos`` of a graph model.
- :func:`pooled_train`: minibatch Adam on all meta-train points pooled (the pooled baseline and
  meta-learner pre-training).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..graphs import DEFAULT_CUTOFF, GraphBatch, collate
from ..scaling import clip_standardized, standardization
from ..tasks import Task, TaskSet


@dataclass
class Scaler:
    """Standardization of targets (and of tabular inputs) with meta-train statistics.

    ``y_mean``/``y_std`` are in target units; ``x_mean``/``x_std`` (tabular tasks only) per input column.
    Every learner and network baseline fits one on meta-train and predicts in the task's own units.

    Example
    -------
    >>> scaler = Scaler.fit(meta_train)                   # doctest: +SKIP
    >>> scaler.y_inv(scaler.y(task.targets))              # == task.targets  # doctest: +SKIP
    """

    y_mean: float = 0.0
    y_std: float = 1.0
    x_mean: list[float] | None = None
    x_std: list[float] | None = None

    @classmethod
    def fit(cls, tasks: TaskSet) -> Scaler:
        """The statistics of :func:`nanonb.scaling.standardization` (shared with the physics models' kwargs)."""
        return cls(**standardization(tasks))

    def y(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.asarray(y) - self.y_mean) / self.y_std, dtype=torch.float32)

    def y_inv(self, z: torch.Tensor | np.ndarray) -> np.ndarray:
        z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
        return z.astype(np.float64) * self.y_std + self.y_mean

    def x(self, inputs, cutoff: float = DEFAULT_CUTOFF) -> torch.Tensor | GraphBatch:
        """Model input: a standardized float tensor (tabular, clipped at ``+- CLIP_STD``) or a :class:`GraphBatch`."""
        if isinstance(inputs, Task):
            inputs = inputs.inputs
        if isinstance(inputs, np.ndarray) or isinstance(inputs, torch.Tensor):
            x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
            if self.x_mean is not None:
                x = clip_standardized((x - torch.tensor(self.x_mean, dtype=torch.float32)) / torch.tensor(
                    self.x_std, dtype=torch.float32))
            return x
        return collate(list(inputs), cutoff=cutoff)


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error (the loss of every learner, on standardized targets)."""
    return ((pred - y) ** 2).mean()


def predict_energy_forces(model, batch: GraphBatch, create_graph: bool = True):
    """Per-atom target and conservative forces ``-dE/dpos`` from a (possibly patched) graph model.

    Returns ``(per_atom (B,), forces (N, 3))`` in the model's (standardized) units (forces per Å).

    Example
    -------
    >>> per_atom, forces = predict_energy_forces(model, collate(structures), create_graph=False)  # doctest: +SKIP
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
    by the meta-learners' ``pretrain_epochs``. ``lr`` is Adam's, ``force_weight > 0`` adds the force
    MSE in standardized units ``F / y_std`` (per Å) for structures that carry forces.

    Example
    -------
    >>> history = pooled_train(model, meta_train, Scaler.fit(meta_train), epochs=20)  # doctest: +SKIP
    """
    cutoff = getattr(model, "cutoff", DEFAULT_CUTOFF)
    device = next(model.parameters()).device  # batches go where the model is (CPU or GPU)
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
            x, y = scaler.x(inputs, cutoff).to(device), scaler.y(np.concatenate([s.targets for s in sub])).to(device)
            opt.zero_grad(set_to_none=True)
            if force_weight > 0 and isinstance(x, GraphBatch) and x.forces is not None:
                pred, f_pred = predict_energy_forces(model, x)
                loss = mse(pred, y) + force_weight * mse(f_pred, x.forces / scaler.y_std)
            else:
                loss = mse(model(x), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        sched.step()
        history.append(float(np.mean(losses)))
    return history
