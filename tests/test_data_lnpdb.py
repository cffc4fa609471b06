"""Tests for the LNPDB loader, its checks and the per-study task set.

Tests marked ``data`` need the two LNPDB files (``../shared/data`` or ``$NANONB_DATA_DIR``) and skip
without them; the others use small synthetic tables or fake files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pooch
import pytest

from nanonb.data import _fetch
from nanonb.data import lnpdb as ln
from nanonb.data._fetch import DataChecksumError, DataNotAvailableError

N_RAW = 18_858


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lnpdb_dir(shared_data_dir):
    for f in (ln.METADATA, ln.EXTRA_X):
        if not (shared_data_dir / f.name).is_file():
            pytest.skip(f"{f.name} not in {shared_data_dir}")
    return shared_data_dir


@pytest.fixture(scope="module")
def loaded(lnpdb_dir):
    return ln.load_lnpdb(data_dir=lnpdb_dir)


@pytest.fixture(scope="module")
def taskset(loaded):
    return ln.lnpdb_taskset(loaded[0])


def _synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four LNPs in two studies, one assay column per block (all blocks present)."""
    meta = pd.DataFrame({
        "LNP_ID": ["L1", "L2", "L3", "L4"],
        "Experiment_ID": ["A", "A", "A", "B"],
        "IL_name": ["x", "x", "y", "y"],
        "IL_head_name": ["h", "h", None, "h"],
        "IL_SMILES": ["CCN(CC)CC", "CCN(CC)CC", "CCCN(C)C", "CCN(CC)CC"],
        "Experiment_value": [0.5, 2.0, -1.0, 0.0],
    })
    extra = pd.DataFrame({
        "IL_to_nucleicacid_massratio": [10.0] * 4, "IL_molratio": [50.0] * 4, "HL_molratio": [10.0] * 4,
        "CHL_molratio": [38.5] * 4, "PEG_molratio": [1.5] * 4, "Dose_ug_nucleicacid": [0.1, 0.1, 1.0, 10.0],
    })
    for prefix in ln.ONE_HOT_PREFIXES:
        extra[prefix + "a"] = 1
        extra[prefix + "b"] = 0
    extra.loc[2, "Model_type_a"], extra.loc[2, "Model_type_b"] = 0, 1  # study A pools two assays
    extra["PEG_name_"] = 0
    extra.loc[3, ["PEG_name_", "PEG_name_a"]] = [1, 0]
    extra.loc[3, "PEG_molratio"], extra.loc[3, "CHL_molratio"] = 0.0, 40.0
    return meta, extra


# ---------------------------------------------------------------------------- checks (synthetic)
def test_clean_rules_on_synthetic_tables():
    meta, extra = _synthetic()
    df, rep = ln.clean_lnpdb(meta, extra)
    assert len(df) == rep.n_clean == 4
    assert rep.n_rows("empty_il_head_name") == 1 and df.loc[2, "IL_head_name"] == "unknown"
    assert rep.n_rows("peg_name_empty_column") == 1
    assert "PEG_name_" not in df.columns and df["PEG_name_None"].tolist() == [0, 0, 0, 1]
    assert rep.n_rows("pooled_assays") == 3 and rep["pooled_assays"].detail.startswith("1 studies: A")
    assert df["assay"].nunique() == 2
    assert rep.n_rows("duplicate_inputs") == 2 and df["duplicate_input"].tolist() == [True, True, False, False]
    assert "1 groups differ by > 1 SD" in rep["duplicate_inputs"].detail
    assert rep.n_rows("name_with_several_smiles") == 2        # 'y' has two SMILES
    assert rep.n_rows("smiles_with_several_names") == 3       # CCN(CC)CC is 'x' and 'y'
    assert rep.n_rows("invalid_smiles") == 0
    np.testing.assert_allclose(df["Dose_log10_ug"], [-1, -1, 0, 1])


def test_invalid_smiles_dropped():
    meta, extra = _synthetic()
    meta.loc[1, "IL_SMILES"] = "C1CC(("
    df, rep = ln.clean_lnpdb(meta, extra)
    assert rep.n_rows("invalid_smiles") == 1 and len(df) == 3 and "C1CC((" not in set(df["IL_SMILES"])


