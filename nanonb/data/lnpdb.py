"""LNPDB: lipid-nanoparticle delivery efficacy, as few-shot tasks (one per study).

Collins et al., *Nature Communications* (2026), doi:10.1038/s41467-026-68818-1; repository
``evancollins1/LNPDB`` (MIT). Two row-aligned files: ``all_data_metadata.csv`` (LNP id, study
``Experiment_ID``, ionizable lipid name / head / SMILES, efficacy ``Experiment_value`` standardized
within each study) and ``all_data_extra_x.csv`` (formulation: mol ratios, IL:nucleic-acid mass
ratio, dose; one-hot helper lipid, sterol, PEG lipid, buffers, mixing, cell/animal model, target,
route, cargo, batching).

:func:`load_lnpdb` joins and checks them and returns a :class:`DataQualityReport`;
:func:`lnpdb_taskset` builds one task per ``Experiment_ID`` with inputs = Morgan fingerprint of the
ionizable lipid + RDKit descriptors + formulation/assay features.
"""

from __future__ import annotations

import hashlib
import io
import os
import time

import numpy as np
import pandas as pd

from .._io import atomic_write
from ..tasks import TaskSet
from ._fetch import NO_PARSE_CACHE_VAR, DataFile, DataQualityReport, cache_dir, fetch
from ._tables import keep_min_points, tabular_taskset, top_counts
from .chem import LIPID_DESCRIPTORS, lipid_descriptors, morgan_counts, morgan_fingerprints, require_rdkit

__all__ = [
    "ASSAY_PREFIXES",
    "DataQualityReport",
    "EXTRA_X",
    "METADATA",
    "ONE_HOT_PREFIXES",
    "clean_lnpdb",
    "fingerprint_columns",
    "lnpdb_features",
    "lnpdb_taskset",
    "load_lnpdb",
]

_BASE = "https://raw.githubusercontent.com/evancollins1/LNPDB/b9ea9d822aeaca4d817db00f264df37468433421/"
METADATA = DataFile(
    name="lnpdb_all_data_metadata.csv",
    url=_BASE + "data/LNPDB_for_LiON/all_data_metadata.csv",
    sha256="afb06016ad0155e7f801d475a77a8a13e71f0a87a041debc7881e37da1817b02",
    aliases=("all_data_metadata.csv",),
    description="LNPDB metadata (Collins et al., Nat. Commun. 2026, MIT), all_data_metadata.csv",
)
EXTRA_X = DataFile(
    name="lnpdb_all_data_extra_x.csv",
    url=_BASE + "data/LNPDB_for_LiON/all_data_extra_x.csv",
    sha256="c3376f89b6d2b4d47ecf293efd569af9692162658fa3b8379641173743034d31",
    aliases=("all_data_extra_x.csv",),
    description="LNPDB formulation/assay features (Collins et al., Nat. Commun. 2026, MIT), all_data_extra_x.csv",
)

METADATA_COLUMNS = ["LNP_ID", "Experiment_ID", "IL_name", "IL_head_name", "IL_SMILES", "Experiment_value"]
#: Continuous formulation columns of extra_x (mol %, mass ratio, dose in µg nucleic acid).
FORMULATION_COLUMNS = ["IL_to_nucleicacid_massratio", "IL_molratio", "HL_molratio", "CHL_molratio",
                       "PEG_molratio", "Dose_ug_nucleicacid"]
#: One-hot blocks of extra_x; every row must have exactly one 1 per block (checked).
ONE_HOT_PREFIXES = ["HL_name_", "CHL_name_", "PEG_name_", "Aqueous_buffer_", "Dialysis_buffer_",
                    "Mixing_method_", "Model_type_", "Model_target_", "Route_of_administration_",
                    "Cargo_type_", "Cargo_", "Experiment_batching_"]
#: Blocks that describe the assay (readout), used to find studies pooling several assays.
ASSAY_PREFIXES = ["Model_type_", "Model_target_", "Route_of_administration_", "Cargo_", "Cargo_type_"]
TARGET_NAME = "efficacy"
TARGET_UNIT = "z-score"


