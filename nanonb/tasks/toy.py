"""Synthetic task sets for timing and tests: sinusoid regression and random-target metal clusters.

Neither needs a download. The sinusoids are the classic MAML toy (Finn et al. 2017); the clusters have
the size of the nanoalloy structures (a 3-shell icosahedron has 55 atoms), with random per-atom targets
(the speed of a graph network does not depend on the targets).

Example
-------
>>> ts = sinusoid_tasks(4, 20)
>>> len(ts), len(ts[0])
(4, 20)
"""

from __future__ import annotations

import numpy as np

from ..graphs import Structure
from .task import Task
from .taskset import TaskSet


def sinusoid_tasks(n_tasks: int = 50, n: int = 40, seed: int = 0) -> TaskSet:
    """Sinusoid regression tasks ``a sin(x + phi)`` (a in [0.1, 5], x in [-5, 5]), the classic MAML toy.

    Example
    -------
    >>> len(sinusoid_tasks(3, 10))
    3
    """
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        amp, phase = rng.uniform(0.1, 5.0), rng.uniform(0.0, np.pi)
        x = rng.uniform(-5.0, 5.0, (n, 1))
        tasks.append(Task(f"sin{i:02d}", x, amp * np.sin(x[:, 0] + phase), groups=(f"g{i}",)))
    return TaskSet(tasks, name="sinusoid")


def cluster_tasks(n_tasks: int, n: int, shells: int = 3, seed: int = 0) -> TaskSet:
    """Cu/Pt icosahedra (``shells=3``: 55 atoms) with random per-atom targets, for timing graph models.

    Example
    -------
    >>> len(cluster_tasks(2, 3, shells=2)[0].inputs[0])     # 13-atom icosahedron
    13
    """
    from ase.cluster import Icosahedron

    base = Icosahedron("Cu", shells)
    rng = np.random.default_rng(seed)
    tasks = []
    for t in range(n_tasks):
        structs = []
        for _ in range(n):
            z = base.get_atomic_numbers().copy()
            z[rng.random(len(z)) < 0.4] = 78
            structs.append(Structure(z, base.get_positions() + rng.normal(scale=0.05, size=(len(z), 3))))
        tasks.append(Task(f"cl{t}", structs, rng.normal(size=n), groups=(f"g{t}",), target_unit="eV/atom"))
    return TaskSet(tasks, name="clusters")
