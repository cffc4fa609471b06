"""Notebook benchmark: ``python -m nanonb.bench notebooks [--quick] [--out notebooks.json]``.

Measures what a user meets when opening the tutorial notebooks:

* every notebook in ``notebooks/`` is executed top to bottom in a **fresh kernel** (nbclient, the
  kernel of the current Python environment, working directory = a temporary copy of the notebook
  folder, so the repository copy stays untouched). Wall time includes the kernel start-up (what
  "Restart Kernel and Run All Cells" costs). Peak memory is the larger of (a) the kernel process
  tree's summed resident set size, sampled every 50 ms with psutil, and (b) the kernel process's
  own high-water mark ``VmHWM`` from ``/proc`` (exact, Linux only).
* widget interaction latency: in a fresh kernel, :class:`nanonb.widgets.AdaptationExplorer` is built
  around the shipped learner (:func:`nanonb.pretrained.load_pretrained`) on the held-out nanoalloy
  tasks (Cu-Pt) with the baselines of notebook 03 (pooled+fine-tune, support GP), the "inner steps"
  slider at 10, and the "shots" slider is moved programmatically ``n_interactions`` times between 5
  and 6 shots. Every move re-adapts the meta-learner and redraws the PNG figure and the readout; the
  explorer caches
  baseline predictions per (task, shots, episode), so only the first visit of a shot count adapts
  the baselines too (reported separately as ``first_visit_ms``). Each latency is the time from
  setting ``slider.value`` until the explorer's synchronous observers return. The browser adds
  the comm round trip and the image decode on top (see ``tests/test_browser.py``).

Budgets (:data:`BUDGETS`): each notebook < 120 s and < 1.5 GB; widget interaction p95 < 250 ms.

Result rows use the shared schema of :mod:`nanonb.bench.schema` with ``split="budget"``. The schema only
knows ``kind`` ``"meta"`` or ``"baseline"``; these rows measure tooling, not learners, so they all
use ``kind="baseline"`` (read it as "reference measurement"). ``method`` is the notebook name
(without ``.ipynb``) or ``"widget_interaction"``; ``metric`` is ``runtime_s``, ``peak_mem_mb``,
``latency_ms`` (mean/sem/median over the interactions) or ``latency_p95_ms``; ``k`` is 0 for
notebooks and the number of shots for the widget. ``n_tasks`` is 1 for notebooks and the number
of interactions for the widget. Budget checks are in ``result["checks"]`` and
``result["all_within_budget"]``; ``strict=True`` raises after printing when a budget is exceeded
or a notebook fails.

``--quick`` runs only ``00_welcome.ipynb`` and 10 interactions; ``--set key=value`` overrides a
:class:`NotebooksConfig` field.

Example
-------
``python -m nanonb.bench notebooks --quick --set 'names=["03_few_shot_adaptation"]' --out notebooks.json``
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .nbexec import execute_notebook, heaviest_cell, notebook_stdout
from .schema import apply_options, make_result

#: budget per notebook / interaction
BUDGETS: dict[str, float] = {"runtime_s": 120.0, "peak_mem_mb": 1500.0, "latency_p95_ms": 250.0}
QUICK_NOTEBOOKS = ("00_welcome.ipynb",)
DEFAULT_INTERACTIONS, QUICK_INTERACTIONS = 50, 10
REPO_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _latency_code(n: int, shots: tuple[int, int], inner_steps: int, seed: int, baselines: bool) -> str:
    """Kernel-side code that times ``n`` programmatic "shots" slider moves and prints one JSON line.

    The explorer is built as the ANIL explorer of ``notebooks/03_few_shot_adaptation.ipynb``: the shipped ANIL
    learner (``load_pretrained("nanoalloys-anil")``) on
    the held-out (Pt) nanoalloy tasks, task Cu-Pt, one torch thread, with pooled+fine-tune (20 steps)
    and the support GP as baselines (``baselines=True``). The sliders are found by their descriptions
    (the stable interface of :class:`nanonb.widgets.AdaptationExplorer`). Baseline predictions are
    cached per (task, shots, episode) by the explorer, so only the first visit of each shot count pays
    for them; the ``first_visit_ms`` entries report those moves separately.
    """
    return f"""
