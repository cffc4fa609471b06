"""A candidate library of electrolyte solvents and additives, enumerated with RDKit (structures only).

Each chemical *family* has one or more SMILES templates with attachment points ``[*:1]``, ``[*:2]``, ...;
every combination of substituents from the family's list is bonded there (``Chem.molzip``) and
canonicalised with RDKit, and duplicates (within and across families) are dropped. A family keeps at
most ``max_per_family`` molecules: its CALiSol solvents first (so the conductivity case study and this
library meet), then a seeded random draw of the rest, in canonical-SMILES order. Nothing here is
computed with quantum chemistry: :mod:`nanonb.data.electrolytes_xtb` labels the molecules.

Families (:data:`FAMILIES`): cyclic and linear carbonates, linear ethers and glymes, cyclic ethers,
fluorinated ethers, esters and lactones, nitriles, sulfones, sulfites, sulfonamides and phosphates.
Substituents: H, F, CH3, C2H5, CF3, CH2CF3, OCH3, vinyl, ... (per family, see :data:`FAMILIES`).

Example
-------
>>> lib = candidate_library(max_per_family=12)                # doctest: +SKIP
>>> lib.groupby("family").size().min() <= 12                  # doctest: +SKIP
True
>>> lib.set_index("calisol").loc["EC", "smiles"]              # doctest: +SKIP
'O=C1CCOC1'
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nanonb.data.chem import require_rdkit, solvent_table

__all__ = ["FAMILIES", "Family", "LIBRARY_VERSION", "canonical", "candidate_library", "enumerate_family"]

LIBRARY_VERSION = 1

# substituents, written from their attachment atom ("" is hydrogen)
_RING = ("", "F", "C", "C(F)(F)F", "OC", "C=C", "CC", "CF")            # on a ring carbon
_ALKYL = ("C", "CC", "CCC", "C(C)C", "C=C", "CC=C", "CCOC")             # O-, S- or N-bound groups
_FALKYL = ("CC(F)(F)F", "CCF", "C(F)(F)F", "C(F)(F)C(F)F", "CC(F)(F)C(F)F", "CC(F)F", "C(F)(F)C(F)(F)F")
_ACYL = ("", "C", "CC", "CCC", "C(C)C", "C(F)(F)F", "CF", "C=C", "COC", "CC(F)(F)F")   # C(=O)-bound groups


@dataclass(frozen=True)
class Family:
    """One chemical family: SMILES ``templates`` with attachment points ``[*:1]``, ``[*:2]``, ``[*:3]``
    filled from ``substituents`` (SMILES written from the attachment atom; ``""`` is hydrogen).

    ``symmetric``: fill the slots with combinations with replacement (unordered), which avoids
    generating the same molecule twice from a symmetric template. ``label``: human-readable name.

    Example
    -------
    >>> Family("nitrile", "nitriles", ("N#C[*:1]",), ("C", "CC")).templates
    ('N#C[*:1]',)
    """

    name: str
    label: str
    templates: tuple[str, ...]
    substituents: tuple[str, ...]
    symmetric: bool = False


#: The families of the library, in table order.
FAMILIES: tuple[Family, ...] = (
    Family("cyclic_carbonate", "cyclic carbonates",
           ("O=C1OC([*:1])C([*:2])O1", "O=C1OC([*:1])C([*:2])CO1"), _RING),
    Family("linear_carbonate", "linear carbonates", ("O=C(O[*:1])O[*:2]",), _ALKYL + _FALKYL[:3], symmetric=True),
    Family("ester", "esters and lactones",
           ("O=C([*:1])O[*:2]", "O=C1OC([*:1])CC1[*:2]", "O=C1OCC([*:1])C1[*:2]"), _ACYL + _ALKYL[:4]),
    Family("ether", "linear ethers and glymes",
           ("[*:1]O[*:2]", "[*:1]OCCO[*:2]", "[*:1]OCCOCCO[*:2]", "[*:1]OCO[*:2]"), _ALKYL, symmetric=True),
    Family("cyclic_ether", "cyclic ethers",
           ("C1CC([*:1])C([*:2])O1", "C1OC([*:1])C([*:2])O1", "C1OC([*:1])C([*:2])OC1", "C1CC([*:1])OC([*:2])O1"),
           _RING),
    Family("fluoroether", "fluorinated ethers",
           ("[*:1]O[*:2]", "[*:1]OCCO[*:2]", "[*:1]OCO[*:2]"), _FALKYL + ("C", "CC"), symmetric=True),
    Family("nitrile", "nitriles",
           ("N#C[*:1]", "N#CC([*:1])C([*:2])C#N", "N#CCC([*:1])C([*:2])C#N"),
           ("", "C", "CC", "CCC", "C(C)C", "CC(F)(F)F", "CCF", "C=C", "COC", "CCOC", "C(F)(F)F")),
    Family("sulfone", "sulfones", ("O=S(=O)([*:1])[*:2]", "O=S1(=O)CC([*:1])C([*:2])C1"),
           _ALKYL[:5] + _FALKYL[:3] + ("", "F")),
    Family("sulfite", "sulfites", ("O=S(O[*:1])O[*:2]", "O=S1OC([*:1])C([*:2])O1"),
           _ALKYL[:5] + _FALKYL[:3] + ("",)),
    Family("sulfonamide", "sulfonamides",
           ("CN(C)S(=O)(=O)[*:1]", "O=S(=O)(N([*:1])[*:2])C(F)(F)F", "CN([*:1])S(=O)(=O)[*:2]"),
           _ALKYL[:5] + _FALKYL[:2] + ("F",)),
    Family("phosphate", "phosphates", ("O=P(O[*:1])(O[*:2])O[*:3]",), _ALKYL[:5] + _FALKYL[:3], symmetric=True),
)


def canonical(smiles: str) -> str:
    """Canonical RDKit SMILES of ``smiles`` (``ValueError`` if it does not parse).

    Example
    -------
    >>> canonical("C1COC(=O)O1")                                   # doctest: +SKIP
    'O=C1OCCO1'
    """
    Chem = require_rdkit()[0]
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}")
    return Chem.MolToSmiles(mol)


def _build(template: str, subs: tuple[str, ...]):
    """The molecule of ``template`` with slot ``[*:k]`` bonded to ``subs[k-1]`` (None if RDKit rejects it)."""
    Chem = require_rdkit()[0]
    parts = [template] + [f"[*:{k + 1}]{sub or '[H]'}" for k, sub in enumerate(subs)]
    mol = Chem.MolFromSmiles(".".join(parts))
    if mol is None:
        return None
    try:
        mol = Chem.RemoveHs(Chem.molzip(mol))
        Chem.SanitizeMol(mol)
    except Exception:  # noqa: BLE001 - any RDKit failure: the combination makes no molecule
        return None
    return mol


def enumerate_family(family: Family, max_heavy: int = 16) -> list[str]:
    """Every distinct canonical SMILES of ``family`` with at most ``max_heavy`` heavy atoms, sorted.

    Molecules that RDKit rejects (e.g. a substituent where the template makes no chemical sense) are
    skipped silently, as are ions, radicals, protic molecules (H on O, N or S) and those with fewer than
    3 heavy atoms.

    Example
    -------
    >>> enumerate_family(Family("n", "nitriles", ("N#C[*:1]",), ("C", "CC", "C")))   # doctest: +SKIP
    ['CC#N', 'CCC#N']
    """
    Chem = require_rdkit()[0]
    from rdkit.Chem import Descriptors

    out: set[str] = set()
    for template in family.templates:
        n_slots = template.count("[*:")
        combos = (itertools.combinations_with_replacement(family.substituents, n_slots) if family.symmetric
                  else itertools.product(family.substituents, repeat=n_slots))
        for subs in combos:
            mol = _build(template, tuple(subs))
            if mol is None or not 3 <= mol.GetNumHeavyAtoms() <= max_heavy:
                continue
            if Descriptors.NumRadicalElectrons(mol) or any(a.GetFormalCharge() for a in mol.GetAtoms()):
                continue
            if any(a.GetSymbol() != "C" and a.GetTotalNumHs() for a in mol.GetAtoms()):
                continue  # aprotic solvents only: no O-H, N-H or S-H (acids, alcohols)
            out.add(Chem.MolToSmiles(mol))
    return sorted(out)


def _calisol_smiles() -> dict[str, str]:
    """canonical SMILES -> CALiSol solvent column name, for the solvents with a SMILES."""
    tab = solvent_table()
    return {canonical(s): name for name, s in zip(tab["solvent"], tab["smiles"]) if isinstance(s, str)}


def candidate_library(max_per_family: int = 40, seed: int = 0, families: tuple[str, ...] | None = None,
                      max_heavy: int = 16) -> pd.DataFrame:
    """The candidate library: one row per molecule, columns ``smiles, family, calisol``.

    Parameters
    ----------
    max_per_family:
        Molecules kept per family: its CALiSol solvents first, then a seeded draw of the rest.
    seed:
        Seed of that draw (the library is deterministic for given arguments).
    families:
        Names from :data:`FAMILIES` to include (default all).
    max_heavy:
        Largest heavy-atom count kept.

    Returns
    -------
    pandas.DataFrame
        ``smiles`` (canonical), ``family`` (name in :data:`FAMILIES`) and ``calisol`` (the CALiSol
        solvent column name, or ``""``), sorted by family (table order) then SMILES. A molecule made by
        two families stays in the first one.

    Example
    -------
    >>> lib = candidate_library(max_per_family=10, families=("nitrile",))   # doctest: +SKIP
    >>> "CC#N" in set(lib["smiles"]), lib.loc[lib.smiles == "CC#N", "calisol"].item()  # doctest: +SKIP
    (True, 'AN')
    """
    names = [f.name for f in FAMILIES]
    chosen = names if families is None else list(families)
    unknown = [f for f in chosen if f not in names]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {names}")
    if int(max_per_family) < 2:
        raise ValueError(f"max_per_family must be at least 2, got {max_per_family}")
    calisol = _calisol_smiles()
    seen: set[str] = set()
    rows = []
    for k, fam in enumerate(FAMILIES):
        members = [s for s in enumerate_family(fam, max_heavy) if s not in seen]
        seen.update(members)
        if fam.name not in chosen:
            continue
        named = [s for s in members if s in calisol]
        rest = [s for s in members if s not in calisol]
        rng = np.random.default_rng([seed, k])
        n_rest = max(0, int(max_per_family) - len(named))
        pick = sorted(rng.choice(len(rest), size=min(n_rest, len(rest)), replace=False).tolist())
        keep = sorted(named[: int(max_per_family)] + [rest[i] for i in pick])
        rows += [{"smiles": s, "family": fam.name, "calisol": calisol.get(s, "")} for s in keep]
    return pd.DataFrame(rows, columns=["smiles", "family", "calisol"])
