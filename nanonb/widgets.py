"""Live Jupyter widgets: 3D structure views and an interactive few-shot adaptation explorer.

- :class:`StructureView` — an nglview view of a cluster or molecule (an ``ase.Atoms`` or a
  :class:`nanonb.graphs.Structure`), atoms coloured by element, with a small legend.
- :class:`LiveFigure` — a matplotlib figure as an image widget, redrawn in place (live loss curves).
- :class:`SupportMean` (from :mod:`nanonb.baselines`) — the trivial few-shot reference.
- :class:`AdaptationExplorer` — pick a held-out task (``task``), the number of support points
  (``shots``), the inner-loop settings (``inner steps``, ``inner lr``) and see the adapted model's
  parity plot, its MAE next to the baselines and the support structures, redrawn on every change.

Both are ``ipywidgets.VBox`` subclasses: display them as the last expression of a cell. The figure is
drawn with matplotlib's Agg canvas into an ``ipywidgets.Image`` (PNG), which renders in JupyterLab,
Notebook 7 and Voilà without any extra front-end extension. Everything also works without a
front end (tests drive the widgets programmatically: set a slider's ``.value`` and the explorer
re-adapts; or call :meth:`AdaptationExplorer.update`).

Widget descriptions are a stable interface (browser tests select by them): ``"task"``, ``"shots"``,
``"inner steps"``, ``"inner lr"``, the button ``"new episode"``, and the readout
(:attr:`AdaptationExplorer.readout`, an ``HTML`` widget whose text contains ``"MAE"``).
"""

from __future__ import annotations

import html
import io
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from .baselines.nets import SupportMean
from .tasks import Task, TaskSet

#: Distinct colours for the nanoalloy metals (so two greyish metals are never confused); other
#: elements fall back to the Jmol palette of ``ase.data.colors``.
ELEMENT_COLORS = {
    "Al": "#8fa3b8", "Cu": "#c8672a", "Ag": "#6fb7e8", "Au": "#e6b422", "Ni": "#3aa655", "Pd": "#1f4fd1",
    "Pt": "#9b4dca", "H": "#f2f2f2", "B": "#ffb5b5", "C": "#505050", "N": "#3050f8", "O": "#ff0d0d",
    "F": "#90e050", "S": "#ffff30", "Cl": "#1ff01f", "Li": "#cc80ff", "P": "#ff8000",
}


def element_color(symbol: str) -> str:
    """Hex colour used for ``symbol`` in :class:`StructureView` and its legend."""
    if symbol in ELEMENT_COLORS:
        return ELEMENT_COLORS[symbol]
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors

    r, g, b = (int(round(255 * c)) for c in jmol_colors[atomic_numbers[symbol]])
    return f"#{r:02x}{g:02x}{b:02x}"


def _as_atoms(structure):
    """An ``ase.Atoms`` from an ``ase.Atoms`` or anything with ``to_atoms()`` (``graphs.Structure``)."""
    if hasattr(structure, "to_atoms"):
        return structure.to_atoms()
    if hasattr(structure, "get_chemical_symbols") and hasattr(structure, "get_positions"):
        return structure
    raise TypeError(f"StructureView needs an ase.Atoms or a nanonb.graphs.Structure, got {type(structure).__name__}")


# ---------------------------------------------------------------------- figures as widgets
def figure_png(fig, dpi: float | None = None) -> bytes:
    """Render a matplotlib ``Figure`` with Agg into PNG bytes (one draw, fast zlib level)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return _encode_png(canvas)


def _encode_png(canvas) -> bytes:
    """PNG of an Agg canvas's current pixel buffer (no redraw)."""
    from PIL import Image as PILImage

    rgba = np.asarray(canvas.buffer_rgba())
    buf = io.BytesIO()
    PILImage.fromarray(rgba[..., :3]).save(buf, format="png", compress_level=1)
    return buf.getvalue()