def test_misaligned_files_are_refused():
    meta, extra = _synthetic()
    with pytest.raises(ValueError, match="row-aligned"):
        ln.clean_lnpdb(meta, extra.iloc[:3])
    broken = extra.copy()
    broken.loc[1, "Cargo_a"] = 0  # a row whose cargo block is all zeros
    with pytest.raises(ValueError, match="one-hot"):
        ln.clean_lnpdb(meta, broken)


def test_cargo_block_excludes_cargo_type():
    cols = ["Cargo_mRNA", "Cargo_siRNA", "Cargo_type_FLuc", "Cargo_type_GFP"]
    assert ln._block(cols, "Cargo_") == ["Cargo_mRNA", "Cargo_siRNA"]
    assert ln._block(cols, "Cargo_type_") == ["Cargo_type_FLuc", "Cargo_type_GFP"]


# ---------------------------------------------------------------------------- files
def test_corrupted_copy_raises_checksum_error_and_is_not_parsed(tmp_path, monkeypatch):
    (tmp_path / ln.METADATA.name).write_text("LNP_ID,Experiment_ID\nL1,A\n")
    (tmp_path / ln.EXTRA_X.name).write_text("x\n1\n")

    def boom(*a, **k):
        raise AssertionError("a file with a bad checksum was parsed")

    monkeypatch.setattr(pd, "read_csv", boom)
    with pytest.raises(DataChecksumError) as ei:
        ln.load_lnpdb(data_dir=tmp_path)
    msg = str(ei.value)
    assert ln.METADATA.name in msg and ln.METADATA.sha256 in msg
    assert _fetch.sha256_of(tmp_path / ln.METADATA.name) in msg


def test_missing_files_without_network_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("NANONB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path / "cache"))

    def offline(url, **kw):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataNotAvailableError) as ei:
        ln.load_lnpdb()
    msg = str(ei.value)
    assert "b9ea9d822aeaca4d817db00f264df37468433421" in msg
    assert ln.METADATA.url in msg and "NANONB_DATA_DIR" in msg and ln.METADATA.name in msg


@pytest.mark.data
def test_upstream_file_names_accepted(lnpdb_dir, tmp_path):
    for f, alias in [(ln.METADATA, "all_data_metadata.csv"), (ln.EXTRA_X, "all_data_extra_x.csv")]:
        (tmp_path / alias).symlink_to(lnpdb_dir / f.name)
        assert _fetch.fetch(f, data_dir=tmp_path) == tmp_path / alias


# ---------------------------------------------------------------------------- the real data
@pytest.mark.data
def test_checksums_of_shared_copies(lnpdb_dir):
    assert _fetch.sha256_of(lnpdb_dir / ln.METADATA.name) == ln.METADATA.sha256
    assert _fetch.sha256_of(lnpdb_dir / ln.EXTRA_X.name) == ln.EXTRA_X.sha256


@pytest.mark.data
def test_rows_and_checks_match_the_readme(loaded):
    df, rep = loaded
    assert rep.n_raw == rep.n_clean == len(df) == N_RAW
    assert df["Experiment_ID"].nunique() == 40
    assert rep.n_rows("row_alignment") == N_RAW
    assert rep["pooled_assays"].detail.startswith("13 studies")
    assert "LX_2024 (6 assays)" in rep["pooled_assays"].detail
    assert rep.n_rows("duplicate_inputs") == 758
    assert rep["duplicate_inputs"].detail.startswith("282 groups")
    assert "80 groups differ" in rep["duplicate_inputs"].detail
    assert rep["name_with_several_smiles"].detail.startswith("298 names")
    assert rep["smiles_with_several_names"].detail.startswith("438 SMILES")
    assert rep.n_rows("empty_il_head_name") == 275 and (df["IL_head_name"] == "unknown").sum() == 275
    assert rep.n_rows("peg_name_empty_column") == 184 and "PEG_name_None" in df.columns
    assert rep.n_rows("invalid_smiles") == 0 and df["IL_SMILES"].nunique() == 12_228
    assert "JW_2024: lung_epithelium" in rep["inconsistent_target_label"].detail
    assert {"YZ_2022", "YZ_2024", "LZ_2025", "SP_2020"} <= set(rep["single_lipid_studies"].detail.split(", "))
    assert "(9 of them with >= 30 rows)" in rep["few_distinct_outcomes"].detail
    assert "SS_2018" in rep["small_studies"].detail and "LL_2025" in rep["small_studies"].detail


