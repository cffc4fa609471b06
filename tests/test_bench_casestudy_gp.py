"""nanonb.bench.casestudy_gp helpers: the VTF-parameter Jacobian of a pooled network."""

import numpy as np
import torch
from torch import nn

from nanonb.bench.casestudy_gp import vtf_jacobian


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.1234567, -2.718281, 3.3333333, 1e-3, 7.654321]))


class _Pred:
    """A stand-in predictor: log10 k = sum_j theta_j * x_j^2 (float32), so d/d theta_j = x_j^2."""

    def __init__(self):
        self.model = nn.Module()
        self.model.head = _Head()

    def predict(self, x):
        with torch.no_grad():
            return (torch.as_tensor(x, dtype=torch.float32) ** 2 @ self.model.head.theta).numpy()


def test_vtf_jacobian_is_the_gradient_and_restores_theta_bit_for_bit():
    pred, x = _Pred(), np.random.default_rng(0).uniform(0.5, 2.0, (6, 5))
    before = pred.model.head.theta.detach().clone()
    jac = vtf_jacobian(pred, x)
    np.testing.assert_allclose(jac, x**2, rtol=2e-2)
    assert torch.equal(pred.model.head.theta.detach(), before)  # not just close: the same bits
    np.testing.assert_array_equal(vtf_jacobian(pred, x), jac)   # so repeated calls give the same numbers