class LiveFigure(widgets.Image):
    """A matplotlib figure shown as an ``ipywidgets.Image`` that can be redrawn in place.

    Draw on :attr:`fig` / :attr:`ax` (a ``matplotlib.figure.Figure``, not pyplot, so nothing is shown
    twice), then call :meth:`refresh`. Unlike printing or ``plt.show()`` inside an ``Output``
    widget, updates never leak into the cell's outputs, so they work the same in JupyterLab,
    Voilà, nbconvert and nbval.

    >>> live = LiveFigure(figsize=(6, 3))   # display(live) in a notebook
    >>> _ = live.ax.plot([0, 1], [1, 0]); live.refresh()
    """

    def __init__(self, figsize: tuple[float, float] = (6.0, 3.2), dpi: int = 80, ncols: int = 1, **kwargs):
        from matplotlib.figure import Figure

        super().__init__(format="png", **kwargs)
        self.fig = Figure(figsize=figsize, dpi=dpi)
        axes = self.fig.subplots(1, ncols)
        self.axes = list(np.atleast_1d(axes))
        self.ax = self.axes[0]

    def clear(self) -> None:
        """Clear every axes (keeps the layout)."""
        for a in self.axes:
            a.cla()

    def refresh(self, tight: bool = True) -> None:
        """Re-render the figure into the widget."""
        if tight:
            self.fig.tight_layout()
        self.value = figure_png(self.fig)


# ---------------------------------------------------------------------- structure view
class StructureView(widgets.VBox):
    """nglview 3D view of a cluster, atoms coloured by element, with a legend.

    Parameters
    ----------
    structure:
        ``ase.Atoms`` or :class:`nanonb.graphs.Structure` (positions in Å); ``None`` for an empty
        view to fill later with :meth:`set_structure`.
    title:
        Text (HTML-escaped) shown above the view.
    style:
        NGL representation: ``"spacefill"`` (default; radii scaled by ``radius_scale``),
        ``"ball+stick"`` or ``"licorice"``.
    radius_scale:
        Scale of the van der Waals radii for ``"spacefill"`` (dimensionless).
    width, height:
        CSS size of the view, e.g. ``"360px"``.

    Attributes
    ----------
    view : nglview.NGLWidget
    legend : ipywidgets.HTML
    elements : list of str
        Element symbols of the current structure (sorted by atomic number).
    """

    def __init__(self, structure=None, title: str = "", style: str = "spacefill", radius_scale: float = 0.7,
                 width: str = "360px", height: str = "300px"):
        import nglview

        if style not in ("spacefill", "ball+stick", "licorice"):
            raise ValueError(f"style must be 'spacefill', 'ball+stick' or 'licorice', not {style!r}")
        self.style, self.radius_scale = style, float(radius_scale)
        self.elements: list[str] = []
        self.n_atoms = 0
        self._nglview = nglview
        self.title = widgets.HTML(layout=widgets.Layout(margin="0 0 2px 0"))
        self.legend = widgets.HTML()
        if structure is not None:
            atoms = _as_atoms(structure)
            self.view = nglview.show_ase(atoms, default_representation=False)
        else:
            self.view = nglview.NGLWidget()
        self.view.layout = widgets.Layout(width=width, height=height)
        super().__init__([self.title, self.view, self.legend])
        self.add_class("nanonb-structure-view")
        if structure is not None:
            self._style(atoms, title)

    def set_structure(self, structure, title: str | None = None) -> StructureView:
        """Replace the displayed structure (``ase.Atoms`` or ``graphs.Structure``)."""
        atoms = _as_atoms(structure)
        for cid in list(self.view._ngl_component_ids):
            self.view.remove_component(cid)
        self.view.add_structure(self._nglview.ASEStructure(atoms), default_representation=False)
        self._style(atoms, title)
        return self

    def _style(self, atoms, title: str | None) -> None:
        from ase.data import atomic_numbers

        symbols = atoms.get_chemical_symbols()
        self.elements = sorted(set(symbols), key=lambda s: atomic_numbers[s])
        self.n_atoms = len(symbols)
        for el in self.elements:
            kw: dict[str, Any] = {"color": element_color(el)}
            if self.style == "spacefill":
                kw["radiusScale"] = self.radius_scale
            self.view.add_representation(self.style, selection=f"_{el.upper()}", **kw)
        self.view.center()
        counts = {el: symbols.count(el) for el in self.elements}
        chips = " ".join(
            f'<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:50%;'
            f'background:{element_color(el)};border:1px solid #555;vertical-align:middle"></span> '
            f"{el} × {counts[el]}" for el in self.elements)
        self.legend.value = f'<div style="font-size:90%">{chips} &nbsp;({self.n_atoms} atoms)</div>'
        if title is not None:
            self.title.value = f"<b>{html.escape(title)}</b>" if title else ""

    @property
    def legend_text(self) -> str:
        """The legend as plain text, e.g. ``"Cu × 30 Pt × 25 (55 atoms)"``."""
        return _plain(self.legend.value)


