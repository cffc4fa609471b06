"""The case-study explorer: held-out CALiSol systems or LNPDB studies, every method on one benchmark episode."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import numpy as np

from ..evaluation import episode_seed, mae, spearman, top_recall
from ..physics.vtf import RawColumns
from ..plots import plot_conductivity_episode, plot_ranking_episode
from ..tasks import TaskSet
from .live import LiveFigure

__all__ = ["case_study_explorer", "episode_predictions"]


def episode_predictions(methods: Sequence, test: TaskSet, task: str, k: int, episode: int = 0, seed: int = 0,
                        k_query_cap: int | None = None) -> tuple:
    """One benchmark episode (the seed of :func:`nanonb.bench.casestudy.evaluate_episodes`) and every
    method's query predictions: ``(episode, {method name: predictions in target units})``.

    Example
    -------
    >>> ep, preds = episode_predictions(methods, test, "LiPF6|EC+DMC", k=5, episode=3)  # doctest: +SKIP
    """
    t = test[task]
    kq = None if k_query_cap is None else min(k_query_cap, len(t) - k)
    ep = test.episode(t, k, kq, seed=episode_seed(seed, t.name, k, episode))
    return ep, {m.name: np.asarray(m.adapt(ep.support).predict(ep.query), dtype=np.float64) for m in methods}


def case_study_explorer(methods: Sequence, test: TaskSet, kind: str = "calisol", shots: Sequence[int] = (5, 10),
                        n_episodes: int = 20, seed: int = 0, k_query_cap: int | None = None, task: str | None = None):
    """An ipywidgets explorer of held-out tasks: pick a task (a held-out electrolyte system or study),
    K and the episode; every method adapts on the same support and the figure shows its query
    predictions (``kind="calisol"``: conductivity vs temperature; ``"lnpdb"``: predicted vs measured
    efficacy ranking). Episodes are those of the benchmark (:func:`episode_predictions`).

    Returns a ``VBox``; ``box.show(task=..., k=..., episode=...)`` sets the controls from code and
    returns the metrics it displays (``{method: {metric: value}}``; MAE in log10(mS/cm), ranking
    metrics dimensionless).

    Example
    -------
    >>> box = case_study_explorer(methods, test, kind="calisol", shots=(5, 10))  # display(box)  # doctest: +SKIP
    >>> box.show(task="LiPF6|EC+DMC", k=10, episode=3)["gp"]["mae"]                         # doctest: +SKIP
    """
    if kind not in ("calisol", "lnpdb"):
        raise ValueError(f"kind must be 'calisol' or 'lnpdb', not {kind!r}")
    names = [t.name for t in test if len(t) > max(shots)]
    if not names:
        raise ValueError(f"No test task has more than {max(shots)} points.")
    cols = RawColumns.of(test) if kind == "calisol" else None
    w_task = widgets.Dropdown(options=names, value=task if task in names else names[0], description="task")
    w_k = widgets.ToggleButtons(options=list(shots), value=shots[0], description="K")
    w_ep = widgets.IntSlider(value=0, min=0, max=n_episodes - 1, description="episode", continuous_update=False)
    ncols = 1 if kind == "calisol" else len(methods)
    live = LiveFigure(figsize=(7.0, 4.2) if kind == "calisol" else (2.6 * ncols, 3.0), dpi=80, ncols=ncols)
    info = widgets.HTML()
    state: dict = {}

    def redraw(*_):
        ep, preds = episode_predictions(methods, test, w_task.value, w_k.value, w_ep.value, seed, k_query_cap)
        live.clear()
        y = ep.query.targets
        if kind == "calisol":
            plot_conductivity_episode(ep, preds, cols, ax=live.ax)
            res = {n: {"mae": mae(p, y)} for n, p in preds.items()}
        else:
            plot_ranking_episode(ep, preds, axes=live.axes)
            res = {n: {"spearman": spearman(p, y), "top10_recall": top_recall(p, y)} for n, p in preds.items()}
        live.refresh()
        rows = "".join(f"<tr><td>{n}</td>" + "".join(f"<td>{v:.3f}</td>" for v in r.values()) + "</tr>"
                       for n, r in res.items())
        head = "".join(f"<th>{m}</th>" for m in next(iter(res.values())))
        info.value = (f"<b>{ep.task.name}</b>: K={len(ep.support)}, {len(ep.query)} query points"
                      f"<table><tr><th>method</th>{head}</tr>{rows}</table>")
        state["result"] = res

    for w in (w_task, w_k, w_ep):
        w.observe(redraw, names="value")
    box = widgets.VBox([widgets.HBox([w_task, w_k]), w_ep, live, info])

    def show(task: str | None = None, k: int | None = None, episode: int | None = None) -> dict:
        for w, v in ((w_task, task), (w_k, k), (w_ep, episode)):
            if v is not None and w.value != v:
                w.unobserve(redraw, names="value")
                w.value = v
                w.observe(redraw, names="value")
        redraw()
        return state["result"]

    box.show = show
    redraw()
    return box
