"""Tests for the CALiSol-23 loader, its cleaning rules and the electrolyte task set.

Tests marked ``data`` need ``calisol23.xlsx`` (``../shared/data`` or ``$NANONB_DATA_DIR``) and
skip without it; the others use small synthetic tables or fake files.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pooch
import pytest

from nanonb.data import _fetch
from nanonb.data import calisol as cs
from nanonb.data._cache import CacheWarning
from nanonb.data._fetch import DataChecksumError, DataNotAvailableError, DataQualityReport
from nanonb.data.chem import ANION_SMILES

N_RAW = 13_825


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def calisol_file(shared_data_dir):
    p = shared_data_dir / cs.CALISOL.name
    if not p.is_file():
        pytest.skip(f"{cs.CALISOL.name} not in {shared_data_dir}")
    return p


@pytest.fixture(scope="module")
def loaded(calisol_file):
    return cs.load_calisol(path=calisol_file)


@pytest.fixture(scope="module")
def taskset(loaded):
    return cs.calisol_taskset(loaded[0])


def _synthetic_raw() -> pd.DataFrame:
    """A tiny raw table that hits every cleaning rule a known number of times."""
    rows = [
        # doi, k, T, c, salt, units, ratio, EC, PC, DMC
        ("d1", 1.0, 300.0, 1.0, " LiPF6", "mol/l", "w", 0.5, 0.0, 0.5),    # leading space
        ("d1", 2.0, 310.0, 1.0, "LiPF6", "mol/l", "w", 0.5, 0.0, 0.5),
        ("d1", np.nan, 320.0, 1.0, "LiPF6", "mol/l", "w", 0.5, 0.0, 0.5),  # missing k
        ("d1", 0.0, 330.0, 1.0, "LiPF6", "mol/l", "w", 0.5, 0.0, 0.5),     # k <= 0
        ("d1", -1.0, 340.0, 1.0, "LiPF6", "mol/l", "w", 0.5, 0.0, 0.5),    # k <= 0
        ("d2", 3.0, 300.0, 1.0, "LiPF6", "mol/kg", "w", 0.5, 0.0, 0.5),    # same system, other unit
        ("d3", 4.0, 300.0, 0.5, "LiN(CF3SO2)2", "mol/l", "v", 0.0, 1.0, 0.0),  # alias
        ("d3", 4.1, 300.0, 0.5, "LiTFSI", "mol/l", "v", 0.0, 1.0, 0.0),    # duplicate input of the above
        ("d3", 5.0, 310.0, 0.5, "LiTFSI", "mol/l", "mol", 0.0, 0.99, 0.0),  # sum 0.99 + other ratio type
        ("d3", 1e-5, 200.0, 0.5, "LiTFSI", "mol/l", "v", 0.0, 1.0, 0.0),   # log10 k = -5 outlier
        ("d4", 0.5, 300.0, -0.01, "LiBF4", "mol/l", "w", 1.0, 0.0, 0.0),   # negative c
        ("d4", 0.5, 300.0, 0.2, "LiBF4", "mol/l", "w", 0.0, 0.0, 0.0),     # no solvent
    ]
    cols = ["doi", "k", "T", "c", "salt", "c units", "solvent ratio type", "EC", "PC", "DMC"]
    df = pd.DataFrame(rows, columns=cols)
    df.insert(0, "Unnamed: 0", np.arange(len(df)))
    return df


# ---------------------------------------------------------------------------- cleaning (synthetic)
def test_clean_rules_on_synthetic_table():
    df, rep = cs.clean_calisol(_synthetic_raw())
    assert isinstance(rep, DataQualityReport)
    assert rep.n_raw == 12
    assert rep.n_rows("salt_whitespace") == 1
    assert rep.n_rows("salt_alias") == 1
    assert rep.n_rows("missing_k") == 1
    assert rep.n_rows("nonpositive_k") == 2
    assert rep.n_rows("negative_concentration") == 1
    assert rep.n_rows("invalid_fractions") == 1
    assert rep.n_rows("fraction_sum") == 1
    assert rep.n_rows("duplicate_inputs") == 1
    assert rep.n_rows("low_k_outlier") == 1
    assert rep.n_rows("mixed_concentration_units") == 3            # every LiPF6|EC+DMC row
    assert "LiPF6|EC+DMC" in rep["mixed_concentration_units"].detail
    assert rep.n_rows("mixed_ratio_types") == 4                     # every LiTFSI|PC row
    assert rep.n_clean == len(df) == 12 - 1 - 2 - 1
    # the cleaned table
    assert set(df["salt"]) == {"LiPF6", "LiTFSI", "LiBF4"}
    assert (df.loc[df["salt"] == "LiTFSI", "system"] == "LiTFSI|PC").all()
    assert set(df["system"]) == {"LiPF6|EC+DMC", "LiTFSI|PC", "LiBF4|EC"}
    np.testing.assert_allclose(df[["EC", "PC", "DMC"]].sum(axis=1), 1.0)
    assert df["fraction_renormalised"].sum() == 1
    assert df["duplicate_input"].sum() == 2
    assert df["low_k_outlier"].sum() == 1
    np.testing.assert_allclose(df["log10_k"], np.log10(df["k"]))
    assert (df["k"] > 0).all()
    assert df["row_id"].tolist() == [0, 1, 5, 6, 7, 8, 9, 10]


def test_clean_rejects_non_calisol_table():
    with pytest.raises(ValueError, match="missing"):
        cs.clean_calisol(pd.DataFrame({"doi": ["x"], "k": [1.0]}))


def test_report_frame_and_text():
    _, rep = cs.clean_calisol(_synthetic_raw())
    fr = rep.to_frame()
    assert list(fr.columns) == ["rule", "n_rows", "action", "detail"]
    assert fr.set_index("rule").loc["missing_k", "n_rows"] == 1
    text = str(rep)
    assert "CALiSol-23" in text and "missing_k" in text and "dropped" in text
    with pytest.raises(KeyError, match="rules are"):
        rep["no_such_rule"]
    with pytest.raises(ValueError, match="already"):
        rep.add("missing_k", 0, "x")


# ---------------------------------------------------------------------------- files: checksum, lookup
def _forbid_parsing(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a file with a bad checksum was parsed")

    monkeypatch.setattr(cs, "read_calisol_raw", boom)
    monkeypatch.setattr(pd, "read_excel", boom)


def test_corrupted_copy_raises_checksum_error_and_is_not_parsed(tmp_path, monkeypatch):
    bad = tmp_path / cs.CALISOL.name
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    _forbid_parsing(monkeypatch)
    with pytest.raises(DataChecksumError) as ei:
        cs.load_calisol(path=bad)
    msg = str(ei.value)
    assert str(bad) in msg and cs.CALISOL.sha256 in msg and _fetch.sha256_of(bad) in msg
    with pytest.raises(DataChecksumError):  # same through data_dir
        cs.load_calisol(data_dir=tmp_path)


@pytest.mark.data
def test_truncated_real_copy_raises_checksum_error(calisol_file, tmp_path, monkeypatch):
    cut = tmp_path / cs.CALISOL.name
    cut.write_bytes(calisol_file.read_bytes()[:100_000])
    _forbid_parsing(monkeypatch)
    with pytest.raises(DataChecksumError, match="expected sha256"):
        cs.load_calisol(data_dir=tmp_path)


def test_missing_file_without_network_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NANONB_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path / "cache"))
    calls = []

    def offline(url, **kw):
        calls.append(url)
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataNotAvailableError) as ei:
        cs.load_calisol()
    assert isinstance(ei.value, RuntimeError)
    msg = str(ei.value)
    assert calls == [cs.CALISOL.url]
    assert "4f7ac3b0b2203f1c3e9138a891d6456541d5bb87" in cs.CALISOL.url
    assert cs.CALISOL.url in msg and "NANONB_DATA_DIR" in msg and cs.CALISOL.name in msg


def test_data_dir_without_file_and_bad_path(tmp_path):
    with pytest.raises(DataNotAvailableError, match="not in data_dir"):
        cs.load_calisol(data_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        cs.load_calisol(path=tmp_path / "nope.xlsx")


@pytest.mark.data
def test_env_var_and_explicit_data_dir_resolve_without_download(calisol_file, tmp_path, monkeypatch):
    def offline(url, **kw):
        raise AssertionError("must not download when a local copy exists")

    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setenv("NANONB_DATA_DIR", str(calisol_file.parent))
    assert _fetch.fetch(cs.CALISOL) == calisol_file
    other = tmp_path / "copy"
    other.mkdir()
    shutil.copy(calisol_file, other / cs.CALISOL.name)
    assert _fetch.fetch(cs.CALISOL, data_dir=other) == other / cs.CALISOL.name  # data_dir beats env


@pytest.mark.data
def test_download_cache_path_is_checked_too(calisol_file, tmp_path, monkeypatch):
    """A file delivered by pooch is re-verified: a wrong one raises the checksum error."""
    monkeypatch.delenv("NANONB_DATA_DIR", raising=False)
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"wrong")
    monkeypatch.setattr(pooch, "retrieve", lambda url, **kw: str(fake))
    with pytest.raises(DataChecksumError):
        _fetch.fetch(cs.CALISOL)
    monkeypatch.setattr(pooch, "retrieve", lambda url, **kw: str(calisol_file))
    assert _fetch.fetch(cs.CALISOL) == calisol_file


# ---------------------------------------------------------------------------- the real data
@pytest.mark.data
def test_checksum_of_shared_copy(calisol_file):
    assert _fetch.sha256_of(calisol_file) == cs.CALISOL.sha256


@pytest.mark.data
def test_raw_rows_and_parse_cache_round_trip(calisol_file, tmp_path, monkeypatch):
    raw = cs.read_calisol_raw(calisol_file)
    assert raw.shape == (N_RAW, 46)
    # the table the loader uses (cached CSV when warm) is exactly the fresh parse
    pd.testing.assert_frame_equal(_fetch.parse_cached(calisol_file, cs.CALISOL, cs.read_calisol_raw), raw)
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path))
    first = _fetch.parse_cached(calisol_file, cs.CALISOL, lambda p: raw)
    assert list((tmp_path / "parsed").glob("*.csv"))
    again = _fetch.parse_cached(calisol_file, cs.CALISOL, lambda p: pytest.fail("cache not used"))
    pd.testing.assert_frame_equal(first, again)
    # a truncated or edited cache is refused and re-parsed from the verified source (issue 16)
    (csv,) = (tmp_path / "parsed").glob("*.csv")
    text = csv.read_text()
    csv.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")  # ~half the rows, valid CSV
    with pytest.warns(CacheWarning, match="ignoring cache file"):
        pd.testing.assert_frame_equal(_fetch.parse_cached(calisol_file, cs.CALISOL, lambda p: raw), raw)
    edited = pd.read_csv(csv)
    edited["k"] = edited["k"] * 10
    edited.to_csv(csv, index=False)
    with pytest.warns(CacheWarning, match="ignoring cache file"):
        pd.testing.assert_frame_equal(_fetch.parse_cached(calisol_file, cs.CALISOL, lambda p: raw), raw)


@pytest.mark.data
def test_cleaning_counts_match_the_readme(loaded):
    df, rep = loaded
    assert rep.n_raw == N_RAW
    assert rep.n_rows("missing_k") == 523
    assert rep.n_rows("nonpositive_k") == 32
    assert rep.n_clean == len(df) == N_RAW - 523 - 32
    assert rep.n_rows("fraction_sum") == 33
    assert rep.n_rows("duplicate_inputs") == 33
    assert rep.n_rows("low_k_outlier") == 94
    assert rep.n_rows("salt_whitespace") == 279
    assert rep.n_rows("salt_alias") == 90
    assert rep.n_rows("systems") == df["system"].nunique() == 141
    assert rep["mixed_concentration_units"].detail.startswith("6 systems")
    assert rep["mixed_ratio_types"].detail.startswith("8 systems")
    assert df["low_k_outlier"].sum() == 94 and df["k"].min() == pytest.approx(1.11e-16)


@pytest.mark.data
def test_salts_stripped_and_merged(loaded):
    df, _ = loaded
    salts = set(df["salt"])
    assert len(salts) == 12
    assert "LiN(CF3SO2)2" not in salts and "LiTFSI" in salts
    assert all(s == s.strip() for s in salts)
    assert (df["salt"] == "LiBPFPB").sum() > 279  # ' LiBPFPB' and 'LiBPFPB' are one salt now
    assert set(df["salt"]) <= set(ANION_SMILES)


@pytest.mark.data
def test_fractions_units_and_ratio_types_kept(loaded):
    df, _ = loaded
    solv = cs.solvent_columns(df)
    assert len(solv) == 38
    np.testing.assert_allclose(df[solv].sum(axis=1), 1.0, atol=1e-12)
    assert df["fraction_renormalised"].sum() == 33
    assert set(df["c units"]) == {"mol/kg", "mol/l"}
    assert set(df["solvent ratio type"]) == {"w", "v", "mol"}
    assert (df["system"] == df["salt"] + "|" + df["solvents"]).all()


# ---------------------------------------------------------------------------- tasks
@pytest.mark.data
def test_taskset_counts_names_groups(taskset):
    ts = taskset
    assert len(ts) == 56
    salts = {t.groups[0] for t in ts}
    assert len(salts) == 9 and "LiPF6" in salts
    assert "LiPF6|EC+DMC" in ts
    d = len(ts.feature_names)
    for t in ts:
        salt, solvents = t.name.split("|")
        assert t.groups[0] == salt and list(t.groups[1:]) == solvents.split("+")
        assert len(t) >= 20
        assert t.inputs.shape == (len(t), d) and t.inputs.dtype == np.float32
        assert np.isfinite(t.inputs).all() and np.isfinite(t.targets).all()
        assert t.target_name == "log10_k" and t.target_unit == "log10(mS/cm)"
        assert {"doi", "T", "c", "c units", "solvent ratio type", "k"} <= set(t.meta.columns)
        np.testing.assert_allclose(t.targets, np.log10(t.meta["k"]))
        assert t.descriptors.shape == t.inputs.shape


@pytest.mark.data
def test_inputs_standardized_and_invertible(taskset, loaded):
    ts = taskset
    x = np.vstack([t.inputs for t in ts]).astype(np.float64)
    names = ts.feature_names
    j = names.index("temperature_K")
    assert abs(x[:, j].mean()) < 1e-3 and abs(x[:, j].std() - 1) < 1e-3
    raw_t = x[:, j] * ts.feature_std[j] + ts.feature_mean[j]
    np.testing.assert_allclose(raw_t, np.concatenate([t.meta["T"] for t in ts]), rtol=1e-5)
    frac = [i for i, n in enumerate(names) if n.startswith("frac_")]
    np.testing.assert_allclose(x[:, frac].sum(axis=1), 1.0, atol=1e-5)  # fractions left unscaled
    raw = cs.calisol_taskset(loaded[0], standardize=False)
    jt = raw.feature_names.index("inv_temperature_1000_per_K")
    t0 = raw.tasks[0]
    np.testing.assert_allclose(t0.inputs[:, jt], 1000.0 / t0.meta["T"], rtol=1e-5)


@pytest.mark.data
def test_feature_columns_fixed_whatever_min_points(taskset, loaded):
    small = cs.calisol_taskset(loaded[0], min_points=1)
    assert len(small) == 141
    assert small.feature_names == taskset.feature_names
    assert min(len(t) for t in small) < 20


@pytest.mark.data
def test_unseen_salt_is_not_blank(taskset):
    names = taskset.feature_names
    an = [i for i, n in enumerate(names) if n.startswith("anion_")]
    per_salt = {}
    for t in taskset:
        per_salt.setdefault(t.groups[0], t.inputs[0, an])
    vecs = np.array(list(per_salt.values()))
    assert len(np.unique(vecs.round(4), axis=0)) == len(per_salt)  # every salt has its own description


@pytest.mark.data
def test_leave_salt_out_excludes_held_out_salts(taskset):
    folds = taskset.group_kfold(n_splits=5)
    seen = []
    for train, test in folds:
        test_salts = {t.groups[0] for t in test}
        train_salts = {t.groups[0] for t in train}
        assert test_salts and not (test_salts & train_salts)
        assert not any(g in test_salts for t in train for g in t.groups)
        seen += test.names
    assert sorted(seen) == sorted(taskset.names)
    named = taskset.group_kfold(n_splits=5, key="salt")          # the named key: the same folds
    assert [te.names for _, te in named] == [te.names for _, te in folds]


@pytest.mark.data
def test_imputations_reported(taskset):
    rep = taskset.quality_report
    assert "solvent_dielectric_imputed" in rep and "solvent_viscosity_imputed" in rep
    assert rep.n_rows("solvent_viscosity_imputed") > 0
    assert "TFP" in rep["solvent_viscosity_imputed"].detail
    assert rep.n_rows("below_min_points_20") == 13_270 - sum(len(t) for t in taskset)
    assert "85 systems with < 20 points; 56 tasks kept" in rep["below_min_points_20"].detail
    assert taskset.build_seconds > 0


