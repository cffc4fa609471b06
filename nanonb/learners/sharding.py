"""Meta-batches sharded over the processes of ``torch.distributed``: ranks, and the one gradient all-reduce.

When a process group is up (``torchrun``, :mod:`nanonb.train`), every rank samples the same meta-batch
(same seed), computes the meta-gradient of its share of the episodes (``rank::world_size``), and
:func:`all_reduce_sum` adds the gradients and losses of all ranks with ``torch.distributed.all_reduce``
(gloo on CPU, nccl on GPU). Every rank then takes the same optimizer step, so the parameters stay
identical without broadcasting them. There is no ``DistributedDataParallel`` wrapper: it does not see
the functional / patched inner loop (``higher`` issue #98; through ``functional_call`` it gave silently
wrong gradients), while a plain sum of the meta-gradients is exact.

Example
-------
>>> rank_world()          # no process group: one process
(0, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(params: Sequence[torch.Tensor], loss_sum: torch.Tensor) -> float:
    """Sum ``.grad`` of ``params`` (in place) and ``loss_sum`` over all ranks; returns the summed loss.

    A parameter without a gradient on this rank (no episode, or unused) contributes zeros, so every
    rank calls the collective on the same tensors. One flat buffer: one ``all_reduce`` per meta-step.

    Example
    -------
    >>> all_reduce_sum(learner.parameters(), torch.tensor(1.5))   # doctest: +SKIP
    """
    params = list(params)
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss_sum.detach().reshape(1).to(grads[0])])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset: offset + g.numel()].view_as(g).clone()
        offset += g.numel()
    return float(flat[-1])
