"""Active learning with few-shot uncertainty: acquisition functions, simulated campaigns, refinement.

- :mod:`.acquisition`: the acquisition functions (one signature, maximizing a goal-oriented score),
  their registry :data:`ACQUISITIONS`, :func:`select_batch` (which applies the goal's sign) and the
  goals of the bundled data sets (:data:`GOALS`).
- :mod:`.campaign`: :func:`run_campaign` simulates a lab loop on a held-out task with hidden labels;
  :func:`compare_strategies`, :func:`campaign_summary`, :func:`best_so_far_curves`.
- :mod:`.refine`: :func:`refine` feeds campaign measurements back into meta-training.
- :mod:`.botorch_model`: any learner with ``predict_dist`` as a BoTorch model (:func:`learner_model`).
- :mod:`.store`: :class:`CampaignStore`, the SQLite campaign log (resumable after a crash).
- :mod:`.oracle`: live oracles (:class:`AlloyOracle`: EMT; :class:`CSVDropOracle`: a human, by CSV).
- :mod:`.flake_oracle`: :class:`FlakeOracle`, new graphene flakes in a size budget labelled by GFN2-xTB.
- :mod:`.live`: :func:`run_live_campaign`, the autonomous-lab loop (BoTorch proposals, oracle in the loop).
- :mod:`.local_search`: :func:`~.local_search.local_search`, the acquisition optimizer over designs (hill
  climbing on the oracle's moves; ``run_live_campaign(..., search_steps=...)``).
- :mod:`.formulation`: constrained mixture proposals (:func:`propose_mixtures`, :func:`mixture_report`).

The benchmark protocols ``python -m nanonb.bench active --data ...`` and ``... campaign --data nanoalloys|flakes``
live in :mod:`nanonb.bench.active` and :mod:`nanonb.bench.campaign`.
"""

from .acquisition import (
    ACQUISITIONS,
    GOALS,
    expected_improvement,
    greedy_mean,
    max_variance,
    select_batch,
    thompson_sampling,
    upper_confidence_bound,
)
from .botorch_model import learner_model
from .campaign import (
    CampaignResult,
    best_so_far_curves,
    campaign_pool,
    campaign_summary,
    compare_strategies,
    run_campaign,
)
from .flake_oracle import FlakeOracle
from .formulation import ELECTROLYTE_SPACE, LNP_SPACE, mixture_report, propose_mixtures, unconstrained_proposals
from .live import calls_to_target, run_live_campaign
from .oracle import AlloyOracle, CSVDropOracle
from .refine import acquired_tasks, augment_taskset, refine
from .store import CampaignStore

__all__ = [
    "ELECTROLYTE_SPACE", "LNP_SPACE", "AlloyOracle", "CSVDropOracle", "CampaignStore", "FlakeOracle", "calls_to_target",
    "learner_model", "mixture_report", "propose_mixtures", "run_live_campaign", "unconstrained_proposals",
    "ACQUISITIONS", "GOALS", "CampaignResult", "acquired_tasks", "augment_taskset", "best_so_far_curves",
    "campaign_pool", "campaign_summary", "compare_strategies", "expected_improvement",
    "greedy_mean", "max_variance", "refine", "run_campaign", "select_batch", "thompson_sampling",
    "upper_confidence_bound",
]
