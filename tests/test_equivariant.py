"""EquivariantGNN, checked with the symmetry checks of nanonb.physics.symmetry (tested in test_physics_symmetry.py).

Invariance of energies, equivariance of forces and vector features, conservative forces (closed-loop
work), use inside ``higher`` and the meta-learner. That each check fails on a model or force field
that breaks the symmetry (so a passing check means something) is tested in test_physics_symmetry.py.
"""

from __future__ import annotations

import higher
import numpy as np
import pytest
import torch
from ase.cluster import Icosahedron

from nanonb.graphs import Structure, collate
from nanonb.models.gnn import EquivariantGNN, InvariantGNN
from nanonb.models.registry import build_model
from nanonb.physics.symmetry import check_force_equivariance, check_invariance, closed_loop_work, random_rotation

torch.set_num_threads(1)
TOL = 1e-5


def cluster(seed: int = 0, n_pt: int = 5) -> Structure:
    """A 55-atom Cu icosahedron with some Pt, thermally rattled (no symmetry left)."""
    atoms = Icosahedron("Cu", 3)
    rng = np.random.default_rng(seed)
    z = atoms.get_atomic_numbers()
    z[rng.choice(len(z), n_pt, replace=False)] = 78
    return Structure(z, atoms.get_positions() + rng.normal(scale=0.08, size=(len(z), 3)))


def small_cluster(seed: int = 0) -> Structure:
    atoms = Icosahedron("Cu", 2)  # 13 atoms
    rng = np.random.default_rng(seed)
    z = atoms.get_atomic_numbers()
    z[rng.choice(len(z), 4, replace=False)] = 78
    return Structure(z, atoms.get_positions() + rng.normal(scale=0.08, size=(len(z), 3)))


def model(seed: int = 0, **kw) -> EquivariantGNN:
    torch.manual_seed(seed)
    return EquivariantGNN(**({"width": 16, "n_blocks": 2, "n_rbf": 8} | kw))


# ---------------------------------------------------------------------------- invariance / equivariance
@pytest.mark.parametrize("cls", [EquivariantGNN, InvariantGNN])
def test_energy_invariant_under_e3_and_permutations(cls):
    torch.manual_seed(0)
    m = cls(width=16, n_blocks=2, n_rbf=8)
    dev = check_invariance(m, [cluster(0), small_cluster(1)], n_trials=3, seed=1)
    assert dev["scale"] > 1e-3  # the energies are not trivially zero
    for kind in ("rotation", "reflection", "translation", "permutation"):
        assert dev[kind] < TOL * max(1.0, dev["scale"]), (kind, dev)


@pytest.mark.parametrize("cls", [EquivariantGNN, InvariantGNN])
def test_forces_equivariant(cls):
    torch.manual_seed(0)
    m = cls(width=16, n_blocks=2, n_rbf=8)
    dev = check_force_equivariance(m, cluster(2), n_trials=2, seed=3)
    assert dev["scale"] > 1e-4
    for kind in ("rotation", "reflection", "translation", "permutation"):
        assert dev[kind] < TOL * max(1.0, dev["scale"]), (kind, dev)


def test_vector_features_rotate_with_the_structure():
    m = model().double()
    s = small_cluster(4)
    rng = np.random.default_rng(0)
    for proper in (True, False):
        rot = random_rotation(rng, proper=proper)
        assert np.isclose(np.linalg.det(rot), 1.0 if proper else -1.0)
        moved = Structure(s.numbers, s.positions @ rot.T + 3.0)
        v0 = m.vectors(collate([s], dtype=torch.float64))
        v1 = m.vectors(collate([moved], dtype=torch.float64))
        rotated = torch.einsum("ab,nbf->naf", torch.as_tensor(rot), v0)
        assert v0.abs().max() > 1e-3  # non-trivial vector channels
        assert torch.allclose(v1, rotated, atol=1e-8)


# ---------------------------------------------------------------------------- conservative forces
def test_closed_loop_work_vanishes_for_the_model_forces():
    res = closed_loop_work(model().double(), cluster(5), n_points=128, amplitude=0.05, seed=0)
    assert res["abs_work"] > 1e-4  # the forces do work along the way
    assert res["relative"] < TOL, res["relative"]
    assert abs(res["cumulative_work"][-1] - res["work"]) < 1e-12 + 1e-9 * res["abs_work"]


