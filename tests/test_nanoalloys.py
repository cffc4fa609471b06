"""Tests for the EMT nanoalloy data set (small n_per_pair, temporary cache folders)."""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.data import atomic_numbers, reference_states
from ase.neighborlist import neighbor_list

from nanonb.data import alloy_clusters as gen
from nanonb.data import nanoalloys as na
from nanonb.data._cache import CacheWarning, write_cache
from nanonb.graphs import Structure

N_SMALL = 4


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    cache = tmp_path_factory.mktemp("nanoalloy_cache")
    return na.load_nanoalloys(n_per_pair=N_SMALL, cache_dir=cache, progress=False)


def _direct_emt(s: Structure) -> tuple[float, np.ndarray]:
    atoms = Atoms(numbers=s.numbers, positions=s.positions)
    atoms.calc = EMT()
    return atoms.get_potential_energy(), atoms.get_forces()


def test_tasks_names_groups(small_set):
    assert small_set.name == "nanoalloys"
    assert len(na.PAIRS) == 21 and len(small_set) == 21
    expected = []
    for i, a in enumerate(na.ELEMENTS):
        for b in na.ELEMENTS[i + 1:]:
            expected.append(f"{a}-{b}")
    assert small_set.names == expected
    for t, (a, b) in zip(small_set, na.PAIRS):
        assert t.groups == (a, b)
        assert t.target_name == "mixing_energy" and t.target_unit == "eV/atom"
        assert len(t) == N_SMALL and not t.is_tabular


def test_sizes_and_both_elements_present(small_set):
    for t in small_set:
        za, zb = (atomic_numbers[e] for e in t.groups)
        for s, (_, row) in zip(t.inputs, t.meta.iterrows()):
            assert 13 <= len(s) <= 147
            assert set(np.unique(s.numbers)) == {za, zb}
            assert row["n_atoms"] == len(s)
            assert row["n_A"] == np.sum(s.numbers == za) and row["n_B"] == np.sum(s.numbers == zb)
            assert row["x_B"] == pytest.approx(row["n_B"] / row["n_atoms"])
            assert -0.03 <= row["strain"] <= 0.03 and 0 <= row["rattle_std_A"] <= 0.05
            assert s.forces is not None and s.forces.shape == (len(s), 3)


def test_energies_and_forces_match_direct_emt(small_set):
    for name in ["Al-Cu", "Ag-Au", "Pd-Pt"]:
        t = small_set[name]
        for s, e in zip(t.inputs, t.meta["energy_ev"]):
            e_ref, f_ref = _direct_emt(s)
            assert e == pytest.approx(e_ref, rel=1e-12, abs=1e-10)
            np.testing.assert_allclose(s.forces, f_ref, rtol=1e-10, atol=1e-10)
    # emt_energy on an Atoms object gives the same and leaves the caller's calculator alone
    s = small_set["Cu-Ni"].inputs[0]
    atoms = s.to_atoms()
    e, f = gen.emt_energy(atoms)
    assert atoms.calc is None
    e_ref, f_ref = _direct_emt(s)
    assert e == pytest.approx(e_ref, rel=1e-12) and np.allclose(f, f_ref)


def test_mixing_energy_by_hand(small_set):
    builders = {"icosahedron": Icosahedron, "decahedron": Decahedron, "octahedron": Octahedron}
    entries = {c[0]: c for c in gen.CATALOGUE}
    for name in ["Cu-Au", "Al-Ni"]:
        t = small_set[name]
        a, b = t.groups
        row = t.meta.iloc[0]
        s = t.inputs[0]
        _, shape, args, n_atoms = entries[row["cluster"]]
        assert shape == row["shape"] and n_atoms == len(s)
        pure = {}
        for el in (a, b):
            lat = reference_states[atomic_numbers[el]]["a"]
            cluster = builders[shape](el, *args, latticeconstant=lat)
            cluster.calc = EMT()
            pure[el] = cluster.get_potential_energy()
        e_alloy, _ = _direct_emt(s)
        n_a, n_b = int(row["n_A"]), int(row["n_B"])
        n = n_a + n_b
        e_mix = (e_alloy - n_a / n * pure[a] - n_b / n * pure[b]) / n
        assert t.targets[0] == pytest.approx(e_mix, abs=1e-9)
        # Vegard lattice constant with strain
        xb = n_b / n
        a_a, a_b = (reference_states[atomic_numbers[e]]["a"] for e in (a, b))
        assert row["lattice_constant_A"] == pytest.approx(((1 - xb) * a_a + xb * a_b) * (1 + row["strain"]))