# ---------------------------------------------------------------------------- tasks
@pytest.mark.data
def test_taskset_one_task_per_study(taskset, loaded):
    ts = taskset
    sizes = loaded[0]["Experiment_ID"].value_counts()
    assert len(ts) == 38 == int((sizes >= 30).sum())
    assert "SS_2018" not in ts and "LL_2025" not in ts
    d = len(ts.feature_names)
    assert ts.feature_names[:2] == ["fp_0", "fp_1"] and "Dose_log10_ug" in ts.feature_names
    assert sum(n.startswith("fp_") for n in ts.feature_names) == 256
    for t in ts:
        assert t.groups == (t.name,) and len(t) >= 30 and len(t) == sizes[t.name]
        assert t.inputs.shape == (len(t), d) and np.isfinite(t.inputs).all()
        assert t.target_name == "efficacy" and t.target_unit == "z-score"
        assert {"LNP_ID", "IL_name", "IL_SMILES"} <= set(t.meta.columns)
    fp = np.vstack([t.inputs[:, :256] for t in ts])
    assert set(np.unique(fp)) <= {0.0, 1.0}            # bits stay bits
    t = ts["AA_2008"]
    raw = loaded[0].set_index("LNP_ID").loc[t.meta["LNP_ID"], "Experiment_value"].to_numpy()
    np.testing.assert_allclose(t.targets, raw)
    assert ts.build_seconds > 0
    assert ts.quality_report.n_rows("below_min_points_30") == 18


@pytest.mark.data
def test_leave_study_out(taskset):
    for train, test in taskset.group_kfold(n_splits=4):
        assert not set(train.names) & set(test.names)
        assert not set(train.all_groups) & set(test.all_groups)


@pytest.mark.data
def test_subset_build_is_consistent_with_full_build(loaded, taskset):
    df = loaded[0]
    small = df[df["Experiment_ID"].isin(["AA_2008", "KL_2010", "SP_2020"])]
    ts = ln.lnpdb_taskset(small, min_points=30, n_bits=256, standardize=False)
    assert ts.names == ["AA_2008", "KL_2010", "SP_2020"]
    full = taskset["KL_2010"]
    raw_full = full.inputs * taskset.feature_std + taskset.feature_mean  # un-standardize
    np.testing.assert_allclose(ts["KL_2010"].inputs, raw_full, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- counts and per-assay tasks
def test_split_assays_and_count_fingerprints_on_synthetic_tables():
    pytest.importorskip("rdkit")
    meta, extra = _synthetic()
    df, _ = ln.clean_lnpdb(meta, extra)
    per_study = ln.lnpdb_taskset(df, min_points=1)
    assert per_study.names == ["A", "B"]
    split = ln.lnpdb_taskset(df, min_points=1, split_assays=True, fingerprint="counts")
    # study A pools two assays -> two tasks named "A | <assay>", both in group A; B keeps its name
    a_tasks = [t for t in split if t.name.startswith("A | ")]
    assert len(a_tasks) == 2 and "B" in split.names
    assert {t.groups for t in split} == {("A",), ("B",)}
    assert sorted(len(t) for t in a_tasks) == [1, 2]
    assert all(t.meta["assay"].nunique() == 1 for t in split)
    fp = [i for i, n in enumerate(split.feature_names) if n.startswith("fp_")]
    counts = np.vstack([t.inputs[:, fp] for t in split])
    bits = np.vstack([t.inputs[:, fp] for t in per_study])
    assert counts.max() == pytest.approx(1.0) and counts.min() >= 0          # scaled into [0, 1], not z-scored
    assert len(np.unique(counts)) > 2 and set(np.unique(bits)) <= {0.0, 1.0}  # counts carry more than bits
    assert ((counts > 0) == (bits > 0)).all()                                  # same environments present
    with pytest.raises(ValueError, match="fingerprint"):
        ln.lnpdb_taskset(df, min_points=1, fingerprint="morgan")


def test_real_split_assays_keeps_studies_as_groups(loaded):
    ts = ln.lnpdb_taskset(loaded[0], split_assays=True)
    assert len(ts) > 38 and len({t.groups[0] for t in ts}) == 38
    lx = [t for t in ts if t.groups[0] == "LX_2024"]
    assert len(lx) == 6 and all(t.meta["assay"].nunique() == 1 for t in lx)
    for train, test in ts.group_kfold(5):
        assert not {t.groups[0] for t in train} & {t.groups[0] for t in test}
