"""Tests of nanonb.active.botorch_model: nanonb learners as BoTorch models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.optim import optimize_acqf_discrete

from nanonb.active.botorch_model import PredictiveModel, index_model, learner_model
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.learners.descriptors import OnDescriptors
from nanonb.tasks import Task, TaskSet

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bml():
    rng = np.random.default_rng(0)
    tasks = []
    for t in range(6):
        x = rng.uniform(-1, 1, size=(25, 3))
        tasks.append(Task(f"t{t}", x.astype(np.float32), np.sin(2 * x[:, 0]) + 0.3 * t * x[:, 1]))
    return BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=30, seed=0).fit(
        TaskSet(tasks, name="toy"), progress=False)


def test_bml_model_marginals_match_predict_dist_and_batches_are_joint(bml):
    rng = np.random.default_rng(1)
    xs, ys = rng.uniform(-1, 1, (5, 3)), rng.normal(size=5)
    xq = rng.uniform(-1, 1, (4, 3))
    model = learner_model(bml, xs, ys, sign=-1.0)
    mean, std = bml.adapt(Task("s", xs.astype(np.float32), ys)).predict_dist(xq.astype(np.float32))
    post1 = model.posterior(torch.as_tensor(xq).unsqueeze(-2))  # 4 batches of q = 1
    np.testing.assert_allclose(post1.mean.reshape(-1).numpy(), -mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(post1.variance.reshape(-1).sqrt().numpy(), std, rtol=1e-4)
    postq = model.posterior(torch.as_tensor(xq))  # one joint batch of q = 4
    cov = postq.distribution.covariance_matrix.detach().numpy()
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std, rtol=1e-4)
    _, full = bml.adapt(Task("s", xs.astype(np.float32), ys)).predict_dist(xq.astype(np.float32), full_cov=True)
    np.testing.assert_allclose(cov, full, rtol=1e-4, atol=1e-9)  # the off-diagonal terms too
    assert np.abs(cov - np.diag(np.diag(cov))).max() > 0


def test_bml_ensemble_batches_are_joint_and_match_the_mixture(bml):
    from nanonb.learners.bml_ensemble import BMLEnsemble

    ens = BMLEnsemble(n_members=2, model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=30, seed=0)
    ens.members = [bml, bml.copy()]
    ens.members[1].config.seed = 1
    rng = np.random.default_rng(2)
    xs, ys = rng.uniform(-1, 1, (5, 3)), rng.normal(size=5)
    xq = rng.uniform(-1, 1, (4, 3))
    # the second member differs from the first (perturbed weights), so the members disagree
    with torch.no_grad():
        for p in ens.members[1].model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = learner_model(OnDescriptors(ens), xs, ys, sign=1.0)
    assert model.factor is not None
    mean, std = ens.adapt(Task("s", xs.astype(np.float32), ys)).predict_dist(xq.astype(np.float32))
    post = model.posterior(torch.as_tensor(xq))   # one joint batch of q = 4
    cov = post.distribution.covariance_matrix.detach().numpy()
    np.testing.assert_allclose(post.mean.reshape(-1).numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std, rtol=1e-4)   # the mixture's marginal s.d.
    assert np.abs(cov - np.diag(np.diag(cov))).max() > 0


def test_wrapped_and_generic_learners_drive_botorch_acquisitions(bml):
    class Generic:  # any learner with adapt(...).predict_dist (marginals only)
        def adapt(self, support):
            class A:
                def predict_dist(self, x):
                    return -np.sum((np.asarray(x, float) - 0.5) ** 2, axis=1), np.full(len(x), 0.1)
            return A()

    choices = torch.linspace(0, 1, 11, dtype=torch.float64).reshape(-1, 1).repeat(1, 3)
    model = learner_model(Generic(), np.zeros((2, 3)), np.zeros(2))
    x, _ = optimize_acqf_discrete(qLogExpectedImprovement(model, best_f=-1.0), q=1, choices=choices)
    assert x[0, 0].item() == pytest.approx(0.5)
    wrapped = learner_model(OnDescriptors(bml), np.zeros((2, 3)), np.zeros(2))
    assert wrapped.factor is not None  # the Bayesian last layer inside OnDescriptors is found: joint batches
    x2, _ = optimize_acqf_discrete(qLogExpectedImprovement(wrapped, best_f=0.0), q=3, choices=choices)
    assert len({tuple(r) for r in x2.tolist()}) == 3


def test_index_and_plain_models():
    m = index_model(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]), sign=-1)
    p = m.posterior(torch.tensor([[[2.0]], [[0.0]]]))
    assert p.mean.reshape(-1).tolist() == [-3.0, -1.0]
    plain = PredictiveModel(lambda x: (x[:, 0], np.ones(len(x))))
    assert plain.num_outputs == 1 and plain.posterior(torch.zeros(2, 3, 1)).mean.shape == (2, 3, 1)