def _block(columns: list[str], prefix: str) -> list[str]:
    """Columns of one one-hot block (``Cargo_`` excludes ``Cargo_type_``)."""
    longer = [p for p in ONE_HOT_PREFIXES if p != prefix and p.startswith(prefix)]
    return [c for c in columns if c.startswith(prefix) and not any(c.startswith(p) for p in longer)]


def load_lnpdb(
    data_dir: str | os.PathLike | None = None,
    *,
    metadata_path: str | os.PathLike | None = None,
    extra_x_path: str | os.PathLike | None = None,
) -> tuple[pd.DataFrame, DataQualityReport]:
    """Load, join and check LNPDB (metadata + extra_x, row-aligned).

    Files are found via the explicit paths, ``data_dir``, ``$NANONB_DATA_DIR`` or the download
    cache, and SHA-256-checked before parsing (accepted names: ``lnpdb_all_data_metadata.csv`` or
    ``all_data_metadata.csv``, and likewise for extra_x).

    Returns
    -------
    df:
        18,858 rows: the metadata columns, the extra_x columns (``PEG_name_`` renamed
        ``PEG_name_None``), ``Dose_log10_ug`` (log10 of the dose in µg), ``assay`` (a readable
        label of the readout: model | target | route | cargo | cargo type) and the flag
        ``duplicate_input``. ``IL_head_name`` is ``"unknown"`` where empty.
    report:
        What was checked and done (:class:`DataQualityReport`).

    Units: ``Experiment_value`` is the efficacy as a z-score within its study (unitless);
    ``*_molratio`` are mol % of the lipid mix, ``IL_to_nucleicacid_massratio`` a mass ratio and
    ``Dose_ug_nucleicacid`` µg of nucleic acid (``Dose_log10_ug`` its log10).

    Example
    -------
    Needs the two LNPDB files (here via ``$NANONB_DATA_DIR``):

    >>> df, report = load_lnpdb()                                         # doctest: +SKIP
    >>> len(df), df["Experiment_ID"].nunique()                            # rows, studies  # doctest: +SKIP
    (18858, 40)
    >>> df.loc[0, ["Experiment_ID", "IL_name", "Experiment_value"]].tolist()   # z-score  # doctest: +SKIP
    ['AA_2008', '87_O15', 5.468071...]
    >>> print(report)                                 # every check with its row count  # doctest: +SKIP
    """
    mp = fetch(METADATA, path=metadata_path, data_dir=data_dir)
    xp = fetch(EXTRA_X, path=extra_x_path, data_dir=data_dir)
    meta = pd.read_csv(mp)  # both checksum-verified by fetch
    extra = pd.read_csv(xp)
    return clean_lnpdb(meta, extra, source=f"{mp} + {xp.name}")


