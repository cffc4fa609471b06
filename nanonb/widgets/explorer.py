"""The interactive few-shot adaptation explorer (:class:`AdaptationExplorer`).

Pick a held-out task (``task``), the number of support points (``shots``), the inner-loop settings
(``inner steps``, ``inner lr``; disabled for learners without an inner loop, such as the Bayesian
last layer) and see the adapted model's parity plot (with ±1 s.d. bars when it has
``predict_dist``), its MAE next to the baselines, the support-mean reference and the in-task ceiling,
and the support structures, redrawn on every change. An ``ipywidgets.VBox``: display it
as the last expression of a cell. Everything also works without a front end (tests drive the
widget programmatically: set a slider's ``.value`` and the explorer re-adapts; or call
:meth:`AdaptationExplorer.update`).

Widget descriptions are a stable interface (browser tests select by them): ``"task"``, ``"shots"``,
``"inner steps"``, ``"inner lr"``, the button ``"new episode"``, and the readout
(:attr:`AdaptationExplorer.readout`, an ``HTML`` widget whose text contains ``"MAE"``).
"""

from __future__ import annotations

import html
import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from ..baselines.ceiling import task_ceiling
from ..baselines.nets import SupportMean
from ..tasks import Task, TaskSet
from .explorer_figure import ExplorerFigure, readout_html
from .live import plain_text
from .structure import StructureView

__all__ = ["AdaptationExplorer", "cached_ceiling"]

#: In-task ceilings computed so far: (task name, n points, targets checksum) -> MAE (target units).
_CEILING_CACHE: dict[tuple, float] = {}


def cached_ceiling(task: Task) -> float:
    """:func:`~nanonb.baselines.ceiling.task_ceiling` of ``task`` (target units), computed once per session.

    Example
    -------
    >>> cached_ceiling(test["Cu-Pt"])   # eV/atom; ~2 s the first time, then free  # doctest: +SKIP
    0.0206
    """
    key = (task.name, len(task), float(np.sum(task.targets)), float(np.sum(np.abs(task.targets))))
    if key not in _CEILING_CACHE:
        _CEILING_CACHE[key] = task_ceiling(task)
    return _CEILING_CACHE[key]


