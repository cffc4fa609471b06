"""nanonb: few-shot meta-learning for nanotechnology and materials discovery.

The notebook-facing API in one namespace, so a notebook needs one import line::

    from nanonb import TaskSet, load_nanoalloys, make_learner, evaluate, summarize, check

Names are imported lazily on first use (``import nanonb`` stays fast and pulls in neither torch nor the
widget stack until a name that needs them is used). Where each name lives is listed in :data:`API`;
``help(nanonb.<name>)`` shows its documentation.

Example
-------
>>> import nanonb
>>> nanonb.__version__
'0.1.0'
>>> from nanonb import TaskSet
>>> TaskSet.__module__
'nanonb.tasks.taskset'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: module -> public names re-exported at the top level (one import line for notebooks)
API: dict[str, tuple[str, ...]] = {
    "nanonb.tasks": ("Task", "TaskSet", "Episode", "leakage_report", "descriptor_tasks"),
    "nanonb.graphs": ("Structure", "collate"),
    "nanonb.sanity": ("check",),
    "nanonb.threads": ("set_threads",),
    "nanonb.data.nanoalloys": ("load_nanoalloys", "DESCRIPTOR_NAMES", "ELEMENTS"),
    "nanonb.data.calisol": ("load_calisol", "calisol_taskset"),
    "nanonb.data.lnpdb": ("load_lnpdb", "lnpdb_taskset"),
    "nanonb.data.flakes": ("load_flakes",),
    "nanonb.data.honeycomb": ("generate_flake", "generate_family"),
    "nanonb.models": ("MLP", "InvariantGNN", "EquivariantGNN", "build_model"),
    "nanonb.learners.registry": ("make_learner",),
    "nanonb.learners.maml": ("MAML",),
    "nanonb.learners.anil": ("ANIL",),
    "nanonb.learners.metasgd": ("MetaSGD",),
    "nanonb.learners.alpaca": ("BayesianMetaLearner",),
    "nanonb.learners.bml_ensemble": ("BMLEnsemble",),
    "nanonb.learners.stack": ("StackLearner",),
    "nanonb.learners.ensemble": ("EnsembleMetaLearner",),
    "nanonb.learners.descriptors": ("OnDescriptors",),
    "nanonb.learners.dkt_mean": ("MeanDKT",),
    "nanonb.learners.tanimoto_gp": ("TanimotoGP", "tanimoto"),
    "nanonb.learners.vtfprior": ("VTFPriorLearner",),
    "nanonb.baselines.nets": ("Scratch", "Pooled", "FineTune", "SupportMean"),
    "nanonb.baselines.gp": ("SupportGP", "TaskGP", "PooledNetResidualGP", "TaskResidualGP"),
    "nanonb.baselines.ceiling": ("in_task_ceiling", "closed"),
    "nanonb.baselines.tabular": ("PooledTrees", "PooledOffset", "PooledRecalibration", "SupportRF",
                                 "SupportExtraTrees", "RandomRanker"),
    "nanonb.evaluation": ("evaluate", "summarize", "table", "Named", "top_recall"),
    "nanonb.uncertainty": ("evaluate_uncertainty", "calibration_summary", "flag_for_validation"),
    "nanonb.active": ("GOALS", "compare_strategies", "campaign_summary", "best_so_far_curves",
                      "acquired_tasks", "augment_taskset", "refine"),
    "nanonb.physics": ("TBGapNet", "build_pi_system", "reference_parameters", "huckel_hamiltonian",
                       "huckel_spectrum_analytic_benzene", "check_invariance", "check_force_equivariance",
                       "closed_loop_work", "constraint_report", "check_mass_balance", "check_nonnegative",
                       "project_simplex"),
    "nanonb.physics.vtf": ("RawColumns", "VTFFit", "fit_vtf"),
    "nanonb.plots": ("parity", "error_vs_shots", "loss_curves", "calibration", "campaign_curves",
                     "predictive_intervals"),
    "nanonb.widgets": ("AdaptationExplorer", "StructureView", "LiveFigure", "case_study_explorer", "WorkshopApp"),
    "nanonb.pretrained": ("load_pretrained", "load_pretrained_baseline", "heldout_tasks", "heldout_ceiling"),
    "nanonb.bench.schema": ("format_table",),
    "nanonb.bench.casestudy": ("MetaSpec", "build_meta_learner", "drop_low_targets", "evaluate_episodes"),
    "nanonb.bench.calisol": ("CalisolConfig", "calisol_splits"),
    "nanonb.bench.lnpdb": ("LNPDBConfig", "lnpdb_splits"),
    "nanonb.bench.casestudy_gp": ("calisol_candidates", "lnpdb_candidates", "nested_select"),
    "nanonb.active.botorch_model": ("learner_model",),
    "nanonb.active.store": ("CampaignStore",),
    "nanonb.active.oracle": ("AlloyOracle", "CSVDropOracle"),
    "nanonb.active.live": ("run_live_campaign", "calls_to_target"),
    "nanonb.active.formulation": ("LNP_SPACE", "ELECTROLYTE_SPACE", "propose_mixtures", "unconstrained_proposals",
                                  "mixture_report"),
    "nanonb.widgets.campaign": ("CampaignDashboard", "results_form"),
    "nanonb.bench.campaign": ("run_campaign_bench", "campaign_table"),
    "nanonb.data.electrolytes_xtb": ("load_electrolyte_library", "potentials_vs_li"),
    "nanonb.data.electrolyte_reference": ("level_of_theory_check",),
    "nanonb.data.electrolyte_tasks": ("stability_taskset",),
    "nanonb.baselines.tanimoto": ("SupportTanimotoGP",),
    "nanonb.uncertainty.pareto": ("pareto_front", "pareto_with_uncertainty"),
    "nanonb.bench.stability": ("StabilityConfig", "make_stability_learner", "scaffold_leakage"),
    "nanonb.bench.blend_screen": ("screen_blends", "candidate_blends", "conductivity_model", "solvent_oxidation",
                                  "blend_oxidation"),
}
_WHERE = {name: module for module, names in API.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    """Import ``name`` from its module on first use (PEP 562)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nanonb' has no attribute {name!r}; the top-level names are listed in "
                             "nanonb.API (submodules are imported as nanonb.<package>.<module>)")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
