"""Tests for nanonb.physics.huckel: Hamiltonian, analytic spectra, the batched layer and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nanonb.physics.huckel import (
    HuckelLayer,
    eigh_broadened,
    huckel_hamiltonian,
    huckel_spectrum_analytic_benzene,
    huckel_spectrum_analytic_polyene,
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

def test_hamiltonian_is_symmetric_and_matchesbenzene():
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
