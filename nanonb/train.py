"""Meta-training from the command line, on one process or many: ``python -m nanonb.train [config.json] [--set k=v]``.

On several processes (one machine or many), launch it with ``torchrun``::

    torchrun --standalone --nproc_per_node 4 -m nanonb.train config.json
    torchrun --nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29400 \\
             --nproc_per_node 8 -m nanonb.train config.json --set device=cuda

``torchrun`` sets ``RANK`` / ``WORLD_SIZE``; :func:`main` then starts a process group (gloo on CPU,
nccl on GPU) and every rank runs the same ``fit``: it samples the same meta-batch, computes the
meta-gradient of its share of the episodes and the gradients are summed with
``torch.distributed.all_reduce`` (:mod:`nanonb.learners.sharding`), so every rank takes the same
step and the parameters equal those of single-process training (to float rounding; tested). No
``DistributedDataParallel`` wrapper: it cannot see the functional inner loop. With
``device="cuda"`` rank ``r`` uses GPU ``LOCAL_RANK``. Rank 0 writes the learner (``out``) and
``<out>.train.json`` (config, losses, wall time, world size).

The configuration is a :class:`TrainConfig`: a JSON file of its fields and/or ``--set KEY=VALUE``
options, both through the one rule :func:`nanonb.bench.schema.apply_options` (an unknown key is an
error that lists the valid ones). ``learner`` holds :class:`~nanonb.learners.config.MetaConfig`
fields.

Example
-------
``python -m nanonb.train --set data=sinusoid --set 'learner={"n_iterations": 100}' --set out=runs/maml``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from .bench.schema import OptionError, apply_options, parse_options, write_json
from .learners.registry import make_learner
from .tasks import TaskSet
from .threads import set_threads


@dataclass
class TrainConfig:
    """What :func:`train` meta-trains, on which data, where.

    algorithm:
        Registered learner name (``maml``, ``fomaml``, ``anil``, ``metasgd``).
    data:
        ``"sinusoid"`` or ``"clusters"`` (synthetic, :mod:`nanonb.tasks.toy`) or ``"nanoalloys"``
        (:func:`nanonb.data.nanoalloys.load_nanoalloys`); ``data_kwargs`` are passed to the loader.
    learner:
        :class:`~nanonb.learners.config.MetaConfig` fields (``model``, ``n_iterations``, ``backend``...).
    device:
        ``"cpu"``, ``"cuda"`` (each rank on GPU ``LOCAL_RANK``) or ``"auto"`` (cuda when available).
    out:
        Path stem of the saved learner (rank 0; ``None``: not saved).

    Example
    -------
    >>> TrainConfig(data="sinusoid").algorithm
    'maml'
    """

    algorithm: str = "maml"
    data: str = "sinusoid"
    data_kwargs: dict = field(default_factory=dict)
    learner: dict = field(default_factory=dict)
    device: str = "auto"
    out: str | None = None
    seed: int = 0


def load_tasks(cfg: TrainConfig) -> TaskSet:
    """The meta-train tasks named by ``cfg.data``."""
    if cfg.data == "sinusoid":
        from .tasks.toy import sinusoid_tasks

        return sinusoid_tasks(**{"seed": cfg.seed, **cfg.data_kwargs})
    if cfg.data == "clusters":
        from .tasks.toy import cluster_tasks

        return cluster_tasks(**{"n_tasks": 8, "n": 22, "seed": cfg.seed, **cfg.data_kwargs})
    if cfg.data == "nanoalloys":
        from .data.nanoalloys import load_nanoalloys

        return load_nanoalloys(**{"progress": False, **cfg.data_kwargs})
    raise OptionError(f"data={cfg.data!r}: choose 'sinusoid', 'clusters' or 'nanoalloys'")


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; ``"cuda"`` -> ``"cuda:<LOCAL_RANK>"``.

    Example
    -------
    >>> resolve_device("cpu")
    'cpu'
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return device


def train(cfg: TrainConfig, progress: bool = True):
    """Meta-train one learner by ``cfg`` (sharded over ranks if a process group is up); returns it.

    Example
    -------
    >>> learner = train(TrainConfig(learner={"n_iterations": 10}), progress=False)   # doctest: +SKIP
    """
    device = resolve_device(cfg.device)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    tasks = load_tasks(cfg)
    kw = {"model": "MLP" if tasks[0].is_tabular else "InvariantGNN", **cfg.learner}
    learner = make_learner(cfg.algorithm, device=device, seed=cfg.seed, **kw)
    return learner.fit(tasks, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; starts the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    p = argparse.ArgumentParser(prog="python -m nanonb.train", description=__doc__.split("\n")[0])
    p.add_argument("config", nargs="?", default=None, help="JSON file of TrainConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig()
    try:
        if a.config:
            with open(a.config) as fh:
                apply_options(cfg, json.load(fh))
        apply_options(cfg, parse_options(a.set))
    except OptionError as exc:
        p.error(str(exc))
    set_threads()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = resolve_device(cfg.device).startswith("cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    t0 = time.perf_counter()
    try:
        learner = train(cfg, progress=not a.no_progress and rank == 0)
        if rank == 0:
            summary: dict[str, Any] = {"config": asdict(cfg), "world_size": world,
                                       "wall_s": time.perf_counter() - t0,
                                       "train_loss": learner.history["train_loss"]}
            if cfg.out:
                learner.save(cfg.out)
                write_json(f"{cfg.out}.train.json", summary)
            print(f"meta-trained {learner.name} on {world} process(es) in {summary['wall_s']:.1f} s; "
                  f"last query loss {summary['train_loss'][-1] if summary['train_loss'] else float('nan'):.4f}"
                  + (f"; wrote {cfg.out}" if cfg.out else ""))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