# ---------------------------------------------------------------------- adaptation explorer
def _plain(html_text: str) -> str:
    """Text of a small HTML snippet: tags dropped, entities unescaped, whitespace collapsed."""
    import re

    text = re.sub(r"<(?:br|/tr|/div)[^>]*>", " ", html_text)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()).replace("⚠ ", "")


def _default_units(task: Task) -> tuple[float, str]:
    unit = task.target_unit or ""
    if unit.startswith("eV"):
        return 1000.0, "m" + unit
    return 1.0, unit


def _accepts(fn, name: str) -> bool:
    import inspect

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
    reference, and a 3D view of a chosen support structure. Invalid settings (e.g. as many shots as
    the task has points) show a message instead of a traceback.

    Parameters
    ----------
    model:
        Fitted learner with ``adapt(support, steps=None, lr=None)`` (e.g. a
        :class:`~nanonb.learners.base.MetaLearner` or :func:`~nanonb.pretrained.load_pretrained`). A model whose
        ``adapt`` takes no ``steps``/``lr`` (a baseline) is also accepted; the inner-loop sliders are then
        disabled.
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
    show_structures:
        Show the 3D support structure view (needs structure tasks; ignored for tabular tasks).
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
    result : dict — numbers of the last update (``mae``, ``baseline_mae``, ``n_query``, ``elapsed_s``…)
    timings : list of float — seconds of every update (adapt + predict + redraw)
    """

    def __init__(self, model, taskset: TaskSet | Sequence[Task], baselines: Sequence | Mapping | None = None, *,
                 task: str | None = None, shots: int = 5, inner_steps: int | None = None,
                 inner_lr: float | None = None, seed: int = 0, max_shots: int | None = None,
                 scale: float | None = None, unit: str | None = None, show_structures: bool = True,
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
        self._learned_lr_available = getattr(cfg, "algorithm", "") == "metasgd"
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
        has_structures = not taskset[0].is_tabular
        right: list[widgets.Widget] = [self.readout]
        if show_structures and has_structures:
            self.structure_view = StructureView(width="330px", height="260px")
            right += [self.support_pick, self.structure_view]

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._fig = Figure(figsize=(9.6, 3.8), dpi=self.dpi)
        FigureCanvasAgg(self._fig)
        self._ax_parity, self._ax_bar = self._fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
        # fixed margins: tight_layout on every redraw would cost a second full draw
        self._fig.subplots_adjust(left=0.08, right=0.95, bottom=0.13, top=0.9, wspace=0.6)

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
        self.structure_view.set_structure(s, title=f"{self.task.value} support point {i + 1}: "
                                                   f"{y * self.scale:.1f} {self.unit}")

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

    def _predict(self, adapted, task: Task, ep) -> tuple[np.ndarray, np.ndarray]:
        """Query and support predictions; fast path for head-only adaptation (ANIL).

        When only the head adapts, the body features of a task's points never change, so they are
        computed once per task and reused on every slider change (same numbers as ``predict``).
        """
        if getattr(adapted, "head_only", False) and hasattr(adapted, "fmodel") and hasattr(adapted, "learner"):
            import torch

            learner = adapted.learner
            feats = self._feature_cache.get(task.name)
            if feats is None:
                with torch.no_grad():
                    feats = learner.model(learner.scaler.x(task, learner.cutoff), output="features")
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
                self.result = {"ok": False, "message": _plain(err), "task": task.name, "k": k}
                return self.result
            ep = self.taskset.episode(task, k, seed=self.seed)
            adapt_kw = self._adapt_kwargs()
            adapted = self.model.adapt(ep.support, **adapt_kw)
            std = None
            if callable(getattr(adapted, "predict_dist", None)):
                pred, std = adapted.predict_dist(ep.query)
                pred, std = np.asarray(pred, dtype=float), np.asarray(std, dtype=float)
                pred_support = np.asarray(adapted.predict(ep.support), dtype=float)
            else:
                pred, pred_support = self._predict(adapted, task, ep)
            base = self._baseline_predictions(ep, (task.name, k, self.seed))
            y = ep.query.targets
            mae = float(np.mean(np.abs(pred - y))) if np.all(np.isfinite(pred)) else float("inf")
            base_mae = {n: float(np.mean(np.abs(p - y))) for n, p in base.items()}
            self.result = {"ok": True, "task": task.name, "k": k, "seed": self.seed, "n_query": len(y),
                           "inner_steps": adapt_kw.get("steps"), "inner_lr": adapt_kw.get("lr"),
                           "mae": mae, "baseline_mae": base_mae, "scale": self.scale, "unit": self.unit}
            self._draw(ep, pred, std, pred_support, base, mae, base_mae)
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
        self._support_structures = list(zip(ep.support.inputs, ep.support.targets))
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
        r = self.result
        s, u = self.scale, html.escape(self.unit)
        settings = ""
        if r.get("inner_steps") is not None:
            lr = "learned" if r["inner_lr"] is None else f"{r['inner_lr']:.3g}"
            settings = f" ({r['inner_steps']} steps, lr {lr})"
        rows = [(f"<b>{html.escape(self.model_name)}</b>{settings}", r["mae"])] + [
            (html.escape(n), v) for n, v in r["baseline_mae"].items()]
        best = min(v for _, v in rows)
        cells = "".join(
            f"<tr><td style='padding:0 8px 0 0'>{name}</td>"
            f"<td style='text-align:right'>{'<b>' if v == best else ''}{v * s:.1f}{'</b>' if v == best else ''}"
            f"</td></tr>" for name, v in rows)
        ref = r["baseline_mae"]["support mean"]
        verdict = ("beats" if r["mae"] < ref else "does not beat")
        self.readout.value = (
            f"<div><b>MAE</b> on {r['n_query']} query points of {html.escape(r['task'])}, {r['k']} shots "
            f"({u}):<table>{cells}</table>"
            f"<span style='font-size:90%;color:#555'>{html.escape(self.model_name)} {verdict} the support-mean "
            "reference on this episode.</span></div>")

    def _init_artists(self, n_bars: int) -> None:
        """Create the plot artists once; redraws only move them (clearing axes costs ~3x more)."""
        from matplotlib.collections import LineCollection

        from .plots import color

        ax, bx = self._ax_parity, self._ax_bar
        ax.cla()
        bx.cla()
        c = color(self.model_name)
        a: dict[str, Any] = {}
        a["bands"] = LineCollection([], colors=c, alpha=0.35, linewidths=0.8, label="±1 s.d.")
        ax.add_collection(a["bands"])
        a["query"] = ax.scatter([], [], s=16, alpha=0.75, color=c, label=f"{self.model_name}: query")
        a["support"] = ax.scatter([], [], s=70, marker="*", color="k", zorder=3, label="support (fitted)")
        a["mean"] = ax.axhline(0.0, color="0.5", ls=":", lw=1, label="support mean")
        (a["diag"],) = ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlabel(f"true ({self.unit})")
        ax.set_ylabel(f"predicted ({self.unit})")
        # a figure text, not ax.set_title: Axes titles are re-positioned during a full draw, which
        # misplaces them when they are drawn alone on a blitted background
        box = ax.get_position()
        a["title"] = self._fig.text((box.x0 + box.x1) / 2, box.y1 + 0.02, "", ha="center", va="bottom", fontsize=10)
        ax.legend(handles=[a["query"], a["support"], a["mean"]], fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        ypos = np.arange(n_bars)[::-1]
        a["bars"] = bx.barh(ypos, np.ones(n_bars), alpha=0.85)
        a["labels"] = [bx.text(0, yp, "", va="center", fontsize=8, clip_on=False) for yp in ypos]
        a["ypos"] = ypos
        bx.set_yticks(ypos)
        bx.set_xlabel(f"query MAE ({self.unit})")
        bx.set_title("lower is better", fontsize=10)
        bx.grid(axis="x", alpha=0.3)
        self._artists = a
        self._bg_key = None

    def _draw(self, ep, pred, std, pred_support, base, mae, base_mae) -> None:
        from .plots import color

        names = [self.model_name] + list(base_mae)
        a = getattr(self, "_artists", None)
        if a is None or len(a["bars"]) != len(names):
            self._init_artists(len(names))
            a = self._artists
        s = self.scale
        ax = self._ax_parity
        y = ep.query.targets * s
        allv = ep.task.targets * s
        lo, hi = float(allv.min()), float(allv.max())
        pad = 0.25 * (hi - lo + 1e-12)
        lo, hi = lo - pad, hi + pad

        def clip(v):
            return np.clip(np.nan_to_num(v, nan=hi, posinf=hi, neginf=lo), lo, hi)

        p = pred * s
        off = ~np.isfinite(p) | (p < lo) | (p > hi)
        pc = clip(p)
        a["query"].set_offsets(np.column_stack([y, pc]))
        a["support"].set_offsets(np.column_stack([ep.support.targets * s, clip(pred_support * s)]))
        if std is not None:
            e = np.asarray(std) * s
            a["bands"].set_segments([[(x, clip(v - d)), (x, clip(v + d))] for x, v, d in zip(y, p, e)])
        else:
            a["bands"].set_segments([])
        a["mean"].set_ydata([float(np.mean(ep.support.targets)) * s] * 2)
        a["diag"].set_data([lo, hi], [lo, hi])
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        title = f"{ep.task.name}: {len(ep.support_idx)} shots, MAE {mae * s:.1f} {self.unit}"
        if off.any():
            title += f" ({int(off.sum())} off-scale)"
        a["title"].set_text(title)
        vals = [mae * s] + [v * s for v in base_mae.values()]
        # bars are capped at 1.5x the worst baseline so that a diverged model does not flatten the rest;
        # the axis range depends on the baselines only, so it stays fixed while the inner-loop sliders move
        worst = max(v * s for v in base_mae.values())
        cap = 1.5 * worst
        shown = [min(v, cap) if np.isfinite(v) else cap for v in vals]
        cols = [color(self.model_name)] + [color(n) if n != "support mean" else "#bbbbbb" for n in base_mae]
        for bar, txt, v, sv, col in zip(a["bars"], a["labels"], vals, shown, cols):
            bar.set_width(sv)
            bar.set_color(col)
            txt.set_position((sv, bar.get_y() + bar.get_height() / 2))
            txt.set_text(" diverged" if not np.isfinite(v) else (f" {v:.1f}" if v < cap else f" {v:.3g} ▶"))
        self.image.value = self._render(a, names, key=(ep.task.name, tuple(ep.support_idx.tolist()), lo, hi,
                                                       tuple(base_mae.values()), std is not None), xmax=1.8 * worst)

    def _render(self, a: dict, names: list[str], key: tuple, xmax: float) -> bytes:
        """Blit: the static background (axes, ticks, legend, baselines' scale) is drawn once per
        episode; a slider move only redraws the moving artists on top of it (~5x faster)."""
        canvas = self._fig.canvas
        dynamic = [a["bands"], a["query"], a["support"], a["title"], *a["bars"], *a["labels"]]
        if key != getattr(self, "_bg_key", None):
            self._ax_bar.set_yticks(a["ypos"], names, fontsize=8)
            self._ax_bar.set_xlim(0, xmax)
            for art in dynamic:
                art.set_visible(False)
            canvas.draw()
            self._bg = canvas.copy_from_bbox(self._fig.bbox)
            self._bg_key = key
            for art in dynamic:
                art.set_visible(True)
        else:
            canvas.restore_region(self._bg)
        for art in dynamic:
            (art.axes or self._fig).draw_artist(art)
        return _encode_png(canvas)

    def _png(self) -> bytes:
        return figure_png(self._fig)

    # ------------------------------------------------------------------ convenience
    @property
    def message_text(self) -> str:
        """The current warning as plain text ("" when the settings are fine)."""
        return _plain(self.message.value)

    @property
    def readout_text(self) -> str:
        """The MAE readout as plain text."""
        return _plain(self.readout.value)

    @property
    def figure(self):
        """The matplotlib ``Figure`` behind :attr:`image` (e.g. ``explorer.figure.savefig(...)``)."""
        return self._fig

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
