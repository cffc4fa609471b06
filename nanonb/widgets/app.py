"""The no-code workshop dashboard (:class:`WorkshopApp`, served by Voilà from ``notebooks/app.ipynb``).

A participant picks a held-out material (an element pair the shipped learner never saw), moves the
``shots`` slider (how many clusters of it are "measured") and sees, redrawn on every change:

- the :class:`~nanonb.widgets.explorer.AdaptationExplorer`: the shipped best learner
  (:func:`~nanonb.pretrained.load_pretrained`) adapted to the measured clusters, its parity plot with
  ±1 s.d. bars, and its MAE against the references (support mean, in-task ceiling);
- a one-line verdict computed from those numbers, and the learner's uncertainty on the unmeasured
  clusters (mean ±1 s.d. width and how many measured values fall inside it);
- the next suggested experiment: the unmeasured cluster with the highest expected improvement
  (:func:`nanonb.active.select_batch`, goal: the lowest mixing energy, i.e. the most stable alloy),
  with a static picture of it and what the simulation says it is.

Widget descriptions are those of the explorer (``"task"``, ``"shots"``, ...); :attr:`WorkshopApp.verdict`
and :attr:`WorkshopApp.suggestion` are ``HTML`` widgets (browser tests read their text).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..active import select_batch
from .explorer import AdaptationExplorer
from .live import plain_text
from .structure import StructureView

__all__ = ["WorkshopApp"]

_INTRO = ("<div style='max-width:1000px;line-height:1.4'>A model was meta-trained on many element pairs; "
          "the pairs below were "
          "<b>never seen</b> in training. Pick a pair, then move <b>shots</b>: that many clusters of it are "
          "'measured' (their EMT mixing energies are shown to the model). The plot compares its predictions "
          "for the other clusters with the truth; the table compares its error with the <i>support mean</i> "
          "(always predict the average measured value) and the <i>in-task ceiling</i> (a model trained on "
          "80 % of this pair: what plenty of data gives). Below: how sure the model is, and which cluster to "
          "measure next.</div>")


class WorkshopApp(widgets.VBox):
    """No-code dashboard: held-out material, shots, best learner vs references, uncertainty, next experiment.

    Parameters
    ----------
    model:
        Fitted learner with ``adapt``; default :func:`~nanonb.pretrained.load_pretrained` (the shipped
        best learner, a Bayesian last layer with ``predict_dist``).
    taskset:
        Held-out tasks; default the meta-test pairs of :func:`~nanonb.pretrained.heldout_tasks`.
    ceiling:
        In-task ceiling per task (target units); default :func:`~nanonb.pretrained.heldout_ceiling`.
    task, shots:
        Initial material and number of measured clusters.
    acquisition:
        Name in :data:`nanonb.active.ACQUISITIONS` (default ``"ei"``, expected improvement).
    goal:
        ``"min"`` (default: the lowest mixing energy, the most stable alloy) or ``"max"``.
    max_shots:
        Upper end of the ``shots`` slider.
    explorer_kwargs:
        Passed on to :class:`AdaptationExplorer` (e.g. ``baselines``, ``dpi``).

    Attributes
    ----------
    explorer : AdaptationExplorer
    verdict, uncertainty, suggestion : ipywidgets.HTML
    picture : StructureView (static) of the suggested cluster
    result : dict — the explorer's result plus ``mean_std``, ``inside_1sd`` and ``suggested`` (index into
        the query, ``predicted``, ``std``, ``true`` in target units, ``rank`` of its true value among the
        unmeasured clusters, 1 = best)

    Example
    -------
    >>> app = WorkshopApp(task="Cu-Pt", shots=5)      # display(app) in a notebook  # doctest: +SKIP
    >>> r = app.set(shots=10)                         # errors in eV/atom  # doctest: +SKIP
    >>> r["mae"] < r["baseline_mae"]["support mean"]  # doctest: +SKIP
    True
    """

    def __init__(self, model=None, taskset=None, ceiling=None, *, task: str | None = "Cu-Pt", shots: int = 5,
                 acquisition: str = "ei", goal: str = "min", max_shots: int = 30, **explorer_kwargs: Any):
        from ..pretrained import heldout_ceiling, heldout_tasks, load_pretrained

        model = load_pretrained() if model is None else model
        taskset = heldout_tasks()[1] if taskset is None else taskset
        ceiling = heldout_ceiling() if ceiling is None else ceiling
        names = [t.name for t in taskset]
        self.acquisition, self.goal = acquisition, goal
        # the support clusters' 3D view is left out: nglview draws off-centre when Voilà lays the page out
        # (seen in Chromium); the suggested cluster is shown as a static picture instead
        explorer_kwargs.setdefault("show_structures", False)
        self.explorer = AdaptationExplorer(model, taskset, ceiling=ceiling, shots=shots, max_shots=max_shots,
                                           task=task if task in names else None, **explorer_kwargs)
        for w in (self.explorer.inner_steps, self.explorer.inner_lr):
            if w.disabled:  # a learner without an inner loop: no greyed-out controls in a no-code app
                w.layout = widgets.Layout(display="none")  # a new Layout: the explorer's is shared with "shots"
        self.verdict = widgets.HTML()
        self.uncertainty = widgets.HTML(layout=widgets.Layout(max_width="720px"))
        self.suggestion = widgets.HTML(layout=widgets.Layout(max_width="720px"))
        self.picture = StructureView(view="static", width="260px", height="210px")
        self.result: dict[str, Any] = {}
        panel = widgets.HBox([widgets.VBox([self.uncertainty, self.suggestion]), self.picture],
                             layout=widgets.Layout(align_items="flex-start"))
        super().__init__([widgets.HTML(_INTRO), self.verdict, self.explorer,
                          widgets.HTML("<h3 style='margin:8px 0 0 0'>How sure is it, and what to measure next?"
                                       "</h3>"), panel])
        self.add_class("nanonb-workshop-app")
        e = self.explorer
        for w in (e.task, e.shots, e.inner_steps, e.inner_lr, e.learned_lr):
            w.observe(self._on_change, names="value")  # registered after the explorer's: runs after it
        e.new_episode.on_click(self._on_change)
        self.refresh()

    def set(self, **values) -> dict:
        """Set explorer controls at once (:meth:`AdaptationExplorer.set` keys), then refresh; returns :attr:`result`."""
        e = self.explorer
        for w in (e.task, e.shots, e.inner_steps, e.inner_lr, e.learned_lr):
            w.unobserve(self._on_change, names="value")
        try:
            e.set(**values)
        finally:
            for w in (e.task, e.shots, e.inner_steps, e.inner_lr, e.learned_lr):
                w.observe(self._on_change, names="value")
        return self.refresh()

    def _on_change(self, _change=None) -> dict:
        return self.refresh()

    def _adapt_kwargs(self) -> dict:
        e = self.explorer
        if e.inner_steps.disabled:
            return {}
        learned = e.learned_lr.value and e.learned_lr.layout.display != "none"
        return {"steps": int(e.inner_steps.value), "lr": None if learned else float(e.inner_lr.value)}

    def refresh(self) -> dict:
        """Recompute the verdict, the uncertainty and the suggestion for the explorer's current episode."""
        e = self.explorer
        r = dict(e.result)
        self.result = r
        if not r.get("ok"):
            self.verdict.value = f"<b>⚠ {html.escape(r.get('message', 'no valid episode'))}</b>"
            self.uncertainty.value = self.suggestion.value = ""
            return r
        task = e.taskset[r["task"]]
        ep = e.taskset.episode(task, r["k"], seed=r["seed"])
        adapted = e.model.adapt(ep.support, **self._adapt_kwargs())
        if callable(getattr(adapted, "predict_dist", None)):
            mean, std = (np.asarray(a, dtype=float) for a in adapted.predict_dist(ep.query))
        else:
            mean, std = np.asarray(adapted.predict(ep.query), dtype=float), np.zeros(len(ep.query))
        y, s, u = ep.query.targets, e.scale, html.escape(e.unit)
        self.verdict.value = _verdict_html(r, e.model_name, s, u)
        has_std = bool(np.any(std > 0))
        inside = float(np.mean(np.abs(mean - y) <= std)) if has_std else None
        r.update(mean_std=float(np.mean(std)) if has_std else None, inside_1sd=inside)
        if has_std:
            self.uncertainty.value = (
                f"<b>Uncertainty</b>: on the {len(y)} unmeasured clusters the model's ±1 s.d. band is "
                f"±{np.mean(std) * s:.1f} {u} on average (the error bars in the plot); {100 * inside:.0f} % of "
                f"the true values lie inside it (about 68 % would be ideal).")
        else:
            self.uncertainty.value = "<b>Uncertainty</b>: this learner gives no uncertainty (no predict_dist)."
        best = float(np.min(ep.support.targets) if self.goal == "min" else np.max(ep.support.targets))
        i = int(select_batch(self.acquisition, mean, np.maximum(std, 1e-12), best, 1, goal=self.goal)[0])
        order = np.argsort(y if self.goal == "min" else -y, kind="stable")
        rank = int(np.nonzero(order == i)[0][0]) + 1
        r["suggested"] = {"index": i, "predicted": float(mean[i]), "std": float(std[i]), "true": float(y[i]),
                          "rank": rank, "best_measured": best}
        word = "lowest" if self.goal == "min" else "highest"
        improves = (y[i] < best) if self.goal == "min" else (y[i] > best)
        self.suggestion.value = (
            f"<b>Next experiment</b> ({html.escape(self.acquisition.upper())}, aiming at the {word} mixing energy "
            f"= the most stable alloy): measure unmeasured cluster #{i + 1}, predicted {mean[i] * s:.1f} ± "
            f"{std[i] * s:.1f} {u} (best measured so far: {best * s:.1f} {u}).<br><span style='color:#555'>"
            f"The simulation says {y[i] * s:.1f} {u}: rank {rank} of {len(y)} unmeasured clusters, "
            f"{'better than' if improves else 'not better than'} the best measured one.</span>")
        self.picture.set_structure(ep.query.inputs[i], title=f"suggested: {task.name} cluster #{i + 1}")
        return r

    @property
    def verdict_text(self) -> str:
        """The verdict as plain text."""
        return plain_text(self.verdict.value)

    @property
    def suggestion_text(self) -> str:
        """The suggestion as plain text."""
        return plain_text(self.suggestion.value)


def _verdict_html(r: dict, model_name: str, scale: float, unit: str) -> str:
    """One sentence from the explorer's numbers: the learner against the support mean and the ceiling."""
    ref, mae, ceil = r["baseline_mae"]["support mean"], r["mae"], r.get("ceiling_mae")
    beats = mae < ref
    clusters = "cluster" if r["k"] == 1 else "clusters"
    text = (f"With {r['k']} measured {clusters} of {html.escape(r['task'])}, the meta-learned "
            f"{html.escape(model_name)} is off by {mae * scale:.1f} {unit} on average, "
            f"{'better' if beats else 'not better'} than the support mean ({ref * scale:.1f} {unit})")
    if ceil is not None and mae <= ceil:
        text += (f", and even below the in-task ceiling ({ceil * scale:.1f} {unit}): what it learned from other "
                 "pairs is worth more here than 80 % of this pair's own data")
    elif ceil is not None and r.get("closed") is not None:
        text += (f"; the in-task ceiling is {ceil * scale:.1f} {unit}, so it closes {100 * r['closed']:.0f} % of "
                 "the learnable gap")
    colour = "#1b7a1b" if beats else "#b00020"
    return f"<div style='font-size:110%;color:{colour};margin:6px 0'>{text}.</div>"
