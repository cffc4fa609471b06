"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The data go to a temporary file in the target's own folder (so the final rename stays on one file
system), are flushed and ``fsync``-ed, and the temporary file is renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows). If anything fails, the temporary file is removed
and the target is left as it was.

Example
-------
>>> import tempfile
>>> from pathlib import Path
>>> target = Path(tempfile.mkdtemp()) / "sub" / "table.csv"
>>> _ = atomic_write(target, "a,b\\n1,2\\n")
>>> target.read_text()
'a,b\\n1,2\\n'
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["atomic_write"]


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
