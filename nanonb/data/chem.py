"""RDKit descriptors of the molecules behind the tabular data sets (needs the ``chem`` extra).

- CALiSol-23 electrolytes: :func:`anion_descriptors` of each salt's anion (:data:`ANION_SMILES`),
  :func:`solvent_descriptors` of each solvent (sourced properties from :func:`solvent_table`, the
  rest from its SMILES).
- LNPDB lipid nanoparticles: :func:`morgan_fingerprints` and :func:`lipid_descriptors` of the
  ionizable lipids (both cached per SMILES for the session).

Structures and tabulated values only: nothing here is fitted to a data set.

Example
-------
>>> from nanonb.data.chem import anion_descriptors, morgan_fingerprints   # doctest: +SKIP
>>> anion_descriptors(["LiPF6"]).loc["LiPF6", "anion_n_F"]               # doctest: +SKIP
6.0
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["ANION_FEATURES", "ANION_SMILES", "LIPID_DESCRIPTORS", "SOLVENT_FEATURES", "anion_descriptors",
           "lipid_descriptors", "morgan_counts", "morgan_fingerprints", "require_rdkit", "solvent_descriptors",
           "solvent_table"]


def require_rdkit():
    """``(Chem, Crippen, Descriptors, rdMolDescriptors)`` from RDKit, with its log silenced.

    Raises ``ImportError`` naming the ``chem`` extra when RDKit is missing.

    Example
    -------
    >>> Chem = require_rdkit()[0]               # doctest: +SKIP
    >>> Chem.MolFromSmiles("CCO").GetNumAtoms()  # doctest: +SKIP
    3
    """
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors
    except ImportError as exc:  # pragma: no cover - rdkit is in the 'chem' extra
        raise ImportError(
            "RDKit is needed for the CALiSol/LNPDB descriptors: pip install 'nanonb[chem]' (or rdkit)."
        ) from exc
    RDLogger.DisableLog("rdApp.*")
    return Chem, Crippen, Descriptors, rdMolDescriptors



#: SMILES of each salt's anion (the cation is Li+ for all of them). Structures, not measured values:
#: LiBOB = bis(oxalato)borate, LiBMB = bis(malonato)borate (Xu & Angell's abbreviation),
#: LiBPFPB = bis(perfluoropinacolato)borate B[OC(CF3)2]2^-, LiTDI/LiPDI = 4,5-dicyano-2-
#: (trifluoromethyl / pentafluoroethyl)imidazolide.
ANION_SMILES: dict[str, str] = {
    "LiPF6": "F[P-](F)(F)(F)(F)F",
    "LiAsF6": "F[As-](F)(F)(F)(F)F",
    "LiBF4": "F[B-](F)(F)F",
    "LiClO4": "[O-]Cl(=O)(=O)=O",
    "LiCF3SO3": "[O-]S(=O)(=O)C(F)(F)F",
    "LiTFSI": "O=S(=O)([N-]S(=O)(=O)C(F)(F)F)C(F)(F)F",
    "LiFSI": "O=S(=O)([N-]S(=O)(=O)F)F",
    "LiBOB": "[B-]12(OC(=O)C(=O)O1)OC(=O)C(=O)O2",
    "LiBMB": "[B-]12(OC(=O)CC(=O)O1)OC(=O)CC(=O)O2",
    "LiBPFPB": (
        "[B-]12(OC(C(F)(F)F)(C(F)(F)F)C(O1)(C(F)(F)F)C(F)(F)F)"
        "OC(C(F)(F)F)(C(F)(F)F)C(O2)(C(F)(F)F)C(F)(F)F"
    ),
    "LiTDI": "FC(F)(F)c1nc(C#N)c(C#N)[n-]1",
    "LiPDI": "FC(F)(F)C(F)(F)c1nc(C#N)c(C#N)[n-]1",
}


def solvent_table() -> pd.DataFrame:
    """The tabulated solvent properties shipped with nanonb (``nanonb/data/solvents.csv``).

    Columns: ``solvent`` (CALiSol column name), ``name``, ``smiles``, ``dielectric_constant``
    (relative permittivity at ``dielectric_T_C`` °C), ``viscosity_mPa_s`` (at ``viscosity_T_C`` °C),
    ``source`` and ``note``. Empty values are unknown (no sourced value), never guessed.

    Example
    -------
    >>> solvent_table().set_index("solvent").loc["EC", "dielectric_constant"]  # doctest: +SKIP
    89.78
    """
    with resources.files("nanonb.data").joinpath("solvents.csv").open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def _count(mol, symbol: str) -> int:
    return sum(1 for a in mol.GetAtoms() if a.GetSymbol() == symbol)


@cache
def _anion_row(smiles: str) -> tuple[float, ...]:
    Chem, Crippen, Descriptors, rdMolDescriptors = require_rdkit()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"Invalid anion SMILES {smiles!r}")
    return (Descriptors.MolWt(mol), float(mol.GetNumHeavyAtoms()), float(_count(mol, "C")),
            float(_count(mol, "N")), float(_count(mol, "O")), float(_count(mol, "F")),
            rdMolDescriptors.CalcTPSA(mol), Crippen.MolMR(mol))


ANION_FEATURES = ["anion_molar_mass_g_mol", "anion_n_heavy_atoms", "anion_n_C", "anion_n_N", "anion_n_O",
                  "anion_n_F", "anion_tpsa_A2", "anion_molar_refractivity"]


def anion_descriptors(salts: list[str] | None = None) -> pd.DataFrame:
    """RDKit descriptors of each salt's anion (index: salt label).

    Columns: molar mass (g/mol), heavy-atom count, C/N/O/F counts, TPSA (Å²) and Crippen molar
    refractivity, so a salt unseen in meta-training still has a chemistry description.

    Raises
    ------
    KeyError
        A salt without an anion SMILES in :data:`ANION_SMILES` (add it there).

    Example
    -------
    >>> anion_descriptors(["LiPF6", "LiTFSI"])["anion_n_F"].tolist()  # doctest: +SKIP
    [6.0, 6.0]
    """
    salts = sorted(ANION_SMILES) if salts is None else list(salts)
    unknown = [s for s in salts if s not in ANION_SMILES]
    if unknown:
        raise KeyError(f"No anion SMILES for salt(s) {unknown}; add them to nanonb.data.chem.ANION_SMILES.")
    return pd.DataFrame([_anion_row(ANION_SMILES[s]) for s in salts], index=salts, columns=ANION_FEATURES)


SOLVENT_FEATURES = ["solv_dielectric_constant", "solv_log10_viscosity_mPa_s", "solv_molar_mass_g_mol",
                    "solv_molar_refractivity", "solv_tpsa_A2", "solv_logp", "solv_n_hba"]


def solvent_descriptors(solvents: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-solvent descriptors (index: CALiSol solvent column name), with imputation.

    Dielectric constant and viscosity come from :func:`solvent_table`; missing values are imputed
    with the median over the solvents that have a sourced value (viscosity: median of log10). The
    rest is computed with RDKit from the SMILES: molar mass (g/mol), Crippen molar refractivity
    (a size/polarisability proxy, instead of a tabulated density), TPSA (Å²), Crippen logP and the
    number of H-bond acceptors.

    Returns
    -------
    desc:
        One row per solvent, columns :data:`SOLVENT_FEATURES` (without the ``solv_`` meaning of a
        mixture: here they are pure-solvent values).
    imputed:
        Boolean frame (same index), True where dielectric constant / viscosity were imputed.

    Example
    -------
    >>> desc, imputed = solvent_descriptors(["EC", "DMC"])  # doctest: +SKIP
    """
    Chem, Crippen, Descriptors, rdMolDescriptors = require_rdkit()
    tab = solvent_table().set_index("solvent")
    solvents = list(tab.index) if solvents is None else list(solvents)
    unknown = [s for s in solvents if s not in tab.index]
    if unknown:
        raise KeyError(f"Solvent(s) {unknown} are not in nanonb/data/solvents.csv; add a row (SMILES, "
                       "sourced dielectric constant / viscosity or empty).")
    eps = tab["dielectric_constant"].astype(float)
    logeta = np.log10(tab["viscosity_mPa_s"].astype(float))
    rows, imp = [], []
    for s in solvents:
        mol = Chem.MolFromSmiles(tab.at[s, "smiles"])
        if mol is None:
            raise ValueError(f"Invalid SMILES for solvent {s!r} in solvents.csv: {tab.at[s, 'smiles']!r}")
        e, le = eps[s], logeta[s]
        imp.append((bool(np.isnan(e)), bool(np.isnan(le))))
        rows.append((eps.median() if np.isnan(e) else e, logeta.median() if np.isnan(le) else le,
                     Descriptors.MolWt(mol), Crippen.MolMR(mol), rdMolDescriptors.CalcTPSA(mol),
                     Crippen.MolLogP(mol), float(rdMolDescriptors.CalcNumHBA(mol))))
    desc = pd.DataFrame(rows, index=solvents, columns=SOLVENT_FEATURES)
    imputed = pd.DataFrame(imp, index=solvents, columns=["dielectric_constant", "viscosity_mPa_s"])
    return desc, imputed


