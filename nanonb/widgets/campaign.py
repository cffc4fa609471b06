"""The campaign dashboard: a live campaign one round at a time, read from (and written to) its log.

:class:`CampaignDashboard` shows the best-so-far against simulator calls, each proposal's predicted
mean ± s.d. next to what was measured, the last proposal's design and its 3D structure
(:class:`~nanonb.widgets.structure.StructureView`), and a **run next round** button that runs one
more round of :func:`~nanonb.active.live.run_live_campaign` on the same log. :func:`results_form` is
the human oracle's entry form: it appends ``proposal_id,value`` rows to the drop folder's ``results.csv``.

Example
-------
>>> dash = CampaignDashboard(AlloyOracle("Cu", "Pt"), "meta", surrogate=load_pretrained(), budget=20)  # doctest: +SKIP
>>> dash.run_round(); dash                                                                          # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..active.live import LiveResult, run_live_campaign
from ..active.store import CampaignStore
from .live import LiveFigure
from .structure import StructureView

__all__ = ["CampaignDashboard", "results_form"]


class CampaignDashboard(widgets.VBox):
    """A live campaign with a "run next round" button (description ``"run next round"``).

    Parameters are those of :func:`~nanonb.active.live.run_live_campaign`; ``store`` defaults to an
    in-memory log. ``structure=False`` leaves out the nglview panel (e.g. without a browser).

    Attributes
    ----------
    result : LiveResult or None
        The campaign as logged after the last round.
    readout : ipywidgets.HTML
        The last round: its proposals with predicted mean ± s.d. and measured values.

    Example
    -------
    >>> dash = CampaignDashboard(oracle, "gp", budget=12)   # doctest: +SKIP
    """

    def __init__(self, oracle, strategy: str = "meta", surrogate=None, store: CampaignStore | None = None,
                 structure: bool = True, **campaign_kwargs):
        self.oracle, self.strategy, self.surrogate = oracle, strategy, surrogate
        self.store = store if store is not None else CampaignStore(":memory:")
        self.kwargs = campaign_kwargs
        self.result: LiveResult | None = None
        self.button = widgets.Button(description="run next round", button_style="primary")
        self.button.on_click(lambda _b: self.run_round())
        self.readout = widgets.HTML()
        self.figure = LiveFigure(figsize=(8.0, 3.0), ncols=2)
        self.view = StructureView(title="last proposal") if structure and hasattr(oracle, "structure") else None
        right = [self.readout] + ([self.view] if self.view is not None else [])
        super().__init__([self.button, widgets.HBox([self.figure, widgets.VBox(right)])])

    @property
    def done(self) -> bool:
        """True once the budget is spent."""
        return self.result is not None and len(self.result.values) >= self.kwargs.get("budget", 30)

    def run_round(self) -> LiveResult:
        """Run one more round (measure its proposals), then redraw; returns the campaign so far."""
        self.result = run_live_campaign(self.oracle, self.strategy, surrogate=self.surrogate, store=self.store,
                                        max_rounds=1, **self.kwargs)
        self.button.disabled = self.done
        self.refresh()
        return self.result

    def refresh(self) -> None:
        """Redraw the figure, the readout and the structure from the log."""
        if self.result is None:
            return
        df = self.result.frame
        calls = np.arange(1, len(self.result.best_curve) + 1)
        ax_best, ax_pred = self.figure.axes
        ax_best.clear()
        ax_best.step(calls, self.result.best_curve, where="post", color="C0")
        ax_best.plot(calls, self.result.values, ".", color="0.5", label="measured")
        ax_best.set(xlabel="simulator calls", ylabel=f"best so far ({self.oracle.unit})")
        ax_pred.clear()
        m = df.dropna(subset=["model_mean", "value"])
        if len(m):
            ax_pred.errorbar(m["value"], m["model_mean"], yerr=m["model_std"], fmt="o", ms=3, color="C1")
            lo, hi = float(min(m["value"].min(), m["model_mean"].min())), float(max(m["value"].max(),
                                                                                  m["model_mean"].max()))
            ax_pred.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax_pred.set(xlabel=f"measured ({self.oracle.unit})", ylabel="predicted at proposal (mean ± s.d.)")
        self.figure.refresh()
        last = df[df["round"] == df["round"].max()]
        rows = "".join(
            f"<tr><td>{int(r.proposal_id)}</td><td>{html.escape(_short(r.candidate))}</td>"
            f"<td>{_pm(r.model_mean, r.model_std)}</td><td>{_num(r.acq_value)}</td><td>{_num(r.value)}</td></tr>"
            for r in last.itertuples())
        self.readout.value = (
            f"<b>round {int(last['round'].iloc[0])}</b>: {len(self.result.values)} calls, best "
            f"{self.result.best_curve[-1]:.4f} {self.oracle.unit}<table><tr><th>id</th><th>design</th>"
            f"<th>predicted</th><th>acquisition</th><th>measured</th></tr>{rows}</table>")
        if self.view is not None:
            design = json.loads(last["candidate"].iloc[-1])
            title = f"proposal {int(last['proposal_id'].iloc[-1])}"
            self.view.set_structure(self.oracle.structure(design), title=title)


def _short(candidate_json: str) -> str:
    d = json.loads(candidate_json)
    if "cluster" in d:
        return f"{d['cluster']}, {len(d['b_sites'])} B"
    return candidate_json[:40]


def _num(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.4g}"


def _pm(mean, std) -> str:
    return "–" if mean is None or pd.isna(mean) else f"{mean:.4f} ± {std:.4f}"


def results_form(drop_dir: str | Path) -> widgets.VBox:
    """Entry form of the human oracle: ``proposal id`` + ``value`` + **save**, appended to ``results.csv``.

    Example
    -------
    >>> form = results_form("lab_drop")   # display(form); the campaign reads lab_drop/results.csv  # doctest: +SKIP
    """
    path = Path(drop_dir) / "results.csv"
    pid = widgets.IntText(description="proposal id")
    value = widgets.FloatText(description="value")
    save = widgets.Button(description="save")
    status = widgets.HTML()

    def on_save(_b):
        path.parent.mkdir(parents=True, exist_ok=True)
        new = pd.DataFrame({"proposal_id": [pid.value], "value": [value.value]})
        old = pd.read_csv(path) if path.exists() else new.iloc[:0]
        pd.concat([old, new], ignore_index=True).to_csv(path, index=False)
        status.value = f"saved proposal {pid.value} = {value.value:g} to {html.escape(str(path))}"

    save.on_click(on_save)
    return widgets.VBox([widgets.HBox([pid, value, save]), status])
