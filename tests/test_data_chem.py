"""RDKit descriptors of anions, solvents and ionizable lipids (:mod:`nanonb.data.chem`)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

from nanonb.data import chem  # noqa: E402


def test_solvent_table_is_sourced_and_valid():
    from rdkit import Chem

    tab = chem.solvent_table()
    assert tab["solvent"].is_unique
    for r in tab.itertuples():
        assert Chem.MolFromSmiles(r.smiles) is not None, r.solvent
        assert isinstance(r.source, str) and r.source.strip(), r.solvent
        if not np.isnan(r.dielectric_constant):
            assert 1.0 < r.dielectric_constant < 200 and not np.isnan(r.dielectric_T_C)
        if not np.isnan(r.viscosity_mPa_s):
            assert 0.1 < r.viscosity_mPa_s < 100 and not np.isnan(r.viscosity_T_C)
        if np.isnan(r.dielectric_constant) and np.isnan(r.viscosity_mPa_s):
            assert "imputed" in r.source
    ec = tab.set_index("solvent").loc["EC"]
    assert ec.dielectric_constant == pytest.approx(89.78) and "Xu" in ec.source


def test_solvent_descriptors_impute_and_flag():
    desc, imputed = chem.solvent_descriptors(["EC", "DMC", "TFP"])
    assert list(desc.columns) == chem.SOLVENT_FEATURES
    assert not imputed.loc["EC"].any() and imputed.loc["TFP"].all()
    assert desc.loc["EC", "solv_dielectric_constant"] == pytest.approx(89.78)
    assert desc.loc["DMC", "solv_log10_viscosity_mPa_s"] == pytest.approx(np.log10(0.59))
    assert np.isfinite(desc.to_numpy()).all()
    assert desc.loc["TFP", "solv_molar_mass_g_mol"] == pytest.approx(344.07, abs=0.1)
    with pytest.raises(KeyError, match="solvents.csv"):
        chem.solvent_descriptors(["NotASolvent"])


def test_anion_descriptors():
    an = chem.anion_descriptors(["LiPF6", "LiTFSI"])
    assert an.loc["LiPF6", "anion_n_F"] == 6 and an.loc["LiTFSI", "anion_n_F"] == 6
    assert an.loc["LiTFSI", "anion_n_N"] == 1
    assert an.loc["LiPF6", "anion_molar_mass_g_mol"] == pytest.approx(144.96, abs=0.05)
    with pytest.raises(KeyError, match="ANION_SMILES"):
        chem.anion_descriptors(["LiXYZ"])


def test_fingerprints_and_descriptors_cached_and_deterministic():
    smi = ["CCN(CC)CCOC(=O)CCCCCCC", "CCCCCCCCN(C)C"]
    a = chem.morgan_fingerprints(smi, n_bits=128)
    assert a.shape == (2, 128) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
    assert (smi[0], 128, 2) in chem._FP_CACHE
    np.testing.assert_array_equal(a, chem.morgan_fingerprints(smi, n_bits=128))
    assert not np.array_equal(a[0], a[1])
    d = chem.lipid_descriptors(smi)
    assert d.shape == (2, len(chem.LIPID_DESCRIPTORS))
    assert d[1, chem.LIPID_DESCRIPTORS.index("il_n_N")] == 1
    with pytest.raises(ValueError, match="Invalid SMILES"):
        chem.morgan_fingerprints(["C1CC(("], n_bits=64)
