"""Physics inside and around the models: Hückel theory, physics-embedded networks, symmetry and constraints.

One job per module, dependencies pointing down (``huckel`` <- ``pisystem`` <- ``calibration`` <- ``tb``;
``vtf`` <- ``vtfnet``; ``symmetry`` and ``constraints`` stand alone):

* :mod:`~nanonb.physics.huckel`: the differentiable Hückel layer (:func:`huckel_hamiltonian`,
  :class:`HuckelLayer`, :func:`eigh_broadened` with finite gradients at degenerate levels).
* :mod:`~nanonb.physics.pisystem`: π sites and bonds of a molecule graph, the π-electron convention,
  reference heteroatom parameters and the plain Hückel gap (:func:`huckel_gaps`).
* :mod:`~nanonb.physics.calibration`: calibrated Hückel theory (:func:`fit_calibration`) and the
  :class:`HuckelCalibration` baseline.
* :mod:`~nanonb.physics.tb`: :class:`TBGapNet`, a graph network with the Hückel layer inside.
* :mod:`~nanonb.physics.vtf` and :mod:`~nanonb.physics.vtfnet`: the Vogel–Tammann–Fulcher
  conductivity law, its per-task fit (:class:`VTFFit`) and :class:`VTFNet`, a network with a VTF head.
* :mod:`~nanonb.physics.symmetry`: invariance, force-equivariance and closed-loop-work checks of any
  graph model.
* :mod:`~nanonb.physics.constraints`: non-negativity, mass balance, simplex projection, charge
  neutrality and :func:`constraint_report`.

Importing this package registers :class:`TBGapNet` and :class:`VTFNet` with
:func:`nanonb.models.registry.register_model` (the learners import it, so saved learners load in any import
order). The ``forces`` and ``tb`` benchmark protocols live in :mod:`nanonb.bench.forces` and
:mod:`nanonb.bench.tb`.
"""

from nanonb.physics.calibration import HuckelCalibration, fit_calibration
from nanonb.physics.constraints import (
    CheckResult,
    check_charge_neutrality,
    check_mass_balance,
    check_nonnegative,
    constraint_report,
    project_simplex,
)
from nanonb.physics.huckel import (
    HuckelLayer,
    HuckelOutput,
    eigh_broadened,
    huckel_hamiltonian,
    huckel_spectrum_analytic_benzene,
    huckel_spectrum_analytic_polyene,
)
from nanonb.physics.pisystem import (
    ALPHA_C,
    BETA_CC,
    SITE_TYPES,
    PiSystem,
    build_pi_system,
    huckel_gaps,
    pi_electrons,
    reference_gap,
    reference_parameters,
)
from nanonb.physics.symmetry import check_force_equivariance, check_invariance, closed_loop_work, random_rotation
from nanonb.physics.tb import TBBody, TBFeatures, TBGapNet, TBHead, tb_model_kwargs
from nanonb.physics.vtf import RawColumns, VTFFit, VTFPrior, empirical_prior, fit_vtf, vtf_log10k
from nanonb.physics.vtfnet import VTFHead, VTFNet, vtf_model_kwargs, vtf_parameters

__all__ = [
    "ALPHA_C", "BETA_CC", "SITE_TYPES", "CheckResult", "HuckelCalibration", "HuckelLayer", "HuckelOutput",
    "PiSystem", "RawColumns", "TBBody", "TBFeatures", "TBGapNet", "TBHead", "VTFFit", "VTFHead", "VTFNet",
    "VTFPrior", "build_pi_system", "check_charge_neutrality", "check_force_equivariance", "check_invariance",
    "check_mass_balance", "check_nonnegative", "closed_loop_work", "constraint_report", "eigh_broadened",
    "empirical_prior", "fit_calibration", "fit_vtf", "huckel_gaps", "huckel_hamiltonian",
    "huckel_spectrum_analytic_benzene", "huckel_spectrum_analytic_polyene", "pi_electrons", "project_simplex",
    "random_rotation", "reference_gap", "reference_parameters", "tb_model_kwargs", "vtf_log10k",
    "vtf_model_kwargs", "vtf_parameters",
]