def test_deterministic_by_seed_and_pair_independent(small_set, tmp_path):
    m1, s1 = gen.generate_pair("Cu", "Pt", 5, seed=0)
    m2, s2 = gen.generate_pair("Cu", "Pt", 5, seed=0)
    m3, s3 = gen.generate_pair("Cu", "Pt", 5, seed=1)
    pd.testing.assert_frame_equal(m1, m2)
    assert all(np.array_equal(x.positions, y.positions) and np.array_equal(x.numbers, y.numbers)
               for x, y in zip(s1, s2))
    assert not np.allclose(m1["mixing_energy_ev_per_atom"], m3["mixing_energy_ev_per_atom"])
    # a pair's data do not depend on which other pairs are generated (RNG from (seed, pair index))
    sub = na.load_nanoalloys(n_per_pair=N_SMALL, elements=["Pt", "Cu"], cache_dir=tmp_path, progress=False)
    assert sub.names == ["Cu-Pt"]
    np.testing.assert_array_equal(sub["Cu-Pt"].targets, small_set["Cu-Pt"].targets)


def test_cache_round_trip_identical_and_used(tmp_path, monkeypatch):
    first = na.load_nanoalloys(n_per_pair=3, elements=["Ag", "Ni", "Pd"], cache_dir=tmp_path, progress=False)
    files = list(tmp_path.glob("nanoalloys-*.npz"))
    assert len(files) == 1 and files[0] == na.cache_path(3, ["Ag", "Ni", "Pd"], 0, tmp_path)

    def no_emt(*args, **kwargs):
        raise AssertionError("EMT was called although the cache should have been used")

    monkeypatch.setattr(gen, "emt_energy", no_emt)
    monkeypatch.setattr(gen, "EMT", no_emt)
    gen._pure_energy.cache_clear()
    second = na.load_nanoalloys(n_per_pair=3, elements=["Ag", "Ni", "Pd"], cache_dir=tmp_path, progress=False)
    assert second.names == first.names
    for t1, t2 in zip(first, second):
        assert t1.groups == t2.groups and t1.target_unit == t2.target_unit
        assert np.array_equal(t1.targets, t2.targets)
        assert np.array_equal(t1.descriptors, t2.descriptors)
        pd.testing.assert_frame_equal(t1.meta, t2.meta)
        for x, y in zip(t1.inputs, t2.inputs):
            assert np.array_equal(x.numbers, y.numbers)
            assert np.array_equal(x.positions, y.positions)
            assert np.array_equal(x.forces, y.forces)
    # refresh regenerates, which the patch forbids: proves the patch would have caught generation
    with pytest.raises(AssertionError, match="EMT was called"):
        na.load_nanoalloys(n_per_pair=3, elements=["Ag", "Ni", "Pd"], cache_dir=tmp_path,
                           progress=False, refresh=True)
    # a different seed is a different cache file
    assert na.cache_path(3, ["Ag", "Ni", "Pd"], 1, tmp_path) != files[0]


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path / "env"))
    assert na.cache_path(5).parent == tmp_path / "env"
    monkeypatch.delenv("NANONB_CACHE_DIR")
    from platformdirs import user_cache_dir

    assert str(na.cache_path(5).parent) == user_cache_dir("nanonb")


def test_unknown_element_errors():
    with pytest.raises(ValueError, match=r"\['Fe'\].*Al, Cu, Ag, Au, Ni, Pd, Pt"):
        na.load_nanoalloys(n_per_pair=2, elements=["Cu", "Fe"], progress=False)
    with pytest.raises(ValueError, match="Zn"):
        gen.generate_pair("Cu", "Zn", 2)
    with pytest.raises(ValueError, match="canonical order"):
        gen.generate_pair("Pt", "Cu", 2)
    with pytest.raises(ValueError, match=r"Fe.*not supported by ASE's EMT"):
        gen.emt_energy(Atoms("FeCu", positions=[[0, 0, 0], [0, 0, 2.5]]))


def test_descriptors(small_set):
    p = len(na.DESCRIPTOR_NAMES)
    assert p == 12
    for t in small_set:
        d = t.descriptors
        assert d.shape == (len(t), p) and np.isfinite(d).all()
        np.testing.assert_array_equal(d, t.meta[na.DESCRIPTOR_NAMES].to_numpy())
        cols = {n: d[:, i] for i, n in enumerate(na.DESCRIPTOR_NAMES)}
        np.testing.assert_allclose(cols["frac_AA"] + cols["frac_AB"] + cols["frac_BB"], 1.0)
        assert np.all((cols["surface_x_B"] >= 0) & (cols["surface_x_B"] <= 1))
        assert np.ptp(cols["chi_diff"]) == 0 and np.ptp(cols["radius_mismatch"]) == 0
        np.testing.assert_allclose(cols["n_inv_cbrt"], t.meta["n_atoms"].to_numpy() ** (-1 / 3))
    # bond fractions recomputed with ASE's neighbour list for one structure
    t = small_set["Au-Pt"]
    s, row = t.inputs[1], t.meta.iloc[1]
    cutoff = 1.2 * row["lattice_constant_A"] / np.sqrt(2)
    i, j = neighbor_list("ij", s.to_atoms(), cutoff)
    is_b = s.numbers == atomic_numbers["Pt"]
    n_bonds = len(i)  # directed pairs: each bond twice
    assert row["frac_BB"] == pytest.approx(np.sum(is_b[i] & is_b[j]) / n_bonds)
    assert row["frac_AB"] == pytest.approx(np.sum(is_b[i] != is_b[j]) / n_bonds)
    coord = np.bincount(i, minlength=len(s))
    assert row["surface_x_B"] == pytest.approx(is_b[coord < 12].mean())


