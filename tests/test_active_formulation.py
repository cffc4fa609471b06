"""Tests of nanonb.active.formulation: constrained proposals with a meta-learned surrogate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.active.botorch_model import learner_model
from nanonb.active.formulation import (
    ELECTROLYTE_SPACE,
    LNP_SPACE,
    mixture_report,
    propose_mixtures,
    unconstrained_proposals,
)
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.tasks import Task, TaskSet

torch.set_num_threads(1)


def _toy_tasks(space, n_tasks=8, n=30, seed=0):
    """Tasks on random points of the space; the optimum pulls towards the corner of the wide box."""
    rng = np.random.default_rng(seed)
    d = len(space.names)
    tasks = []
    for t in range(n_tasks):
        x = rng.uniform(space.wide_lower, space.wide_upper, size=(n, d))
        w = rng.normal(1.0, 0.2, size=d)
        tasks.append(Task(f"t{t}", x.astype(np.float32), x @ w + 0.3 * x[:, 0] ** 2 + rng.normal(0, 0.01, n)))
    return TaskSet(tasks, name="toy")


@pytest.fixture(scope="module")
def bml_lnp():
    return BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=40, seed=0).fit(
        _toy_tasks(LNP_SPACE), progress=False)


@pytest.mark.parametrize("space", [LNP_SPACE, ELECTROLYTE_SPACE], ids=["lnp", "electrolyte"])
def test_proposals_keep_mass_balance_to_1e9_and_ranges_unconstrained_ones_do_not(space, bml_lnp):
    learner = bml_lnp if space is LNP_SPACE else BayesianMetaLearner(
        model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=40, seed=0).fit(_toy_tasks(space), progress=False)
    held = _toy_tasks(space, n_tasks=1, n=6, seed=9)[0]
    model = learner_model(learner, held.inputs, held.targets)
    best = float(held.targets.max())
    x = propose_mixtures(model, space, best, q=2, seed=0)
    mix = list(space.mixture)
    assert np.abs(x[:, mix].sum(axis=1) - 1.0).max() <= 1e-9
    lo, hi = space.bounds().numpy()
    assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)
    free = unconstrained_proposals(model, space, best, q=2, seed=0)
    rep = mixture_report(space, nanonb=x, unconstrained=free)
    assert rep.loc[rep.proposals == "nanonb", "n_violations"].sum() == 0
    # the toy objective grows with every input: without the constraints the optimizer leaves the simplex
    assert rep.loc[rep.proposals == "unconstrained", "n_violations"].sum() > 0
    assert rep.loc[(rep.proposals == "unconstrained") & rep.check.str.startswith("mass balance"),
                   "n_violations"].iloc[0] > 0


def test_report_counts_a_violation():
    rep = mixture_report(LNP_SPACE, bad=np.array([[0.7, 0.1, 0.15, 0.05]]))
    assert set(rep.loc[rep.n_violations > 0, "check"]) == {"range: ionizable in 0.3..0.6",
                                                           "range: cholesterol in 0.2..0.5"}
