"""Models: invariances of the graph network, extensivity, element descriptors, higher compatibility."""

import higher
import numpy as np
import pytest
import torch
from ase.cluster import Icosahedron

from nanonb.graphs import Structure, collate
from nanonb.models.elements import element_table
from nanonb.models.gnn import EquivariantGNN, InvariantGNN
from nanonb.models.mlp import MLP
from nanonb.models.registry import build_model


def cluster(seed=0):
    atoms = Icosahedron("Cu", 3)
    rng = np.random.default_rng(seed)
    numbers = atoms.get_atomic_numbers()
    numbers[rng.choice(len(numbers), 20, replace=False)] = 78  # Pt
    pos = atoms.get_positions() + rng.normal(scale=0.05, size=(len(numbers), 3))
    return Structure(numbers, pos)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))  # orthogonal; may include a reflection


def test_invariant_under_rotation_translation_permutation():
    torch.manual_seed(0)
    model = InvariantGNN(width=16, n_blocks=2).double()
    s = cluster()
    rng = np.random.default_rng(1)
    base = model(collate([s], dtype=torch.float64))
    for _ in range(3):
        perm = rng.permutation(len(s))
        pos = s.positions @ random_rotation(rng).T + rng.normal(size=3) * 10
        t = Structure(s.numbers[perm], pos[perm])
        out = model(collate([t], dtype=torch.float64))
        assert torch.allclose(base, out, atol=1e-5), (base, out)
    # a real change (swap element identities) does change the prediction
    swapped = Structure(np.where(s.numbers == 29, 78, 29), s.positions)
    assert not torch.allclose(base, model(collate([swapped], dtype=torch.float64)), atol=1e-5)


def test_energy_is_extensive_and_forward_is_per_atom():
    torch.manual_seed(0)
    model = InvariantGNN(width=8, n_blocks=1)
    s = cluster()
    far = Structure(s.numbers, s.positions + 100.0)  # a second, non-interacting copy
    both = Structure(np.concatenate([s.numbers, far.numbers]), np.vstack([s.positions, far.positions]))
    e1 = model.energy(collate([s]))
    e2 = model.energy(collate([both]))
    assert torch.allclose(e2, 2 * e1, rtol=1e-5)
    assert torch.allclose(model(collate([s])), e1 / len(s), rtol=1e-5)


def test_unseen_element_is_not_blank():
    t = element_table()
    assert t.shape[1] == 6 and np.all(np.isfinite(t[1:]))
    pt, pd_ = t[78], t[46]
    assert np.abs(pt).sum() > 0 and not np.allclose(pt, pd_)


def test_batching_matches_single_structures():
    torch.manual_seed(0)
    model = InvariantGNN(width=8, n_blocks=1)
    a, b = cluster(0), Structure.from_atoms(Icosahedron("Au", 2))
    batched = model(collate([a, b]))
    single = torch.cat([model(collate([a])), model(collate([b]))])
    assert torch.allclose(batched, single, atol=1e-6)
    assert collate([a, b]).z.shape[0] == len(a) + len(b)  # no padding


@pytest.mark.parametrize("model", [MLP(3, (8,)), InvariantGNN(width=8, n_blocks=1)])
def test_models_run_inside_higher(model):
    x = torch.randn(6, 3) if isinstance(model, MLP) else collate([cluster(i) for i in range(3)])
    y = torch.randn(6 if isinstance(model, MLP) else 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=False) as (fmodel, diffopt):
        l0 = ((fmodel(x) - y) ** 2).mean()
        for _ in range(3):
            diffopt.step(((fmodel(x) - y) ** 2).mean())
        l1 = ((fmodel(x) - y) ** 2).mean()
        l1.backward()
    assert l1 < l0
    assert all(p.grad is not None for p in model.parameters())


def test_build_model_errors():
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("Transformer")


def test_forces_are_minus_gradient_of_energy_finite_differences():
    from nanonb.learners.training import predict_energy_forces

    torch.manual_seed(0)
    model = InvariantGNN(width=8, n_blocks=2).double()
    batch = collate([cluster(3)], dtype=torch.float64)
    _, forces = predict_energy_forces(model, batch, create_graph=False)
    h = 1e-5
    for atom, axis in [(0, 0), (7, 1), (30, 2)]:
        plus, minus = batch.pos.clone(), batch.pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(model.energy(batch, plus) - model.energy(batch, minus)) / (2 * h)
        assert abs(float(fd) - float(forces[atom, axis])) < 1e-6