def test_forces_match_finite_differences():
    from nanonb.learners.training import predict_energy_forces

    m = model(1).double()
    batch = collate([small_cluster(7)], dtype=torch.float64)
    _, forces = predict_energy_forces(m, batch, create_graph=False)
    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (12, 2)]:
        plus, minus = batch.pos.clone(), batch.pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(m.energy(batch, plus) - m.energy(batch, minus)) / (2 * h)
        assert abs(float(fd.detach()) - float(forces[atom, axis])) < 1e-7


# ---------------------------------------------------------------------------- interface
def test_energy_extensive_forward_per_atom_and_batching():
    m = model(2)
    s = small_cluster(8)
    far = Structure(s.numbers, s.positions + 100.0)
    both = Structure(np.concatenate([s.numbers, far.numbers]), np.vstack([s.positions, far.positions]))
    e1, e2 = m.energy(collate([s])), m.energy(collate([both]))
    assert torch.allclose(e2, 2 * e1, rtol=1e-5)
    assert torch.allclose(m(collate([s])), e1 / len(s), rtol=1e-5)
    a, b = cluster(0), small_cluster(9)
    assert torch.allclose(m(collate([a, b])), torch.cat([m(collate([a])), m(collate([b]))]), atol=1e-6)
    f = m(collate([a, b]), output="features")
    assert f.shape == (2, m.n_features) and m.cutoff == 4.0
    with pytest.raises(ValueError, match="output must be"):
        m(collate([a]), output="vectors")


def test_unseen_element_is_not_blank():
    m = model(3)
    s = small_cluster(10)
    pt = m(collate([s]))
    au = m(collate([Structure(np.where(s.numbers == 78, 79, s.numbers), s.positions)]))  # Au for Pt
    assert not torch.allclose(pt, au, atol=1e-6)
    assert isinstance(build_model("EquivariantGNN", width=8, n_blocks=1), EquivariantGNN)


def test_runs_inside_higher_with_forces_and_leaves_weights_untouched():
    m = model(4, width=8, n_blocks=1)
    batch = collate([small_cluster(i) for i in range(3)])
    y = torch.tensor([0.1, -0.2, 0.3])
    f_true = torch.randn(batch.pos.shape, generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in m.parameters()]

    def loss_fn(fm):
        pos = batch.pos.detach().requires_grad_(True)
        e = fm(batch, output="energy", pos=pos)
        f = -torch.autograd.grad(e.sum(), pos, create_graph=True)[0]
        return ((e / batch.n_atoms - y) ** 2).mean() + 0.1 * ((f - f_true) ** 2).mean()

    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    with higher.innerloop_ctx(m, opt, copy_initial_weights=False) as (fmodel, diffopt):
        l0 = loss_fn(fmodel)
        for _ in range(3):
            diffopt.step(loss_fn(fmodel))
        l1 = loss_fn(fmodel)
        l1.backward()  # second order through the force loss
    assert float(l1) < float(l0)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert any(p.grad.abs().sum() > 0 for p in m.parameters())
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), before))


def test_meta_learner_with_forces_fits_and_reloads(tmp_path):
    from nanonb.learners.registry import load, make_learner
    from nanonb.tasks import Task, TaskSet

    rng = np.random.default_rng(0)
    tasks = []
    for name, el in (("Cu-Pt", 78), ("Cu-Au", 79)):
        structs = []
        for i in range(8):
            s = small_cluster(100 + i)
            z = np.where(s.numbers == 78, el, s.numbers)
            structs.append(Structure(z, s.positions, forces=rng.normal(scale=0.3, size=s.positions.shape)))
        tasks.append(Task(name, structs, rng.normal(scale=0.05, size=8), groups=tuple(name.split("-"))))
    train = TaskSet(tasks)
    learner = make_learner("fomaml", model="EquivariantGNN", model_kwargs={"width": 8, "n_blocks": 1},
                          n_iterations=2, k_support=(1, 3), k_query=3, inner_steps=2, inner_grad_clip=1.0,
                          force_weight=0.01, meta_batch_size=2)
    learner.fit(train, progress=False)
    assert len(learner.history["train_loss"]) == 2 and np.isfinite(learner.history["train_loss"]).all()
    ep = train.episode("Cu-Au", 3, seed=0)
    pred = learner.adapt(ep.support).predict(ep.query)
    learner.save(tmp_path / "eq")
    again = load(tmp_path / "eq")
    assert isinstance(again.model, EquivariantGNN)
    np.testing.assert_allclose(again.adapt(ep.support).predict(ep.query), pred, atol=1e-6)
