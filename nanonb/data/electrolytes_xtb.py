"""Electrochemical stability of electrolyte solvents from xTB: **simulated labels**, one task per family.

Pipeline per molecule of :func:`~nanonb.data.electrolyte_library.candidate_library`:

1. 3D geometry: RDKit ETKDG (seeded) + MMFF94, then relaxed with **GFN2-xTB** (tblite, ASE L-BFGS,
   ``fmax`` 0.05 eV/Å, at most ``max_steps`` steps);
2. vertical ionization potential and electron affinity with **IPEA1-xTB** at that geometry (doublet
   ions, same geometry): ``IP = E(M+) - E(M) - IPEA_SHIFT_EV`` and ``EA = E(M) - E(M-) - IPEA_SHIFT_EV``,
   where :data:`IPEA_SHIFT_EV` = 4.8455 eV is the empirical shift the ``xtb`` program applies to
   IPEA-xTB energy differences (``xtb --vipea``; IPEA-xTB: Asgeirsson, Bauer, Grimme, Chem. Sci. 8,
   4879 (2017));
3. potentials vs Li/Li+ (:func:`potentials_vs_li`): ``E_ox = IP/e - LI_ABSOLUTE_V`` and
   ``E_red = EA/e - LI_ABSOLUTE_V``, with the absolute potential of Li/Li+
   :data:`LI_ABSOLUTE_V` = 4.44 V (absolute SHE, IUPAC recommendation of Trasatti 1986) - 3.04 V
   (Li/Li+ vs SHE) = 1.40 V.

These are gas-phase vertical values: no solvent, no anion, no relaxation of the ion. They rank
molecules; they are **not** measured electrochemical windows, and sit well above measured anodic
limits (:mod:`nanonb.data.electrolyte_reference` checks the IPs against experiment). The task sets of
:mod:`nanonb.data.electrolyte_tasks` say ``simulated`` in their name and target name.

The labelled library is cached like the nanoalloys (:mod:`nanonb.data._cache`: ``.npz`` plus a
manifest with its SHA-256 and the config; a damaged file is regenerated with a
:class:`~nanonb.data._cache.CacheWarning`), under ``$NANONB_CACHE_DIR`` or the platform cache.
``subset="small"`` (12 molecules per family) is the CI / notebook library; ``"full"`` (40 per family).

Example
-------
>>> lib = load_electrolyte_library(subset="small")                     # doctest: +SKIP
>>> lib.frame.set_index("calisol").loc["EC", ["ip_ev", "e_ox_v"]]       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nanonb.data._cache import (
    cache_root,
    check_writable,
    frame_arrays,
    frame_from_arrays,
    notice,
    npz_arrays,
    read_cache,
    write_cache,
    write_npz_cache,
)
from nanonb.data.electrolyte_library import LIBRARY_VERSION, candidate_library
from nanonb.graphs import Structure
from nanonb.threads import limit_threads

__all__ = ["IPEA_SHIFT_EV", "LI_ABSOLUTE_V", "SHIPPED_LABELS", "SUBSETS", "ElectrolyteLibrary",
           "cache_path", "label_molecule", "library_candidates", "load_electrolyte_library",
           "potentials_vs_li", "relaxed_structure", "vertical_ip_ea", "write_shipped_labels"]

BOHR = 0.52917721067  # Å per Bohr
HARTREE = 27.211386245988  # eV per Hartree
IPEA_SHIFT_EV = 4.8455
"""Empirical shift (eV) subtracted from IPEA-xTB energy differences, as in ``xtb --vipea``."""
LI_ABSOLUTE_V = 4.44 - 3.04
"""Absolute potential of Li/Li+ (V): absolute SHE 4.44 V minus 3.04 V (Li/Li+ vs SHE)."""
_FORMAT_VERSION = 1

#: Library sizes: molecules kept per family ("tiny" is for tests).
SUBSETS = {"tiny": 2, "small": 12, "full": 40}
#: The labels of the full library (seed 0) shipped with the package, with their manifest.
SHIPPED_LABELS = Path(__file__).with_name("electrolytes_xtb_full.csv")
_LABEL_COLUMNS = ["smiles", "family", "calisol", "ip_ev", "ea_ev", "e_ox_v", "e_red_v", "opt_steps", "n_atoms",
                  "xtb_seconds"]

def potentials_vs_li(ip_ev, ea_ev) -> tuple[np.ndarray, np.ndarray]:
    """Oxidation and reduction potentials vs Li/Li+ (V) from IP and EA (eV).

    ``E_ox = IP/e - LI_ABSOLUTE_V`` and ``E_red = EA/e - LI_ABSOLUTE_V`` (:data:`LI_ABSOLUTE_V` = 1.40 V):
    removing an electron costs ``IP``, which an electrode at absolute potential ``IP/e`` can take.

    Example
    -------
    >>> e_ox, e_red = potentials_vs_li(11.4, -0.6)     # eV
    >>> float(e_ox), float(e_red)                     # V vs Li/Li+
    (10.0, -2.0)
    """
    ip, ea = np.asarray(ip_ev, dtype=np.float64), np.asarray(ea_ev, dtype=np.float64)
    return np.round(ip - LI_ABSOLUTE_V, 12), np.round(ea - LI_ABSOLUTE_V, 12)


def _etkdg(smiles: str, seed: int) -> Structure:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"ETKDG could not embed {smiles!r}")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=500)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    return Structure(z, mol.GetConformer().GetPositions().astype(np.float64))


def relaxed_structure(smiles: str, seed: int = 0, fmax: float = 0.05, max_steps: int = 200) -> tuple[Structure, int]:
    """ETKDG + MMFF geometry relaxed with GFN2-xTB (positions in Å); returns ``(structure, steps)``.

    Example
    -------
    >>> s, steps = relaxed_structure("O=C1OCCO1")          # ethylene carbonate  # doctest: +SKIP
    >>> len(s), steps < 200                                                    # doctest: +SKIP
    (10, True)
    """
    from ase import Atoms
    from ase.optimize import LBFGS
    from tblite.ase import TBLite

    start = _etkdg(smiles, seed)
    atoms = Atoms(numbers=start.numbers, positions=start.positions)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    opt = LBFGS(atoms, logfile=None)
    opt.run(fmax=fmax, steps=max_steps)
    return Structure(start.numbers, atoms.get_positions().astype(np.float64)), int(opt.nsteps)


def _energy_ev(method: str, structure: Structure, charge: int, uhf: int) -> float:
    from tblite.interface import Calculator

    calc = Calculator(method, np.asarray(structure.numbers), np.asarray(structure.positions) / BOHR,
                      charge=float(charge), uhf=int(uhf))
    calc.set("verbosity", 0)
    return float(calc.singlepoint().get("energy")) * HARTREE


def vertical_ip_ea(structure: Structure, method: str = "IPEA1-xTB", shift_ev: float = IPEA_SHIFT_EV
                   ) -> tuple[float, float]:
    """Vertical ionization potential and electron affinity (eV) from three tblite single points.

    ``IP = E(M+) - E(M) - shift_ev`` and ``EA = E(M) - E(M-) - shift_ev`` at the neutral geometry
    (ions as doublets). A closed-shell neutral molecule is assumed.

    Example
    -------
    >>> ip, ea = vertical_ip_ea(relaxed_structure("CC#N")[0])   # acetonitrile  # doctest: +SKIP
    >>> 11.5 < ip < 13.5                                                      # doctest: +SKIP
    True
    """
    with limit_threads(1):
        e0 = _energy_ev(method, structure, 0, 0)
        e_plus = _energy_ev(method, structure, 1, 1)
        e_minus = _energy_ev(method, structure, -1, 1)
    return e_plus - e0 - shift_ev, e0 - e_minus - shift_ev


def label_molecule(smiles: str, seed: int = 0, max_steps: int = 200) -> tuple[dict, Structure]:
    """xTB labels of one molecule: ``(row, relaxed structure)`` (see the module docstring).

    ``row`` holds ``ip_ev``, ``ea_ev`` (eV), ``e_ox_v``, ``e_red_v`` (V vs Li/Li+, simulated),
    ``opt_steps``, ``n_atoms`` and ``xtb_seconds``.

    Example
    -------
    >>> row, s = label_molecule("COC(=O)OC")          # dimethyl carbonate  # doctest: +SKIP
    >>> round(row["e_ox_v"] - row["ip_ev"], 2)        # doctest: +SKIP
    -1.4
    """
    t0 = time.perf_counter()
    with limit_threads(1):
        structure, steps = relaxed_structure(smiles, seed=seed, max_steps=max_steps)
        ip, ea = vertical_ip_ea(structure)
    e_ox, e_red = potentials_vs_li(ip, ea)
    row = {"smiles": smiles, "ip_ev": ip, "ea_ev": ea, "e_ox_v": float(e_ox), "e_red_v": float(e_red),
           "opt_steps": steps, "n_atoms": len(structure), "xtb_seconds": time.perf_counter() - t0}
    return row, structure


@dataclass
class ElectrolyteLibrary:
    """The labelled library: ``frame`` (one row per molecule) and the relaxed ``structures``.

    ``frame`` columns: ``smiles, family, calisol`` (from the candidate library), ``ip_ev``, ``ea_ev``,
    ``e_ox_v``, ``e_red_v`` (simulated, V vs Li/Li+), ``opt_steps``, ``n_atoms``, ``xtb_seconds``.
    ``build_seconds`` / ``build_cpu_seconds``: wall and CPU time of the xTB labelling (0 when read from
    the cache; the two differ when the machine is shared); ``from_cache``;
    ``source``: ``"xtb"`` (labelled or cached here, with structures) or ``"shipped"`` (the labels
    shipped with the package, :data:`SHIPPED_LABELS`: no structures).

    Example
    -------
    >>> lib = load_electrolyte_library(subset="small")       # doctest: +SKIP
    >>> lib.frame.groupby("family")["e_ox_v"].mean()          # V vs Li/Li+  # doctest: +SKIP
    """

    frame: pd.DataFrame
    structures: list[Structure]
    build_seconds: float = 0.0
    from_cache: bool = False
    source: str = "xtb"
    build_cpu_seconds: float = 0.0


def _config(subset: str, seed: int) -> dict:
    return {"dataset": "electrolytes_xtb", "subset": subset, "per_family": SUBSETS[subset], "seed": int(seed),
            "library_version": LIBRARY_VERSION, "format_version": _FORMAT_VERSION, "ipea_shift_ev": IPEA_SHIFT_EV,
            "li_absolute_v": LI_ABSOLUTE_V}


def library_candidates(subset: str = "small", seed: int = 0) -> pd.DataFrame:
    """The molecules of a subset: the ``"full"`` candidate library, or per family its CALiSol solvents then
    a seeded draw of the rest up to :data:`SUBSETS` ``[subset]`` molecules (so ``"small"`` is inside ``"full"``).

    Example
    -------
    >>> small, full = library_candidates("small"), library_candidates("full")   # doctest: +SKIP
    >>> set(small.smiles) <= set(full.smiles)                                   # doctest: +SKIP
    True
    """
    full = candidate_library(max_per_family=SUBSETS["full"], seed=seed)
    if subset == "full":
        return full
    keep = []
    for k, (_, g) in enumerate(full.groupby("family", sort=False)):
        named, rest = g[g.calisol != ""], g[g.calisol == ""]
        order = np.random.default_rng([seed, k, 1]).permutation(len(rest))
        keep.append(pd.concat([named, rest.iloc[order]]).head(SUBSETS[subset]).sort_values("smiles"))
    return pd.concat(keep).reset_index(drop=True)


def cache_path(subset: str = "small", seed: int = 0, cache_dir=None) -> Path:
    """Path of the ``.npz`` cache of this library (it may not exist yet).

    Example
    -------
    >>> cache_path("small", cache_dir="/tmp/c").name.startswith("electrolytes_xtb-small-")
    True
    """
    key = hashlib.sha256(json.dumps(_config(subset, seed), sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / f"electrolytes_xtb-{subset}-{key}.npz"


def _save(path: Path, cfg: dict, lib: ElectrolyteLibrary) -> None:
    arrays = {"offsets": np.concatenate([[0], np.cumsum([len(s) for s in lib.structures])]).astype(np.int64),
              "numbers": np.concatenate([s.numbers for s in lib.structures]).astype(np.int64),
              "positions": np.concatenate([s.positions for s in lib.structures]).astype(np.float64),
              **frame_arrays(lib.frame, "columns", "col__")}
    write_npz_cache(path, arrays, cfg)


def _load(path: Path, cfg: dict) -> ElectrolyteLibrary | None:
    raw = read_cache(path, cfg, source="xTB (relabelling the electrolyte library)")
    if raw is None:
        return None
    try:
        data = npz_arrays(raw, cfg)
        frame = frame_from_arrays(data, "columns", "col__")
        off = data["offsets"]
        if len(off) != len(frame) + 1 or off[-1] != len(data["numbers"]) or np.any(np.diff(off) < 1):
            raise ValueError("structure offsets do not match the rows")
        structures = [Structure(data["numbers"][a:b], data["positions"][a:b]) for a, b in zip(off[:-1], off[1:])]
        if not np.isfinite(frame[["ip_ev", "ea_ev", "e_ox_v", "e_red_v"]].to_numpy(float)).all():
            raise ValueError("non-finite labels")
    except Exception as exc:  # any damage the manifest did not catch: never use the file
        notice(f"nanonb: ignoring cache file {str(path)!r}: its content is inconsistent "
               f"({type(exc).__name__}: {exc}); relabelling the electrolyte library with xTB.")
        return None
    return ElectrolyteLibrary(frame, structures, 0.0, True)


def _generate(subset: str, seed: int, progress: bool) -> ElectrolyteLibrary:
    from tqdm.auto import tqdm

    cands = library_candidates(subset, seed)
    rows, structures = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for smi, fam, cal in tqdm(list(cands.itertuples(index=False)), desc="xTB labels (GFN2 relax + IPEA1)",
                              unit="mol", disable=not progress):
        try:
            row, s = label_molecule(smi, seed=seed)
        except Exception as exc:  # noqa: BLE001 - an embedding/SCF failure drops the molecule, with a warning
            notice(f"nanonb: xTB labelling failed for {smi} ({type(exc).__name__}: {exc}); molecule dropped.")
            continue
        rows.append({"family": fam, "calisol": cal, **row})
        structures.append(s)
    frame = pd.DataFrame(rows)[_LABEL_COLUMNS]
    return ElectrolyteLibrary(frame, structures, time.perf_counter() - t0, False, "xtb", time.process_time() - c0)


def _shipped(subset: str, seed: int) -> ElectrolyteLibrary | None:
    """The shipped labels of ``subset`` (verified against their manifest), or None."""
    if seed != 0 or not SHIPPED_LABELS.exists():
        return None
    raw = read_cache(SHIPPED_LABELS, _config("full", 0), source="xTB (labelling the library here)")
    if raw is None:
        return None
    frame = pd.read_csv(io.BytesIO(raw), keep_default_na=False, dtype={"calisol": str})
    if list(frame.columns) != _LABEL_COLUMNS:
        notice(f"nanonb: ignoring {SHIPPED_LABELS.name}: columns {list(frame.columns)} are not {_LABEL_COLUMNS}.")
        return None
    if subset != "full":
        frame = frame[frame.smiles.isin(set(library_candidates(subset, seed).smiles))].reset_index(drop=True)
    return ElectrolyteLibrary(frame, [], 0.0, True, "shipped")


def write_shipped_labels(lib: ElectrolyteLibrary) -> Path:
    """Write the labels of a freshly computed ``"full"`` library (seed 0) as :data:`SHIPPED_LABELS` + manifest.

    A maintainer's step after a change of the library or of the pipeline:
    ``write_shipped_labels(load_electrolyte_library("full", shipped=False, refresh=True))``.

    Example
    -------
    >>> write_shipped_labels(load_electrolyte_library("full", shipped=False))   # doctest: +SKIP
    """
    if lib.source != "xtb":
        raise ValueError("write_shipped_labels needs a library labelled here (source 'xtb'), not shipped labels")
    write_cache(SHIPPED_LABELS, lib.frame[_LABEL_COLUMNS].to_csv(index=False).encode(), _config("full", 0))
    return SHIPPED_LABELS


def load_electrolyte_library(subset: str = "small", seed: int = 0, cache_dir=None, refresh: bool = False,
                             progress: bool = True, shipped: bool = True) -> ElectrolyteLibrary:
    """The xTB-labelled electrolyte library (simulated labels), generated once and cached.

    Parameters
    ----------
    subset:
        ``"small"`` (12 molecules per family, CI and notebooks), ``"full"`` (40 per family) or ``"tiny"``
        (2 per family, tests). ``"small"`` and ``"tiny"`` are inside ``"full"``.
    seed:
        Seed of the library draw and of the ETKDG embedding.
    cache_dir:
        Cache folder (default ``$NANONB_CACHE_DIR`` or ``platformdirs.user_cache_dir("nanonb")``).
    refresh:
        Relabel even if a verified cache exists.
    progress:
        tqdm progress bar over the molecules while labelling.
    shipped:
        Without a verified cache file, use the labels shipped with the package (:data:`SHIPPED_LABELS`,
        seed 0, no structures) instead of running xTB. ``False``: label here (structures included).

    Order: verified cache file (``refresh=False``), then shipped labels (``shipped=True``), then xTB
    (about 0.7 s per molecule on one busy core: 93 s for ``"small"``).

    Example
    -------
    >>> lib = load_electrolyte_library("small")                         # doctest: +SKIP
    >>> lib.frame[["smiles", "family", "e_ox_v", "e_red_v"]].head()      # V vs Li/Li+  # doctest: +SKIP
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {sorted(SUBSETS)}, not {subset!r}")
    cfg = _config(subset, seed)
    path = cache_path(subset, seed, cache_dir)
    lib = None if refresh else _load(path, cfg)
    if lib is None and shipped and not refresh:
        lib = _shipped(subset, seed)
    if lib is not None:
        return lib
    unwritable = check_writable(path.parent)
    if unwritable:
        notice(f"nanonb: the cache folder {str(path.parent)!r} is not writable ({unwritable}); labelling the "
               "electrolyte library without caching it. Set NANONB_CACHE_DIR to a writable folder.")
    lib = _generate(subset, seed, progress)
    if not unwritable:
        try:
            _save(path, cfg, lib)
        except OSError as exc:
            notice(f"nanonb: could not write the cache file {str(path)!r} ({exc}); the library is used uncached.")
    return lib
