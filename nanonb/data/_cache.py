"""Verified cache files: every cache file carries a manifest that proves what it holds.

A cache file ``<name>`` is written with a sidecar ``<name>.manifest.json`` holding the SHA-256 and
size of the file's bytes and the *config* that made it (the source checksum, the generator's
settings, a format version). Reading checks both: a cache whose bytes or config do not match its
manifest (truncated, edited, bit-flipped, written by another config, or missing its manifest) is
never used. The reader gets ``None`` and a one-line :class:`CacheWarning` saying why, and the caller
regenerates the file from its verified source.

Both files are written atomically (:func:`nanonb._io.atomic_write`), data first, then the
manifest, so an interrupted write leaves a cache that fails verification, never a wrong one.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "table.csv"
>>> write_cache(p, b"a\\n1\\n", {"source": "demo", "version": 1})
>>> read_cache(p, {"source": "demo", "version": 1})
b'a\\n1\\n'
>>> _ = p.write_bytes(b"a\\n2\\n")                            # edited behind our back
>>> read_cache(p, {"source": "demo", "version": 1}) is None  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from nanonb._io import atomic_write

__all__ = ["CacheWarning", "check_writable", "frame_arrays", "frame_from_arrays", "manifest_path", "notice",
           "npz_arrays", "read_cache", "write_cache", "write_npz_cache"]

MANIFEST_SUFFIX = ".manifest.json"
_MANIFEST_FORMAT = 1


class CacheWarning(UserWarning):
    """A cache file was damaged or unusable and was regenerated, or could not be written."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where nanonb's caches live: ``cache_dir`` if given, else ``$NANONB_CACHE_DIR``, else the platform
    user cache folder (``platformdirs.user_cache_dir("nanonb")``). The one copy of this rule.

    Example
    -------
    >>> str(cache_root("/tmp/my-cache"))
    '/tmp/my-cache'
    """
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("NANONB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nanonb"))


def notice(message: str, stacklevel: int = 3) -> None:
    """Emit a one-line :class:`CacheWarning` (``message`` is flattened to one line)."""
    warnings.warn(" ".join(str(message).split()), CacheWarning, stacklevel=stacklevel)


def manifest_path(path: str | os.PathLike) -> Path:
    """The manifest of cache file ``path``: ``<path>.manifest.json``."""
    path = Path(path)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def _canonical(config: dict) -> dict:
    """``config`` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(config, sort_keys=True))


def write_cache(path: str | os.PathLike, data: bytes, config: dict) -> None:
    """Write cache file ``path`` and its manifest (both atomically, the data first).

    ``config`` (JSON-serializable) is what made the data; :func:`read_cache` must be given the same.

    Raises
    ------
    OSError
        If the folder cannot be written.
    """
    path = Path(path)
    manifest = {
        "format": _MANIFEST_FORMAT,
        "file": path.name,
        "n_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "config": _canonical(config),
    }
    manifest_path(path).unlink(missing_ok=True)  # no window where a new file has an old manifest
    atomic_write(path, data)
    atomic_write(manifest_path(path), json.dumps(manifest, indent=1, sort_keys=True))


def _problem(path: Path, config: dict) -> tuple[str, bytes | None]:
    """(reason, data): ``reason`` is empty when the file matches its manifest and ``config``."""
    mpath = manifest_path(path)
    if not mpath.is_file():
        return f"it has no manifest {mpath.name}", None
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return f"its manifest is unreadable ({type(exc).__name__})", None
    if manifest.get("format") != _MANIFEST_FORMAT:
        return f"its manifest has format {manifest.get('format')!r}, not {_MANIFEST_FORMAT}", None
    if manifest.get("config") != _canonical(config):
        return "it was made by another config", None
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"it is unreadable ({type(exc).__name__}: {exc})", None
    if len(data) != manifest.get("n_bytes"):
        return f"it has {len(data)} bytes, its manifest says {manifest.get('n_bytes')}", None
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        return "its sha256 does not match its manifest (edited or corrupted)", None
    return "", data


def read_cache(path: str | os.PathLike, config: dict, source: str = "its source") -> bytes | None:
    """The bytes of cache file ``path`` if they match its manifest and ``config``, else ``None``.

    ``None`` without a word when the file does not exist (first use); ``None`` with a one-line
    :class:`CacheWarning` naming the file, the reason and ``source`` (what it will be regenerated
    from) when it exists but cannot be trusted.
    """
    path = Path(path)
    if not path.exists():
        return None
    reason, data = _problem(path, config)
    if reason:
        notice(f"nanonb: ignoring cache file {str(path)!r}: {reason}; regenerating it from {source}.")
        return None
    return data


def check_writable(folder: str | os.PathLike) -> str:
    """``""`` if files can be created in ``folder`` (made if missing), else the reason why not.

    Example
    -------
    >>> import tempfile
    >>> check_writable(tempfile.mkdtemp())
    ''
    """
    folder = Path(folder)
    probe = folder / f".nanonb-write-test.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return ""


def frame_arrays(frame: pd.DataFrame, columns_key: str, prefix: str) -> dict[str, np.ndarray]:
    """A DataFrame as ``.npz`` arrays: its column names under ``columns_key``, each column under
    ``prefix + name`` (text as ``str``, so no pickle is needed). :func:`frame_from_arrays` reads it back.

    Example
    -------
    >>> arrays = frame_arrays(pd.DataFrame({"a": [1.0], "b": ["x"]}), "columns", "col__")
    >>> frame_from_arrays(arrays, "columns", "col__").to_dict("list")
    {'a': [1.0], 'b': ['x']}
    """
    arrays = {columns_key: np.array(list(frame.columns))}
    for col in frame.columns:
        values = frame[col].to_numpy()
        arrays[f"{prefix}{col}"] = values if values.dtype.kind in "biuf" else values.astype(str)
    return arrays


def frame_from_arrays(data: dict[str, np.ndarray], columns_key: str, prefix: str) -> pd.DataFrame:
    """The DataFrame :func:`frame_arrays` stored; text columns go through Python lists so pandas infers
    the same dtype as when the frame was built.

    Example
    -------
    >>> frame_from_arrays({"columns": np.array(["t"]), "col__t": np.array([300.0])}, "columns", "col__").t.tolist()
    [300.0]
    """
    return pd.DataFrame({c: (v.tolist() if v.dtype.kind == "U" else v)
                         for c in data[columns_key].tolist() for v in [data[f"{prefix}{c}"]]})


def write_npz_cache(path: str | os.PathLike, arrays: dict[str, np.ndarray], config: dict) -> None:
    """Write ``arrays`` as one verified ``.npz`` cache (:func:`write_cache`), with ``config`` stored inside
    too (``config_json``) so :func:`npz_arrays` can check the content against the request.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.npz"
    >>> write_npz_cache(p, {"y": np.arange(3)}, {"v": 1})
    >>> npz_arrays(read_cache(p, {"v": 1}), {"v": 1})["y"].tolist()
    [0, 1, 2]
    """
    buf = io.BytesIO()
    np.savez(buf, config_json=np.array(json.dumps(config, sort_keys=True)), **arrays)
    write_cache(path, buf.getvalue(), config)


def npz_arrays(raw: bytes, config: dict) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` cache written by :func:`write_npz_cache` (no pickle); ``ValueError`` if
    the ``config_json`` inside is not ``config``.

    Example
    -------
    >>> npz_arrays(b"not an npz", {})  # doctest: +SKIP
    Traceback (most recent call last):
    ...
    """
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        if json.loads(str(z["config_json"])) != config:
            raise ValueError("its config_json is not the requested config")
        return {k: z[k] for k in z.files}
