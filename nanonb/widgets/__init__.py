"""Live Jupyter widgets (ipywidgets; the figures are PNG images, so no front-end extension is needed).

- :class:`~nanonb.widgets.structure.StructureView` — an nglview view of a cluster or molecule,
  atoms coloured by element, with a small legend;
- :class:`~nanonb.widgets.live.LiveFigure` — a matplotlib figure redrawn in place (live loss curves);
- :class:`~nanonb.widgets.explorer.AdaptationExplorer` — interactive few-shot adaptation of a
  learner to held-out tasks, next to the baselines and the trivial :class:`SupportMean` reference;
- :func:`~nanonb.widgets.casestudy.case_study_explorer` — the CALiSol / LNPDB benchmark episodes;
- :class:`~nanonb.widgets.app.WorkshopApp` — the no-code Voilà dashboard (``notebooks/app.ipynb``).
- :class:`~nanonb.widgets.campaign.CampaignDashboard` — a live campaign with a "run next round" button.

Widget descriptions are a stable interface (browser tests select by them): ``"task"``, ``"shots"``,
``"inner steps"``, ``"inner lr"``, the button ``"new episode"``, and the readout
(:attr:`AdaptationExplorer.readout`, an ``HTML`` widget whose text contains ``"MAE"``).

Example
-------
>>> from nanonb.widgets import AdaptationExplorer, StructureView  # doctest: +SKIP
"""

from ..baselines import SupportMean
from .app import WorkshopApp
from .casestudy import case_study_explorer
from .explorer import AdaptationExplorer
from .live import LiveFigure, figure_png
from .structure import StructureView, element_color

__all__ = ["AdaptationExplorer", "LiveFigure", "StructureView", "SupportMean", "WorkshopApp", "case_study_explorer",
           "element_color", "figure_png"]
