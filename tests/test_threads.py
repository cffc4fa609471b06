"""nanonb.threads: one thread policy (NANONB_NUM_THREADS, default 1)."""

import torch

from nanonb.threads import default_threads, num_threads, set_threads


def test_default_and_environment(monkeypatch):
    monkeypatch.delenv("NANONB_NUM_THREADS", raising=False)
    assert default_threads() == 1
    monkeypatch.setenv("NANONB_NUM_THREADS", "2")
    assert default_threads() == 2


def test_set_and_restore(monkeypatch):
    monkeypatch.delenv("NANONB_NUM_THREADS", raising=False)
    old = torch.get_num_threads()
    with num_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == old
    try:
        assert set_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
