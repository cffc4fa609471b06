"""CALiSol-23: ionic conductivity of Li-ion liquid electrolytes, as few-shot tasks.

de Blasio et al., *Scientific Data* 11, 750 (2024), doi:10.1038/s41597-024-03575-8 (CC BY 4.0):
13,825 measurements of conductivity ``k`` (mS/cm) against temperature ``T`` (K), salt
concentration ``c`` (``mol/kg`` or ``mol/l``) and solvent composition (fractions by weight, volume
or moles), for 14 salt labels in ~38 solvents from 27 papers.

:func:`load_calisol` returns the cleaned table and a :class:`DataQualityReport`; every cleaning
rule is listed there with its row count. :func:`calisol_taskset` turns the table into one task per
electrolyte *system* (a salt plus the set of solvents with a non-zero fraction, e.g.
``"LiPF6|EC+DMC"``), with tabular inputs in physical units and physics/chemistry descriptors so
that an unseen salt or solvent is not a blank column.

Examples
--------
>>> from nanonb.data.calisol import load_calisol, calisol_taskset    # doctest: +SKIP
>>> df, report = load_calisol(data_dir="../shared/data")              # doctest: +SKIP
>>> print(report)                                                     # doctest: +SKIP
>>> ts = calisol_taskset(df)                                          # doctest: +SKIP
>>> folds = ts.group_kfold(5, key="salt")   # leave-salt-out  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from ..tasks import TaskSet
from ._fetch import DataFile, DataQualityReport, fetch, parse_cached
from ._tables import keep_min_points, tabular_taskset, top_counts
from .chem import ANION_FEATURES, SOLVENT_FEATURES, anion_descriptors, solvent_descriptors

__all__ = [
    "CALISOL",
    "DataQualityReport",
    "SALT_ALIASES",
    "TARGET_NAME",
    "TARGET_UNIT",
    "calisol_features",
    "calisol_taskset",
    "clean_calisol",
    "load_calisol",
    "read_calisol_raw",
    "solvent_columns",
]

CALISOL = DataFile(
    name="calisol23.xlsx",
    url=(
        "https://raw.githubusercontent.com/Kyeongbin-Tom/calisol23-ionic-conductivity/"
        "4f7ac3b0b2203f1c3e9138a891d6456541d5bb87/data/calisol23.xlsx"
    ),
    sha256="7113db95f632e80821262aa8de1d39d7e2a7cc978ebeb99c42a54deea0b8275a",
    description="CALiSol-23 (de Blasio et al., Sci. Data 11, 750 (2024), CC BY 4.0), file calisol23.xlsx",
)

#: Fixed (non-solvent) columns of the CALiSol-23 sheet.
BASE_COLUMNS = ["doi", "k", "T", "c", "salt", "c units", "solvent ratio type"]
#: Salt labels that name the same salt; mapped to the right-hand name.
SALT_ALIASES = {"LiN(CF3SO2)2": "LiTFSI"}
TARGET_NAME = "log10_k"
TARGET_UNIT = "log10(mS/cm)"
#: Rows with log10(k / mS/cm) below this are flagged as low-k outliers (kept).
LOW_LOG10_K = -3.0
#: Solvent fractions whose sum differs from 1 by more than this are renormalised.
FRACTION_TOL = 1e-6

META_COLUMNS = ["row_id", "doi", "T", "c", "c units", "solvent ratio type", "k",
                "low_k_outlier", "duplicate_input", "fraction_renormalised"]


# ---------------------------------------------------------------------------- loading & cleaning
def read_calisol_raw(path: str | os.PathLike) -> pd.DataFrame:
    """Parse the CALiSol-23 workbook as it is (no checksum, no cleaning).

    Prefer :func:`load_calisol`, which verifies the checksum first.
    """
    return pd.read_excel(path, sheet_name=0, engine="openpyxl")


def solvent_columns(df: pd.DataFrame) -> list[str]:
    """The solvent-fraction columns of a CALiSol frame, in file order."""
    skip = set(BASE_COLUMNS) | {"Unnamed: 0", "row_id", "system", "solvents", "n_solvents", TARGET_NAME,
                                "low_k_outlier", "duplicate_input", "fraction_renormalised"}
    return [c for c in df.columns if c not in skip]


def load_calisol(
    path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> tuple[pd.DataFrame, DataQualityReport]:
    """Load and clean CALiSol-23.

    The file is found via ``path``, ``data_dir``, ``$NANONB_DATA_DIR`` or the download cache (see
    :func:`nanonb.data._fetch.fetch`) and SHA-256-checked before it is parsed.

    Parameters
    ----------
    path:
        Explicit path to ``calisol23.xlsx``.
    data_dir:
        Folder holding ``calisol23.xlsx``.

    Returns
    -------
    df:
        One row per kept measurement. Columns: ``row_id`` (row in the source sheet), ``doi``,
        ``salt`` (cleaned), ``system`` (e.g. ``"LiPF6|EC+DMC"``), ``solvents`` (``"EC+DMC"``),
        ``n_solvents``, ``T`` (K), ``c`` (value in ``c units``), ``c units`` (``mol/kg`` or
        ``mol/l``), ``solvent ratio type`` (``w``, ``v``, ``mol``), ``k`` (mS/cm), ``log10_k``
        (log10 of k in mS/cm), one fraction column per solvent (summing to 1), and flags
        ``low_k_outlier``, ``duplicate_input``, ``fraction_renormalised``.
    report:
        What was checked and done (:class:`DataQualityReport`).

    Raises
    ------
    DataChecksumError, DataNotAvailableError
        See :func:`nanonb.data._fetch.fetch`.

    Example
    -------
    Needs ``calisol23.xlsx`` (here via ``$NANONB_DATA_DIR``; a few seconds once the parse is cached):

    >>> df, report = load_calisol()                                       # doctest: +SKIP
    >>> len(df), df["system"].nunique(), df["salt"].nunique()             # doctest: +SKIP
    (13270, 141, 12)
    >>> df[["system", "T", "c", "c units", "k", "log10_k"]].iloc[0]       # T in K, k in mS/cm  # doctest: +SKIP
    >>> print(report)                                 # every cleaning rule with its row count  # doctest: +SKIP
    """
    p = fetch(CALISOL, path=path, data_dir=data_dir)  # checksum verified here, before parsing
    raw = parse_cached(p, CALISOL, read_calisol_raw)
    return clean_calisol(raw, source=str(p))


def clean_calisol(raw: pd.DataFrame, source: str = "") -> tuple[pd.DataFrame, DataQualityReport]:
    """Apply the CALiSol-23 cleaning rules to a raw frame (see :func:`load_calisol`).

    Rules, in order: salt-name whitespace (stripped), salt aliases (merged), missing ``k``
    (dropped), ``k <= 0`` (dropped), negative ``c`` (kept), negative fractions / no solvent
    (dropped), fractions not summing to 1 (renormalised), duplicate inputs (kept, flagged),
    systems mixing concentration units or ratio types (kept, reported), ``log10 k < -3`` (kept,
    flagged: the few-shot protocol keeps every row with a positive ``k``).
    """
    missing = [c for c in BASE_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(
            f"Not a CALiSol-23 table: columns {missing} are missing (have {list(raw.columns)[:12]}...)."
        )
    df = raw.copy()
    if "Unnamed: 0" in df.columns:
        df = df.rename(columns={"Unnamed: 0": "row_id"})
    elif "row_id" not in df.columns:
        df.insert(0, "row_id", np.arange(len(df)))
    solv = solvent_columns(df)
    non_numeric = [c for c in solv if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise ValueError(f"Solvent-fraction columns must be numeric; these are not: {non_numeric}")
    df[solv] = df[solv].astype(float).fillna(0.0)
    rep = DataQualityReport("CALiSol-23", source=source, n_raw=len(df))

    # --- salt names
    salt = df["salt"].astype(str)
    stripped = salt.str.strip()
    m = salt != stripped
    rep.add("salt_whitespace", m.sum(), "stripped leading/trailing spaces",
            top_counts(salt[m].map(repr)))
    df["salt"] = stripped
    m = df["salt"].isin(list(SALT_ALIASES))
    rep.add("salt_alias", m.sum(), "merged: " + ", ".join(f"{a} -> {b}" for a, b in SALT_ALIASES.items()),
            top_counts(df.loc[m, "salt"]))
    df["salt"] = df["salt"].replace(SALT_ALIASES)

    # --- conductivity
    m = df["k"].isna()
    rep.add("missing_k", m.sum(), "dropped", top_counts(df.loc[m, "salt"] + " / " + df.loc[m, "doi"]))
    df = df[~m]
    m = df["k"] <= 0
    rep.add("nonpositive_k", m.sum(), "dropped (log10 k undefined)",
            top_counts(df.loc[m, "salt"] + " / " + df.loc[m, "doi"]))
    df = df[~m].copy()

    m = df["c"] < 0
    rep.add("negative_concentration", m.sum(), "kept unchanged (digitisation noise near c = 0)",
            f"min c = {df['c'].min():.4g}" if m.any() else "")

    # --- solvent fractions
    fr = df[solv].to_numpy()
    neg = (fr < 0).any(axis=1)
    tot = fr.sum(axis=1)
    empty = tot <= 0
    bad = neg | empty
    rep.add("invalid_fractions", bad.sum(), "dropped (negative fraction or no solvent)")
    df = df[~bad].copy()
    fr, tot = fr[~bad], tot[~bad]
    off = np.abs(tot - 1.0) > FRACTION_TOL
    detail = ""
    if off.any():
        detail = (f"sums in [{tot[off].min():.4g}, {tot[off].max():.4g}]; "
                  + top_counts(df.loc[off, "doi"] + " (" + df.loc[off, "salt"] + ")"))
    rep.add("fraction_sum", off.sum(), "renormalised each row's solvent fractions to sum to 1", detail)
    df[solv] = fr / tot[:, None]
    df["fraction_renormalised"] = off

    # --- systems
    present = df[solv].to_numpy() > 0
    names = np.array(solv, dtype=object)
    df["solvents"] = ["+".join(names[row]) for row in present]
    df["n_solvents"] = present.sum(axis=1)
    df["system"] = df["salt"] + "|" + df["solvents"]
    df["log10_k"] = np.log10(df["k"].to_numpy(dtype=float))

    # --- duplicates
    keys = ["salt", "c", "c units", "solvent ratio type", "T", *solv]
    dup_any = df.duplicated(keys, keep=False)
    dup_rep = df.duplicated(keys, keep="first")
    detail = ""
    if dup_any.any():
        g = df[dup_any].groupby(keys, dropna=False)["log10_k"]
        spread = (g.max() - g.min())
        detail = (f"{g.ngroups} groups of identical inputs ({int(dup_any.sum())} rows involved); "
                  f"max spread of log10 k within a group {spread.max():.3g}, "
                  f"{int((spread > 0.1).sum())} groups spread > 0.1")
    rep.add("duplicate_inputs", dup_rep.sum(), "kept; flagged in column 'duplicate_input'", detail)
    df["duplicate_input"] = dup_any

    # --- systems mixing units / ratio types
    for rule, col in [("mixed_concentration_units", "c units"), ("mixed_ratio_types", "solvent ratio type")]:
        nun = df.groupby("system")[col].nunique()
        mixed = sorted(nun[nun > 1].index)
        m = df["system"].isin(mixed)
        rep.add(rule, m.sum(), f"kept; '{col}' kept as a column (and as input flags)",
                f"{len(mixed)} systems: {', '.join(mixed)}" if mixed else "")

    # --- outliers
    m = df["log10_k"] < LOW_LOG10_K
    detail = ""
    if m.any():
        detail = (f"min k = {df.loc[m, 'k'].min():.3g} mS/cm; "
                  + top_counts(df.loc[m, "system"] + " / " + df.loc[m, "doi"]))
    rep.add("low_k_outlier", m.sum(),
            f"kept (protocol keeps every k > 0); flagged log10 k < {LOW_LOG10_K:g} in 'low_k_outlier'", detail)
    df["low_k_outlier"] = m

    cols = ["row_id", "doi", "salt", "system", "solvents", "n_solvents", "T", "c", "c units",
            "solvent ratio type", "k", "log10_k", *solv, "fraction_renormalised", "duplicate_input",
            "low_k_outlier"]
    df = df[cols].reset_index(drop=True)
    df["row_id"] = df["row_id"].astype(int)
    rep.n_clean = len(df)
    rep.add("systems", df["system"].nunique(), "count of electrolyte systems (salt + solvent set)",
            f"{df['salt'].nunique()} salts: {', '.join(sorted(df['salt'].unique()))}")
    return df, rep


def calisol_features(
    df: pd.DataFrame, report: DataQualityReport | None = None, solvents: list[str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Tabular model inputs for each row of a cleaned CALiSol frame (physical units).

    Columns, in this fixed order:

    - ``temperature_K``, ``inv_temperature_1000_per_K`` (1000/T, 1/K), ``salt_concentration`` (in
      the row's unit), ``c_is_molal`` (1 for mol/kg, 0 for mol/l), ``ratio_w``, ``ratio_v``,
      ``ratio_mol`` (how the fractions are expressed);
    - ``frac_<solvent>`` for every solvent with a non-zero fraction somewhere in ``df`` (file order);
    - fraction-weighted solvent descriptors :data:`~nanonb.data.chem.SOLVENT_FEATURES` (dielectric constant,
      log10 viscosity in mPa s, molar mass, molar refractivity, TPSA, logP, H-bond acceptors),
      weighted by the fractions as given (w, v or mol: not converted);
    - anion descriptors :data:`~nanonb.data.chem.ANION_FEATURES`.

    ``solvents`` fixes the ``frac_`` columns (default: those present in ``df``). If ``report`` is
    given, the solvent-property imputations are added to it.
    """
    solv = [c for c in solvent_columns(df) if (df[c] > 0).any()] if solvents is None else list(solvents)
    fr = df[solv].to_numpy(dtype=float)
    feats = pd.DataFrame(index=df.index)
    feats["temperature_K"] = df["T"].astype(float)
    feats["inv_temperature_1000_per_K"] = 1000.0 / df["T"].astype(float)
    feats["salt_concentration"] = df["c"].astype(float)
    feats["c_is_molal"] = (df["c units"] == "mol/kg").astype(float)
    for t in ["w", "v", "mol"]:
        feats[f"ratio_{t}"] = (df["solvent ratio type"] == t).astype(float)
    unknown_ratio = ~df["solvent ratio type"].isin(["w", "v", "mol"])
    if unknown_ratio.any():
        raise ValueError(f"Unknown solvent ratio types {sorted(df.loc[unknown_ratio, 'solvent ratio type'].unique())}")
    for s in solv:
        feats[f"frac_{s}"] = df[s].astype(float)
    desc, imputed = solvent_descriptors(solv)
    mix = fr @ desc.to_numpy()
    for j, name in enumerate(SOLVENT_FEATURES):
        feats[name] = mix[:, j]
    an = anion_descriptors(sorted(df["salt"].unique()))
    feats[ANION_FEATURES] = an.loc[df["salt"].to_numpy()].to_numpy()
    if report is not None:
        for prop, med in [("dielectric_constant", desc["solv_dielectric_constant"]),
                          ("viscosity_mPa_s", desc["solv_log10_viscosity_mPa_s"])]:
            who = [s for s in solv if imputed.at[s, prop]]
            hit = (df[who] > 0).any(axis=1) if who else pd.Series(False, index=df.index)
            value = med[who].iloc[0] if who else float("nan")
            shown = f"{10 ** value:.3g} mPa s" if prop == "viscosity_mPa_s" else f"{value:.3g}"
            rule = f"solvent_{prop.split('_')[0]}_imputed"
            if rule not in report:
                report.add(rule, int(hit.sum()),
                           f"imputed the median of sourced values ({shown}) for solvents without one",
                           f"{len(who)} solvents: {', '.join(who)}" if who else "")
    return feats, list(feats.columns)


