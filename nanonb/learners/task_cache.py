"""The standardized tensors of the meta-train tasks, cached while a learner's ``fit`` runs.

:meth:`MetaLearner.fit <nanonb.learners.base.MetaLearner.fit>` standardizes every tabular meta-train
task once (:meth:`TaskTensors.build`); an episode's support and query tensors are then rows of those
tensors (the same numbers: standardization is elementwise), and a whole meta-batch of episodes,
padded to a common size, is one indexing of the concatenated rows (:meth:`TaskTensors.padded`, the
batched MLP path of :mod:`nanonb.learners.batched`) instead of per-episode slices and
``pad_sequence``.

Example
-------
>>> import numpy as np, torch
>>> from nanonb.tasks import TaskSet
>>> ts = TaskSet.from_arrays(np.arange(5.0)[:, None], np.arange(5.0), ["a", "a", "b", "b", "b"])
>>> cache = TaskTensors.build(ts, lambda x: torch.as_tensor(x), lambda y: torch.as_tensor(y))
>>> cache.x[:, 0].tolist()                       # both tasks' rows, then one zero row (padding)
[0.0, 1.0, 2.0, 3.0, 4.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .batched import row_weights


class TaskTensors(dict):
    """``{id(task): (task, offset)}``: where each task's rows start in :attr:`x` / :attr:`y`, the
    standardized model inputs and targets of all tasks concatenated, with one zero row appended
    (the padding row of :meth:`padded`). Empty (``x is None``) outside ``fit``.

    Example
    -------
    >>> cache = TaskTensors.build(tasks, learner.inputs, learner.targets)   # doctest: +SKIP
    >>> x_s, y_s, x_q, y_q = cache.episode(tasks.episode(tasks[0], 5, 10))   # doctest: +SKIP
    """

    x: torch.Tensor | None = None
    y: torch.Tensor | None = None

    @classmethod
    def build(cls, tasks: Sequence, inputs: Callable, targets: Callable) -> TaskTensors:
        """The cache of tabular ``tasks``, their rows standardized by ``inputs`` / ``targets`` (row by row, so
        all tasks go through one call: the same numbers as task by task); empty for graph tasks."""
        out = cls()
        if not tasks[0].is_tabular:
            return out
        offsets = np.cumsum([0] + [len(t) for t in tasks])
        out.update({id(t): (t, int(o)) for t, o in zip(tasks, offsets)})
        x = inputs(np.concatenate([t.inputs for t in tasks]))
        y = targets(np.concatenate([t.targets for t in tasks]))
        out.x, out.y = torch.cat([x, torch.zeros_like(x[:1])]), torch.cat([y, torch.zeros_like(y[:1])])
        return out

    def _offset(self, ep) -> int | None:
        """Where the rows of ``ep``'s task start, if it is a cached task and ``ep`` has a support."""
        hit = self.get(id(ep.task))
        return hit[1] if hit is not None and hit[0] is ep.task and len(ep.support_idx) else None

    def episode(self, ep) -> tuple[torch.Tensor, ...] | None:
        """``(x_s, y_s, x_q, y_q)`` of an episode of a cached task (``None`` if not cached or zero-shot)."""
        offset = self._offset(ep)
        if offset is None:
            return None
        s = torch.as_tensor(offset + np.asarray(ep.support_idx, dtype=np.int64), device=self.x.device)
        q = torch.as_tensor(offset + np.asarray(ep.query_idx, dtype=np.int64), device=self.x.device)
        return self.x[s], self.y[s], self.x[q], self.y[q]

    def padded(self, episodes: Sequence) -> tuple[torch.Tensor, ...] | None:
        """``(xs, ys, ws, xq, yq, wq)`` of a meta-batch, as :func:`nanonb.learners.batched.pad_episodes`
        makes them (the same numbers), or ``None`` unless every episode is of a cached task."""
        offsets = [self._offset(ep) for ep in episodes] if self else [None]
        if not episodes or any(o is None for o in offsets):
            return None
        s, ws = self._rows([o + np.asarray(ep.support_idx) for o, ep in zip(offsets, episodes)])
        q, wq = self._rows([o + np.asarray(ep.query_idx) for o, ep in zip(offsets, episodes)])
        return self.x[s], self.y[s], ws, self.x[q], self.y[q], wq

    def _rows(self, rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T, n_max)`` row indices (the zero row as padding) and row weights ``1/n`` (0 on padding)."""
        n = np.array([len(r) for r in rows])
        idx = np.full((len(rows), n.max()), len(self.x) - 1, dtype=np.int64)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
        device = self.x.device
        return torch.from_numpy(idx).to(device), row_weights(torch.from_numpy(n).to(device), idx.shape[1], self.x.dtype)