def test_mixing_energy_range_is_physical(small_set):
    e = np.concatenate([t.targets for t in small_set])
    assert np.isfinite(e).all()
    # eV/atom: mixing plus ±3 % strain and rattle stay within a few hundred meV/atom
    assert np.abs(e).max() < 0.5


# ---------------------------------------------------------------------- cache verification (issue 16)
ELS, N_CACHE = ["Cu", "Ni", "Pt"], 3


def _load(cache_dir, **kw):
    return na.load_nanoalloys(n_per_pair=N_CACHE, elements=ELS, cache_dir=cache_dir, progress=False, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A freshly generated set (its own cache folder) to compare regenerated sets with."""
    return _load(tmp_path_factory.mktemp("reference"))


def _assert_same(ts, ref):
    assert ts.names == ref.names
    for t, r in zip(ts, ref):
        assert t.groups == r.groups
        np.testing.assert_array_equal(t.targets, r.targets)
        assert all(np.array_equal(x.numbers, y.numbers) and np.array_equal(x.positions, y.positions)
                   for x, y in zip(t.inputs, r.inputs))


def _npz_arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _shift_offsets(arrays):
    arrays = dict(arrays)
    toff = arrays["task_offsets"].copy()
    toff[1:-1] += 1  # every pair starts one cluster late: a Cu-Ni cluster lands in Cu-Pt
    arrays["task_offsets"] = toff
    return arrays


def test_cache_has_manifest_and_loads_silently(tmp_path, reference, recwarn):
    _load(tmp_path)
    path = na.cache_path(N_CACHE, ELS, 0, tmp_path)
    manifest = json.loads((path.parent / (path.name + ".manifest.json")).read_text())
    assert manifest["config"] == na._config(ELS, N_CACHE, 0)
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    _assert_same(_load(tmp_path), reference)
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]


def test_shifted_task_offsets_are_detected_and_regenerated(tmp_path, reference):
    _load(tmp_path)
    path = na.cache_path(N_CACHE, ELS, 0, tmp_path)
    _rewrite(path, _shift_offsets(_npz_arrays(path)))  # a valid-looking .npz, old manifest
    with pytest.warns(CacheWarning, match="sha256 does not match"):
        ts = _load(tmp_path)
    _assert_same(ts, reference)
    _assert_same(_load(tmp_path), reference)  # the regenerated file is good again


def test_shifted_offsets_with_a_matching_manifest_are_still_refused(tmp_path, reference):
    _load(tmp_path)
    path = na.cache_path(N_CACHE, ELS, 0, tmp_path)
    buf = io.BytesIO()
    np.savez(buf, **_shift_offsets(_npz_arrays(path)))
    write_cache(path, buf.getvalue(), na._config(ELS, N_CACHE, 0))  # manifest re-made to match
    with pytest.warns(CacheWarning, match="content is inconsistent.*task offsets"):
        ts = _load(tmp_path)
    _assert_same(ts, reference)


@pytest.mark.parametrize("damage", ["truncated", "empty", "bitflip", "no_manifest", "garbage_manifest"])
def test_damaged_cache_files_are_regenerated_not_crashing(tmp_path, reference, damage):
    _load(tmp_path)
    path = na.cache_path(N_CACHE, ELS, 0, tmp_path)
    raw = path.read_bytes()
    manifest = path.parent / (path.name + ".manifest.json")
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "bitflip":
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif damage == "no_manifest":  # e.g. a cache written by an older nanonb
        manifest.unlink()
    else:
        manifest.write_text("{not json")
    with pytest.warns(CacheWarning, match="ignoring cache file"):
        ts = _load(tmp_path)
    _assert_same(ts, reference)
    assert manifest.is_file()


def test_unwritable_cache_dir_is_detected_before_generating(tmp_path, reference, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    calls = []
    real = na.generate_pair

    def spy(*args, **kwargs):
        calls.append(len(caught))  # how many warnings had been issued when generation started
        return real(*args, **kwargs)

    monkeypatch.setattr(na, "generate_pair", spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ts = _load(blocker / "cache")
    msgs = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(msgs) == 1 and "not writable" in msgs[0] and "NANONB_CACHE_DIR" in msgs[0]
    assert "\n" not in msgs[0]
    assert calls and calls[0] >= 1  # warned before the first pair was generated
    _assert_same(ts, reference)


def test_failed_cache_write_keeps_the_generated_set(tmp_path, reference, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(na, "write_npz_cache", disk_full)  # where the cache write happens
    with pytest.warns(CacheWarning, match="could not write the cache file.*No space left"):
        ts = _load(tmp_path)
    _assert_same(ts, reference)
