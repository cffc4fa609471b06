"""nanonb.threads: one thread policy (NANONB_NUM_THREADS, default 1) for torch and BLAS."""

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