def clean_lnpdb(
    meta: pd.DataFrame, extra: pd.DataFrame, source: str = "", check_smiles: bool = True
) -> tuple[pd.DataFrame, DataQualityReport]:
    """Join metadata and extra_x and apply the LNPDB checks (see :func:`load_lnpdb`).

    Raises
    ------
    ValueError
        The two frames cannot be row-aligned (different lengths, a one-hot block that is not
        exactly one-hot, duplicated LNP ids, missing columns): joining them would pair rows wrongly.
    """
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"Not an LNPDB metadata table: columns {missing} are missing.")
    missing = [c for c in FORMULATION_COLUMNS if c not in extra.columns]
    if missing:
        raise ValueError(f"Not an LNPDB extra_x table: columns {missing} are missing.")
    rep = DataQualityReport("LNPDB", source=source, n_raw=len(meta))

    # --- alignment: the files share no key, so check everything that would break if they slid
    if len(meta) != len(extra):
        raise ValueError(f"LNPDB metadata has {len(meta)} rows but extra_x has {len(extra)}: they must be "
                         "row-aligned (same length, same order). Use the files of one LNPDB commit.")
    if not meta["LNP_ID"].is_unique:
        raise ValueError("LNPDB metadata: LNP_ID is not unique.")
    xcols = list(extra.columns)
    bad_blocks = {}
    for prefix in ONE_HOT_PREFIXES:
        cols = _block(xcols, prefix)
        if not cols:
            raise ValueError(f"extra_x has no one-hot block {prefix!r}.")
        s = extra[cols].sum(axis=1)
        if not ((s == 1).all() and extra[cols].isin([0, 1]).all().all()):
            bad_blocks[prefix] = int((s != 1).sum())
    if bad_blocks:
        raise ValueError(f"extra_x one-hot blocks are not one-hot in some rows {bad_blocks}: corrupted "
                         "or misaligned file.")
    ratios = extra[["IL_molratio", "HL_molratio", "CHL_molratio", "PEG_molratio"]].sum(axis=1)
    off = ~np.isclose(ratios, 100.0, atol=0.5)
    df = pd.concat([meta.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
    rep.add("row_alignment", len(df), "joined metadata and extra_x side by side",
            f"equal row counts ({len(df)}), every one-hot block exactly one-hot, "
            f"{int(off.sum())} rows whose lipid mol ratios do not sum to 100 %; files pinned by sha256")

    # --- PEG_name_ (empty PEG lipid name)
    if "PEG_name_" in df.columns:
        n = int(df["PEG_name_"].sum())
        peg0 = bool((df.loc[df["PEG_name_"] == 1, "PEG_molratio"] == 0).all())
        studies = top_counts(df.loc[df["PEG_name_"] == 1, "Experiment_ID"])
        df = df.rename(columns={"PEG_name_": "PEG_name_None"})
        rep.add("peg_name_empty_column", n, "renamed column 'PEG_name_' -> 'PEG_name_None'",
                f"{'all' if peg0 else 'not all'} these rows have PEG_molratio = 0 (no PEG lipid); {studies}")
    else:
        rep.add("peg_name_empty_column", 0, "none")

    # --- empty IL_head_name
    m = df["IL_head_name"].isna() | (df["IL_head_name"].astype(str).str.strip() == "")
    rep.add("empty_il_head_name", m.sum(), "filled with 'unknown'", top_counts(df.loc[m, "Experiment_ID"]))
    df["IL_head_name"] = df["IL_head_name"].where(~m, "unknown")

    # --- missing values / targets
    m = df["Experiment_value"].isna() | df["IL_SMILES"].isna()
    rep.add("missing_target_or_smiles", m.sum(), "dropped")
    df = df[~m].reset_index(drop=True)

    # --- assays pooled within a study
    xcols_now = [c for c in df.columns if c in set(extra.columns) | {"PEG_name_None"}]
    df["assay"] = _assay_labels(df, xcols_now)
    n_assays = df.groupby("Experiment_ID")["assay"].nunique()
    pooled = n_assays[n_assays > 1]
    m = df["Experiment_ID"].isin(pooled.index)
    rep.add("pooled_assays", m.sum(),
            "kept; each study stays one task (values standardized per assay); see column 'assay'",
            f"{len(pooled)} studies: " + ", ".join(f"{k} ({v} assays)" for k, v in pooled.items()))

    # --- A549 labelled two ways
    if {"Model_type_A549", "Model_target_lung_epithelium", "Model_target_in_vitro"} <= set(df.columns):
        a = df[df["Model_type_A549"] == 1]
        tgt = np.where(a["Model_target_lung_epithelium"] == 1, "lung_epithelium",
                       np.where(a["Model_target_in_vitro"] == 1, "in_vitro", "other"))
        by = pd.Series(tgt, index=a.index).groupby(a["Experiment_ID"]).agg(lambda v: sorted(set(v)))
        if len({t for v in by for t in v}) > 1:
            rep.add("inconsistent_target_label", len(a), "kept as in the source (report only)",
                    "A549 cells: " + "; ".join(f"{k}: {'/'.join(v)}" for k, v in by.items()))

    # --- duplicate inputs within a study
    keys = ["Experiment_ID", "IL_SMILES", *xcols_now]
    dup_any = df.duplicated(keys, keep=False)
    g = df[dup_any].groupby(keys)["Experiment_value"]
    spread = g.max() - g.min()
    rep.add("duplicate_inputs", dup_any.sum(), "kept; flagged in column 'duplicate_input'",
            f"{g.ngroups} groups of identical inputs (same study, SMILES, formulation, assay); "
            f"{int((spread > 1).sum())} groups differ by > 1 SD in outcome")
    df["duplicate_input"] = dup_any

    # --- names vs SMILES
    n2s = df.groupby("IL_name")["IL_SMILES"].nunique()
    s2n = df.groupby("IL_SMILES")["IL_name"].nunique()
    m = df["IL_name"].isin(n2s[n2s > 1].index)
    rep.add("name_with_several_smiles", m.sum(), "kept (the SMILES, not the name, defines the lipid)",
            f"{int((n2s > 1).sum())} names map to >1 SMILES (up to {int(n2s.max())})")
    m = df["IL_SMILES"].isin(s2n[s2n > 1].index)
    rep.add("smiles_with_several_names", m.sum(), "kept (report only)",
            f"{int((s2n > 1).sum())} SMILES carry >1 name")

    # --- invalid SMILES
    if check_smiles:
        Chem = require_rdkit()[0]
        uniq = df["IL_SMILES"].unique()
        bad = [s for s in uniq if Chem.MolFromSmiles(s) is None]
        m = df["IL_SMILES"].isin(bad)
        rep.add("invalid_smiles", m.sum(), "dropped (RDKit cannot parse them)",
                f"{len(bad)} of {len(uniq)} unique SMILES" + (f": {bad[:3]}" if bad else ""))
        df = df[~m].reset_index(drop=True)

    # --- study-level facts (report only)
    one_il = df.groupby("Experiment_ID")["IL_SMILES"].nunique()
    one_il = one_il[one_il == 1]
    rep.add("single_lipid_studies", df["Experiment_ID"].isin(one_il.index).sum(),
            "kept (only the formulation varies there)", ", ".join(one_il.index))
    nv = df.groupby("Experiment_ID")["Experiment_value"].nunique()
    size = df["Experiment_ID"].value_counts()
    few = nv[nv <= 10]
    rep.add("few_distinct_outcomes", df["Experiment_ID"].isin(few.index).sum(), "kept (report only)",
            f"{len(few)} studies with <= 10 distinct outcome values "
            f"({int((size[few.index] >= 30).sum())} of them with >= 30 rows): "
            + ", ".join(f"{k} ({v})" for k, v in few.sort_values().items()))
    small = size[size < 30]
    rep.add("small_studies", int(small.sum()), "kept in the table; below the default min_points=30",
            ", ".join(f"{k} ({v} rows)" for k, v in small.items()))

    df["Dose_log10_ug"] = np.log10(df["Dose_ug_nucleicacid"].astype(float))
    rep.n_clean = len(df)
    return df, rep


def _assay_labels(df: pd.DataFrame, xcols: list[str]) -> pd.Series:
    parts = []
    for prefix in ASSAY_PREFIXES:
        cols = _block(xcols, prefix)
        block = df[cols].to_numpy()
        names = np.array([c[len(prefix):] for c in cols], dtype=object)
        parts.append(names[block.argmax(axis=1)])
    return pd.Series([" | ".join(p) for p in zip(*parts)], index=df.index)


def _disk_cached(kind: str, key_parts: list[str], shape: tuple[int, int], compute) -> np.ndarray:
    """``compute()`` memoised as ``<cache_dir>/features/lnpdb_<kind>_<hash>.npz`` (no pickle)."""
    h = hashlib.sha256()
    for part in key_parts:
        h.update(part.encode())
        h.update(b"\0")
    path = cache_dir() / "features" / f"lnpdb_{kind}_{h.hexdigest()[:20]}.npz"
    if not os.environ.get(NO_PARSE_CACHE_VAR) and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arr = z["a"]
            if arr.shape == shape:
                return arr
        except Exception:  # unreadable cache: recompute
            pass
    arr = compute()
    try:
        buf = io.BytesIO()
        np.savez_compressed(buf, a=arr)
        atomic_write(path, buf.getvalue())
    except OSError:
        pass
    return arr


def _lipid_table(smiles: np.ndarray, n_bits: int, radius: int, counts: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints and descriptors of unique SMILES, cached in memory and on disk (``.npz``).

    The disk-cache keys hash the SMILES list and the RDKit version (plus ``n_bits``/``radius`` for
    the fingerprints, the descriptor list for the descriptors). For LNPDB's 12,228 lipids the
    descriptors take ~15-20 s (Crippen logP dominates) and the fingerprints a few seconds; reading
    the cache takes well under a second.
    """
    import rdkit

    smiles = [str(s) for s in smiles]
    if counts:
        fp = _disk_cached("fpcount", [rdkit.__version__, str(n_bits), str(radius), *smiles], (len(smiles), n_bits),
                          lambda: morgan_counts(smiles, n_bits=n_bits, radius=radius))
    else:
        fp = _disk_cached("fp", [rdkit.__version__, str(n_bits), str(radius), *smiles], (len(smiles), n_bits),
                          lambda: morgan_fingerprints(smiles, n_bits=n_bits, radius=radius))
    desc = _disk_cached("desc", [rdkit.__version__, ",".join(LIPID_DESCRIPTORS), *smiles],
                        (len(smiles), len(LIPID_DESCRIPTORS)), lambda: lipid_descriptors(smiles))
    return fp, desc


def fingerprint_columns(feature_names) -> list[int]:
    """Indices of the Morgan fingerprint columns (``fp_*``, as :func:`lnpdb_features` names them) among
    ``feature_names`` (e.g. ``TaskSet.feature_names``; ``None``: none).

    Example
    -------
    >>> fingerprint_columns(["fp_0", "fp_1", "MolWt", "IL_molratio"])
    [0, 1]
    """
    return [i for i, n in enumerate(feature_names or []) if n.startswith("fp_")]


def lnpdb_features(df: pd.DataFrame, n_bits: int = 256, radius: int = 2, fingerprint: str = "bits"
                   ) -> tuple[np.ndarray, list[str]]:
    """Model inputs for each row of a frame from :func:`load_lnpdb` (unscaled).

    Columns: ``fp_0 .. fp_{n_bits-1}`` (Morgan bits of ``IL_SMILES``, or with ``fingerprint="counts"`` Morgan
    counts divided by the largest count of the frame, so they lie in [0, 1] and keep their ratios),
    :data:`~nanonb.data.chem.LIPID_DESCRIPTORS`,
    the formulation (mol % of ionizable / helper / cholesterol / PEG lipid, IL:nucleic-acid mass
    ratio, ``Dose_log10_ug``) and every one-hot column of extra_x (helper lipid, sterol, PEG lipid,
    buffers, mixing, model, target, route, cargo, batching).
    """
    smiles = df["IL_SMILES"].to_numpy()
    uniq, inv = np.unique(smiles, return_inverse=True)
    if fingerprint not in ("bits", "counts"):
        raise ValueError(f"fingerprint must be 'bits' or 'counts', not {fingerprint!r}")
    fp_u, desc_u = _lipid_table(uniq, n_bits, radius, counts=fingerprint == "counts")
    fp, desc = fp_u[inv].astype(np.float64), desc_u[inv]
    if fingerprint == "counts":
        fp = fp / max(float(fp.max()), 1.0)
    form = ["IL_molratio", "HL_molratio", "CHL_molratio", "PEG_molratio", "IL_to_nucleicacid_massratio",
            "Dose_log10_ug"]
    onehot = [c for p in ONE_HOT_PREFIXES for c in _block(list(df.columns), p)]
    x = np.hstack([fp, desc, df[form].to_numpy(dtype=np.float64),
                   df[onehot].to_numpy(dtype=np.float64)])
    names = [f"fp_{i}" for i in range(n_bits)] + LIPID_DESCRIPTORS + form + onehot
    return x, names


def lnpdb_taskset(
    df: pd.DataFrame | None = None,
    min_points: int = 30,
    n_bits: int = 256,
    data_dir: str | os.PathLike | None = None,
    radius: int = 2,
    standardize: bool = True,
    fingerprint: str = "bits",
    split_assays: bool = False,
) -> TaskSet:
    """One few-shot task per study (``Experiment_ID``), or per (study, assay), with at least ``min_points`` rows.

    Parameters
    ----------
    df:
        A frame from :func:`load_lnpdb` (loaded with ``data_dir`` if None).
    min_points:
        Smallest study kept (default 30).
    n_bits, radius:
        Morgan fingerprint size and radius of the ionizable lipid.
    standardize:
        z-score the non-binary columns (descriptors, formulation) over the rows of the kept tasks;
        fingerprint bits and one-hots stay 0/1. Stats in ``ts.feature_mean`` / ``ts.feature_std``.
    fingerprint:
        ``"bits"`` (Morgan bit vector) or ``"counts"`` (Morgan counts, scaled into [0, 1] by the largest count).
    split_assays:
        One task per (study, assay) for the 13 studies that pool separately standardized assays (cells,
        organs, routes, cargo), named ``"<study> | <assay>"``; single-assay studies keep their name. Groups stay
        ``(study,)``, so leave-study-out splits keep every assay of a study together.

    Returns
    -------
    TaskSet
        Tasks named by ``Experiment_ID``; ``groups = (Experiment_ID,)``; targets
        ``Experiment_value`` (``target_name="efficacy"``, unit ``"z-score"``); ``meta`` with
        ``LNP_ID``, ``IL_name``, ``IL_SMILES``, ``assay``, ``duplicate_input``. Extra attributes:
        ``feature_names``, ``feature_mean``, ``feature_std``, ``quality_report``, ``build_seconds``.

    Example
    -------
    Needs the LNPDB files (RDKit fingerprints are cached on disk after the first build):

    >>> ts = lnpdb_taskset(data_dir="../shared/data")                     # doctest: +SKIP
    >>> ts, len(ts.feature_names)                                         # doctest: +SKIP
    (TaskSet('LNPDB', 38 tasks, 18840 points), 358)
    >>> ts[0].target_name, ts[0].target_unit                              # doctest: +SKIP
    ('efficacy', 'z-score')
    >>> folds = ts.group_kfold(5)                     # leave-study-out    # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if df is None:
        df, report = load_lnpdb(data_dir=data_dir)
    else:
        report = DataQualityReport("LNPDB features", n_raw=len(df), n_clean=len(df))
    df = df.copy()
    key = "Experiment_ID"
    if split_assays:
        many = df.groupby("Experiment_ID")["assay"].transform("nunique") > 1
        df["task"] = np.where(many, df["Experiment_ID"] + " | " + df["assay"], df["Experiment_ID"])
        key = "task"
    sub, keep = keep_min_points(
        df, key, min_points, report, what="study", unit="rows",
        detail=lambda small, kept: ", ".join(f"{k} ({v} rows)" for k, v in small.items())
        + f"; {len(kept)} tasks kept")
    x, names = lnpdb_features(sub, n_bits=n_bits, radius=radius, fingerprint=fingerprint)
    return tabular_taskset(sub, key, keep, x, "Experiment_value",
                           ["LNP_ID", "IL_name", "IL_SMILES", "assay", "duplicate_input"],
                           lambda name, rows: (str(rows["Experiment_ID"].iloc[0]),), name="LNPDB",
                           feature_names=names, report=report,
                           standardize_inputs=standardize, target_name=TARGET_NAME, target_unit=TARGET_UNIT,
                           t0=t0)
