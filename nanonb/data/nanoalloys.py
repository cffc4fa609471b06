"""Binary nanoalloy clusters labelled with ASE's EMT potential: the embedded default data set.

One task per element pair ``"A-B"`` (21 pairs of Al, Cu, Ag, Au, Ni, Pd, Pt, with A before B in
:data:`~nanonb.data.alloy_clusters.ELEMENTS`); its points are clusters ``A_{N_A} B_{N_B}`` made by
:func:`~nanonb.data.alloy_clusters.generate_pair` (see :mod:`nanonb.data.alloy_clusters` for the
catalogue of shapes, the sampling, the descriptors and the target, the EMT mixing energy in eV/atom).

Generated sets are cached on disk as ``.npz`` (no pickle) under
``platformdirs.user_cache_dir("nanonb")``, overridable with ``cache_dir=`` or the environment
variable ``NANONB_CACHE_DIR``; the file name holds a hash of the generation config. Each ``.npz`` has a
manifest ``<file>.manifest.json`` with its SHA-256 and the config that made it; a cache file that
does not match its manifest, or whose layout does not fit the config, is never used: it is
regenerated with a one-line :class:`~nanonb.data._cache.CacheWarning`. A cache folder that cannot
be written is detected before the generation, which then runs uncached (with a warning).

Example
-------
>>> from nanonb.data.nanoalloys import load_nanoalloys
>>> ts = load_nanoalloys()                    # doctest: +SKIP
>>> ts["Cu-Pt"].meta[["n_atoms", "x_B", "mixing_energy_ev_per_atom"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
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
    write_npz_cache,
)
from nanonb.data.alloy_clusters import (
    CATALOGUE_VERSION,
    DESCRIPTOR_NAMES,
    ELEMENTS,
    PAIRS,
    _check_elements,
    generate_pair,
)
from nanonb.graphs import Structure
from nanonb.tasks import Task, TaskSet

__all__ = ["DEFAULT_N_PER_PAIR", "DESCRIPTOR_NAMES", "ELEMENTS", "PAIRS", "cache_path", "load_nanoalloys"]

_FORMAT_VERSION = 1

DEFAULT_N_PER_PAIR = 80
"""Default structures per pair (21 × 80 = 1680 clusters)."""

# ---------------------------------------------------------------------- tasks
def _make_task(a: str, b: str, meta: pd.DataFrame, structures: list[Structure]) -> Task:
    return Task(
        name=f"{a}-{b}",
        inputs=structures,
        targets=meta["mixing_energy_ev_per_atom"].to_numpy(dtype=np.float64),
        meta=meta,
        groups=(a, b),
        descriptors=meta[DESCRIPTOR_NAMES].to_numpy(dtype=np.float64),
        target_name="mixing_energy",
        target_unit="eV/atom",
    )


def _config(elements: Sequence[str], n_per_pair: int, seed: int) -> dict:
    import ase

    return {
        "dataset": "nanoalloys", "elements": list(elements), "n_per_pair": int(n_per_pair),
        "seed": int(seed), "catalogue_version": CATALOGUE_VERSION, "format_version": _FORMAT_VERSION,
        "ase_version": ase.__version__,
    }


def cache_path(n_per_pair: int = DEFAULT_N_PER_PAIR, elements: Iterable[str] = ELEMENTS, seed: int = 0,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the ``.npz`` cache file for this generation config (it may not exist yet).

    Example
    -------
    >>> cache_path(4, ["Pt", "Cu"], cache_dir="/tmp/nanonb-cache").name.startswith("nanoalloys-")
    True
    """
    els = _check_elements(elements)
    els = [e for e in ELEMENTS if e in set(els)]
    cfg = _config(els, n_per_pair, seed)
    key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / f"nanoalloys-{key}.npz"


def _save(path: Path, cfg: dict, tasks: list[Task]) -> None:
    """Write the tasks as one ``.npz`` plus its manifest (sha256 and ``cfg``), atomically."""
    structures = [s for t in tasks for s in t.inputs]
    meta = pd.concat([t.meta for t in tasks], ignore_index=True)
    arrays: dict[str, np.ndarray] = {
        "task_names": np.array([t.name for t in tasks]),
        "task_offsets": np.concatenate([[0], np.cumsum([len(t) for t in tasks])]).astype(np.int64),
        "offsets": np.concatenate([[0], np.cumsum([len(s) for s in structures])]).astype(np.int64),
        "numbers": np.concatenate([s.numbers for s in structures]).astype(np.int64),
        "positions": np.concatenate([s.positions for s in structures]).astype(np.float64),
        "forces": np.concatenate([s.forces for s in structures]).astype(np.float64),
        **frame_arrays(meta, "meta_columns", "meta__"),
    }
    write_npz_cache(path, arrays, cfg)


def _check_layout(data: dict[str, np.ndarray], cfg: dict) -> None:
    """Raise ``ValueError`` unless the arrays are laid out as ``cfg`` generates them."""
    from ase.data import atomic_numbers

    els = cfg["elements"]
    names = [f"{a}-{b}" for a, b in PAIRS if a in els and b in els]
    if data["task_names"].tolist() != names:
        raise ValueError(f"task names {data['task_names'].tolist()} are not {names}")
    n, n_struct = cfg["n_per_pair"], len(names) * cfg["n_per_pair"]
    if not np.array_equal(data["task_offsets"], np.arange(len(names) + 1) * n):
        raise ValueError("task offsets do not give n_per_pair structures per pair")
    off, n_atoms = data["offsets"], len(data["numbers"])
    if len(off) != n_struct + 1 or off[0] != 0 or np.any(np.diff(off) < 1) or off[-1] != n_atoms:
        raise ValueError("structure offsets do not match the atom arrays")
    if data["positions"].shape != (n_atoms, 3) or data["forces"].shape != (n_atoms, 3):
        raise ValueError("positions/forces do not have one row of 3 per atom")
    if any(len(data[f"meta__{c}"]) != n_struct for c in data["meta_columns"].tolist()):
        raise ValueError("a metadata column does not have one row per structure")
    for k, name in enumerate(names):
        allowed = [atomic_numbers[e] for e in name.split("-")]
        atoms = data["numbers"][off[k * n]:off[(k + 1) * n]]
        if not np.isin(atoms, allowed).all():
            raise ValueError(f"the structures of pair {name} hold other elements")