# ---------------------------------------------------------------------------- lipids
LIPID_DESCRIPTORS = ["il_molar_mass_g_mol", "il_logp", "il_tpsa_A2", "il_n_hbd", "il_n_hba",
                     "il_n_rotatable_bonds", "il_n_heavy_atoms", "il_n_N", "il_fraction_csp3", "il_n_rings"]

_FP_CACHE: dict[tuple[str, int, int], np.ndarray] = {}
_DESC_CACHE: dict[str, np.ndarray] = {}


def morgan_fingerprints(smiles: list[str] | np.ndarray, n_bits: int = 256, radius: int = 2) -> np.ndarray:
    """Morgan (ECFP-like) bit vectors, shape ``(len(smiles), n_bits)``, uint8.

    Cached per (SMILES, n_bits, radius) for the whole session, so repeated lipids and rebuilt task
    sets cost nothing.

    Example
    -------
    >>> morgan_fingerprints(["CCO", "CCN"], n_bits=64).shape  # doctest: +SKIP
    (2, 64)
    """
    Chem = require_rdkit()[0]
    from rdkit.Chem import rdFingerprintGenerator

    gen = None
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    for i, s in enumerate(smiles):
        key = (s, n_bits, radius)
        fp = _FP_CACHE.get(key)
        if fp is None:
            if gen is None:
                gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                raise ValueError(f"Invalid SMILES {s!r}")
            fp = gen.GetFingerprintAsNumPy(mol).astype(np.uint8)
            _FP_CACHE[key] = fp
        out[i] = fp
    return out