@pytest.mark.parametrize("cls", [InvariantGNN, EquivariantGNN])
def test_graph_models_take_a_device(cls):
    model = cls(width=8, n_blocks=1, device="meta")  # the meta device: shapes only, no memory
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {b.device.type for b in model.buffers()} == {"meta"}
    batch = collate([cluster(0)]).to("cpu")
    assert batch.to("cpu") is batch and batch.to("meta").pos.device.type == "meta"
    c = cluster(0)
    moved = collate([Structure(c.numbers, c.positions, conditions=[0.01, 0.02])]).to("meta")
    assert moved.conditions is not None and moved.conditions.device.type == "meta"  # conditions travel too
    assert cls(width=8, n_blocks=1).head.weight.device.type == "cpu"


@pytest.mark.parametrize("network", ["InvariantGNN", "EquivariantGNN"])
def test_conditions_change_the_output_and_are_required(network):
    """A network built with n_conditions sees the structure's conditions (global inputs); one without ignores them."""
    torch.manual_seed(0)
    model = build_model(network, width=8, n_blocks=1, n_conditions=2, condition_mean=[0.0, 0.02],
                        condition_std=[0.01, 0.01]).double()
    s = cluster()
    a = Structure(s.numbers, s.positions, conditions=[0.00, 0.02])
    b = Structure(s.numbers, s.positions, conditions=[0.03, 0.02])
    out = model(collate([a, b, a], dtype=torch.float64)).detach()
    assert out[0] == out[2] and abs(float(out[0] - out[1])) > 1e-6  # same structure, other strain: other energy
    f = model(collate([a, b], dtype=torch.float64), output="features")
    assert not torch.allclose(f[0], f[1])
    with pytest.raises(ValueError, match="n_conditions=2"):
        model(collate([s], dtype=torch.float64))
    torch.manual_seed(0)
    plain = build_model(network, width=8, n_blocks=1).double()
    torch.manual_seed(0)
    again = build_model(network, width=8, n_blocks=1).double()
    pa, pb = plain(collate([a, b], dtype=torch.float64)).detach()
    assert pa == pb and torch.equal(pa, again(collate([s], dtype=torch.float64))[0].detach())
    with pytest.raises(ValueError, match="condition_std"):
        build_model(network, width=8, n_conditions=2, condition_std=[1.0, 0.0])


def test_bml_on_a_graph_network_with_conditions_runs_fit_adapt_predict_dist():
    """The Bayesian last layer with the conditioned graph network as its feature network, on structure tasks."""
    from nanonb.learners.alpaca import BayesianMetaLearner
    from nanonb.tasks import Task, TaskSet, condition_tasks

    rng = np.random.default_rng(0)
    tasks = []
    for t in range(3):
        structures, strain = [], rng.uniform(-0.02, 0.02, size=8)
        for i in range(8):
            c = cluster(seed=10 * t + i)
            structures.append(Structure(c.numbers[:13], c.positions[:13]))
        desc = np.column_stack([strain, rng.uniform(0, 0.05, size=8)])
        tasks.append(Task(f"t{t}", structures, 3.0 * strain + 0.1 * t, descriptors=desc))
    ts = condition_tasks(TaskSet(tasks, feature_names=["strain", "rattle_std_A"]), ["strain", "rattle_std_A"])
    bml = BayesianMetaLearner(model="InvariantGNN", n_iterations=2, meta_batch_size=2, k_support=(0, 3), k_query=4,
                              model_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8, "n_conditions": 2,
                                            "condition_mean": [0.0, 0.025], "condition_std": [0.01, 0.015]})
    bml.fit(ts, progress=False)
    task = ts[0]
    mean, std = bml.adapt(task.subset(range(3))).predict_dist(task.subset(range(3, 8)))
    assert mean.shape == std.shape == (5,) and np.all(np.isfinite(mean)) and np.all(std > 0)
    plain = TaskSet([Task(t.name, [Structure(s.numbers, s.positions) for s in t.inputs], t.targets) for t in ts])
    with pytest.raises(ValueError, match="n_conditions"):
        bml.adapt(plain[0].subset(range(3)))
