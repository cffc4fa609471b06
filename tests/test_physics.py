"""Tests for nanonb.physics: Hückel layer, TB-embedded network, constraint checks."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch

from nanonb.graphs import Structure, collate
from nanonb.physics import (
    HuckelLayer,
    TBGapNet,
    build_pi_system,
    check_charge_neutrality,
    check_mass_balance,
    check_nonnegative,
    constraint_report,
    eigh_broadened,
    huckel_hamiltonian,
    huckel_spectrum_analytic_benzene,
    huckel_spectrum_analytic_polyene,
    project_simplex,
)

torch.set_num_threads(1)
ALPHA, BETA = -6.0, -2.7


def ring(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(n)
    return i, (i + 1) % n


def chain(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    i = torch.arange(n - 1)
    return i, i + 1


def _batch_of_rings_and_chains(sizes_chain, dtype=torch.float64):
    """Benzene followed by polyenes of the given sizes, concatenated for HuckelLayer."""
    ei, ej, n_sites = [], [], []
    offset = 0
    for kind, n in [("ring", 6)] + [("chain", n) for n in sizes_chain]:
        a, b = ring(n) if kind == "ring" else chain(n)
        ei.append(a + offset)
        ej.append(b + offset)
        n_sites.append(n)
        offset += n
    ei, ej = torch.cat(ei), torch.cat(ej)
    onsite = torch.full((offset,), ALPHA, dtype=dtype)
    hopping = torch.full((len(ei),), BETA, dtype=dtype)
    return onsite, hopping, ei, ej, torch.tensor(n_sites)


# ---------------------------------------------------------------------------- analytic spectra
def test_hamiltonian_is_symmetric_and_matches_benzene():
    i, j = ring(6)
    h = huckel_hamiltonian(6, i, j, torch.full((6,), ALPHA, dtype=torch.float64),
                           torch.full((6,), BETA, dtype=torch.float64))
    assert torch.allclose(h, h.T)
    assert h[0, 1] == BETA and h[1, 0] == BETA and h[0, 5] == BETA and h[0, 2] == 0 and h[0, 0] == ALPHA
    ev = torch.linalg.eigvalsh(h).numpy()
    np.testing.assert_allclose(ev, huckel_spectrum_analytic_benzene(ALPHA, BETA), atol=1e-6)


def test_hamiltonian_rejects_duplicate_bonds():
    with pytest.raises(ValueError, match="listed twice"):
        huckel_hamiltonian(3, torch.tensor([0, 1]), torch.tensor([1, 0]), torch.zeros(3), torch.ones(2))


def test_layer_reproduces_analytic_spectra_in_one_padded_batch():
    sizes = [2, 3, 4, 5, 8, 11]
    onsite, hopping, ei, ej, n_sites = _batch_of_rings_and_chains(sizes)
    n_el = n_sites.clone()  # one π electron per carbon; the odd chains are radicals
    out = HuckelLayer()(onsite, hopping, ei, ej, n_sites, n_el)
    ref = [huckel_spectrum_analytic_benzene(ALPHA, BETA)] + [
        huckel_spectrum_analytic_polyene(n, ALPHA, BETA) for n in sizes]
    for b, r in enumerate(ref):
        got = out.eigenvalues[b][out.mask[b]].numpy()
        np.testing.assert_allclose(got, r, atol=1e-6)
        assert torch.isnan(out.eigenvalues[b][~out.mask[b]]).all()
    # gaps by electron counting: HOMO = level ceil(n/2) - 1
    exp_gap = []
    for r, n in zip(ref, [6, *sizes]):
        h = (n + 1) // 2 - 1
        exp_gap.append(r[h + 1] - r[h])
    np.testing.assert_allclose(out.gap.numpy(), exp_gap, atol=1e-6)
    assert abs(float(out.gap[0]) - 2 * abs(BETA)) < 1e-6  # benzene: 2|beta|


def test_electron_count_and_charge_shift_the_gap():
    onsite, hopping, ei, ej, n_sites = _batch_of_rings_and_chains([])
    layer = HuckelLayer()
    neutral = layer(onsite, hopping, ei, ej, n_sites, torch.tensor([6]))
    dianion = layer(onsite, hopping, ei, ej, n_sites, torch.tensor([8]))
    ref = huckel_spectrum_analytic_benzene(ALPHA, BETA)
    assert abs(float(neutral.homo) - ref[2]) < 1e-6
    assert abs(float(dianion.homo) - ref[3]) < 1e-6  # 8 electrons: HOMO is the antibonding e2u pair
    with pytest.raises(ValueError, match="no HOMO or no LUMO"):
        layer(onsite, hopping, ei, ej, n_sites, torch.tensor([12]))
    with pytest.raises(ValueError, match="no HOMO or no LUMO"):
        layer(onsite, hopping, ei, ej, n_sites, torch.tensor([0]))


# ---------------------------------------------------------------------------- gradients
def test_gradcheck_non_degenerate():
    gen = torch.Generator().manual_seed(0)
    onsite, hopping, ei, ej, n_sites = _batch_of_rings_and_chains([5, 7])
    onsite = (onsite + 0.3 * torch.randn(onsite.shape, generator=gen, dtype=torch.float64)).requires_grad_()
    hopping = (hopping + 0.2 * torch.randn(hopping.shape, generator=gen, dtype=torch.float64)).requires_grad_()
    layer = HuckelLayer(degeneracy_tol=0.0)

    def f(on, hop):
        out = layer(on, hop, ei, ej, n_sites, torch.tensor([6, 6, 6]))
        return out.gap, out.homo, out.eigenvalues[out.mask]

    out = layer(onsite, hopping, ei, ej, n_sites, torch.tensor([6, 6, 6]))
    ev = out.eigenvalues[0][out.mask[0]].detach()
    assert float(torch.diff(ev).min()) > 1e-3, "test molecule must be non-degenerate"
    assert torch.autograd.gradcheck(f, (onsite, hopping), eps=1e-6, atol=1e-6)


def test_degenerate_benzene_gives_finite_symmetric_gradients():
    i, j = ring(6)
    onsite = torch.full((6,), ALPHA, dtype=torch.float64, requires_grad=True)
    hopping = torch.full((6,), BETA, dtype=torch.float64, requires_grad=True)
    out = HuckelLayer()(onsite, hopping, i, j, torch.tensor([6]), torch.tensor([6]))
    (g_on, g_hop) = torch.autograd.grad(out.homo.sum(), (onsite, hopping), retain_graph=True)
    assert torch.isfinite(g_on).all() and torch.isfinite(g_hop).all()
    # mean of the degenerate e1g pair: d HOMO / d alpha_i = 1/6 on every site, d HOMO / d beta_ij = 1/6
    np.testing.assert_allclose(g_on.numpy(), np.full(6, 1 / 6), atol=1e-10)
    np.testing.assert_allclose(g_hop.numpy(), np.full(6, 1 / 6), atol=1e-10)
    (g_gap,) = torch.autograd.grad(out.gap.sum(), hopping)
    np.testing.assert_allclose(g_gap.numpy(), np.full(6, -2 / 6), atol=1e-10)  # gap = -2 beta
    # without averaging, the gradient is still finite (eigenvalues only, never eigenvectors)
    out0 = HuckelLayer(degeneracy_tol=0.0)(onsite, hopping, i, j, torch.tensor([6]), torch.tensor([6]))
    (g0,) = torch.autograd.grad(out0.gap.sum(), onsite)
    assert torch.isfinite(g0).all()
    assert abs(float(g0.sum())) < 1e-10  # a uniform on-site shift leaves the gap unchanged


def test_second_order_gradients_match_eigh_and_stay_finite_when_degenerate():
    gen = torch.Generator().manual_seed(1)
    m = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    a = (m + m.T).requires_grad_()

    def hess_vec(eig):
        w = eig(a)
        (g,) = torch.autograd.grad((w[1] * w[3]), a, create_graph=True)
        (h,) = torch.autograd.grad((g * g).sum(), a)
        return h

    ref = hess_vec(lambda x: torch.linalg.eigh(x)[0])
    got = hess_vec(lambda x: eigh_broadened(x)[0])
    assert torch.allclose(ref, got, atol=1e-6)
    assert torch.autograd.gradgradcheck(lambda x: eigh_broadened(0.5 * (x + x.T))[0][2], (a,))
    # exactly degenerate levels (like HuckelLayer's padding block): torch's double backward is NaN
    blk = torch.diag(torch.tensor([1.0, 2.0, 5.0, 5.0, 5.0], dtype=torch.float64))
    blk[0, 1] = blk[1, 0] = 0.3
    blk.requires_grad_()

    def second_blk(eig):
        (g,) = torch.autograd.grad(eig(blk)[0], blk, create_graph=True)
        return torch.autograd.grad((g * g).sum(), blk)[0]

    assert not torch.isfinite(second_blk(lambda x: torch.linalg.eigh(x)[0])).all()
    assert torch.isfinite(second_blk(lambda x: eigh_broadened(x)[0])).all()


def test_second_order_gradient_of_degenerate_homo_matches_finite_differences():
    i, j = ring(6)
    on = torch.full((6,), ALPHA, dtype=torch.float64)
    six = torch.tensor([6])  # 6 sites, 6 π electrons
    layer = HuckelLayer()

    def grad_homo(hop, create_graph=False):
        hop = hop if hop.requires_grad else hop.clone().requires_grad_()
        homo = layer(on, hop, i, j, six, six).homo.sum()
        return torch.autograd.grad(homo, hop, create_graph=create_graph)[0]

    hop0 = torch.full((6,), BETA, dtype=torch.float64, requires_grad=True)
    u = torch.randn(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = grad_homo(hop0, create_graph=True)
    (hvp,) = torch.autograd.grad((g * u).sum(), hop0)
    delta = 1e-6  # splits the e1g pair by ~1e-6 eV, below degeneracy_tol: the mean stays smooth
    fd = (grad_homo(hop0.detach() + delta * u) - grad_homo(hop0.detach() - delta * u)) / (2 * delta)
    assert torch.isfinite(hvp).all()
    np.testing.assert_allclose(hvp.numpy(), fd.numpy(), atol=1e-5)
    assert hvp.abs().max() > 1e-3  # not trivially zero


# ---------------------------------------------------------------------------- molecules and TBGapNet
@cache
def _family(dopant: str) -> tuple:
    from nanonb.data.flakes import generate_family

    return tuple(f.structure for f in generate_family("rectangular", dopant, 6, seed=0, min_heavy=10,
                                                      max_heavy=30))


def _flake(dopant: str, seed: int = 3) -> Structure:
    """A small generated flake (10-30 heavy atoms) of the given dopant family."""
    return _family(dopant)[seed]


def _benzene(cc: float = 1.42, ch: float = 1.09) -> Structure:
    ang = np.arange(6) * np.pi / 3
    c = np.stack([cc * np.cos(ang), cc * np.sin(ang), np.zeros(6)], 1)
    h = c * (cc + ch) / cc
    return Structure([6] * 6 + [1] * 6, np.concatenate([c, h]))


def test_huckel_only_on_real_geometry_matches_analytic_benzene():
    gap = TBGapNet.huckel_only(collate([_benzene()], dtype=torch.float64))
    assert abs(float(gap[0]) - 2 * abs(BETA)) < 1e-6


def test_pi_system_electron_counting_of_dopants():
    s_n, s_bn = _flake("N"), _flake("BN")
    pi = build_pi_system(collate([s_n, s_bn]))
    z = collate([s_n, s_bn]).z[pi.atom_index]
    n_sites = pi.n_sites.tolist()
    # "N": two pyridinic N (two-coordinated, 1 electron) -> same count as the all-carbon parent
    assert int(pi.n_electrons[0]) == n_sites[0]
    n_mask = (z == 7) & (pi.graph == 0)
    assert (pi.electrons[n_mask] == 1).all() and (pi.n_heavy[n_mask] == 2).all() and (pi.n_h[n_mask] == 0).all()
    # "BN": B gives 0, graphitic N gives 2 -> again the parent count, and even
    assert int(pi.n_electrons[1]) == n_sites[1]
    assert (pi.electrons[(z == 7) & (pi.graph == 1)] == 2).all()
    assert (pi.electrons[(z == 5)] == 0).all()
    assert (pi.n_electrons % 2 == 0).all()
    assert (pi.edge_i < pi.edge_j).all()


def _random_head(model: TBGapNet, seed: int = 0) -> TBGapNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (model.head.onsite_out, model.head.hop_out):
            lin.weight.copy_(0.3 * torch.randn(lin.weight.shape, generator=g))
            lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g))
    return model


def test_tbgapnet_invariant_to_rotation_translation_permutation():
    torch.manual_seed(0)
    model = _random_head(TBGapNet()).eval()
    structs = [_flake("BN"), _flake("N", seed=5), _benzene()]
    base = model(collate(structs))
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = []
    for s in structs:
        perm = rng.permutation(len(s))
        pos = s.positions[perm] @ q.T + rng.normal(size=3) * 5.0
        moved.append(Structure(s.numbers[perm], pos))
    out = model(collate(moved))
    assert torch.allclose(base, out, atol=1e-5), (base - out).abs().max()
    # the prediction is not trivially constant: a different molecule gives a different gap
    assert (base[0] - base[2]).abs() > 1e-2


def test_huckel_layer_invariant_to_site_permutation():
    onsite, hopping, ei, ej, n_sites = _batch_of_rings_and_chains([7])
    gen = torch.Generator().manual_seed(2)
    onsite = onsite + 0.5 * torch.randn(onsite.shape, generator=gen, dtype=torch.float64)
    hopping = hopping + 0.3 * torch.randn(hopping.shape, generator=gen, dtype=torch.float64)
    ref = HuckelLayer()(onsite, hopping, ei, ej, n_sites, torch.tensor([6, 8]))
    perm = torch.cat([torch.randperm(6, generator=gen), 6 + torch.randperm(7, generator=gen)])
    inv = torch.argsort(perm)  # new index of old site k is inv[k]
    order = torch.randperm(len(ei), generator=gen)
    out = HuckelLayer()(onsite[perm], hopping[order], inv[ej[order]], inv[ei[order]], n_sites,
                        torch.tensor([6, 8]))
    assert torch.allclose(ref.gap, out.gap, atol=1e-10)
    assert torch.allclose(ref.eigenvalues[ref.mask], out.eigenvalues[out.mask], atol=1e-10)


def test_tbgapnet_adapts_inside_higher_innerloop():
    higher = pytest.importorskip("higher")
    torch.manual_seed(0)
    model = _random_head(TBGapNet(hidden=16))
    structs = [_flake("none", seed=s) for s in range(3)] + [_flake("N", seed=s) for s in range(3)]
    batch = collate(structs)
    with torch.no_grad():
        target = 0.7 * TBGapNet.huckel_only(batch) + 0.4  # a smooth, learnable relation
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=False) as (fmodel, diffopt):
        losses = []
        for _ in range(5):
            loss = ((fmodel(batch) - target) ** 2).mean()
            losses.append(float(loss.detach()))
            diffopt.step(loss)
        final = ((fmodel(batch) - target) ** 2).mean()
        meta_grad = torch.autograd.grad(final, model.head.scale)[0]
    assert float(final.detach()) < 0.5 * losses[0], losses
    assert torch.isfinite(meta_grad)  # second-order gradient flows through the eigensolver
    # the original parameters were not changed in place
    assert float(model.head.scale.detach()) == 1.0


def test_head_only_adaptation_with_frozen_body_features():
    higher = pytest.importorskip("higher")
    torch.manual_seed(1)
    model = TBGapNet(hidden=16)
    batch = collate([_flake("BN", seed=s) for s in range(4)])
    with torch.no_grad():
        feats = model.body(batch)  # ANIL-style: body run once, only the head adapts
        target = model(batch) * 1.3 - 0.2
    opt = torch.optim.SGD(model.head.parameters(), lr=0.02)
    with higher.innerloop_ctx(model.head, opt) as (fhead, diffopt):
        first = float(((fhead(feats) - target) ** 2).mean().detach())
        for _ in range(5):
            diffopt.step(((fhead(feats) - target) ** 2).mean())
        last = float(((fhead(feats) - target) ** 2).mean().detach())
    assert last < 0.5 * first


def test_calibrate_fits_affine_map():
    model = TBGapNet()
    structs = [_flake("none", seed=s) for s in range(4)] + [_benzene()]
    batch = collate(structs)
    g = TBGapNet.huckel_only(batch)
    scale, shift = model.calibrate_(batch, (0.8 * g + 0.3).numpy())
    assert abs(scale - 0.8) < 1e-5 and abs(shift - 0.3) < 1e-5
    assert torch.allclose(model(batch), 0.8 * g + 0.3, atol=1e-5)


def test_unsupported_elements_raise():
    s = Structure([6, 8], [[0, 0, 0], [1.2, 0, 0]])
    with pytest.raises(ValueError, match="supports H, B, C, N only"):
        TBGapNet()(collate([s]))


# ---------------------------------------------------------------------------- constraints
def test_check_nonnegative():
    r = check_nonnegative([1.0, 0.0, -0.5, np.nan], name="conductivity")
    assert r.violations == [2, 3] and not r.ok
    assert "< 0" in r.reasons[0] and "not finite" in r.reasons[1]
    assert check_nonnegative(np.array([0.0, 3.0])).ok
    r2 = check_nonnegative(np.array([[1.0, -1.0]]))
    assert r2.violations == [(0, 1)]


def test_check_mass_balance():
    assert check_mass_balance(np.array([[0.2, 0.8], [1.0, 0.0]])).ok
    bad = np.array([[0.5, 0.6], [1.2, -0.2], [0.3, 0.7]])
    r = check_mass_balance(bad)
    assert r.violations == [0, 1]
    assert "sums to 1.1" in r.reasons[0]
    assert "< 0" in r.reasons[1] and "> 1" in r.reasons[1]
    assert check_mass_balance([0.5, 0.5 + 1e-9]).ok
    assert not check_mass_balance([0.5, 0.5 + 1e-3]).ok


def test_project_simplex_is_feasible_and_optimal():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(50, 5))
    p = project_simplex(x)
    assert check_mass_balance(p, tol=1e-9).ok
    # KKT: x - p = theta on the support, <= theta off the support
    for xi, pi in zip(x, p):
        r = xi - pi
        theta = r[pi > 0]
        assert np.ptp(theta) < 1e-9
        assert np.all(r[pi == 0] <= theta[0] + 1e-9)
    feasible = np.array([0.1, 0.2, 0.7])
    np.testing.assert_allclose(project_simplex(feasible), feasible, atol=1e-12)
    np.testing.assert_allclose(project_simplex(np.array([2.0, 0.0])), [1.0, 0.0])
    t = torch.tensor([[0.4, 0.4, 0.4]], requires_grad=True)
    out = project_simplex(t)
    assert isinstance(out, torch.Tensor) and torch.allclose(out.sum(1), torch.ones(1))
    out[0, 0].backward()
    assert torch.isfinite(t.grad).all()


def test_check_charge_neutrality():
    r = check_charge_neutrality(["NaCl", "NaCl2", "Fe2O3", "LiPF6", "Qq2"])
    assert r.violations == [1, 4]
    assert "NaCl2" in r.reasons[0]


def test_constraint_report():
    df = constraint_report(
        fractions=np.array([[0.5, 0.5], [0.7, 0.7]]),
        conductivity=np.array([1.0, -1.0, 2.0]),
        formulas=["NaCl", "NaCl2"],
        ok_values=[0.0, 1.0],
    )
    assert list(df.columns) == ["check", "n_items", "n_violations", "status", "examples"]
    assert df["n_violations"].tolist() == [1, 1, 1, 0]
    assert df["status"].tolist() == ["FAIL", "FAIL", "FAIL", "pass"]
    assert df["check"].iloc[0].startswith("mass balance")
    assert df["check"].iloc[2].startswith("charge neutrality")
    assert "1 of 4 checks pass" in df.attrs["summary"]
    assert "NaCl2" in df["examples"].iloc[2]


# ---------------------------------------------------------------------------- TBGapNet in the meta-learner
def test_tbgapnet_nonnegative_mode_never_predicts_a_negative_gap():
    torch.manual_seed(0)
    structs = [_flake("BN", seed=s) for s in range(4)] + [_flake("none", seed=s) for s in range(2)]
    batch = collate(structs)
    free = _random_head(TBGapNet(calib_scale=0.5, calib_shift=-3.0))
    assert (free(batch, output="gap") < 0).any()  # the unconstrained affine map can go negative
    model = _random_head(TBGapNet(calib_scale=0.5, calib_shift=0.0, nonnegative=True))
    with torch.no_grad():  # push the raw calibration far negative: softplus keeps gap >= 0
        model.head.scale.fill_(-30.0)
        model.head.shift.fill_(-30.0)
    assert (model(batch, output="gap") >= 0).all()
    spectrum_gap = model.spectrum(batch).gap.detach()
    scale, shift = model.calibrate_(batch, (0.7 * spectrum_gap + 0.2).numpy())
    assert scale == pytest.approx(0.7, abs=1e-5) and shift == pytest.approx(0.2, abs=1e-5)
    assert torch.allclose(model(batch, output="gap"), 0.7 * spectrum_gap + 0.2, atol=1e-5)
    scale, shift = model.calibrate_(batch, (0.7 * model.spectrum(batch).gap - 5.0).detach().numpy())
    assert scale >= 0 and shift == pytest.approx(0.0, abs=1e-5)  # NNLS clips the negative shift


def test_tbgapnet_standardized_target_and_features():
    m = TBGapNet(target_mean=2.0, target_std=0.5)
    batch = collate([_benzene(), _flake("N")], cutoff=m.cutoff)
    gap = m(batch, output="gap")
    assert torch.allclose(m(batch), (gap - 2.0) / 0.5)
    f = m(batch, output="features")
    assert torch.allclose(m.head(f.detach()), m(batch)) and not f.detach().h.requires_grad
    with pytest.raises(ValueError, match="output must be"):
        m(batch, output="energy")
    with pytest.raises(ValueError, match="cutoff"):
        TBGapNet(cutoff=1.5)


def _toy_flake_taskset(n_tasks=3, n=8, noise=0.0):
    from nanonb.data.flakes import generate_family
    from nanonb.tasks import Task, TaskSet

    tasks = []
    for t, dopant in enumerate(["none", "N", "BN"][:n_tasks]):
        structs = [f.structure for f in generate_family("rectangular", dopant, n, seed=1, min_heavy=10, max_heavy=24)]
        g = TBGapNet.huckel_only(collate(structs, cutoff=2.0)).double().numpy()
        y = (0.6 + 0.1 * t) * g + 0.3 + noise * np.random.default_rng(t).normal(size=len(g))
        tasks.append(Task(f"rect|{dopant}", structs, y, groups=("rectangular", dopant),
                          descriptors=np.c_[g, np.arange(len(g))], target_unit="eV"))
    return TaskSet(tasks)


def test_meta_learner_anil_on_tbgapnet_fits_adapts_and_reloads(tmp_path):
    from nanonb.learners.registry import load, make_learner
    from nanonb.physics import tb_model_kwargs

    ts = _toy_flake_taskset()
    kw = tb_model_kwargs(ts, hidden=8, n_layers=1)
    assert kw["nonnegative"] and kw["calib_scale"] > 0
    learner = make_learner("anil", model="TBGapNet", model_kwargs=kw, n_iterations=2, k_support=(1, 3),
                          k_query=3, inner_steps=2, meta_batch_size=2)
    assert learner.cutoff == 2.0
    learner.fit(ts, progress=False)
    assert np.isfinite(learner.history["train_loss"]).all()
    ep = ts.episode("rect|BN", 3, seed=0)
    zero = learner.adapt(None).predict(ep.query)
    pred = learner.adapt(ep.support).predict(ep.query)
    assert np.isfinite(pred).all() and (pred >= 0).all() and not np.allclose(pred, zero)
    learner.save(tmp_path / "tb")
    np.testing.assert_allclose(load(tmp_path / "tb").adapt(ep.support).predict(ep.query), pred,
                               atol=1e-6)


def test_fit_calibration_and_huckel_baseline():
    from nanonb.physics import HuckelCalibration, fit_calibration

    g = np.array([1.0, 2.0, 3.0])
    assert fit_calibration(g, 0.5 * g + 0.2) == pytest.approx((0.5, 0.2))
    assert fit_calibration(g, 0.5 * g - 0.2, nonnegative=True)[1] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least two"):
        fit_calibration(g[:1], g[:1])
    one = fit_calibration(g[:1], np.array([2.0]), prior=(0.5, 0.2), ridge=1.0)  # one point + prior
    assert 0.5 < one[0] and 0.2 < one[1]  # moved from the prior towards the point
    ts = _toy_flake_taskset()
    base = HuckelCalibration().fit(ts)
    t = ts["rect|BN"]  # y = 0.8 g + 0.3 exactly
    ep = ts.episode(t, 5, seed=0)
    assert np.abs(base.adapt(ep.support).predict(ep.query) - ep.query.targets).max() < 0.05
    zero = base.adapt(None).predict(ep.query)
    assert np.abs(zero - ep.query.targets).max() > 0.05  # the prior (slope ~0.7) is not the task


def test_drop_shared_molecules_and_size_split():
    from nanonb.physics import drop_shared_molecules, size_split
    from nanonb.tasks import Task, TaskSet

    ts = _toy_flake_taskset(2)
    a, b = ts[0], ts[1]
    shared = Task("other", [a.inputs[0], b.inputs[1], _benzene()], [1.0, 2.0, 3.0])
    moved = Structure(a.inputs[2].numbers[::-1], a.inputs[2].positions[::-1] @ np.diag([-1, 1, 1]) + 4.0)
    test = TaskSet([shared, Task("moved", [moved, _benzene()], [1.0, 2.0])])
    clean, n = drop_shared_molecules(ts, test)
    assert n == 3  # a[0], a[2] (mirrored, permuted, translated) and b[1]
    assert sum(len(t) for t in clean) == sum(len(t) for t in ts) - 3
    tasks = TaskSet([Task(t.name, t.inputs, t.targets, meta=pd.DataFrame({"n_heavy": [
        int((s.numbers != 1).sum()) for s in t.inputs]}), groups=t.groups) for t in ts])
    thr = int(np.median(np.concatenate([t.meta["n_heavy"] for t in tasks])))
    train, test = size_split(tasks, thr, min_test_points=1)
    assert all((t.meta["n_heavy"] <= thr).all() for t in train)
    assert all((t.meta["n_heavy"] > thr).all() for t in test) and len(test) > 0


def test_run_episodes_zero_shot_and_negative_counts():
    from nanonb.physics import HuckelCalibration, NamedMethod, _violation_rows, run_episodes

    ts = _toy_flake_taskset(2)
    calib = HuckelCalibration().fit(ts)
    calib.prior = (0.5, -100.0)  # every zero-shot prediction negative
    no_zero = NamedMethod(HuckelCalibration().fit(ts), "no-zero-shot", "baseline", zero_shot=False)
    df, preds = run_episodes([calib, no_zero], ts, shots=(0, 2), n_episodes=2)
    z = df[df.k == 0]
    assert set(z.method) == {"huckel+calibration"} and (z.n_query == [len(t) for t in ts]).all()
    assert (z.n_negative == z.n_query).all()
    assert set(df[df.k == 2].method) == {"huckel+calibration", "no-zero-shot"}
    assert len(preds["huckel+calibration"]) == df[df.method == "huckel+calibration"].n_query.sum()
    rows = _violation_rows(df, "s")
    r0 = next(r for r in rows if r["k"] == 0)
    assert r0["metric"] == "constraint_violations" and r0["total"] == sum(len(t) for t in ts)


def test_check_invariance_of_tbgapnet():
    from nanonb.physics import check_invariance

    m = _random_head(TBGapNet(hidden=8))
    dev = check_invariance(m, [_flake("BN"), _benzene()], n_trials=2)
    assert dev["scale"] > 0.1
    assert max(dev[k] for k in ("rotation", "reflection", "translation", "permutation")) < 1e-5
