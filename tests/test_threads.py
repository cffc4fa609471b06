"""nanonb.threads: one thread policy (NANONB_NUM_THREADS, default 1) for torch and BLAS."""

import os

import torch
from threadpoolctl import threadpool_info

from nanonb import threads
from nanonb.threads import default_threads, limit_threads, set_threads


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_default_and_environment(monkeypatch):
    monkeypatch.delenv("NANONB_NUM_THREADS", raising=False)
    assert default_threads() == 1
    monkeypatch.setenv("NANONB_NUM_THREADS", "2")
    assert default_threads() == 2


def test_limit_threads_sets_torch_and_blas_and_restores(monkeypatch):
    import numpy  # noqa: F401  (a BLAS is loaded)

    monkeypatch.delenv("NANONB_NUM_THREADS", raising=False)
    old_torch, old_blas = torch.get_num_threads(), _blas_threads()
    with limit_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    with limit_threads() as n:
        assert n == 1 and torch.get_num_threads() == 1 and _blas_threads() <= {1}
    assert torch.get_num_threads() == old_torch and _blas_threads() == old_blas


def test_set_threads_is_process_wide_and_idempotent(monkeypatch):
    monkeypatch.delenv("NANONB_NUM_THREADS", raising=False)
    old = torch.get_num_threads()
    try:
        assert set_threads() == 1 and torch.get_num_threads() == 1 and _blas_threads() <= {1}
        key = threads._applied
        assert set_threads() == 1 and threads._applied == key     # nothing re-applied
        torch.set_num_threads(2)                                   # changed behind its back: re-applied
        assert set_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_worker_threads_keeps_workers_times_threads_within_the_cores(monkeypatch):
    from nanonb.threads import available_cores, worker_threads

    monkeypatch.setenv("NANONB_NUM_THREADS", "4")
    assert worker_threads(1, cores=16) == 4            # the policy, when the cores allow it
    assert worker_threads(8, cores=16) == 2            # capped: 8 x 2 <= 16
    assert worker_threads(3, cores=2) == 1             # more workers than cores: one thread each
    monkeypatch.delenv("NANONB_NUM_THREADS")
    assert worker_threads(2, cores=64) == 1            # default policy: 1
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