import json, time
import ipywidgets as widgets
from nanonb.pretrained import heldout_ceiling, heldout_tasks, load_pretrained, load_pretrained_baseline
from nanonb.widgets import AdaptationExplorer

def _find(root, cls, description):
    seen, stack = set(), [root]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        if isinstance(w, cls) and getattr(w, "description", None) == description:
            return w
        stack.extend(getattr(w, "children", ()) or ())
    raise LookupError(f"no {{cls.__name__}} with description {{description!r}} in the explorer")

import torch
torch.set_num_threads(1)  # as the notebook does
t0 = time.perf_counter()
train, test = heldout_tasks()
base = []
if {baselines!r}:
    from nanonb.baselines import FineTune, SupportGP
    base = [FineTune(load_pretrained_baseline(), steps=20), SupportGP(n_restarts=0).fit(train)]
explorer = AdaptationExplorer(load_pretrained("nanoalloys-anil"), test, baselines=base, task="Cu-Pt",
                              shots={shots[0]}, seed={seed}, ceiling=heldout_ceiling())
shots, steps = _find(explorer, widgets.IntSlider, "shots"), _find(explorer, widgets.IntSlider, "inner steps")
steps.value = {inner_steps}
build_s = time.perf_counter() - t0
lat, first, seen, bad = [], [], {{shots.value}}, []
for i in range({n}):
    new = {shots[0]} if shots.value != {shots[0]} else {shots[1]}
    t = time.perf_counter()
    shots.value = new
    dt = (time.perf_counter() - t) * 1000.0
    lat.append(dt)
    if new not in seen:
        first.append(dt)
        seen.add(new)
    r = explorer.result
    if not r.get("ok") or r.get("k") != new or r.get("inner_steps") != {inner_steps}:
        bad.append({{k: r.get(k) for k in ("ok", "k", "inner_steps", "message")}})
print("NBBENCH_LATENCY " + json.dumps({{"latency_ms": lat, "first_visit_ms": first, "build_s": build_s,
                                       "bad": bad[:3], "mae": explorer.result.get("mae")}}))
