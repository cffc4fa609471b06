"""nanonb._io: atomic writes and config JSON + tensor state files (no pickle)."""

import json

import pytest
import torch

from nanonb._io import atomic_write, check_writable, load_state, save_state, state_stem, write_json


def test_atomic_write_creates_parents_and_leaves_no_temporary(tmp_path):
    f = atomic_write(tmp_path / "a" / "b.txt", "héllo")
    assert f.read_text(encoding="utf-8") == "héllo"
    atomic_write(f, b"bytes")
    assert f.read_bytes() == b"bytes"
    assert [p.name for p in f.parent.iterdir()] == ["b.txt"]
    write_json(tmp_path / "c.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2]}


def test_failed_write_keeps_the_old_file(tmp_path):
    f = atomic_write(tmp_path / "keep.txt", "old")
    with pytest.raises(TypeError):
        atomic_write(f, 123)  # not bytes or str
    assert f.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_state_roundtrip_is_tensors_only(tmp_path):
    stem = save_state(tmp_path / "net.pt", {"model": "MLP", "kw": {"n_in": 2}}, {"w": torch.arange(3.0)})
    assert stem == tmp_path / "net" and (tmp_path / "net.json").exists()
    config, tensors = load_state(stem)
    assert config == {"model": "MLP", "kw": {"n_in": 2}} and torch.equal(tensors["w"], torch.arange(3.0))
    assert torch.load(tmp_path / "net.pt", weights_only=True).keys() == {"w"}


def test_state_stem_drops_only_known_suffixes(tmp_path):
    assert [state_stem(p).name for p in ("run.1", "run.2", "run.pt", "run.json", "v1.5.pt")] == \
        ["run.1", "run.2", "run", "run", "v1.5"]
    save_state(tmp_path / "run.1", {"i": 1}, {"w": torch.ones(1)})
    save_state(tmp_path / "run.2", {"i": 2}, {"w": torch.zeros(1)})
    assert load_state(tmp_path / "run.1")[0] == {"i": 1} and load_state(tmp_path / "run.2.json")[0] == {"i": 2}


def test_check_writable_names_the_path(tmp_path):
    assert check_writable(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    assert not (tmp_path / "new").exists()  # nothing created
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError, match="cannot write .*f/r.json: .*f is a file, not a folder"):
        check_writable(tmp_path / "f" / "r.json")
    with pytest.raises(OSError, match="it is a folder"):
        check_writable(tmp_path)
