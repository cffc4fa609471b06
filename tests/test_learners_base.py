"""Meta-learning: meta-gradients against an independent reference, adapt purity, save/load, learning."""

import numpy as np
import pytest
import torch

from nanonb.learners.base import MetaLearner
from nanonb.learners.registry import load, make_learner
from nanonb.tasks import Task, TaskSet


def sine_tasks(n_tasks=20, n=40, seed=0):
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n_tasks):
        amp, phase = rng.uniform(0.5, 3.0), rng.uniform(0, np.pi)
        x = rng.uniform(-5, 5, (n, 1))
        tasks.append(Task(f"t{i:02d}", x, amp * np.sin(x[:, 0] + phase), groups=(f"g{i}",)))
    return TaskSet(tasks)


def _tiny_learner(algorithm, **kw):
    torch.manual_seed(0)
    learner = make_learner(algorithm, model="MLP", model_kwargs={"n_in": 1, "hidden": (8,)},
                           inner_lr=0.1, inner_steps=2, **kw)
    learner.model.double()
    for p in learner.inner_lrs:
        p.data = p.data.double()
    return learner


def _functional_reference(learner, x_s, y_s, x_q, y_q, first_order=False, head_only=False, lrs=None):
    """Hand-written MAML with torch.func.functional_call, independent of higher."""
    from torch.func import functional_call

    model = learner.model
    names = [n for n, _ in model.named_parameters()]
    params = {n: p for n, p in model.named_parameters()}
    adapt = [n for n in names if (n.startswith("head") or not head_only)]
    fast = dict(params)
    for _ in range(learner.config.inner_steps):
        loss = ((functional_call(model, fast, (x_s,)) - y_s) ** 2).mean()
        grads = torch.autograd.grad(loss, [fast[n] for n in adapt], create_graph=not first_order)
        for i, (n, g) in enumerate(zip(adapt, grads)):
            lr = learner.config.inner_lr if lrs is None else lrs[i]
            fast[n] = fast[n] - lr * g
    q = ((functional_call(model, fast, (x_q,)) - y_q) ** 2).mean()
    wrt = list(params.values()) + ([] if lrs is None else list(lrs))
    return torch.autograd.grad(q, wrt, allow_unused=True)


@pytest.mark.parametrize("algorithm", ["maml", "anil", "metasgd", "fomaml"])
def test_meta_gradient_matches_functional_reference(algorithm):
    learner = _tiny_learner(algorithm)
    g = torch.Generator().manual_seed(1)
    x_s, x_q = torch.randn(5, 1, generator=g, dtype=torch.float64), torch.randn(7, 1, generator=g, dtype=torch.float64)
    y_s, y_q = torch.sin(x_s[:, 0]), torch.sin(x_q[:, 0])
    # higher path (the learner's own inner loop)
    for p in learner.parameters():
        p.grad = None
    if algorithm == "fomaml":
        fmodel = learner._inner_loop(x_s, y_s, learner.config.inner_steps, None, track=False)
        loss = ((fmodel(x_q) - y_q) ** 2).mean()
        got = torch.autograd.grad(loss, list(fmodel.parameters()))
    else:
        fmodel = learner._inner_loop(x_s, y_s, learner.config.inner_steps, None, track=True)
        loss = ((learner._query_pred(fmodel, x_q) - y_q) ** 2).mean()
        loss.backward()
        got = [p.grad for p in learner.parameters()]
    lrs = list(learner.inner_lrs) if algorithm == "metasgd" else None
    ref = _functional_reference(learner, x_s, y_s, x_q, y_q, first_order=algorithm == "fomaml",
                                head_only=algorithm == "anil", lrs=lrs)
    if algorithm == "fomaml":
        # first order: the meta-gradient is the query gradient at the adapted weights
        ref = ref[: len(got)]
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        b = torch.zeros_like(a) if b is None else b
        a = torch.zeros_like(b) if a is None else a
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-6), (a - b).abs().max()