def _load(path: Path, cfg: dict) -> list[Task] | None:
    """Tasks from a verified cache file, or ``None`` if it is absent or cannot be trusted.

    A file that does not match its manifest, or whose content is inconsistent with ``cfg``
    (damaged, truncated, bit-flipped, edited), is never used: ``None`` with a one-line
    :class:`~nanonb.data._cache.CacheWarning`, and the caller regenerates it.
    """
    raw = read_cache(path, cfg, source="EMT (regenerating the nanoalloys)")
    if raw is None:
        return None
    try:
        data = npz_arrays(raw, cfg)
        _check_layout(data, cfg)
        meta_all = frame_from_arrays(data, "meta_columns", "meta__")
        off, toff = data["offsets"], data["task_offsets"]
        tasks = []
        for k, name in enumerate(data["task_names"].tolist()):
            a, b = name.split("-")
            lo, hi = int(toff[k]), int(toff[k + 1])
            structures = [
                Structure(data["numbers"][off[i]:off[i + 1]], data["positions"][off[i]:off[i + 1]],
                          data["forces"][off[i]:off[i + 1]])
                for i in range(lo, hi)
            ]
            tasks.append(_make_task(a, b, meta_all.iloc[lo:hi].reset_index(drop=True), structures))
    except Exception as exc:  # any damage the manifest did not catch: never use the file
        notice(f"nanonb: ignoring cache file {str(path)!r}: its content is inconsistent "
               f"({type(exc).__name__}: {exc}); regenerating the nanoalloys with EMT.")
        return None
    return tasks


def load_nanoalloys(
    n_per_pair: int = DEFAULT_N_PER_PAIR,
    elements: Iterable[str] = ELEMENTS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    progress: bool = True,
) -> TaskSet:
    """The nanoalloy task set: one task per element pair, targets = EMT mixing energy (eV/atom).

    Generated on first use (about 20 s for the default 21 × 80 clusters on one idle CPU core,
    serial) and cached on disk; later calls load the ``.npz`` in well under a second.

    Parameters
    ----------
    n_per_pair:
        Structures per element pair.
    elements:
        Subset of :data:`ELEMENTS` (at least two); the tasks are all pairs among them, in the
        order of :data:`PAIRS`. A pair's data do not depend on which other elements are chosen.
    seed:
        Base random seed (non-negative integer).
    cache_dir:
        Cache folder; default ``$NANONB_CACHE_DIR`` or else ``platformdirs.user_cache_dir("nanonb")``.
    refresh:
        Regenerate even if a cache file exists (and overwrite it). A damaged cache file is
        regenerated anyway, with a :class:`~nanonb.data._cache.CacheWarning`.
    progress:
        Show a tqdm progress bar while generating.

    Returns
    -------
    TaskSet
        ``TaskSet(name="nanoalloys")``; each task has ``inputs`` = list of
        :class:`~nanonb.graphs.Structure` (with EMT forces, eV/Å), ``targets`` = mixing energy
        (eV/atom), ``descriptors`` with columns :data:`DESCRIPTOR_NAMES`, ``groups = (A, B)``.

    Example
    -------
    >>> ts = load_nanoalloys(n_per_pair=4, elements=["Cu", "Pt"], progress=False)  # doctest: +SKIP
    >>> ts.names, len(ts["Cu-Pt"])                                                # doctest: +SKIP
    (['Cu-Pt'], 4)
    """
    els = _check_elements(elements)
    chosen = set(els)
    els = [e for e in ELEMENTS if e in chosen]
    if len(els) < 2:
        raise ValueError(f"Need at least two different elements to make a pair, got {sorted(chosen)}.")
    if int(n_per_pair) < 2:
        raise ValueError(f"n_per_pair must be at least 2 (one support and one query point), got {n_per_pair}.")
    cfg = _config(els, n_per_pair, seed)
    path = cache_path(n_per_pair, els, seed, cache_dir)
    tasks = None if refresh else _load(path, cfg)
    if tasks is None:
        from tqdm.auto import tqdm

        # check the cache folder BEFORE the (slow) generation, so its result is never lost
        unwritable = check_writable(path.parent)
        if unwritable:
            notice(f"nanonb: the cache folder {str(path.parent)!r} is not writable ({unwritable}); "
                   "generating the nanoalloys without caching them. Pass cache_dir= or set "
                   "NANONB_CACHE_DIR to a writable folder to cache them.")

        pairs = [(a, b) for a, b in PAIRS if a in chosen and b in chosen]
        tasks = []
        for a, b in tqdm(pairs, desc="EMT nanoalloys", unit="pair", disable=not progress):
            meta, structures = generate_pair(a, b, n_per_pair, seed)
            tasks.append(_make_task(a, b, meta, structures))
        if not unwritable:
            try:
                _save(path, cfg, tasks)
            except OSError as exc:  # e.g. disk full: keep the generated set, say why it is not cached
                notice(f"nanonb: could not write the cache file {str(path)!r} ({type(exc).__name__}: "
                       f"{exc.strerror or exc}); the generated nanoalloys are used uncached.")
    return TaskSet(tasks, name="nanoalloys", feature_names=DESCRIPTOR_NAMES)
