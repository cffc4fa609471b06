"""Few-shot tasks of the electrolyte library: one task per chemical family, RDKit features as inputs.

Inputs of every molecule (:func:`molecule_features`): :data:`DESCRIPTOR_NAMES` (RDKit descriptors:
the ten of :func:`~nanonb.data.chem.lipid_descriptors`, element counts, multiple bonds, fluorine
share), z-scored over the whole library (label-free statistics), followed by a ``n_bits`` Morgan
fingerprint (radius 2, 0/1). ``task.descriptors`` holds the z-scored descriptors only (the view of the
descriptor GP and of the leakage report); the Tanimoto GP reads the fingerprint columns (the last
``n_bits`` inputs). Targets: ``e_ox_v`` or ``e_red_v`` (simulated, V vs Li/Li+).

Example
-------
>>> from nanonb.data.electrolytes_xtb import load_electrolyte_library
>>> ts = stability_taskset(load_electrolyte_library("small"), "e_ox_v")   # doctest: +SKIP
>>> ts.names[:3], ts[0].target_unit                                        # doctest: +SKIP
(['cyclic_carbonate', 'linear_carbonate', 'ester'], 'V vs Li/Li+')
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nanonb.data.chem import LIPID_DESCRIPTORS, lipid_descriptors, morgan_fingerprints, require_rdkit
from nanonb.tasks import Task, TaskSet

__all__ = ["DESCRIPTOR_NAMES", "N_BITS", "TARGETS", "features_for", "frame_of", "molecule_features",
           "stability_taskset"]

#: Descriptor columns (before the fingerprint bits).
DESCRIPTOR_NAMES = [*(c.replace("il_", "mol_") for c in LIPID_DESCRIPTORS), "mol_n_F", "mol_n_O", "mol_n_S",
                    "mol_n_P", "mol_n_double_bonds", "mol_n_triple_bonds", "mol_fraction_F"]
#: Default fingerprint length.
N_BITS = 128
#: Target column -> (target name, unit).
TARGETS = {"e_ox_v": ("E_ox (simulated, IPEA1-xTB)", "V vs Li/Li+"),
           "e_red_v": ("E_red (simulated, IPEA1-xTB)", "V vs Li/Li+")}


def _extra(smiles: str) -> list[float]:
    Chem = require_rdkit()[0]
    mol = Chem.MolFromSmiles(smiles)
    count = {s: sum(a.GetSymbol() == s for a in mol.GetAtoms()) for s in ("F", "O", "S", "P")}
    bonds = [b.GetBondType() for b in mol.GetBonds()]
    return [count["F"], count["O"], count["S"], count["P"], sum(b == Chem.BondType.DOUBLE for b in bonds),
            sum(b == Chem.BondType.TRIPLE for b in bonds), count["F"] / mol.GetNumHeavyAtoms()]


def molecule_features(smiles, n_bits: int = N_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Raw RDKit descriptors ``(n, len(DESCRIPTOR_NAMES))`` and Morgan bits ``(n, n_bits)`` of ``smiles``.

    Example
    -------
    >>> d, fp = molecule_features(["O=C1OCCO1", "COC(=O)OC"], n_bits=64)   # doctest: +SKIP
    >>> d.shape, fp.shape                                                  # doctest: +SKIP
    ((2, 17), (2, 64))
    """
    smiles = list(smiles)
    desc = np.hstack([lipid_descriptors(smiles), np.array([_extra(s) for s in smiles], dtype=np.float64)])
    return desc, morgan_fingerprints(smiles, n_bits=n_bits).astype(np.float64)


def stability_taskset(lib, target: str = "e_ox_v", n_bits: int = N_BITS, min_points: int = 6) -> TaskSet:
    """One task per family of the labelled library ``lib`` (:class:`~nanonb.data.electrolytes_xtb.ElectrolyteLibrary`).

    Inputs: z-scored descriptors then ``n_bits`` fingerprint bits; ``descriptors``: the z-scored
    descriptors; ``meta``: ``smiles, calisol, ip_ev, ea_ev, e_ox_v, e_red_v``; ``groups = (family,)``.
    The z-score statistics (label-free, over the whole library) are kept as ``ts.feature_mean`` and
    ``ts.feature_std``; ``ts.n_bits`` is the fingerprint length. Families with fewer than
    ``min_points`` molecules are dropped.

    Example
    -------
    >>> ts = stability_taskset(lib, "e_red_v")                  # doctest: +SKIP
    >>> ts["nitrile"].targets[:3]                               # V vs Li/Li+  # doctest: +SKIP
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}, not {target!r}")
    frame = lib.frame.reset_index(drop=True)
    desc, bits = molecule_features(frame["smiles"], n_bits)
    mean, std = desc.mean(0), desc.std(0)
    std[std < 1e-12] = 1.0
    z = (desc - mean) / std
    x = np.hstack([z, bits])
    name, unit = TARGETS[target]
    tasks = []
    for fam in dict.fromkeys(frame["family"]):
        idx = np.flatnonzero(frame["family"].to_numpy() == fam)
        if len(idx) < min_points:
            continue
        meta = frame.loc[idx, ["smiles", "calisol", "ip_ev", "ea_ev", "e_ox_v", "e_red_v"]].reset_index(drop=True)
        tasks.append(Task(fam, x[idx], frame[target].to_numpy(np.float64)[idx], meta=meta, groups=(fam,),
                          descriptors=z[idx], target_name=name, target_unit=unit))
    names = DESCRIPTOR_NAMES + [f"morgan_{i}" for i in range(n_bits)]
    ts = TaskSet(tasks, name=f"electrolyte stability {target} (simulated)", feature_names=names)
    ts.feature_mean, ts.feature_std, ts.n_bits = mean, std, n_bits
    return ts


def features_for(smiles, ts: TaskSet) -> np.ndarray:
    """Inputs of new molecules in the layout of ``ts`` (its z-score statistics and fingerprint length).

    Example
    -------
    >>> x = features_for(["O=C1OCC(F)O1"], ts)                   # doctest: +SKIP
    >>> x.shape[1] == ts[0].inputs.shape[1]                     # doctest: +SKIP
    True
    """
    desc, bits = molecule_features(smiles, ts.n_bits)
    return np.hstack([(desc - ts.feature_mean) / ts.feature_std, bits])


def frame_of(ts: TaskSet) -> pd.DataFrame:
    """All molecules of ``ts`` as one frame (``family`` plus the task meta columns and the target).

    Example
    -------
    >>> frame_of(ts).groupby("family").size()                   # doctest: +SKIP
    """
    return pd.concat([t.meta.assign(family=t.name, target=t.targets) for t in ts], ignore_index=True)
