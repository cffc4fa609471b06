"""nanonb.bench.fanout: independent benchmark jobs in parallel processes, results in job order.

The protocols' own "workers=2 gives the same rows as workers=1" checks are in test_bench_campaign.py,
test_bench_casestudy.py and test_bench_nanoalloy_report.py. The process tests here share one warm pool
of 2 loky workers (the first start imports torch in each: a few seconds).
"""

from __future__ import annotations

import os

import pytest
import torch

from nanonb.bench.fanout import JobError, describe_workers, fan_out, n_workers
from nanonb.threads import worker_threads


def _divide(a: float, b: float) -> float:
    return a / b


def _worker_state(i: int) -> tuple[int, int, int]:
    from threadpoolctl import threadpool_info

    blas = max((p["num_threads"] for p in threadpool_info() if p["user_api"] in ("blas", "openmp")), default=1)
    return i, os.getpid(), torch.get_num_threads() * 100 + blas


def test_serial_runs_in_this_process_in_order_and_names_a_failing_job():
    seen = []

    def job(i):
        seen.append(i)
        return os.getpid(), i * i

    said = []
    out = fan_out(job, [(i,) for i in range(5)], workers=1, progress=False, log=said.append)
    assert said == []                                             # in this process: nothing to say
    assert out == [(os.getpid(), i * i) for i in range(5)] and seen == [0, 1, 2, 3, 4]
    with pytest.raises(JobError, match=r"folds job leave-salt-out/3 failed: ZeroDivisionError") as err:
        fan_out(_divide, [(1, 1), (1, 0)], names=["leave-salt-out/2", "leave-salt-out/3"], progress=False,
                desc="folds")
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_worker_count_is_checked_and_capped_at_the_jobs():
    assert n_workers(4, 3) == 3 and n_workers(2, 10) == 2 and n_workers(3, 0) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            fan_out(_divide, [(1, 1)], workers=bad, progress=False)
    assert describe_workers(1, 3) == "3 jobs in this process"
    assert describe_workers(2, 3).startswith("3 jobs on 2 processes x ")


def test_two_processes_keep_job_order_and_apply_the_thread_policy():
    jobs = [(i,) for i in range(6)]
    said = []
    out = fan_out(_worker_state, jobs, workers=2, progress=False, desc="folds", log=said.append)
    assert said == [f"folds: {describe_workers(2, 6)}"]           # the one log line of a fan-out
    assert [o[0] for o in out] == list(range(6))                 # job order, whatever finished first
    assert os.getpid() not in {o[1] for o in out}                # run elsewhere...
    assert len({o[1] for o in out}) <= 2                         # ...by at most 2 processes
    t = worker_threads(2)
    assert {o[2] for o in out} == {t * 100 + t}                  # torch and BLAS/OpenMP threads: the policy
    assert fan_out(lambda a, b: a - b, [(5, 2), (9, 1)], workers=2, progress=False) == [3, 8]  # closures travel


def test_a_failing_worker_job_is_named_and_cancels_the_run():
    with pytest.raises(JobError, match=r"campaigns job \(pair=Cu-Pt, seed=1\) failed \(worker process \d+\): "
                                       r"ZeroDivisionError") as err:
        fan_out(_divide, [(1, 1), (1, 0), (2, 1)], workers=2, progress=False, desc="campaigns",
                names=["(pair=Cu-Pt, seed=0)", "(pair=Cu-Pt, seed=1)", "(pair=Cu-Pt, seed=2)"])
    assert "ZeroDivisionError" in str(err.value.__cause__)      # the worker's traceback comes along
