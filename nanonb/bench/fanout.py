"""Fan-out: run the independent jobs of a long benchmark (folds, held-out elements, campaigns) in parallel processes.

:func:`fan_out` is the one rule every protocol uses. ``fan_out(fn, jobs, workers)`` returns
``[fn(*job) for job in jobs]``, in job order:

- ``workers=1``: in this process, one job after the other (exactly the serial loop);
- ``workers=N``: in ``N`` worker processes of **joblib**'s ``loky`` backend, each with
  :func:`nanonb.threads.worker_threads` threads (the thread policy of :mod:`nanonb.threads`, capped so
  that ``N x threads <= cores``).

Why joblib/loky and not ``concurrent.futures.ProcessPoolExecutor`` or ``torchrun``:

- loky starts its workers with fork + exec (a fresh interpreter), never a bare ``fork`` of a process
  whose torch / OpenMP thread pools are already running (a known way to deadlock a child); the
  standard library offers ``spawn`` for that too, but
- it pickles jobs with ``cloudpickle``, so the closures and lambdas the protocols pass around (a
  protocol's ``extra`` step, a ``log`` function) travel as they are; ``ProcessPoolExecutor`` would need
  every one of them rewritten as a module-level function;
- it keeps its workers warm between calls (the second fan-out does not import torch again), caps
  the BLAS / OpenMP threads of each worker through its environment (``inner_max_num_threads``), and
  re-raises a worker's exception in the parent with the worker's traceback;
- joblib is well kept (scikit-learn's engine) and already installed with scikit-learn.

The jobs of a benchmark share nothing (no gradients to sum), so ``torchrun`` (which
:mod:`nanonb.train` uses for one meta-training run across processes) brings nothing here; a cluster
job array (one ``--set fold_ids=[i]`` per task, merged with ``tools/merge_casestudy.py``) remains the
way across machines.

When it pays: with idle cores and jobs long next to a worker's start-up (a fresh interpreter importing
torch and BoTorch: about 10 s of CPU). On a busy shared machine it does not (measured in the README,
"Speed and scale": 2 workers took twice the serial wall time there).

Same seeds, same numbers: every job draws its random numbers from generators seeded by its own
arguments, and the results come back in job order, so a fanned-out run gives the same rows as a
serial one (``tests/test_bench_fanout.py`` checks it). A failing job raises :class:`JobError` naming
the job, chained to the original exception.

Example
-------
>>> fan_out(pow, [(2, 3), (3, 2)], workers=1, progress=False)
[8, 9]
>>> fan_out(pow, [(2, 3), (3, 2)], workers=2, progress=False)   # two worker processes  # doctest: +SKIP
[8, 9]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from ..threads import available_cores, set_threads, worker_threads

__all__ = ["JobError", "describe_workers", "fan_out", "n_workers"]


class JobError(RuntimeError):
    """A job of :func:`fan_out` failed; the message names the job, the original exception is the cause."""


def n_workers(workers: int, n_jobs: int) -> int:
    """The processes :func:`fan_out` uses: ``workers`` (an int >= 1), at most one per job.

    Example
    -------
    >>> n_workers(5, 2), n_workers(2, 5), n_workers(1, 0)
    (2, 2, 1)
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return max(1, min(workers, n_jobs))


def _run_job(fn: Callable, job: tuple, name: str, desc: str, threads: int | None) -> Any:
    """One job, with the thread policy applied (``threads``: in a worker process; None: in this process)."""
    if threads is not None:
        set_threads(threads)
    try:
        return fn(*job)
    except Exception as exc:
        where = f" (worker process {os.getpid()})" if threads is not None else ""
        raise JobError(f"{desc} job {name} failed{where}: {type(exc).__name__}: {exc}") from exc


def fan_out(fn: Callable, jobs: Sequence[tuple], workers: int = 1, names: Sequence[str] | None = None,
            progress: bool = True, desc: str = "bench", log: Callable[[str], None] | None = None) -> list:
    """``[fn(*job) for job in jobs]``, in job order, run by ``workers`` processes (1: in this process).

    Parameters
    ----------
    fn:
        The job function (a module-level function, a ``functools.partial`` or a closure: it is sent to
        the workers with cloudpickle). It must seed its own random numbers from its arguments, so that
        its result does not depend on which process runs it or what ran before.
    jobs:
        One tuple of positional arguments per job.
    workers:
        Processes; more than the jobs are not started. With ``N > 1`` each worker applies
        :func:`nanonb.threads.worker_threads` ``(N)`` threads (``NANONB_NUM_THREADS``, default 1, capped
        so that ``N x threads <= cores``).
    names:
        Job names for the progress bar and the error message (default: ``str(job)``).
    progress:
        A progress bar over jobs (tqdm), advanced as results come back in order.
    desc:
        What the jobs are (``"calisol folds"``); starts the bar and the error message.
    log:
        With more than one process, where to say how many (``"<desc>: <describe_workers(...)>"``).

    Raises
    ------
    JobError
        When a job raises: ``"<desc> job <name> failed: <Type>: <message>"``, chained to the original
        exception (from a worker: with the worker's traceback). The other jobs are cancelled.

    Example
    -------
    >>> fan_out(divmod, [(7, 2), (9, 4)], names=["a", "b"], progress=False)
    [(3, 1), (2, 1)]
    >>> fan_out(divmod, [(1, 0)], names=["fold 3"], progress=False)
    Traceback (most recent call last):
    ...
    nanonb.bench.fanout.JobError: bench job fold 3 failed: ZeroDivisionError: integer division or modulo by zero
    """
    jobs = [tuple(j) for j in jobs]
    names = [str(j) for j in jobs] if names is None else [str(n) for n in names]
    if len(names) != len(jobs):
        raise ValueError(f"{len(names)} names for {len(jobs)} jobs")
    n = n_workers(workers, len(jobs))
    if log is not None and n > 1:
        log(f"{desc}: {describe_workers(workers, len(jobs))}")
    bar = tqdm(total=len(jobs), desc=desc if n == 1 else f"{desc} ({n} processes)", disable=not progress,
               leave=False)
    out = []
    with bar:
        if n == 1:
            for job, name in zip(jobs, names):
                out.append(_run_job(fn, job, name, desc, None))
                bar.update()
            return out
        from joblib import Parallel, delayed, parallel_config

        threads = worker_threads(n)
        with parallel_config(backend="loky", inner_max_num_threads=threads):
            results = Parallel(n_jobs=n, return_as="generator")(
                delayed(_run_job)(fn, job, name, desc, threads) for job, name in zip(jobs, names))
            for r in results:
                out.append(r)
                bar.update()
    return out


def describe_workers(workers: int, n_jobs: int) -> str:
    """One log line: how many processes and threads a fan-out of ``n_jobs`` jobs uses.

    Example
    -------
    >>> describe_workers(1, 4)
    '4 jobs in this process'
    """
    n = n_workers(workers, n_jobs)
    if n == 1:
        return f"{n_jobs} jobs in this process"
    return f"{n_jobs} jobs on {n} processes x {worker_threads(n)} thread(s) ({available_cores()} cores)"
