"""nanonb.bench.casestudy_gp helpers: the VTF-parameter Jacobian of a pooled network, the fit memo, the ensemble
candidates of the CALiSol selection."""

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


def test_calisol_ensemble_candidates_share_one_ensemble_fit(monkeypatch):
    """``ft-ens`` and the GP mean of ``dkt-vtf-rbf-ens`` are one fit per meta-train set; stack weights by name."""
    from nanonb.bench import casestudy_gp as cg
    from nanonb.bench.calisol import CalisolConfig

    fits = []

    class _Ens:
        def __init__(self, **kw):
            self.kw = kw

        def fit(self, tr):
            fits.append(tuple(tr.names))
            return self

        def adapt(self, support):
            return ("pooled mean of", self)

    class _GP:
        def __init__(self, fit_mean, **kw):
            self.fit_mean, self.kw = fit_mean, kw

        def fit(self, tr):
            self.parts = [self.fit_mean(type(tr)(tr.names[:1])), self.fit_mean(tr)]  # a cross-fit part, the whole
            return self

    class _TS:
        def __init__(self, names):
            self.names = list(names)

    monkeypatch.setattr(cg, "PooledVTFFineTune", _Ens)
    monkeypatch.setattr(cg, "MeanDKT", _GP)
    cands = cg.calisol_candidates(CalisolConfig(stack_gp_weights=(0.25, 0.5), ft_ens_members=4, candidates=(
        "ft-ens", "dkt-vtf-rbf-ens", "stack-ens", "stack-ens-gp0.25")), 0)
    assert sorted(cands) == ["dkt-vtf-rbf-ens", "ft-ens", "stack-ens", "stack-ens-gp0.25"]
    tr = _TS(["s1", "s2", "s3"])
    ens, gp = cands["ft-ens"](tr), cands["dkt-vtf-rbf-ens"](tr)
    half, quarter = cands["stack-ens"](tr), cands["stack-ens-gp0.25"](tr)
    assert ens.kw["n_members"] == 4 and ens.kw["mask_prefixes"] == ("anion_",) and gp.kw["name"] == "dkt-vtf-rbf-ens"
    assert gp.parts[1] == ("pooled mean of", ens.learner)             # the GP's mean is ft-ens's pooled networks
    assert fits == [("s1", "s2", "s3"), ("s1",)]                       # whole set once (shared), the part once
    assert half.members == [gp, ens] and half.weights.tolist() == [0.5, 0.5] and half.scale == "mean"
    assert quarter.members == [gp, ens] and quarter.weights.tolist() == [0.25, 0.75]
    assert quarter.name == "stack-ens-gp0.25"


def test_calisol_ft_map_fine_tunes_the_controls_pooled_network_under_the_prior(monkeypatch):
    from nanonb.bench import casestudy_gp as cg
    from nanonb.bench.calisol import CalisolConfig

    pooled_fits = []
    monkeypatch.setattr(cg, "_fit_pooled", lambda *a, **k: pooled_fits.append(a) or object())
    monkeypatch.setattr(cg, "vtf_model_kwargs", lambda *a, **k: {})
    monkeypatch.setattr(cg, "MeanDKT", lambda *a, **k: type("GP", (), {"fit": lambda self, tr: self})())
    cands = cg.calisol_candidates(CalisolConfig(stack_gp_weights=(0.25, 0.5), ft_map_prior=0.5, candidates=(
        "pooled-vtf+finetune", "ft-map", "stack-map", "stack-map-gp0.25")), 0)

    class _TS:
        names = ["a", "b"]

    tr = _TS()
    control, ft_map = cands["pooled-vtf+finetune"](tr), cands["ft-map"](tr)
    assert ft_map.method.pooled is control.method.pooled and len(pooled_fits) == 1    # one pooled network, shared
    assert (ft_map.method.steps, ft_map.method.prior, control.method.prior) == (200, 0.5, 0.0)
    half, quarter = cands["stack-map"](tr), cands["stack-map-gp0.25"](tr)
    assert half.members[1] is ft_map is quarter.members[1] and quarter.weights.tolist() == [0.25, 0.75]


def test_calisol_ft_map_priors_add_one_map_fine_tune_and_its_stacks_per_prior(monkeypatch):
    """``ft_map_priors``: the prior strength is a nested choice; ``ft-map`` keeps ``ft_map_prior``."""
    from nanonb.bench import casestudy_gp as cg
    from nanonb.bench.calisol import CalisolConfig

    monkeypatch.setattr(cg, "_fit_pooled", lambda *a, **k: object())
    monkeypatch.setattr(cg, "vtf_model_kwargs", lambda *a, **k: {})
    monkeypatch.setattr(cg, "MeanDKT", lambda *a, **k: type("GP", (), {"fit": lambda self, tr: self})())
    assert not any("-p" in n for n in cg.calisol_candidates(CalisolConfig(), 0))   # default: as before
    cands = cg.calisol_candidates(CalisolConfig(stack_gp_weights=(0.25, 0.5), ft_map_priors=(0.01, 0.03, 0.1)), 0)
    maps = sorted(n for n in cands if "map" in n)
    assert maps == ["ft-map", "ft-map-p0.01", "ft-map-p0.1", "stack-map", "stack-map-gp0.25", "stack-map-p0.01",
                    "stack-map-p0.01-gp0.25", "stack-map-p0.1", "stack-map-p0.1-gp0.25"]   # 0.03 is ft-map itself

    class _TS:
        names = ["a", "b"]

    tr = _TS()
    fts = {n: cands[n](tr) for n in ("ft-map", "ft-map-p0.01", "ft-map-p0.1")}
    assert {n: (f.method.prior, f.method.steps, f.name) for n, f in fts.items()} == {
        "ft-map": (0.03, 200, "ft-map"), "ft-map-p0.01": (0.01, 200, "ft-map-p0.01"),
        "ft-map-p0.1": (0.1, 200, "ft-map-p0.1")}
    control = cands["pooled-vtf+finetune"](tr)
    assert all(f.method.pooled is control.method.pooled for f in fts.values())     # one pooled network
    quarter, half = cands["stack-map-p0.1-gp0.25"](tr), cands["stack-map-p0.1"](tr)
    assert quarter.members[1] is fts["ft-map-p0.1"] is half.members[1] and quarter.weights.tolist() == [0.25, 0.75]
    assert quarter.name == "stack-map-p0.1-gp0.25"