"""


def measure_widget_latency(n_interactions: int = DEFAULT_INTERACTIONS, shots: tuple[int, int] = (5, 6),
                           inner_steps: int = 10, seed: int = 0, baselines: bool = True,
                           timeout_s: float = 600.0) -> dict[str, Any]:
    """Time programmatic slider moves of :class:`nanonb.widgets.AdaptationExplorer` in a fresh kernel.

    Returns
    -------
    dict
        ``latency_ms`` (list, ms per move), ``p50_ms``, ``p95_ms``, ``max_ms``, ``first_visit_ms``
        (moves to a shot count not seen before: baselines adapted too), ``warm_p95_ms`` (p95 without
        those), ``build_s`` (data, learner
        and explorer construction, s), ``mae`` (eV/atom, last update), ``runtime_s``/``peak_mem_mb``
        of the kernel, ``error``.
    """
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(_latency_code(n_interactions, shots, inner_steps, seed, baselines))]
    with tempfile.TemporaryDirectory(prefix="nanonb-nbbench-") as tmp:
        run = execute_notebook(nb, tmp, timeout_s=timeout_s)
    out = {**run, "latency_ms": [], "p50_ms": float("nan"), "p95_ms": float("nan"), "build_s": float("nan")}
    for line in notebook_stdout(nb).splitlines():
        if line.startswith("NBBENCH_LATENCY "):
            data = json.loads(line.split(" ", 1)[1])
            lat = data["latency_ms"]
            out.update(latency_ms=lat, build_s=data["build_s"], p50_ms=_percentile(lat, 50),
                       p95_ms=_percentile(lat, 95), max_ms=max(lat) if lat else float("nan"),
                       first_visit_ms=data["first_visit_ms"], mae=data["mae"],
                       warm_p95_ms=_percentile(_without(lat, data["first_visit_ms"]), 95))
            if data["bad"] and out["error"] is None:
                out["error"] = f"explorer updates did not succeed: {data['bad']}"
    if not out["latency_ms"] and out["error"] is None:
        out["error"] = "the latency cell printed no result"
    return out


def _without(values: Sequence[float], drop: Sequence[float]) -> list[float]:
    """``values`` minus one occurrence of each element of ``drop``."""
    out = list(values)
    for d in drop:
        if d in out:
            out.remove(d)
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


# ---------------------------------------------------------------------------- protocol
def _row(method: str, metric: str, mean: float, median: float | None = None, sem: float = 0.0, k: int = 0,
         n: int = 1) -> dict:
    return {"split": "budget", "method": method, "kind": "baseline", "k": int(k), "metric": metric,
            "mean": float(mean), "sem": float(sem), "median": float(mean if median is None else median),
            "n_tasks": int(n)}


@dataclass
class NotebooksConfig:
    """Options of :func:`run_notebooks` (each can be set with ``--set key=value``).

    notebooks_dir:
        Folder of ``*.ipynb`` (default: the repository's ``notebooks/``).
    names:
        Notebook file names to run (default: all, sorted; quick: :data:`QUICK_NOTEBOOKS`).
    n_interactions:
        Slider moves to time (default 50, quick 10).
    widget:
        Measure the explorer's interaction latency (False: notebooks only).
    timeout_s:
        Per-cell timeout (s) of the executions.
    strict:
        Raise ``RuntimeError`` (after logging) if a notebook fails or a budget is exceeded.

    Example
    -------
    >>> NotebooksConfig(widget=False).timeout_s
    600.0
    """

    notebooks_dir: str | None = None
    names: Sequence[str] | None = None
    n_interactions: int | None = None
    widget: bool = True
    timeout_s: float = 600.0
    strict: bool = False


def run_notebooks(quick: bool = False, seed: int = 0, progress: bool = True, config: NotebooksConfig | None = None,
                  log: Callable[[str], None] = print, **options: Any) -> dict:
    """Execute the notebooks in fresh kernels and time widget interaction; check the budgets.

    Parameters
    ----------
    quick:
        Only ``00_welcome.ipynb`` and :data:`QUICK_INTERACTIONS` interactions.
    seed:
        Seed passed to the explorer (episode sampling).
    progress:
        Log one line per notebook.
    config, options:
        A :class:`NotebooksConfig`; ``options`` override its fields (an unknown one is an error).

    Returns
    -------
    dict
        :func:`nanonb.bench.schema.make_result` dict with extra keys ``budgets``, ``checks`` (one per
        measured quantity: ``method``, ``metric``, ``value``, ``budget``, ``ok``), ``errors``,
        ``all_within_budget`` and ``environment``.

    Example
    -------
    >>> res = run_notebooks(quick=True, widget=False)  # doctest: +SKIP
    >>> res["all_within_budget"]                       # doctest: +SKIP
    True
    """
    import nbformat

    cfg = apply_options(config or NotebooksConfig(), options)
    notebooks_dir, names, n_interactions = cfg.notebooks_dir, cfg.names, cfg.n_interactions
    widget, timeout_s, strict = cfg.widget, cfg.timeout_s, cfg.strict
    t_all = time.perf_counter()
    src = Path(notebooks_dir) if notebooks_dir is not None else REPO_NOTEBOOKS
    if not src.is_dir():
        raise FileNotFoundError(f"notebook folder {src} not found; pass notebooks_dir=... "
                                "(--set notebooks_dir=PATH)")
    if names is None:
        names = list(QUICK_NOTEBOOKS) if quick else sorted(p.name for p in src.glob("*.ipynb"))
    names = [n if n.endswith(".ipynb") else f"{n}.ipynb" for n in names]
    missing = [n for n in names if not (src / n).is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks {missing} not found in {src}")
    n_int = n_interactions if n_interactions is not None else (QUICK_INTERACTIONS if quick else DEFAULT_INTERACTIONS)
    say = log if progress else (lambda _msg: None)

    rows: list[dict] = []
    checks: list[dict] = []
    errors: dict[str, str] = {}
    per_notebook: dict[str, dict] = {}

    def check(method: str, metric: str, value: float) -> bool:
        ok = bool(value < BUDGETS[metric])
        checks.append({"method": method, "metric": metric, "value": float(value), "budget": BUDGETS[metric],
                       "ok": ok})
        return ok

    with tempfile.TemporaryDirectory(prefix="nanonb-nbbench-") as tmp:
        work = Path(tmp) / src.name
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        for name in names:
            nb = nbformat.read(work / name, as_version=4)
            r = execute_notebook(nb, work, timeout_s=timeout_s)
            method = name.removesuffix(".ipynb")
            per_notebook[method] = {k: v for k, v in r.items()} | {"heaviest_cell": heaviest_cell(nb)}
            rows += [_row(method, "runtime_s", r["runtime_s"]), _row(method, "peak_mem_mb", r["peak_mem_mb"])]
            ok = check(method, "runtime_s", r["runtime_s"]) & check(method, "peak_mem_mb", r["peak_mem_mb"])
            if r["error"]:
                errors[method] = r["error"]
            say(f"  {name:40s} {r['runtime_s']:7.1f} s  peak {r['peak_mem_mb']:7.0f} MB  "
                f"{'ok' if ok and not r['error'] else 'OVER BUDGET' if not r['error'] else 'FAILED: ' + r['error']}")

    widget_info: dict[str, Any] = {}
    if widget and n_int > 0:
        w = measure_widget_latency(n_int, seed=seed, timeout_s=timeout_s)
        lat = w["latency_ms"]
        widget_info = {k: v for k, v in w.items() if k != "latency_ms"} | {"n": len(lat)}
        if w["error"]:
            errors["widget_interaction"] = w["error"]
        if lat:
            sem = statistics.stdev(lat) / len(lat) ** 0.5 if len(lat) > 1 else 0.0
            rows += [_row("widget_interaction", "latency_ms", statistics.fmean(lat), w["p50_ms"], sem, k=5,
                          n=len(lat)),
                     _row("widget_interaction", "latency_p95_ms", w["p95_ms"], k=5, n=len(lat))]
            ok = check("widget_interaction", "latency_p95_ms", w["p95_ms"])
            say(f"  widget interaction ({len(lat)} slider moves, 5<->6 shots, 10 inner steps): "
                f"p50 {w['p50_ms']:.0f} ms, p95 {w['p95_ms']:.0f} ms, p95 without first visits "
                f"{w['warm_p95_ms']:.0f} ms (explorer built in {w['build_s']:.1f} s) "
                f"{'ok' if ok else 'OVER BUDGET'}")
        else:
            say(f"  widget interaction FAILED: {w['error']}")

    all_ok = all(c["ok"] for c in checks) and not errors
    config = {"quick": quick, "seed": seed, "notebooks_dir": str(src), "notebooks": list(names),
              "n_interactions": n_int if widget else 0, "timeout_s": timeout_s}
    result = make_result("notebooks", rows, time.perf_counter() - t_all, config, budgets=dict(BUDGETS),
                         checks=checks, errors=errors, all_within_budget=all_ok, per_notebook=per_notebook,
                         widget=widget_info, environment=_environment())
    if strict and not all_ok:
        bad = [c for c in checks if not c["ok"]]
        raise RuntimeError(f"notebook budgets not met: over budget {bad}; errors {errors}")
    return result


def _environment() -> dict[str, Any]:
    import psutil

    return {"python": platform.python_version(), "cpu_count": os.cpu_count(),
            "mem_total_gb": round(psutil.virtual_memory().total / 1e9, 1), "executable": sys.executable}
