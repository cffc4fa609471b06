"""nanonb._io: atomic writes and config JSON + tensor state files (no pickle)."""

import json

import pytest
import torch

from nanonb._io import atomic_write, load_state, save_state, write_json


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
