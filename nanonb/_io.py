"""Files: atomic writes, and saved state as config JSON plus tensors (no pickle).

Every saved learner or network is two files with the same stem: ``<stem>.json`` (configuration,
scaler, history: anything JSON-serializable) and ``<stem>.pt`` (a flat ``{name: tensor}`` dict,
read back with ``torch.load(weights_only=True)``). No class paths are stored, so moving classes keeps
old files loadable. Writes go to a temporary file in the same folder and are renamed into place, so
an interrupted write never leaves a half-written file.

Example
-------
>>> import tempfile, torch
>>> from pathlib import Path
>>> stem = Path(tempfile.mkdtemp()) / "net"
>>> _ = save_state(stem, {"width": 8}, {"w": torch.ones(2)})
>>> config, tensors = load_state(stem)
>>> config, tensors["w"].tolist()
({'width': 8}, [1.0, 1.0])
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

import torch


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text encoded as UTF-8) to ``path`` atomically; return the path.

    Parent folders are created. The new file gets the usual permissions (``0o666`` minus the
    umask), not the ``0o600`` of :func:`tempfile.mkstemp`.

    Raises
    ------
    TypeError
        If ``data`` is neither ``bytes`` nor ``str``.
    OSError
        If the folder cannot be created or written (the target is then unchanged).

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = atomic_write(Path(tempfile.mkdtemp()) / "x.bin", b"\\x00\\x01")
    >>> p.read_bytes()
    b'\\x00\\x01'
    """
    if isinstance(data, str):
        raw = data.encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise TypeError(f"atomic_write: data must be bytes or str, got {type(data).__name__}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | Path, obj, indent: int = 1) -> Path:
    """``json.dumps(obj, indent=indent)`` written atomically."""
    return atomic_write(path, json.dumps(obj, indent=indent))


#: The suffixes :func:`state_stem` drops: the two files of a saved state.
STATE_SUFFIXES = (".pt", ".json")


def state_stem(path: str | Path) -> Path:
    """The stem of a saved state: ``path`` without a trailing ``.pt`` / ``.json``, else unchanged.

    Only those two suffixes are dropped, so ``run.1`` and ``run.2`` stay two different stems (a
    version number or a date in the name is kept).

    Example
    -------
    >>> [state_stem(p).name for p in ("run.1", "run.2", "run.pt", "run.json", "v1.5.pt")]
    ['run.1', 'run.2', 'run', 'run', 'v1.5']
    """
    path = Path(path)
    return path.with_name(path.stem) if path.suffix in STATE_SUFFIXES else path


def _with_ext(stem: Path, ext: str) -> Path:
    return stem.with_name(stem.name + ext)


def check_writable(path: str | Path) -> Path:
    """Raise ``OSError`` (naming ``path``) unless a file can be written at ``path``; return it.

    Writes a probe file in the nearest existing folder on the way to ``path`` (and removes it), so
    a read-only file system, a missing permission or a parent that is a file are all caught before
    any work starts. Nothing is created.

    Example
    -------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = check_writable(folder / "new" / "result.json")
    >>> _ = atomic_write(folder / "notes.txt", "a file")
    >>> check_writable(folder / "notes.txt" / "result.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    NotADirectoryError: cannot write .../notes.txt/result.json: .../notes.txt is a file, not a folder
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name (e.g. {path / 'result.json'})")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"cannot write {path}: {folder} is a file, not a folder")
    probe = folder / f".nanonb-write-test.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        probe.open("xb").close()
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc} (in {folder})") from exc
    probe.unlink(missing_ok=True)
    return path


def save_state(path: str | Path, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``<stem>.json`` (``config``) and ``<stem>.pt`` (``tensors``); return the stem.

    ``path`` may end in ``.pt`` or ``.json`` (dropped: :func:`state_stem`); any other dot stays in
    the name. ``tensors`` must hold tensors only.
    """
    stem = state_stem(path)
    buf = io.BytesIO()
    torch.save(dict(tensors), buf)
    atomic_write(_with_ext(stem, ".pt"), buf.getvalue())
    write_json(_with_ext(stem, ".json"), config)
    return stem


def load_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config, tensors)`` written by :func:`save_state` (tensors via ``weights_only=True``)."""
    stem = state_stem(path)
    config = json.loads(_with_ext(stem, ".json").read_text())
    tensors = torch.load(_with_ext(stem, ".pt"), weights_only=True)
    return config, tensors
