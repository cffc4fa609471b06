"""Shared data-file logic for the real-data loaders: where a file comes from, its checksum, and a
report of what cleaning did.

A data file is looked up, in this order:

1. an explicit ``path=`` given to the loader;
2. a ``data_dir=`` folder given to the loader;
3. the folder in the environment variable ``NANONB_DATA_DIR``;
4. the local download cache (``pooch``): downloaded once from a URL pinned to a commit.

Whatever the origin, the file's SHA-256 is checked *before* it is parsed: a truncated or modified
copy raises :class:`DataChecksumError` and is never read. When the file is nowhere and cannot be
downloaded (no network), :class:`DataNotAvailableError` says exactly how to get it.

Cleaning steps are never silent: each loader returns a :class:`DataQualityReport` listing every rule
it checked, how many rows it hit and what was done about them.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pooch

from nanonb.data._cache import cache_root, notice, read_cache, write_cache

__all__ = [
    "ENV_VAR",
    "DataChecksumError",
    "DataFile",
    "DataNotAvailableError",
    "DataQualityReport",
    "QualityEntry",
    "cache_dir",
    "fetch",
    "parse_cached",
    "sha256_of",
    "verify_checksum",
]

#: Environment variable naming a folder that holds local copies of the data files.
ENV_VAR = "NANONB_DATA_DIR"


class DataNotAvailableError(RuntimeError):
    """The data file is not available locally and could not be downloaded."""


class DataChecksumError(RuntimeError):
    """A data file's SHA-256 does not match the pinned one (corrupted, truncated or changed)."""


@dataclass(frozen=True)
class DataFile:
    """A public data file pinned by URL (at a fixed commit) and SHA-256.

    Parameters
    ----------
    name:
        File name looked for in ``data_dir`` / ``NANONB_DATA_DIR`` (e.g. ``"calisol23.xlsx"``).
    url:
        Download URL, pinned to a commit so that upstream changes cannot slip in.
    sha256:
        Expected SHA-256 (hex) of the file.
    aliases:
        Other accepted local file names (e.g. the upstream base name ``all_data_metadata.csv``).
    description:
        One line saying what the file is (data set, licence), used in error messages.
    """

    name: str
    url: str
    sha256: str
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def how_to_get(self) -> str:
        """Instructions to obtain the file by hand."""
        return (
            f"Download {self.url}\n"
            f"  (sha256 {self.sha256}), save it as {self.name!r} in a folder, and pass data_dir=<folder>\n"
            f"  or set {ENV_VAR} to a folder holding {self.name!r}."
        )


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(path: str | os.PathLike, data_file: DataFile) -> Path:
    """Return ``path`` if its SHA-256 matches ``data_file.sha256``, else raise.

    Raises
    ------
    DataChecksumError
        Naming the file, the expected and the actual hash.
    """
    path = Path(path)
    actual = sha256_of(path)
    if actual != data_file.sha256.lower():
        raise DataChecksumError(
            f"Checksum mismatch for {str(path)!r} ({data_file.name}): expected sha256 "
            f"{data_file.sha256}, got {actual} ({path.stat().st_size} bytes). The file is corrupted, "
            f"truncated or a different version; it was not parsed. Replace it with a fresh copy:\n"
            f"{data_file.how_to_get()}"
        )
    return path


def cache_dir() -> Path:
    """nanonb's cache folder: ``$NANONB_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir("nanonb")``.

    Downloads go to ``<cache_dir>/downloads``, parsed tables to ``<cache_dir>/parsed``.
    """
    return cache_root()


def _find_in(folder: Path, data_file: DataFile) -> Path | None:
    for n in data_file.names:
        p = folder / n
        if p.is_file():
            return p
    return None


