"""The thread policy: how many CPU threads torch and the BLAS / OpenMP libraries use, in one place.

The models here are small, so one thread is as fast as two on an idle 2-core machine, and far
faster on a busy one (OpenMP threads spin against each other; the scipy L-BFGS-B of the GP
baselines runs ~8x slower with 2 BLAS threads on a busy 2-core machine); one thread is also
deterministic (the same floating-point sums on every run). The default is therefore 1,
overridable with the environment variable ``NANONB_NUM_THREADS``.

- :func:`set_threads` applies the policy for the rest of the process (torch and every BLAS /
  OpenMP pool loaded so far, via ``threadpoolctl``). It is cheap and idempotent: call it at the top
  of a notebook or script (after the imports, so the BLAS libraries are loaded) and again whenever
  you like. ``python -m nanonb.bench`` applies it once for every protocol.
- :func:`limit_threads` is the same limit for one block, restored afterwards.
- :func:`worker_threads` is the share of one of ``workers`` parallel processes
  (:mod:`nanonb.bench.fanout`): the policy above, capped so that ``workers x threads <= cores``.

Reproducibility across thread counts. The same seed gives the same tasks, episodes, initial weights
and sampling order whatever the thread count: everything random is drawn from seeded generators, not
from the threads. With the same thread count (and the same machine and library versions) every
number is reproduced bit for bit. What varies with the thread count is the order in which torch and
the BLAS add up the terms of a matrix product or a reduction, and so the last bits of float32
results; meta-training feeds them back for hundreds of iterations, so they grow a little but stay at
the rounding level. Measured (``tools/measure_threads.py``: second-order MAML, MLP 64x64, 200
meta-iterations on 12 sine tasks, then 5-shot adaptation and prediction): 1 vs 2 torch threads give
predictions that differ by at most 4.5e-7 (values up to 2.5, i.e. about 2e-7 relative; the final
training loss agrees to 6 digits), and 2 threads took 145 s against 10 s for 1 on a busy 2-core machine
(spinning OpenMP threads). Tables rounded to 3 digits are therefore the same; a bit-for-bit comparison
needs the same thread count, which the default of 1 gives everyone who calls :func:`set_threads`
(the CLI and ``python -m nanonb.bench`` do).

Example
-------
>>> from nanonb.threads import limit_threads, set_threads
>>> n = set_threads()          # NANONB_NUM_THREADS or 1   # doctest: +SKIP
>>> with limit_threads(1):     # temporarily one torch and one BLAS thread, restored afterwards
...     pass
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

ENV_VAR = "NANONB_NUM_THREADS"
DEFAULT_THREADS = 1

# (threads, number of loaded modules) at the last set_threads(): a new import may load a new BLAS.
_applied: tuple[int, int] | None = None


def default_threads() -> int:
    """``NANONB_NUM_THREADS`` if set, else 1 (a thread count).

    Example
    -------
    >>> default_threads() >= 1
    True
    """
    return int(os.environ.get(ENV_VAR, str(DEFAULT_THREADS)))


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default: :func:`default_threads`) in torch and in every loaded BLAS / OpenMP pool.

    Process-wide and idempotent: a repeated call with the same ``n`` and no new imports since does
    nothing (about a microsecond); after new imports it applies the limit again, so libraries
    loaded since are covered. Returns the thread count set.

    Example
    -------
    >>> set_threads(1)
    1
    >>> set_threads(1)             # again: nothing to do
    1
    """
    global _applied
    n = default_threads() if n is None else int(n)
    key = (n, len(sys.modules))
    if _applied == key and torch.get_num_threads() == n:
        return n
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    _applied = key
    return n


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``).

    Example
    -------
    >>> available_cores() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Threads for each of ``workers`` processes run side by side: :func:`default_threads`, capped at
    ``cores // workers`` (default cores: :func:`available_cores`), and at least 1.

    So ``workers x threads <= cores`` whenever ``workers <= cores`` (with more workers than cores each
    gets one thread and the processes share the cores).

    Example
    -------
    >>> worker_threads(2, cores=2)
    1
    >>> worker_threads(4, cores=2)     # more workers than cores: one thread each
    1
    """
    cores = available_cores() if cores is None else int(cores)
    return max(1, min(default_threads(), cores // max(1, int(workers))))


@contextmanager
def limit_threads(n: int | None = None) -> Iterator[int]:
    """Run a block with ``n`` torch and BLAS / OpenMP threads (default: :func:`default_threads`), then restore.

    Example
    -------
    >>> with limit_threads(1) as n:
    ...     torch.get_num_threads() == n == 1
    True
    """
    global _applied
    n = default_threads() if n is None else int(n)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(old)
        _applied = None
