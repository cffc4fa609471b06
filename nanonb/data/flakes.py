"""Graphene nanoflakes and nanoribbon fragments labelled with GFN2-xTB (simulated data).

The structures come from :mod:`nanonb.data.honeycomb` (shapes, dopants, cleaning and the π-electron
convention are described there). Each label is the HOMO–LUMO gap (eV) of a **GFN2-xTB single point
at the unrelaxed idealised geometry (simulated label, not experiment)**, computed with ``tblite``
(:func:`xtb_gap`). :func:`load_flakes` builds (and caches) one task per shape × dopant family;
:func:`drop_shared_molecules` and :func:`size_split` are the leakage-free splits of the ``tb``
benchmark. The plain Hückel gap of every flake (:func:`nanonb.physics.pisystem.huckel_gaps`) is kept
as the meta column ``huckel_gap_ev``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nanonb.data._cache import cache_root
from nanonb.data.honeycomb import DEFAULT_DOPANTS, DESCRIPTOR_NAMES, SHAPES, Flake, fingerprint, generate_family
from nanonb.graphs import Structure
from nanonb.physics.pisystem import huckel_gaps
from nanonb.tasks import Task, TaskSet
from nanonb.threads import limit_threads

BOHR = 0.52917721067  # Å per Bohr
HARTREE = 27.211386245988  # eV per Hartree
_CACHE_VERSION = "flakes-v4"

# ---------------------------------------------------------------------------- xTB labels
def xtb_gap(
    structure: Structure,
    charge: int = 0,
    uhf: int = 0,
    method: str = "GFN2-xTB",
    accuracy: float = 1.0,
    n_threads: int | None = 1,
) -> tuple[float, float]:
    """HOMO–LUMO gap and total energy from a GFN2-xTB single point (tblite).

    GFN2-xTB single point at the unrelaxed idealised geometry (simulated label, not experiment).

    Parameters
    ----------
    structure:
        The molecule (positions in Å; converted to Bohr for tblite).
    charge:
        Total charge (e).
    uhf:
        Number of unpaired electrons (0: closed shell, as for every generated flake).
    method:
        tblite method name.
    accuracy:
        tblite numerical accuracy (1.0 is its default).
    n_threads:
        OpenMP (tblite), BLAS and torch threads during the call (:func:`nanonb.threads.limit_threads`;
        ``None``: leave the setting alone). One thread
        is the default: on our shared 2-core machine under load, 32 flakes (6-60 heavy atoms)
        took 36 s with 2 OpenMP threads and 6 s with 1.

    Returns
    -------
    (gap, energy):
        HOMO–LUMO gap in eV and total energy in eV. HOMO and LUMO are indexed by electron count
        (the sum of orbital occupations): with ``n`` electrons in a closed shell, HOMO is orbital
        ``ceil(n/2) - 1`` and LUMO the next one, so fractional Fermi smearing occupations (tblite
        uses 300 K) of near-degenerate frontier levels do not shift the indexing.

    Example
    -------
    >>> from nanonb.data.honeycomb import generate_flake
    >>> gap, energy = xtb_gap(generate_flake("hexagonal-zigzag", 1.5).structure)  # benzene  # doctest: +SKIP
    >>> 4.0 < gap < 5.5                                                           # eV  # doctest: +SKIP
    True
    """
    from tblite.interface import Calculator

    calc = Calculator(method, np.asarray(structure.numbers), np.asarray(structure.positions) / BOHR,
                      charge=float(charge), uhf=int(uhf))
    calc.set("verbosity", 0)
    calc.set("accuracy", float(accuracy))
    if n_threads is None:
        res = calc.singlepoint()
    else:
        with limit_threads(int(n_threads)):
            res = calc.singlepoint()
    eps = np.asarray(res.get("orbital-energies"), dtype=float).reshape(-1) * HARTREE
    occ = np.asarray(res.get("orbital-occupations"), dtype=float)
    n_el = int(round(float(occ.sum())))
    if uhf != 0 or occ.ndim > 1:
        raise NotImplementedError("xtb_gap handles closed shells (uhf=0) only.")
    homo = (n_el + 1) // 2 - 1
    if homo < 0 or homo + 1 >= len(eps):
        raise ValueError(f"cannot find HOMO/LUMO: {n_el} electrons in {len(eps)} orbitals")
    return float(eps[homo + 1] - eps[homo]), float(res.get("energy")) * HARTREE


# ---------------------------------------------------------------------------- data set
def default_cache_dir() -> Path:
    """``$NANONB_CACHE_DIR/flakes`` if set, else the platform user cache (``nanonb/flakes``).

    Example
    -------
    >>> default_cache_dir().name
    'flakes'
    """
    return cache_root() / "flakes"


def load_flakes(
    n_per_family: int = 20,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    refresh: bool = False,
    progress: bool = True,
    shapes: Sequence[str] = SHAPES,
    dopants: Sequence[str] = DEFAULT_DOPANTS,
    min_heavy: int = 6,
    max_heavy: int = 42,
    unique_across_tasks: bool = False,
) -> TaskSet:
    """Graphene nanoflake HOMO–LUMO gaps (GFN2-xTB), one task per shape × dopant family.

    Labels: GFN2-xTB single point at the unrelaxed idealised geometry (simulated label, not
    experiment), from :func:`xtb_gap`. Target ``"homo_lumo_gap"`` in eV.

    Parameters
    ----------
    n_per_family:
        Flakes per family (a family may give fewer when it has fewer distinct members).
    seed:
        Generation seed; the data set is deterministic for given arguments.
    cache_dir:
        Where to cache (default :func:`default_cache_dir`). Files are ``flakes_<hash>.npz`` (atoms)
        and ``flakes_<hash>.csv`` (labels, metadata, descriptors); no pickle.
    refresh:
        Recompute even if cached.
    progress:
        Show a tqdm progress bar over the xTB single points.
    shapes, dopants:
        Families to include (see :data:`SHAPES`, :data:`DOPANTS`; the p-doped ``"B"`` family is
        opt-in, see the module docstring).
    min_heavy, max_heavy:
        Heavy-atom (C/B/N) count range. Train on small and test on large flakes with
        ``task.meta["n_heavy"]``.
    unique_across_tasks:
        Small undoped flakes fit several shapes (benzene is a hexagon, a triangle, a rectangle and
        a ribbon), so by default the same molecule can sit in several tasks; ``meta["n_shared"]``
        counts the *other* tasks holding an identical molecule (filter on it to keep meta-test
        molecules unseen). ``True`` keeps each molecule only in the first family (in ``shapes``
        order) that makes it: no sharing, but the undoped families shrink (seed 0, <= 42 heavy
        atoms: the six undoped shapes share a pool of about 90 distinct flakes).

    Returns
    -------
    TaskSet
        Tasks named ``"<shape>|<dopant>"`` with structures as inputs, groups ``(shape, dopant)``,
        descriptors :data:`DESCRIPTOR_NAMES` and meta columns ``shape, dopant, n_heavy, size,
        aspect, irregularity, centre_x, centre_y, energy_ev, huckel_gap_ev, xtb_seconds,
        n_shared`` plus the descriptors. ``huckel_gap_ev`` is the plain Hückel gap (reference
        parameters of :mod:`nanonb.physics.pisystem`), a physics baseline kept out of the descriptors.

    Example
    -------
    >>> tasks = load_flakes(n_per_family=20)                    # doctest: +SKIP
    >>> tasks["hexagonal-zigzag|BN"].targets[:3]                # eV  # doctest: +SKIP
    """
    params = {"v": _CACHE_VERSION, "n": int(n_per_family), "seed": int(seed), "shapes": list(shapes),
              "dopants": list(dopants), "min_heavy": int(min_heavy), "max_heavy": int(max_heavy),
              "unique": bool(unique_across_tasks)}
    tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    npz_path, csv_path = root / f"flakes_{tag}.npz", root / f"flakes_{tag}.csv"
    if refresh or not (npz_path.exists() and csv_path.exists()):
        _build_cache(params, npz_path, csv_path, progress)
    return _read_cache(npz_path, csv_path)


def _build_cache(params: dict, npz_path: Path, csv_path: Path, progress: bool) -> None:
    flakes: list[Flake] = []
    seen: set = set()  # with "unique": every molecule lands in the first family that makes it
    for shape in params["shapes"]:
        for dopant in params["dopants"]:
            flakes.extend(generate_family(shape, dopant, params["n"], params["seed"],
                                          params["min_heavy"], params["max_heavy"],
                                          exclude=seen if params["unique"] else None))
    fps = [fingerprint(f.structure) for f in flakes]
    tasks_of: dict = {}
    for f, fp in zip(flakes, fps):
        tasks_of.setdefault(fp, set()).add(f"{f.info['shape']}|{f.info['dopant']}")
    rows = []
    for f in tqdm(flakes, desc="GFN2-xTB single points", disable=not progress):
        t0 = time.perf_counter()
        try:
            gap, energy = xtb_gap(f.structure)
        except Exception as err:  # SCF failure: skip the point, keep the rest
            warnings.warn(f"xTB failed for a {f.info['shape']}|{f.info['dopant']} flake: {err}", stacklevel=2)
            gap = energy = np.nan
        seconds = time.perf_counter() - t0
        rows.append({**f.info, "homo_lumo_gap": gap, "energy_ev": energy,
                     "huckel_gap_ev": float(huckel_gaps([f.structure])[0]), "xtb_seconds": seconds})
    for row, fp in zip(rows, fps):
        row["n_shared"] = len(tasks_of[fp]) - 1
    df = pd.DataFrame(rows)
    ok = np.isfinite(df["homo_lumo_gap"].to_numpy())
    df = df[ok].reset_index(drop=True)
    flakes = [f for f, k in zip(flakes, ok) if k]
    counts = np.array([len(f.structure) for f in flakes])
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_npz = npz_path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp_npz,
        numbers=np.concatenate([f.structure.numbers for f in flakes]),
        positions=np.concatenate([f.structure.positions for f in flakes]),
        counts=counts,
        params=np.array(json.dumps(params)),
    )
    df.to_csv(csv_path.with_suffix(".tmp.csv"), index=False)
    os.replace(tmp_npz, npz_path)
    os.replace(csv_path.with_suffix(".tmp.csv"), csv_path)


def _read_cache(npz_path: Path, csv_path: Path) -> TaskSet:
    with np.load(npz_path, allow_pickle=False) as z:
        numbers, positions, counts = z["numbers"], z["positions"], z["counts"]
    df = pd.read_csv(csv_path, keep_default_na=False, dtype={"dopant": str, "shape": str})
    if len(df) != len(counts):
        raise RuntimeError(f"Flake cache is inconsistent ({npz_path}); call load_flakes(refresh=True).")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    structures = [Structure(numbers[s:s + c], positions[s:s + c]) for s, c in zip(starts, counts)]
    df["task"] = df["shape"] + "|" + df["dopant"]
    meta_cols = ["shape", "dopant", "n_heavy", "size", "aspect", "irregularity", "centre_x", "centre_y", "energy_ev",
                 "huckel_gap_ev", "xtb_seconds", "n_shared", *[c for c in DESCRIPTOR_NAMES if c != "n_heavy"]]
    tasks = []
    for name in dict.fromkeys(df["task"]):
        idx = np.flatnonzero(df["task"].to_numpy() == name)
        sub = df.iloc[idx].reset_index(drop=True)
        tasks.append(Task(
            name=name,
            inputs=[structures[i] for i in idx],
            targets=sub["homo_lumo_gap"].to_numpy(float),
            meta=sub[meta_cols].copy(),
            groups=(sub["shape"].iloc[0], sub["dopant"].iloc[0]),
            descriptors=sub[list(DESCRIPTOR_NAMES)].to_numpy(float),
            target_name="homo_lumo_gap",
            target_unit="eV",
        ))
    return TaskSet(tasks, name="flakes (GFN2-xTB, simulated)", feature_names=list(DESCRIPTOR_NAMES))


# ---------------------------------------------------------------------------- leakage-free splits
def drop_shared_molecules(train, test):
    """Remove from ``train`` every molecule identical to one in ``test`` (isomorphism key of
    :mod:`nanonb.data.flakes`). Returns ``(train_clean, n_removed)``; tasks left with < 2 points are dropped.

    Example
    -------
    >>> train, test = load_flakes().split_by_group(["BN"])      # doctest: +SKIP
    >>> train, n_removed = drop_shared_molecules(train, test)   # doctest: +SKIP
    """
    test_keys = {fingerprint(s) for t in test for s in t.inputs}
    kept, removed = [], 0
    for t in train:
        keep = [i for i, s in enumerate(t.inputs) if fingerprint(s) not in test_keys]
        removed += len(t) - len(keep)
        if len(keep) >= 2:
            kept.append(t if len(keep) == len(t) else t.subset(keep))
    return TaskSet(kept, name=f"{train.name} (shared molecules dropped)", feature_names=train.feature_names), removed


def size_split(tasks, max_heavy_train: int = 24, min_test_points: int = 4):
    """Train on the small molecules of every task, test on the large ones of the same families.

    ``meta["n_heavy"] <= max_heavy_train`` go to meta-train, larger ones to meta-test (tasks with
    fewer than ``min_test_points`` large molecules are left out of the test). Identical molecules
    have the same size, so no molecule can be on both sides.

    Example
    -------
    >>> train, test = size_split(load_flakes(), max_heavy_train=24)   # doctest: +SKIP
    """
    train, test = [], []
    for t in tasks:
        n = t.meta["n_heavy"].to_numpy()
        small, large = np.flatnonzero(n <= max_heavy_train), np.flatnonzero(n > max_heavy_train)
        if len(small) >= 2:
            train.append(t.subset(small))
        if len(large) >= min_test_points:
            test.append(t.subset(large))
    return (TaskSet(train, name=f"flakes n_heavy <= {max_heavy_train}", feature_names=tasks.feature_names),
            TaskSet(test, name=f"flakes n_heavy > {max_heavy_train}", feature_names=tasks.feature_names))