def test_second_order_differs_from_first_order():
    """Sanity: the reference really is second order (else the test above would be vacuous)."""
    learner = _tiny_learner("maml")
    g = torch.Generator().manual_seed(2)
    x_s, x_q = torch.randn(5, 1, generator=g, dtype=torch.float64), torch.randn(7, 1, generator=g, dtype=torch.float64)
    so = _functional_reference(learner, x_s, torch.sin(x_s[:, 0]), x_q, torch.sin(x_q[:, 0]))
    fo = _functional_reference(learner, x_s, torch.sin(x_s[:, 0]), x_q, torch.sin(x_q[:, 0]), first_order=True)
    assert max(float((a - b).abs().max()) for a, b in zip(so, fo)) > 1e-4


@pytest.mark.parametrize("algorithm", ["maml", "anil", "metasgd"])
def test_adapt_leaves_meta_parameters_unchanged(algorithm):
    ts = sine_tasks(6)
    learner = make_learner(algorithm, model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=3)
    learner.fit(ts, progress=False)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    ep = ts.episode(ts[0], 5, seed=0)
    adapted = learner.adapt(ep.support, steps=10)
    pred0 = learner.adapt(None).predict(ep.query)
    pred1 = adapted.predict(ep.query)
    for k, v in learner.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not np.allclose(pred0, pred1), "adaptation changed nothing"


def test_save_load_roundtrip(tmp_path):
    ts = sine_tasks(6)
    learner = make_learner("metasgd", model="MLP", model_kwargs={"hidden": (16,)}, n_iterations=5)
    learner.fit(ts, progress=False)
    learner.save(tmp_path / "m")
    loaded = load(tmp_path / "m")
    ep = ts.episode(ts[1], 5, seed=3)
    np.testing.assert_allclose(learner.adapt(ep.support).predict(ep.query),
                               loaded.adapt(ep.support).predict(ep.query), rtol=1e-6)
    assert loaded.history == learner.history
    # the weights file holds tensors only: loadable with weights_only=True
    sd = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in sd.values())


def test_unknown_algorithm_and_unfitted_errors():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make_learner("reptile")
    with pytest.raises(RuntimeError, match="not fitted"):
        make_learner(model="MLP").adapt(None)
    with pytest.raises(TypeError, match="base class"):
        MetaLearner(model="MLP")


def test_meta_learning_beats_scratch_on_sine_tasks():
    """On a small configuration, MAML at 5 shots beats training from scratch by a clear margin."""
    from nanonb.baselines.nets import Scratch
    from nanonb.evaluation import evaluate, summarize

    torch.set_num_threads(1)
    ts = sine_tasks(30, n=40)
    train, test = ts.select(ts.names[:24]), ts.select(ts.names[24:])
    learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (40, 40)}, n_iterations=250,
                           inner_lr=0.05, inner_steps=5, meta_batch_size=8, outer_lr=3e-3, seed=0)
    learner.fit(train, progress=False)
    scratch = Scratch(model="MLP", model_kwargs={"hidden": (40, 40)}, steps=100).fit(train)
    s = summarize(evaluate([learner, scratch], test, shots=(5,), n_episodes=3, progress=False), "mae")
    mae = dict(zip(s["method"], s["mean"]))
    assert mae["maml"] < 0.6 * mae["scratch"], mae


def test_force_supervision_trains_and_uses_forces():
    from nanonb.data.nanoalloys import load_nanoalloys

    ts = load_nanoalloys(n_per_pair=8, elements=("Cu", "Ag", "Au"), progress=False)
    assert collate_has_forces(ts)
    kw = dict(model_kwargs={"width": 8, "n_blocks": 1, "n_rbf": 8}, n_iterations=2, k_support=(2, 3), k_query=3,
              meta_batch_size=2, inner_steps=1)
    plain = make_learner("fomaml", **kw).fit(ts, progress=False)
    forced = make_learner("fomaml", force_weight=1.0, **kw).fit(ts, progress=False)
    assert plain.history["train_loss"] != forced.history["train_loss"]  # the force term entered the loss
    ep = ts.episode(ts[0], 3, seed=0)
    x = forced.scaler.x(ep.query)
    assert forced._use_forces(x) and not plain._use_forces(x)


def collate_has_forces(ts):
    from nanonb.graphs import collate

    return collate(ts[0].inputs[:2]).forces is not None
