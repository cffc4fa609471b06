"""The thread policy: how many CPU threads torch uses, in one place.

The models here are small, so one thread is as fast as two on an idle 2-core machine, and far
faster on a busy one (OpenMP threads spin against each other); one thread is also deterministic
(the same floating-point sums on every run). The default is therefore 1, overridable with the
environment variable ``NANONB_NUM_THREADS``.

Example
-------
>>> from nanonb.threads import num_threads, set_threads
>>> n = set_threads()          # NANONB_NUM_THREADS or 1   # doctest: +SKIP
>>> with num_threads(1):       # temporarily one thread, restored afterwards
...     pass
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV_VAR = "NANONB_NUM_THREADS"
DEFAULT_THREADS = 1


def default_threads() -> int:
    """``NANONB_NUM_THREADS`` if set, else 1."""
    return int(os.environ.get(ENV_VAR, str(DEFAULT_THREADS)))


def set_threads(n: int | None = None) -> int:
    """Use ``n`` torch threads (default: :func:`default_threads`); returns the number set."""
    n = default_threads() if n is None else int(n)
    torch.set_num_threads(n)
    return n


@contextmanager
def num_threads(n: int | None = None) -> Iterator[int]:
    """Run a block with ``n`` torch threads (default: :func:`default_threads`), then restore the old setting."""
    old = torch.get_num_threads()
    try:
        yield set_threads(n)
    finally:
        torch.set_num_threads(old)
