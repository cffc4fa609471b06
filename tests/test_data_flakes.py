"""Tests for nanonb.data.flakes: GFN2-xTB labels, the cached data set and the leakage-free splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _physics_helpers import benzene, toy_flake_taskset

from nanonb.data import flakes
from nanonb.data.flakes import DESCRIPTOR_NAMES, drop_shared_molecules, load_flakes, size_split, xtb_gap
from nanonb.data.honeycomb import fingerprint, generate_family, generate_flake
from nanonb.graphs import Structure
from nanonb.tasks import Task, TaskSet


def test_xtb_gap_matches_direct_tblite_call():
    Calculator = pytest.importorskip("tblite.interface").Calculator

    f = generate_family("hexagonal-armchair", "N", n=1, seed=0, min_heavy=10, max_heavy=16)[0]
    s = f.structure
    gap, energy = xtb_gap(s)
    calc = Calculator("GFN2-xTB", s.numbers, s.positions / 0.52917721067)
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    eps = res.get("orbital-energies") * 27.211386245988
    occ = res.get("orbital-occupations")
    homo = eps[occ > 1.0].max()  # closed shell: doubly occupied levels
    lumo = eps[occ < 1.0].min()
    assert gap == pytest.approx(lumo - homo, abs=1e-6)
    assert energy == pytest.approx(res.get("energy") * 27.211386245988, abs=1e-6)
    assert 0.1 < gap < 6.0
    # benzene at the ideal 1.42 Å geometry: a large gap, and an aza-PAH's gap is not the same number
    benz_gap, _ = xtb_gap(generate_flake("hexagonal-zigzag", 1.5).structure)
    assert 4.0 < benz_gap < 5.5 and abs(benz_gap - gap) > 0.1

def test_load_flakes_cache_and_determinism(tmp_path, monkeypatch):
    pytest.importorskip("tblite")
    kw = dict(n_per_family=3, seed=0, shapes=("rectangular", "ribbon-zigzag"), dopants=("none", "N"),
              min_heavy=6, max_heavy=16, progress=False)
    ts = load_flakes(cache_dir=tmp_path, **kw)
    assert ts.names == ["rectangular|none", "rectangular|N", "ribbon-zigzag|none", "ribbon-zigzag|N"]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".csv") and files[1].endswith(".npz")  # no pickle
    with np.load(tmp_path / files[1], allow_pickle=False) as z:  # no pickle needed
        assert z["counts"].sum() == len(z["numbers"])
    t = ts["rectangular|N"]
    assert t.target_name == "homo_lumo_gap" and t.target_unit == "eV"
    assert t.groups == ("rectangular", "N")
    assert t.descriptors.shape == (len(t), len(DESCRIPTOR_NAMES))
    assert {"n_heavy", "shape", "dopant", "energy_ev", "huckel_gap_ev"} <= set(t.meta.columns)
    assert np.all(t.meta["n_heavy"].to_numpy() <= 16)
    # n_shared counts the other tasks holding the same molecule (benzene is a rectangle and a ribbon)
    fps = [fingerprint(s) for task in ts for s in task.inputs]
    shared = np.concatenate([task.meta["n_shared"].to_numpy() for task in ts])
    assert np.array_equal(shared, [fps.count(fp) - 1 for fp in fps])
    assert shared.max() >= 1
    unique = load_flakes(cache_dir=tmp_path, unique_across_tasks=True, **kw)
    fps_u = [fingerprint(s) for task in unique for s in task.inputs]
    assert len(fps_u) == len(set(fps_u))
    assert all(task.meta["n_shared"].eq(0).all() for task in unique)
    # the cached label equals a fresh xTB call on the cached structure
    assert t.targets[0] == pytest.approx(xtb_gap(t.inputs[0])[0], abs=1e-6)

    # second call reads the cache (xtb_gap is not called), same data
    def boom(*a, **k):
        raise AssertionError("xtb_gap called although the data set is cached")

    monkeypatch.setattr(flakes, "xtb_gap", boom)
    again = load_flakes(cache_dir=tmp_path, **kw)
    for a, b in zip(ts, again):
        np.testing.assert_array_equal(a.targets, b.targets)
        assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a.inputs, b.inputs))
    monkeypatch.undo()
    # refresh recomputes identical values (deterministic generation and labels)
    fresh = load_flakes(cache_dir=tmp_path, refresh=True, **kw)
    for a, b in zip(ts, fresh):
        np.testing.assert_allclose(a.targets, b.targets, atol=1e-8)

def test_default_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path))
    assert flakes.default_cache_dir() == tmp_path / "flakes"
    monkeypatch.delenv("NANONB_CACHE_DIR")
    assert "nanonb" in str(flakes.default_cache_dir())


def test_drop_shared_molecules_and_size_split():
    ts = toy_flake_taskset(2)
    a, b = ts[0], ts[1]
    shared = Task("other", [a.inputs[0], b.inputs[1], benzene()], [1.0, 2.0, 3.0])
    moved = Structure(a.inputs[2].numbers[::-1], a.inputs[2].positions[::-1] @ np.diag([-1, 1, 1]) + 4.0)
    test = TaskSet([shared, Task("moved", [moved, benzene()], [1.0, 2.0])])
    clean, n = drop_shared_molecules(ts, test)
    assert n == 3  # a[0], a[2] (mirrored, permuted, translated) and b[1]
    assert sum(len(t) for t in clean) == sum(len(t) for t in ts) - 3
    tasks = TaskSet([Task(t.name, t.inputs, t.targets, meta=pd.DataFrame({"n_heavy": [
        int((s.numbers != 1).sum()) for s in t.inputs]}), groups=t.groups) for t in ts])
    thr = int(np.median(np.concatenate([t.meta["n_heavy"] for t in tasks])))
    train, test = size_split(tasks, thr, min_test_points=1)
    assert all((t.meta["n_heavy"] <= thr).all() for t in train)
    assert all((t.meta["n_heavy"] > thr).all() for t in test) and len(test) > 0
