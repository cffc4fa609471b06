"""Shared test helpers for the physics and flake tests: small generated flakes, benzene, toy task sets."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from nanonb.data.honeycomb import generate_family
from nanonb.graphs import Structure, collate
from nanonb.physics.pisystem import reference_gap
from nanonb.physics.tb import TBGapNet
from nanonb.tasks import Task, TaskSet


@cache
def family(dopant: str) -> tuple:
    return tuple(f.structure for f in generate_family("rectangular", dopant, 6, seed=0, min_heavy=10,
                                                      max_heavy=30))

def flake(dopant: str, seed: int = 3) -> Structure:
    """A small generated flake (10-30 heavy atoms) of the given dopant family."""
    return family(dopant)[seed]

def benzene(cc: float = 1.42, ch: float = 1.09) -> Structure:
    ang = np.arange(6) * np.pi / 3
    c = np.stack([cc * np.cos(ang), cc * np.sin(ang), np.zeros(6)], 1)
    h = c * (cc + ch) / cc
    return Structure([6] * 6 + [1] * 6, np.concatenate([c, h]))

def random_head(model: TBGapNet, seed: int = 0) -> TBGapNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (model.head.onsite_out, model.head.hop_out):
            lin.weight.copy_(0.3 * torch.randn(lin.weight.shape, generator=g))
            lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))
    return model

def toy_flake_taskset(n_tasks=3, n=8, noise=0.0):
    tasks = []
    for t, dopant in enumerate(["none", "N", "BN"][:n_tasks]):
        structs = [f.structure for f in generate_family("rectangular", dopant, n, seed=1, min_heavy=10, max_heavy=24)]
        g = reference_gap(collate(structs, cutoff=2.0)).double().numpy()
        y = (0.6 + 0.1 * t) * g + 0.3 + noise * np.random.default_rng(t).normal(size=len(g))
        tasks.append(Task(f"rect|{dopant}", structs, y, groups=("rectangular", dopant),
                          descriptors=np.c_[g, np.arange(len(g))], target_unit="eV"))
    return TaskSet(tasks)
