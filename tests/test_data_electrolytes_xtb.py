"""The xTB electrolyte labels: IP/EA -> potential conversion, agreement with direct tblite calls, verified cache."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tblite")
pytest.importorskip("rdkit")

import nanonb.data.electrolytes_xtb as ex  # noqa: E402
from nanonb.data._cache import CacheWarning  # noqa: E402
from nanonb.data.electrolyte_library import FAMILIES, candidate_library  # noqa: E402


def test_potential_conversion_uses_the_li_reference():
    assert ex.LI_ABSOLUTE_V == pytest.approx(4.44 - 3.04)
    e_ox, e_red = ex.potentials_vs_li(np.array([10.0, 12.5]), np.array([-1.0, 0.4]))
    np.testing.assert_allclose(e_ox, [8.6, 11.1])
    np.testing.assert_allclose(e_red, [-2.4, -1.0])
    # a molecule with IP = 1.40 eV would oxidize at the Li/Li+ potential itself
    assert float(ex.potentials_vs_li(1.40, 1.40)[0]) == pytest.approx(0.0, abs=1e-12)


def test_labels_match_a_direct_tblite_call():
    from tblite.interface import Calculator

    row, s = ex.label_molecule("CC#N")  # acetonitrile
    energies = []
    for charge, uhf in ((0, 0), (1, 1), (-1, 1)):
        calc = Calculator("IPEA1-xTB", s.numbers, s.positions / ex.BOHR, charge=float(charge), uhf=uhf)
        calc.set("verbosity", 0)
        energies.append(calc.singlepoint().get("energy") * ex.HARTREE)
    ip = energies[1] - energies[0] - ex.IPEA_SHIFT_EV
    ea = energies[0] - energies[2] - ex.IPEA_SHIFT_EV
    assert row["ip_ev"] == pytest.approx(ip, abs=1e-8)
    assert row["ea_ev"] == pytest.approx(ea, abs=1e-8)
    assert row["e_ox_v"] == pytest.approx(ip - 1.40, abs=1e-8)
    # the GFN2-xTB relaxation converged: forces below the threshold
    from tblite.interface import Calculator as C2
    g = C2("GFN2-xTB", s.numbers, s.positions / ex.BOHR)
    g.set("verbosity", 0)
    fmax = np.abs(g.singlepoint().get("gradient") * ex.HARTREE / ex.BOHR).max()
    assert fmax < 0.06
    # the shipped label of acetonitrile is the same computation
    shipped = ex.load_electrolyte_library("full").frame.set_index("smiles")
    assert shipped.loc["CC#N", "ip_ev"] == pytest.approx(row["ip_ev"], abs=0.02)


def test_library_contains_the_calisol_solvents_and_no_duplicates():
    lib = candidate_library(max_per_family=40)
    assert {"EC", "PC", "DMC", "EMC", "DEC", "DME", "FEC", "AN", "Sulfolane"} <= set(lib.calisol)
    assert lib.smiles.is_unique
    assert set(lib.family) == {f.name for f in FAMILIES} and lib.groupby("family").size().max() <= 40
    small = ex.library_candidates("small")
    assert set(small.smiles) <= set(lib.smiles) and small.groupby("family").size().max() == 12


def _fake_label(calls):
    def fake(smiles, seed=0, max_steps=200):
        calls.append(smiles)
        z = np.array([6, 8])
        row = {"smiles": smiles, "ip_ev": 10.0 + len(smiles) / 100, "ea_ev": -1.0, "e_ox_v": 8.6 + len(smiles) / 100,
               "e_red_v": -2.4, "opt_steps": 1, "n_atoms": 2, "xtb_seconds": 0.0}
        return row, ex.Structure(z, np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.2]]))
    return fake


def test_cache_is_verified_and_a_damaged_cache_is_regenerated(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(ex, "label_molecule", _fake_label(calls))
    lib = ex.load_electrolyte_library("tiny", cache_dir=tmp_path, progress=False, shipped=False)
    n = len(calls)
    assert n == len(lib.frame) == 2 * len(FAMILIES) and not lib.from_cache
    again = ex.load_electrolyte_library("tiny", cache_dir=tmp_path, progress=False, shipped=False)
    assert again.from_cache and len(calls) == n
    pd.testing.assert_frame_equal(again.frame, lib.frame, check_dtype=False)
    np.testing.assert_allclose(again.structures[3].positions, lib.structures[3].positions)
    path = ex.cache_path("tiny", cache_dir=tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="sha256"):
        fixed = ex.load_electrolyte_library("tiny", cache_dir=tmp_path, progress=False, shipped=False)
    assert not fixed.from_cache and len(calls) == 2 * n
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ex.load_electrolyte_library("tiny", cache_dir=tmp_path, progress=False, shipped=False).from_cache


def test_shipped_labels_are_verified(tmp_path, monkeypatch):
    lib = ex.load_electrolyte_library("small", cache_dir=tmp_path)
    assert lib.source == "shipped" and len(lib.frame) == len(ex.library_candidates("small"))
    copy = tmp_path / ex.SHIPPED_LABELS.name
    copy.write_bytes(ex.SHIPPED_LABELS.read_bytes().replace(b"CC#N", b"CCC#N", 1))
    (tmp_path / (copy.name + ".manifest.json")).write_bytes(
        ex.SHIPPED_LABELS.with_name(ex.SHIPPED_LABELS.name + ".manifest.json").read_bytes())
    monkeypatch.setattr(ex, "SHIPPED_LABELS", copy)
    calls: list[str] = []
    monkeypatch.setattr(ex, "label_molecule", _fake_label(calls))
    with pytest.warns(CacheWarning):
        relabelled = ex.load_electrolyte_library("tiny", cache_dir=tmp_path / "c", progress=False)
    assert relabelled.source == "xtb" and len(calls) == len(relabelled.frame)
