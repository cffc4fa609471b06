"""Executing a notebook in a fresh kernel, with its wall time and peak memory (for :mod:`nanonb.bench.notebooks`).

Wall time includes the kernel start-up (what "Restart Kernel and Run All Cells" costs). Peak
memory is the larger of (a) the kernel process tree's summed resident set size, sampled every
50 ms with psutil, and (b) the kernel process's own high-water mark ``VmHWM`` from ``/proc``
(exact, Linux only).

Example
-------
>>> import nbformat
>>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)")])
>>> execute_notebook(nb, cwd=".")["error"]   # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["cell_seconds", "execute_notebook", "heaviest_cell", "notebook_stdout"]


# ------------------------------------------------------------------------------------ memory
class _TreeMemorySampler:
    """Samples the summed RSS (bytes) of a process and all its descendants in a background thread."""

    def __init__(self, pid: int, interval_s: float = 0.05):
        self.pid, self.interval_s = pid, interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _TreeMemorySampler:
        self._thread.start()
        return self

    def _sample(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        self.peak_bytes = max(self.peak_bytes, self._sample())
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_bytes


def _vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of one process (``VmHWM`` in ``/proc/<pid>/status``), 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


# ------------------------------------------------------------------------------ execution
def _kernel_env() -> dict[str, str]:
    """The current environment minus ``MPLBACKEND`` (it would replace the inline backend in kernels)."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    return env


def execute_notebook(nb, cwd: str | Path, timeout_s: float = 600.0, kernel_name: str = "python3") -> dict[str, Any]:
    """Execute a notebook object in a fresh kernel; measure wall time and peak memory.

    Parameters
    ----------
    nb:
        ``nbformat.NotebookNode`` (modified in place: outputs are filled in).
    cwd:
        Working directory of the kernel.
    timeout_s:
        Per-cell timeout in seconds.
    kernel_name:
        Kernel spec; ``"python3"`` is the current environment's ipykernel.

    Returns
    -------
    dict
        ``runtime_s`` (s, kernel start to last cell), ``peak_mem_mb`` (MB = 1e6 bytes),
        ``peak_tree_rss_mb``, ``kernel_hwm_mb``, ``error`` (``None`` or ``"ExcName: message"``).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    state: dict[str, Any] = {}

    def on_start(**_: Any) -> None:
        proc = getattr(getattr(client.km, "provisioner", None), "process", None)
        if proc is not None:
            state["pid"] = proc.pid
            state["sampler"] = _TreeMemorySampler(proc.pid).start()

    def on_cell(**_: Any) -> None:  # the kernel is still alive here (not in on_notebook_complete)
        if "pid" in state:
            state["hwm"] = max(state.get("hwm", 0), _vm_hwm_bytes(state["pid"]))

    client = NotebookClient(nb, timeout=int(timeout_s), kernel_name=kernel_name,
                            resources={"metadata": {"path": str(cwd)}},
                            on_notebook_start=on_start, on_cell_executed=on_cell)
    error = None
    t0 = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError) as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    runtime = time.perf_counter() - t0
    if "sampler" in state:
        state["tree"] = state["sampler"].stop()
    tree, hwm = state.get("tree", 0) / 1e6, state.get("hwm", 0) / 1e6
    return {"runtime_s": runtime, "peak_mem_mb": max(tree, hwm), "peak_tree_rss_mb": tree, "kernel_hwm_mb": hwm,
            "error": error}


def notebook_stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout")


# ------------------------------------------------------------------------- widget latency


def cell_seconds(nb) -> list[float | None]:
    """Wall time (s) of every cell of an executed notebook, from nbclient's timing metadata (busy to idle).

    ``None`` for markdown cells and cells without timing (not executed).
    """
    from datetime import datetime

    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    out: list[float | None] = []
    for c in nb.cells:
        t = c.get("metadata", {}).get("execution", {}) if c.cell_type == "code" else {}
        start = t.get("iopub.status.busy") or t.get("iopub.execute_input")
        end = t.get("iopub.status.idle") or t.get("shell.execute_reply")
        if start and end:
            out.append((parse(end) - parse(start)).total_seconds())
        else:
            out.append(None)
    return out


def heaviest_cell(nb) -> dict[str, Any]:
    """The slowest cell of an executed notebook: ``index`` (0-based, all cells), ``seconds``, ``first_line``.

    Example
    -------
    >>> heaviest_cell(executed_nb)["seconds"]   # doctest: +SKIP
    12.3
    """
    times = cell_seconds(nb)
    timed = [(s, i) for i, s in enumerate(times) if s is not None]
    if not timed:
        return {"index": None, "seconds": float("nan"), "first_line": ""}
    s, i = max(timed)
    return {"index": i, "seconds": float(s), "first_line": nb.cells[i].source.strip().splitlines()[0][:80]
            if nb.cells[i].source.strip() else ""}