def fetch(
    data_file: DataFile, path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> Path:
    """Resolve a data file to a checksum-verified local path.

    Order: explicit ``path``; ``data_dir``; ``$NANONB_DATA_DIR``; the pooch download cache
    (downloading from ``data_file.url`` if needed).

    Raises
    ------
    FileNotFoundError
        An explicit ``path`` does not exist.
    DataNotAvailableError
        ``data_dir`` lacks the file, or the file is in no local folder and could not be downloaded.
    DataChecksumError
        The file found or downloaded does not have the pinned SHA-256.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"No file at {str(p)!r}.\n{data_file.how_to_get()}")
        return verify_checksum(p, data_file)

    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        p = _find_in(folder, data_file)
        if p is None:
            raise DataNotAvailableError(
                f"{data_file.name!r} is not in data_dir={str(folder)!r} "
                f"(looked for {list(data_file.names)}).\n{data_file.how_to_get()}"
            )
        return verify_checksum(p, data_file)

    env = os.environ.get(ENV_VAR)
    env_note = ""
    if env:
        p = _find_in(Path(env).expanduser(), data_file)
        if p is not None:
            return verify_checksum(p, data_file)
        env_note = f"\n  ({ENV_VAR}={env!r} is set but holds none of {list(data_file.names)}.)"

    try:
        local = pooch.retrieve(
            data_file.url,
            known_hash=f"sha256:{data_file.sha256}",
            fname=data_file.name,
            path=cache_dir() / "downloads",
            progressbar=False,
        )
    except ValueError as exc:  # pooch: downloaded file has the wrong hash
        if "hash" in str(exc).lower():
            raise DataChecksumError(
                f"The download of {data_file.name!r} from {data_file.url} does not have the pinned sha256 "
                f"{data_file.sha256}: {exc}"
            ) from exc
        raise
    except Exception as exc:  # network errors (no internet, DNS, HTTP 404 ...)
        raise DataNotAvailableError(
            f"{data_file.description or data_file.name}: not found locally and the download failed "
            f"({type(exc).__name__}: {str(exc)[:200]}).{env_note}\nTo get it:\n{data_file.how_to_get()}"
        ) from exc
    return verify_checksum(local, data_file)


#: Set this environment variable (to anything) to disable the cache of parsed tables.
NO_PARSE_CACHE_VAR = "NANONB_NO_PARSE_CACHE"


#: Bump when the CSV layout of the parsed-table cache changes (it is part of the cache's config).
PARSE_CACHE_VERSION = 2


def parse_cached(
    local: Path, data_file: DataFile, parse: Callable[[Path], pd.DataFrame]
) -> pd.DataFrame:
    """``parse(local)``, memoised on disk as CSV (no pickle) under ``<cache_dir>/parsed``.

    Call only with a ``local`` file whose checksum was verified (as :func:`fetch` returns it). The
    cached CSV carries a manifest (see :mod:`nanonb.data._cache`) with its own SHA-256 and the config
    that made it: the pinned SHA-256 of the source file, the parser's name and
    :data:`PARSE_CACHE_VERSION`. A cached table that does not match its manifest (truncated, edited,
    missing its manifest, made from another source or parser) is never used: it is parsed again from
    the verified source, rewritten, and a one-line :class:`~nanonb.data._cache.CacheWarning` says
    so. Meant for slow formats (parsing the CALiSol workbook takes ~15 s, reading the CSV ~0.1 s);
    the CSV round trip keeps floats exactly. Set ``NANONB_NO_PARSE_CACHE=1`` to always parse. A
    cache folder that cannot be written is not an error: the table is parsed and returned, with a
    notice.

    Example
    -------
    >>> from nanonb.data.calisol import CALISOL, read_calisol_raw
    >>> raw = parse_cached(fetch(CALISOL), CALISOL, read_calisol_raw)   # doctest: +SKIP
    """
    if os.environ.get(NO_PARSE_CACHE_VAR):
        return parse(local)
    target = cache_dir() / "parsed" / f"{data_file.name}.{data_file.sha256[:16]}.csv"
    config = {
        "cache": "parsed-table", "version": PARSE_CACHE_VERSION, "source": data_file.name,
        "source_sha256": data_file.sha256.lower(),
        "parser": f"{getattr(parse, '__module__', '')}.{getattr(parse, '__qualname__', type(parse).__name__)}",
    }
    data = read_cache(target, config, source=f"{data_file.name} (sha256 {data_file.sha256[:12]}...)")
    if data is not None:
        try:
            return pd.read_csv(io.BytesIO(data))
        except Exception as exc:  # verified bytes that pandas cannot read (e.g. another pandas)
            notice(f"nanonb: cannot read cache file {str(target)!r} ({type(exc).__name__}); "
                   f"parsing {data_file.name} again.")
    df = parse(local)
    try:
        write_cache(target, df.to_csv(index=False).encode("utf-8"), config)
    except OSError as exc:
        notice(f"nanonb: could not write the parse cache {str(target)!r} ({type(exc).__name__}: "
               f"{exc.strerror or exc}); the table was parsed and is used uncached. Set "
               f"NANONB_CACHE_DIR to a writable folder, or {NO_PARSE_CACHE_VAR}=1 to skip the cache.")
    return df


# ---------------------------------------------------------------------------- quality report
class QualityEntry(NamedTuple):
    """One checked cleaning rule: how many rows it hit and what was done."""

    rule: str
    n_rows: int
    action: str
    detail: str = ""


@dataclass
class DataQualityReport:
    """What a loader checked and did, rule by rule.

    Every rule checked is listed, also when it hit no row (``n_rows == 0``), so the report shows
    what was looked for, not only what was found.
    """

    dataset: str
    source: str = ""
    n_raw: int = 0
    n_clean: int = 0
    entries: list[QualityEntry] = field(default_factory=list)

    def add(self, rule: str, n_rows: int, action: str, detail: str = "") -> QualityEntry:
        """Append an entry (``rule`` names must be unique within a report)."""
        if rule in self.rules:
            raise ValueError(f"Rule {rule!r} is already in the report.")
        entry = QualityEntry(rule, int(n_rows), action, detail)
        self.entries.append(entry)
        return entry

    @property
    def rules(self) -> list[str]:
        return [e.rule for e in self.entries]

    def __getitem__(self, rule: str) -> QualityEntry:
        for e in self.entries:
            if e.rule == rule:
                return e
        raise KeyError(f"No rule {rule!r} in the report; rules are {self.rules}")

    def __contains__(self, rule: str) -> bool:
        return rule in self.rules

    def n_rows(self, rule: str) -> int:
        """Rows hit by ``rule``."""
        return self[rule].n_rows

    def to_frame(self) -> pd.DataFrame:
        """One row per rule: ``rule, n_rows, action, detail``."""
        return pd.DataFrame(self.entries, columns=list(QualityEntry._fields))

    def __str__(self) -> str:
        head = f"Data quality report: {self.dataset}"
        if self.source:
            head += f" ({self.source})"
        lines = [head, f"  rows: {self.n_raw} raw -> {self.n_clean} after cleaning"]
        w = max((len(e.rule) for e in self.entries), default=4)
        for e in self.entries:
            lines.append(f"  - {e.rule:<{w}}  {e.n_rows:>6} rows  {e.action}")
            if e.detail:
                lines.append(f"      {e.detail}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # Jupyter
        return f"<b>{self.dataset}</b>: {self.n_raw} raw rows, {self.n_clean} after cleaning" + (
            self.to_frame().to_html(index=False)
        )
