"""The parsed-table cache (``_fetch.parse_cached``) and atomic writes: a cache is used only when it
matches its manifest; otherwise it is parsed again from the verified source, with a notice."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from nanonb._io import atomic_write
from nanonb.data import _fetch
from nanonb.data._cache import CacheWarning, check_writable, manifest_path

SOURCE = _fetch.DataFile(name="demo.csv", url="https://example.invalid/demo.csv", sha256="ab" * 32)


def _table(n=200):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"system": [f"s{i % 7}" for i in range(n)], "k": rng.lognormal(size=n),
                         "T": rng.uniform(250, 350, size=n)})


class Parser:
    """Counts how often the (slow) parse runs."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        return _table()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NANONB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(_fetch.NO_PARSE_CACHE_VAR, raising=False)
    parse = Parser()
    first = _fetch.parse_cached(tmp_path / "demo.csv", SOURCE, parse)
    (csv,) = (tmp_path / "cache" / "parsed").glob("*.csv")
    return tmp_path, parse, first, csv


def _again(tmp_path, parse):
    return _fetch.parse_cached(tmp_path / "demo.csv", SOURCE, parse)


def test_cache_round_trip_is_exact_and_silent(cache, recwarn):
    tmp_path, parse, first, csv = cache
    pd.testing.assert_frame_equal(first, _table())
    manifest = json.loads(manifest_path(csv).read_text())
    assert manifest["config"]["source_sha256"] == SOURCE.sha256
    again = _again(tmp_path, parse)
    assert parse.calls == 1  # the cache was used
    pd.testing.assert_frame_equal(again, first)
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]


def test_truncated_cache_is_reparsed(cache):
    tmp_path, parse, first, csv = cache
    text = csv.read_text()
    csv.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")  # whole lines: valid-looking CSV
    with pytest.warns(CacheWarning, match="ignoring cache file.*regenerating it from demo.csv"):
        again = _again(tmp_path, parse)
    assert parse.calls == 2
    pd.testing.assert_frame_equal(again, first)  # today's code returned ~half the rows
    pd.testing.assert_frame_equal(_again(tmp_path, parse), first)
    assert parse.calls == 2  # the rewritten cache verifies again


def test_edited_cache_is_reparsed(cache):
    tmp_path, parse, first, csv = cache
    edited = pd.read_csv(csv)
    edited["k"] *= 10  # shifts mean log10 k by 1: a silently wrong answer if used
    edited.to_csv(csv, index=False)
    with pytest.warns(CacheWarning, match="ignoring cache file"):
        again = _again(tmp_path, parse)
    pd.testing.assert_frame_equal(again, first)
    # a same-size edit (one digit) is caught by the sha256
    text = csv.read_text()
    i = text.index("\n") + 10
    csv.write_text(text[:i] + ("1" if text[i] != "1" else "2") + text[i + 1:])
    with pytest.warns(CacheWarning, match="sha256 does not match its manifest"):
        pd.testing.assert_frame_equal(_again(tmp_path, parse), first)


def test_cache_without_manifest_or_of_another_parser_is_reparsed(cache):
    tmp_path, parse, first, csv = cache
    manifest_path(csv).unlink()  # as written by an older nanonb
    with pytest.warns(CacheWarning, match="no manifest"):
        pd.testing.assert_frame_equal(_again(tmp_path, parse), first)

    def other_parser(path):
        return _table().assign(k=1.0)

    with pytest.warns(CacheWarning, match="another config"):
        out = _fetch.parse_cached(tmp_path / "demo.csv", SOURCE, other_parser)
    assert (out["k"] == 1.0).all()


def test_unwritable_cache_parses_and_says_so(tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("NANONB_CACHE_DIR", str(blocker))
    monkeypatch.delenv(_fetch.NO_PARSE_CACHE_VAR, raising=False)
    with pytest.warns(CacheWarning, match="could not write the parse cache.*NANONB_CACHE_DIR"):
        out = _fetch.parse_cached(tmp_path / "demo.csv", SOURCE, Parser())
    pd.testing.assert_frame_equal(out, _table())
    assert check_writable(blocker / "x") and not check_writable(tmp_path)


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b.txt"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["b.txt"]
    with pytest.raises(TypeError, match="bytes or str"):
        atomic_write(target, 3)
    assert target.read_bytes() == b"new"


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "t.bin"
    atomic_write(target, b"old")

    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr("nanonb._io.os.replace", boom)
    with pytest.raises(OSError, match="rename failed"), warnings.catch_warnings():
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["t.bin"]
