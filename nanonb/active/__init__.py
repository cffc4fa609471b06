"""Active learning with few-shot uncertainty: acquisition functions, simulated campaigns, refinement.

- :mod:`.acquisition`: the acquisition functions (one signature, maximizing a goal-oriented score),
  their registry :data:`ACQUISITIONS`, :func:`select_batch` (which applies the goal's sign) and the
  goals of the bundled data sets (:data:`GOALS`).
- :mod:`.campaign`: :func:`run_campaign` simulates a lab loop on a held-out task with hidden labels;
  :func:`compare_strategies`, :func:`campaign_summary`, :func:`best_so_far_curves`.
- :mod:`.refine`: :func:`refine` feeds campaign measurements back into meta-training.

The benchmark protocol ``python -m nanonb.bench active --data ...`` lives in :mod:`nanonb.bench.active`.
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
from .campaign import (
    CampaignResult,
    best_so_far_curves,
    campaign_pool,
    campaign_summary,
    compare_strategies,
    run_campaign,
)
from .refine import acquired_tasks, augment_taskset, refine

__all__ = [
    "ACQUISITIONS", "GOALS", "CampaignResult", "acquired_tasks", "augment_taskset", "best_so_far_curves",
    "campaign_pool", "campaign_summary", "compare_strategies", "expected_improvement",
    "greedy_mean", "max_variance", "refine", "run_campaign", "select_batch", "thompson_sampling",
    "upper_confidence_bound",
]