def _default_units(task: Task) -> tuple[float, str]:
    unit = task.target_unit or ""
    if unit.startswith("eV"):
        return 1000.0, "m" + unit
    return 1.0, unit


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class AdaptationExplorer(widgets.VBox):
    """Interactive few-shot adaptation of a (meta-)learner to held-out tasks.

    Choose a task (``task`` dropdown), the number of support points (``shots`` slider), the number of
    inner gradient steps (``inner steps``) and the inner learning rate (``inner lr``); every change
    re-adapts the model on a fixed episode (same seed; the ``new episode`` button draws another) and
    redraws, in place: the parity plot of the query points (with ±1 s.d. bars when the adapted model
    has ``predict_dist``), the query MAE next to every baseline and the trivial "support mean"
    reference, the task's in-task ceiling (a GP on the descriptors trained on 80 % of the task itself,
    5-fold: what plenty of data from this very task gives), and a 3D view of a chosen support structure.
    Everything a slider can reach is cached: model predictions per (task, shots, episode, inner-loop
    settings), baselines per (task, shots, episode), the ceiling per task. Invalid settings (e.g. as many shots as
    the task has points) show a message instead of a traceback.

    Parameters
    ----------
    model:
        Fitted learner with ``adapt(support)`` (e.g. :func:`~nanonb.pretrained.load_pretrained`, a Bayesian
        last layer on descriptors, or a :class:`~nanonb.learners.base.MetaLearner`). If its ``adapt`` takes
        ``steps``/``lr`` (the MAML family) the inner-loop sliders drive them; otherwise (Bayesian last
        layer, DKT, a baseline) they are disabled. If the adapted model has ``predict_dist``, its ±1 s.d.
        bars are drawn.
    taskset:
        Tasks to explore (typically meta-test: tasks the model has never seen).
    baselines:
        Fitted baselines (objects with ``name`` and ``adapt(support).predict(query)``) or a mapping
        ``label -> baseline``. Their results are cached per (task, shots, episode) because they do
        not depend on the inner-loop sliders. A "support mean" reference is always added.
    task, shots, inner_steps, inner_lr:
        Initial values (default: first task, 5 shots, the model's own inner-loop settings).
    seed:
        Episode seed (the support/query split). With a fixed seed, increasing ``shots`` adds support
        points to the previous ones.
    max_shots:
        Upper end of the ``shots`` slider (default: the largest task size, so that the invalid
        "no query point left" case is reachable and explained).
    scale, unit:
        Display scale and unit of the targets (default: eV → meV, e.g. meV/atom).
    ceiling:
        In-task ceiling per task (``{task name: MAE}``, target units, e.g. from
        :func:`~nanonb.pretrained.heldout_ceiling`), ``None`` to compute it on a task's first visit
        (:func:`cached_ceiling`, ~2 s; needs descriptors), or ``False`` to leave it out.
    structures:
        For tabular tasks (e.g. ``descriptor_tasks(test)``): the same tasks with structures as inputs
        (e.g. ``test``), so the support clusters can still be shown in 3D. Not needed for structure
        tasks (a learner wrapped in :class:`~nanonb.learners.descriptors.OnDescriptors` takes them).
    show_structures:
        Show the 3D support structure view (needs structure tasks or ``structures``).
    dpi:
        Resolution of the figure (dots per inch); lower is faster.

    Attributes
    ----------
    task, shots, inner_steps, inner_lr : ipywidgets controls (descriptions "task", "shots",
        "inner steps", "inner lr")
    readout : ipywidgets.HTML — the MAE table (text contains "MAE")
    message : ipywidgets.HTML — warnings for invalid settings (empty when all is fine)
    status : ipywidgets.HTML — progress indicator while adapting ("adapting…")
    image : ipywidgets.Image — the PNG figure
    structure_view : StructureView or None
    result : dict — numbers of the last update (``mae``, ``baseline_mae``, ``ceiling_mae``, ``closed``,
        ``n_query``, ``elapsed_s``…; errors in target units)
    timings : list of float — seconds of every update (adapt + predict + redraw)

    Example
    -------
    >>> from nanonb.pretrained import heldout_ceiling, heldout_tasks, load_pretrained
    >>> ex = AdaptationExplorer(load_pretrained(), heldout_tasks()[1], ceiling=heldout_ceiling())  # doctest: +SKIP
    >>> ex.set(shots=10)["mae"]                                     # eV/atom  # doctest: +SKIP
    """

    def __init__(self, model, taskset: TaskSet | Sequence[Task], baselines: Sequence | Mapping | None = None, *,
                 task: str | None = None, shots: int = 5, inner_steps: int | None = None,
                 inner_lr: float | None = None, seed: int = 0, max_shots: int | None = None,
                 scale: float | None = None, unit: str | None = None, ceiling: Mapping | bool | None = None,
                 structures: TaskSet | Sequence[Task] | None = None, show_structures: bool = True,
                 dpi: int = 72):
        if not isinstance(taskset, TaskSet):
            taskset = TaskSet(list(taskset), name="explorer")
        if not hasattr(model, "adapt"):
            raise TypeError(f"model must have an adapt(support) method (a fitted MetaLearner), got {type(model)}")
        self.model, self.taskset = model, taskset
        if baselines is None:
            baselines = []
        items = list(baselines.items()) if isinstance(baselines, Mapping) else [(b.name, b) for b in baselines]
        self.baselines: list[tuple[str, Any]] = items + [("support mean", SupportMean())]
        self._baseline_cache: dict[tuple, dict[str, np.ndarray]] = {}
        self._model_cache: dict[tuple, tuple] = {}
        self.ceiling: Mapping | bool | None = dict(ceiling) if isinstance(ceiling, Mapping) else ceiling
        if structures is not None and not isinstance(structures, TaskSet):
            structures = TaskSet(list(structures), name="structures")
        self.structures = structures
        self.seed = int(seed)
        d_scale, d_unit = _default_units(taskset[0])
        self.scale = d_scale if scale is None else float(scale)
        self.unit = d_unit if unit is None else unit
        self.dpi = int(dpi)
        self.timings: list[float] = []
        self.result: dict[str, Any] = {}
        self.model_name = str(getattr(model, "name", type(model).__name__))
        cfg = getattr(model, "config", None)
        self._tunable = _accepts(model.adapt, "steps") and _accepts(model.adapt, "lr")
        self._learned_lr_available = len(getattr(model, "inner_lrs", ())) > 0  # Meta-SGD's learned step sizes
        steps0 = inner_steps if inner_steps is not None else int(getattr(cfg, "inner_steps", 5))
        lr0 = inner_lr if inner_lr is not None else float(getattr(cfg, "inner_lr", 0.01))
        n_max = max(len(t) for t in taskset)
        max_shots = n_max if max_shots is None else int(max_shots)
        style = {"description_width": "80px"}
        wide = widgets.Layout(width="360px")

        # controls (descriptions are a stable interface for browser tests)
        self.task = widgets.Dropdown(options=taskset.names, value=task or taskset.names[0], description="task",
                                     style=style, layout=widgets.Layout(width="260px"))
        self.shots = widgets.IntSlider(value=int(shots), min=1, max=max_shots, step=1, description="shots",
                                       continuous_update=False, style=style, layout=wide)
        self.inner_steps = widgets.IntSlider(value=int(steps0), min=0, max=50, step=1, description="inner steps",
                                             continuous_update=False, style=style, layout=wide,
                                             disabled=not self._tunable)
        self.inner_lr = widgets.FloatLogSlider(value=float(lr0), base=10, min=-3, max=0, step=0.05,
                                               description="inner lr", readout_format=".3g",
                                               continuous_update=False, style=style, layout=wide,
                                               disabled=not self._tunable)
        self.learned_lr = widgets.Checkbox(value=self._learned_lr_available, description="learned step sizes",
                                           indent=False, layout=widgets.Layout(
                                               width="170px",
                                               display=None if self._learned_lr_available else "none"))
        self.new_episode = widgets.Button(description="new episode", icon="refresh", tooltip="draw another support set",
                                          layout=widgets.Layout(width="130px"))
        self.episode_label = widgets.HTML()
        self.status = widgets.HTML(layout=widgets.Layout(min_width="150px"))
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="120px",
                                                                                       visibility="hidden"))
        self.message = widgets.HTML()
        self.readout = widgets.HTML(layout=widgets.Layout(min_width="330px"))
        # fixed aspect: never stretched by the taller panel beside it (see align_items below)
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="692px", height="auto",
                                                                       object_fit="contain", flex="0 1 auto"))
        self.support_pick = widgets.Dropdown(options=[], description="support", style={"description_width": "60px"},
                                             layout=widgets.Layout(width="330px"))
        self.structure_view: StructureView | None = None
        has_structures = not taskset[0].is_tabular or (structures is not None and not structures[0].is_tabular)
        right: list[widgets.Widget] = [self.readout]
        if show_structures and has_structures:
            self.structure_view = StructureView(width="330px", height="260px")
            right += [self.support_pick, self.structure_view]

        self._plot = ExplorerFigure(self.model_name, self.unit, self.scale, self.dpi)

        super().__init__([
            widgets.HBox([self.task, self.new_episode, self.episode_label, self.status, self.progress]),
            widgets.HBox([self.shots, self.inner_steps]),
            widgets.HBox([self.inner_lr, self.learned_lr]),
            self.message,
            widgets.HBox([self.image, widgets.VBox(right)], layout=widgets.Layout(align_items="flex-start")),
        ])
        self.add_class("nanonb-adaptation-explorer")
        self._support_structures: list = []
        self._feature_cache: dict = {}
        for w in (self.task, self.shots):
            w.observe(self._on_change, names="value")
        for w in (self.inner_steps, self.inner_lr, self.learned_lr):
            w.observe(self._on_change, names="value")
        self.new_episode.on_click(self._on_new_episode)
        self.support_pick.observe(self._on_pick, names="value")
        self.update()

    # ------------------------------------------------------------------ callbacks
    def _on_change(self, change: dict | None = None) -> dict:
        """Observer of every control: re-adapt and redraw (callable directly, e.g. for timing)."""
        return self.update()

    def _on_new_episode(self, _button=None) -> dict:
        self.seed += 1
        return self.update()

    def _on_pick(self, change: dict) -> None:
        i = change.get("new") if isinstance(change, dict) else change
        if self.structure_view is None or i is None or not (0 <= i < len(self._support_structures)):
            return
        s, y = self._support_structures[i]
        title = f"{self.task.value} support point {i + 1}: {y * self.scale:.1f} {self.unit}"
        if getattr(self, "_shown_structure", None) == (id(s), title):
            return  # the same structure is already shown (e.g. one more shot keeps support point 1)
        self._shown_structure = (id(s), title)
        self.structure_view.set_structure(s, title=title)

    # ------------------------------------------------------------------ computation
    def _settings_error(self, task: Task, k: int) -> str | None:
        n = len(task)
        if k >= n:
            return (f"Task <b>{html.escape(task.name)}</b> has {n} points: with shots = {k} no query point is left "
                    f"to measure the error. Choose shots ≤ {n - 1}.")
        if k < 1:
            return "Choose at least one shot."
        return None

    def _adapt_kwargs(self) -> dict:
        if not self._tunable:
            return {}
        lr = None if (self._learned_lr_available and self.learned_lr.value) else float(self.inner_lr.value)
        return {"steps": int(self.inner_steps.value), "lr": lr}

    def _baseline_predictions(self, ep, key: tuple) -> dict[str, np.ndarray]:
        if key in self._baseline_cache:
            return self._baseline_cache[key]
        out: dict[str, np.ndarray] = {}
        slow = [b for b in self.baselines if b[0] != "support mean"]
        self.progress.max = max(1, len(slow))
        self.progress.value = 0
        self.progress.layout.visibility = "visible" if slow else "hidden"
        for i, (label, b) in enumerate(self.baselines):
            self.status.value = f"<i>⏳ adapting {html.escape(label)}…</i>"
            out[label] = np.asarray(b.adapt(ep.support).predict(ep.query), dtype=float)
            self.progress.value = min(i + 1, self.progress.max)
        self.progress.layout.visibility = "hidden"
        if len(self._baseline_cache) > 64:
            self._baseline_cache.clear()
        self._baseline_cache[key] = out
        return out

    def _ceiling(self, task: Task) -> float | None:
        """The task's in-task ceiling (target units): given, computed once per task, or None."""
        if self.ceiling is False:
            return None
        if isinstance(self.ceiling, Mapping):
            v = self.ceiling.get(task.name)
            return None if v is None else float(v)
        if task.descriptors is None:
            return None
        self.status.value = "<i>⏳ computing the in-task ceiling (once per task)…</i>"
        return cached_ceiling(task)

    def _model_predictions(self, task: Task, ep, adapt_kw: dict) -> tuple:
        """``(query mean, query s.d. or None, support mean)``, cached per reachable slider setting."""
        key = (task.name, len(ep.support_idx), self.seed, tuple(ep.support_idx.tolist()),
               tuple(sorted(adapt_kw.items())))
        hit = self._model_cache.get(key)
        if hit is not None:
            return hit
        adapted = self.model.adapt(ep.support, **adapt_kw)
        std = None
        if callable(getattr(adapted, "predict_dist", None)):
            pred, std = adapted.predict_dist(ep.query)
            pred, std = np.asarray(pred, dtype=float), np.asarray(std, dtype=float)
            pred_support = np.asarray(adapted.predict(ep.support), dtype=float)
        else:
            pred, pred_support = self._predict(adapted, task, ep)
        if len(self._model_cache) > 256:
            self._model_cache.clear()
        self._model_cache[key] = (pred, std, pred_support)
        return pred, std, pred_support

    def _predict(self, adapted, task: Task, ep) -> tuple[np.ndarray, np.ndarray]:
        """Query and support predictions; fast path for head-only adaptation (ANIL).

        When only the head adapts, the body features of a task's points never change, so they are
        computed once per task and reused on every slider change (same numbers as ``predict``).
        """
        if getattr(adapted, "head_only", False) and hasattr(adapted, "fmodel") and hasattr(adapted, "learner"):
            learner = adapted.learner
            feats = self._feature_cache.get(task.name)
            if feats is None:
                with torch.no_grad():
                    x = learner.inputs(task) if hasattr(learner, "inputs") else learner.scaler.x(task, learner.cutoff)
                    feats = learner.model(x, output="features")
                self._feature_cache = {task.name: feats}
            with torch.no_grad():
                out = learner.scaler.y_inv(adapted.fmodel(feats).squeeze(-1))
            return out[ep.query_idx], out[ep.support_idx]
        return (np.asarray(adapted.predict(ep.query), dtype=float),
                np.asarray(adapted.predict(ep.support), dtype=float))

    def update(self) -> dict:
        """Re-adapt on the current settings and redraw; returns :attr:`result` (never raises)."""
        t0 = time.perf_counter()
        self.status.value = "<i>⏳ adapting…</i>"
        task = self.taskset[self.task.value]
        k = int(self.shots.value)
        self.episode_label.value = f"<span style='color:#555'>episode seed {self.seed}</span>"
        try:
            err = self._settings_error(task, k)
            if err is not None:
                self.message.value = f'<div style="color:#b00020">⚠ {err}</div>'
                self.readout.value = "<b>MAE</b>: — (no valid episode for these settings)"
                self.result = {"ok": False, "message": plain_text(err), "task": task.name, "k": k}
                return self.result
            ep = self.taskset.episode(task, k, seed=self.seed)
            adapt_kw = self._adapt_kwargs()
            pred, std, pred_support = self._model_predictions(task, ep, adapt_kw)
            base = self._baseline_predictions(ep, (task.name, k, self.seed))
            y = ep.query.targets
            mae = float(np.mean(np.abs(pred - y))) if np.all(np.isfinite(pred)) else float("inf")
            base_mae = {n: float(np.mean(np.abs(p - y))) for n, p in base.items()}
            ceil = self._ceiling(task)
            ref = base_mae["support mean"]
            closed = (ref - mae) / (ref - ceil) if ceil is not None and ref > ceil and np.isfinite(mae) else None
            self.result = {"ok": True, "task": task.name, "k": k, "seed": self.seed, "n_query": len(y),
                           "inner_steps": adapt_kw.get("steps"), "inner_lr": adapt_kw.get("lr"),
                           "mae": mae, "baseline_mae": base_mae, "ceiling_mae": ceil, "closed": closed,
                           "has_std": std is not None, "scale": self.scale, "unit": self.unit}
            self.image.value = self._plot.draw(ep, pred, std, pred_support, mae, base_mae, ceiling=ceil)
            self._update_readout()
            ref = base_mae["support mean"]
            if not np.isfinite(mae) or mae > 10 * ref:
                what = ("diverged (inf/NaN)" if not np.isfinite(mae)
                        else f"are far off ({mae / ref:.3g}× the support-mean MAE)")
                self.message.value = (
                    f'<div style="color:#b00020">⚠ The adapted predictions {what}: the inner learning rate is too '
                    "large for this many steps. Lower <b>inner lr</b> or <b>inner steps</b>.</div>")
            else:
                self.message.value = ""
            if self.structure_view is not None:
                self._update_support_choice(ep)
        except Exception as exc:  # a widget callback must never show a traceback
            self.message.value = (f'<div style="color:#b00020">⚠ Could not adapt with these settings: '
                                  f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</div>")
            self.result = {"ok": False, "message": str(exc), "task": task.name, "k": k}
        finally:
            self.status.value = ""
            self.progress.layout.visibility = "hidden"
            dt = time.perf_counter() - t0
            self.timings.append(dt)
            self.result["elapsed_s"] = dt
        return self.result

    def _update_support_choice(self, ep) -> None:
        if not ep.task.is_tabular:
            inputs = ep.support.inputs
        else:  # tabular episode: the structures come from the matching structure task
            src = self.structures[ep.task.name]
            inputs = [src.inputs[int(i)] for i in ep.support_idx]
        self._support_structures = list(zip(inputs, ep.support.targets))
        opts = [(f"{i + 1}: {len(s)} atoms, {yv * self.scale:.1f} {self.unit}", i)
                for i, (s, yv) in enumerate(self._support_structures)]
        key = (ep.task.name, tuple(ep.support_idx.tolist()))
        if getattr(self, "_shown_support", None) == key:
            return
        self._shown_support = key
        current = self.support_pick.value if self.support_pick.value is not None else 0
        with self.support_pick.hold_trait_notifications():
            self.support_pick.options = opts
        value = min(current, len(opts) - 1)
        if self.support_pick.value == value:
            self._on_pick({"new": value})
        else:
            self.support_pick.value = value

    def _update_readout(self) -> None:
        self.readout.value = readout_html(self.result, self.model_name, self.scale, self.unit)

    # ------------------------------------------------------------------ convenience
    @property
    def message_text(self) -> str:
        """The current warning as plain text ("" when the settings are fine)."""
        return plain_text(self.message.value)

    @property
    def readout_text(self) -> str:
        """The MAE readout as plain text."""
        return plain_text(self.readout.value)

    @property
    def figure(self):
        """The matplotlib ``Figure`` behind :attr:`image` (e.g. ``explorer.figure.savefig(...)``)."""
        return self._plot.fig

    def set(self, **values) -> dict:
        """Set several controls at once, e.g. ``set(shots=10, inner_steps=20)``; one update at the end.

        Keys: ``task``, ``shots``, ``inner_steps``, ``inner_lr``, ``learned_lr``, ``seed``.
        """
        controls = {"task": self.task, "shots": self.shots, "inner_steps": self.inner_steps,
                    "inner_lr": self.inner_lr, "learned_lr": self.learned_lr}
        unknown = set(values) - set(controls) - {"seed"}
        if unknown:
            raise ValueError(f"Unknown setting(s) {sorted(unknown)}; use {sorted(controls) + ['seed']}")
        if "seed" in values:
            self.seed = int(values.pop("seed"))
        for key, v in values.items():
            w = controls[key]
            w.unobserve(self._on_change, names="value")
            try:
                w.value = v
            finally:
                w.observe(self._on_change, names="value")
        return self.update()

    def time_updates(self, n: int = 20, warmup: int = 2) -> dict[str, float]:
        """Time ``n`` updates at the current settings (after ``warmup``); median and p95 in ms."""
        for _ in range(warmup):
            self.update()
        ts = []
        for _ in range(n):
            self.update()
            ts.append(self.result["elapsed_s"])
        a = np.array(ts) * 1000.0
        return {"n": n, "median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
                "max_ms": float(a.max())}
