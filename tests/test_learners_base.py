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


# ---------------------------------------------------------------------- issue 16: nothing silently wrong
def _nan_support(task, n=5):
    """A support set with one NaN target, made past the Task check (as a mutated array would be)."""
    sup = task.subset(np.arange(n))
    y = np.array(sup.targets, dtype=np.float64)
    y[0] = np.nan
    object.__setattr__(sup, "targets", y)
    return sup


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil", "metasgd"])
def test_save_keeps_dotted_names_apart_and_refuses_unfitted(tmp_path, algorithm):
    ts = sine_tasks(4)
    with pytest.raises(RuntimeError, match="not fitted yet; fit it first"):
        make_learner(algorithm, model="MLP").save(tmp_path / "x")
    a = make_learner(algorithm, model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=2, seed=0)
    b = make_learner(algorithm, model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=2, seed=1)
    a.fit(ts, progress=False).save(tmp_path / "run.1")
    b.fit(ts, progress=False).save(tmp_path / "run.2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.1.json", "run.1.pt", "run.2.json", "run.2.pt"]
    ep = ts.episode(ts[0], 5, seed=0)
    for learner, stem in ((a, "run.1"), (b, "run.2")):
        np.testing.assert_allclose(load(tmp_path / stem).adapt(ep.support).predict(ep.query),
                                   learner.adapt(ep.support).predict(ep.query), rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    ({"k_support": (5, 1)}, r"k_support must be \(kmin, kmax\) with 1 <= kmin <= kmax, got \(5, 1\). Did you mean "
                            r"k_support=\(1, 5\)"),
    ({"k_support": 5}, r"k_support must be a pair .* k_support=\(5, 5\)"),
    ({"k_support": (0, 5)}, "k_support.0. must be an integer >= 1, got 0"),
    ({"k_support": (1.5, 5)}, r"k_support.0. must be an integer >= 1, got 1.5"),
    ({"meta_batch_size": 0}, "meta_batch_size must be an integer >= 1, got 0. Use e.g. meta_batch_size=1"),
    ({"n_iterations": -5}, "n_iterations must be an integer >= 0, got -5"),
    ({"inner_lr": 0.0}, "inner_lr must be a finite number > 0, got 0.0"),
    ({"inner_lr": float("nan")}, "inner_lr must be a finite number > 0, got nan"),
    ({"outer_lr": -1e-3}, "outer_lr must be a finite number > 0"),
    ({"inner_steps": -1}, "inner_steps must be an integer >= 0, got -1"),
    ({"inner_steps": "5"}, r"inner_steps must be an integer >= 0, got '5' \(str\)"),
])
def test_meta_config_validates_up_front(bad, match):
    with pytest.raises((ValueError, TypeError), match="MetaConfig." + match):
        make_learner("maml", model="MLP", **bad)


def test_valid_config_values_are_unchanged():
    cfg = make_learner("maml", model="MLP", k_support=[2, 6], n_iterations=10.0).config
    assert cfg.k_support == (2, 6) and cfg.n_iterations == 10 and isinstance(cfg.n_iterations, int)


def test_all_tasks_too_small_says_so():
    small = TaskSet([Task(f"t{i}", np.zeros((6, 1)), np.arange(6.0)) for i in range(3)])
    with pytest.raises(ValueError, match=r"no meta-train task has more than 11 points \(the largest has 6\); "
                                         r"k_support=\(1, 10\) needs tasks of at least .* = 12 points"):
        make_learner("maml", model="MLP", n_iterations=1).fit(small, progress=False)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil", "metasgd"])
def test_nan_never_passes_silently(tmp_path, algorithm):
    ts = sine_tasks(4)
    learner = make_learner(algorithm, model="MLP", model_kwargs={"hidden": (8,)}, n_iterations=2)
    learner.fit(ts, progress=False)
    ep = ts.episode(ts[0], 5, seed=0)
    with pytest.raises(ValueError, match=f"{algorithm}.adapt: the support set .* contains NaN/inf targets"):
        learner.adapt(_nan_support(ts[0]))
    with pytest.raises(ValueError, match=f"{algorithm}.adapt.lr must be a finite number > 0, got nan"):
        learner.adapt(ep.support, lr=float("nan"))
    # a step size that blows up: the prediction is NaN/inf, the error names the cause
    with pytest.raises(FloatingPointError, match=f"{algorithm}: the prediction is NaN/inf. Likely cause: "
                                                 "adaptation diverged"):
        learner.adapt(ep.support, steps=50, lr=1e30).predict(ep.query)
    # all-NaN weights: refused at load time, and named at prediction time if set in memory
    learner.save(tmp_path / "m")
    sd = {k: torch.full_like(v, float("nan")) for k, v in torch.load(tmp_path / "m.pt", weights_only=True).items()}
    torch.save(sd, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=f"{algorithm}: weight .* contains NaN/inf"):
        load(tmp_path / "m")
    with torch.no_grad():
        for p in learner.model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="Likely cause: the meta-learned weights contain NaN/inf"):
        learner.predict(ep.query, support=ep.support)


def test_fit_reads_episodes_from_cached_task_tensors_with_the_same_numbers():
    tasks = sine_tasks(n_tasks=4)
    seen = []

    def check(learner, step):
        cache = learner._task_tensors
        assert set(cache) == {id(t) for t in tasks}
        ep = tasks.episode(tasks[1], 5, 10, seed=step)
        fast = learner._episode_data(ep)
        learner._task_tensors = {}
        slow = learner._episode_data(ep)
        learner._task_tensors = cache
        assert all(torch.equal(a, b) for a, b in zip(fast, slow, strict=True))  # bit for bit
        assert "_task_tensors" not in learner.copy().__dict__  # a copy made during fit does not carry them
        seen.append(step)

    learner = make_learner("maml", model="MLP", model_kwargs={"hidden": (8,)}, meta_batch_size=2, inner_steps=1)
    learner.fit(tasks, n_iterations=2, progress=False, callback=check)
    assert seen == [1, 2] and learner._task_tensors == {}