# ---------------------------------------------------------------------------- tasks
def calisol_taskset(
    df: pd.DataFrame | None = None,
    min_points: int = 20,
    data_dir: str | os.PathLike | None = None,
    standardize: bool = True,
) -> TaskSet:
    """One few-shot task per electrolyte system with at least ``min_points`` measurements.

    Parameters
    ----------
    df:
        A frame from :func:`load_calisol` (loaded with ``data_dir`` if None).
    min_points:
        Smallest task kept (the few-shot protocol uses 20).
    data_dir:
        Passed to :func:`load_calisol` when ``df`` is None.
    standardize:
        z-score the input columns over the rows of the kept tasks (columns already in [0, 1] —
        flags and solvent fractions — are left as they are). The statistics are label-free and
        stored as ``ts.feature_mean`` / ``ts.feature_std`` (raw = x * std + mean).

    Returns
    -------
    TaskSet
        Tasks named ``"<salt>|<solvent>+<solvent>"`` (solvents in file order), ``groups =
        (salt, *solvents)`` and ``group_keys = {"salt": (salt,)}``, so ``group_kfold`` (``key="salt"``,
        the default) is leave-salt-out; targets
        ``log10_k`` in log10(mS/cm); ``meta`` with doi, T, c, c units, ratio type, k and flags;
        ``descriptors`` = the standardized inputs. Extra attributes: ``feature_names``,
        ``feature_mean``, ``feature_std``, ``quality_report`` and ``build_seconds``. Inputs in
        physical units before standardization: ``temperature_K`` (K), ``inv_temperature_1000_per_K``
        (1000/T, 1/K), ``salt_concentration`` (mol/kg or mol/l, see ``c_is_molal``), solvent
        fractions (0-1) and descriptors (see :func:`calisol_features`).

    Example
    -------
    A tiny hand-made sheet (one system, four temperatures) through the same cleaning as the real file:

    >>> raw = pd.DataFrame({"doi": "10.x/demo", "k": [5.0, 7.0, 9.0, 10.0],          # k in mS/cm
    ...                     "T": [273.15, 298.15, 323.15, 348.15], "c": 1.0,           # T in K, c in mol/kg
    ...                     "salt": "LiPF6", "c units": "mol/kg", "solvent ratio type": "w",
    ...                     "EC": 0.5, "DMC": 0.5})                                    # weight fractions
    >>> df, _ = clean_calisol(raw)
    >>> ts = calisol_taskset(df, min_points=2)
    >>> ts.names, ts["LiPF6|EC+DMC"].groups, ts[0].group_keys, ts[0].target_unit
    (['LiPF6|EC+DMC'], ('LiPF6', 'EC', 'DMC'), {'salt': ('LiPF6',)}, 'log10(mS/cm)')
    >>> ts[0].targets.round(3)                        # log10(k / (mS/cm))
    array([0.699, 0.845, 0.954, 1.   ])
    >>> ts.feature_names[:3]
    ['temperature_K', 'inv_temperature_1000_per_K', 'salt_concentration']

    On the real data (needs ``calisol23.xlsx``; leave-salt-out folds, ``groups[0]`` is the salt):

    >>> ts = calisol_taskset(data_dir="../shared/data")                   # doctest: +SKIP
    >>> ts                                                                # doctest: +SKIP
    TaskSet('CALiSol-23', 56 tasks, 12563 points)
    >>> folds = ts.group_kfold(5)                                         # doctest: +SKIP
    """
    t0 = time.perf_counter()
    if df is None:
        df, report = load_calisol(data_dir=data_dir)
    else:
        report = DataQualityReport("CALiSol-23 features", n_raw=len(df), n_clean=len(df))
    sub, keep = keep_min_points(
        df, "system", min_points, report, what="system", unit="points",
        detail=lambda small, kept: f"{len(small)} systems with < {min_points} points; {len(kept)} tasks kept")
    present = [c for c in solvent_columns(df) if (df[c] > 0).any()]  # fixed order, whatever min_points
    feats, names = calisol_features(sub, report, solvents=present)
    x = feats.to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        bad = feats.columns[~np.isfinite(x).all(axis=0)].tolist()
        raise ValueError(f"Non-finite CALiSol features in columns {bad}")
    solv_order = solvent_columns(df)

    def groups(name: str, rows: pd.DataFrame) -> tuple:
        solvents = [s for s in solv_order if s in rows["solvents"].iloc[0].split("+")]
        return (rows["salt"].iloc[0], *solvents)

    return tabular_taskset(sub, "system", keep, x, "log10_k", META_COLUMNS, groups, name="CALiSol-23",
                           feature_names=names, report=report, standardize_inputs=standardize,
                           target_name=TARGET_NAME, target_unit=TARGET_UNIT, t0=t0,
                           group_keys=lambda name, rows: {"salt": (rows["salt"].iloc[0],)})