def morgan_counts(smiles: list[str] | np.ndarray, n_bits: int = 256, radius: int = 2) -> np.ndarray:
    """Morgan count fingerprints (how often each hashed environment occurs), ``(len(smiles), n_bits)``, uint16.

    Counts tell a C12 tail from a C18 one, which bit vectors (present / absent) cannot; the
    Tanimoto kernel of :mod:`nanonb.learners.tanimoto_gp` works on either.

    Example
    -------
    >>> morgan_counts(["CCCCCCCCCCCC", "CCCCCC"], n_bits=64).max(axis=1)  # doctest: +SKIP
    array([8, 2], dtype=uint16)
    """
    Chem = require_rdkit()[0]
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.uint16)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise ValueError(f"Invalid SMILES {s!r}")
        out[i] = np.minimum(gen.GetCountFingerprintAsNumPy(mol), 65535)
    return out


def lipid_descriptors(smiles: list[str] | np.ndarray) -> np.ndarray:
    """RDKit descriptors of each SMILES (columns :data:`LIPID_DESCRIPTORS`), cached per SMILES.

    Molar mass (g/mol), Crippen logP, TPSA (Å²), H-bond donors / acceptors, rotatable bonds, heavy
    atoms, nitrogen count, fraction of sp3 carbons, ring count.

    Example
    -------
    >>> lipid_descriptors(["CCCCCCCCN(C)C"])[0, LIPID_DESCRIPTORS.index("il_n_N")]  # doctest: +SKIP
    1.0
    """
    Chem, Crippen, Descriptors, rdMolDescriptors = require_rdkit()
    out = np.zeros((len(smiles), len(LIPID_DESCRIPTORS)), dtype=np.float64)
    for i, s in enumerate(smiles):
        d = _DESC_CACHE.get(s)
        if d is None:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                raise ValueError(f"Invalid SMILES {s!r}")
            d = np.array([
                Descriptors.MolWt(mol), Crippen.MolLogP(mol), rdMolDescriptors.CalcTPSA(mol),
                rdMolDescriptors.CalcNumHBD(mol), rdMolDescriptors.CalcNumHBA(mol),
                rdMolDescriptors.CalcNumRotatableBonds(mol), mol.GetNumHeavyAtoms(),
                _count(mol, "N"),
                rdMolDescriptors.CalcFractionCSP3(mol), rdMolDescriptors.CalcNumRings(mol),
            ], dtype=np.float64)
            _DESC_CACHE[s] = d
        out[i] = d
    return out
