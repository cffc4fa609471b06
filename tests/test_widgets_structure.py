"""StructureView driven headlessly (:mod:`nanonb.widgets.structure`; no browser, no kernel): 3D and static."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from nanonb.graphs import Structure  # noqa: E402
from nanonb.widgets import structure as structure_mod  # noqa: E402
from nanonb.widgets.structure import StructureView, element_color, structure_view_mode  # noqa: E402


def _ngl_calls(view) -> list[dict]:
    return [m for m in view._ngl_msg_archive if m.get("type") == "call_method"]


def test_structure_view_colours_by_element_with_legend():
    pytest.importorskip("nglview")
    s = Structure(numbers=[29, 29, 78], positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    v = StructureView(s, title="Cu2Pt", view="3d")
    assert v.mode == "3d" and type(v.view).__name__ == "NGLWidget"
    assert v.elements == ["Cu", "Pt"] and v.n_atoms == 3
    assert "Cu × 2" in v.legend_text and "Pt × 1" in v.legend_text
    assert element_color("Cu") in v.legend.value and element_color("Pt") in v.legend.value
    reprs = [m for m in _ngl_calls(v.view) if m["methodName"] == "addRepresentation"]
    assert {m["kwargs"]["sele"] for m in reprs} == {"_CU", "_PT"}
    assert {m["kwargs"]["color"] for m in reprs} == {element_color("Cu"), element_color("Pt")}
    # replacing the structure keeps exactly one component and updates the legend
    from ase.cluster import Icosahedron

    v.set_structure(Icosahedron("Au", 2), title="Au13")
    assert len(v.view._ngl_component_ids) == 1
    assert v.elements == ["Au"] and "Au × 13" in v.legend_text and "Au13" in v.title.value
    with pytest.raises(TypeError, match="ase.Atoms"):
        StructureView("not a structure")


def _rgb(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _has_colour(img: np.ndarray, hex_colour: str, tol: int = 40) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(img - rgb).max(axis=2) < tol).any())


def test_static_view_draws_the_atoms_in_element_colours():
    from ase.cluster import Icosahedron

    s = Structure(numbers=[29, 29, 78], positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    v = StructureView(s, title="Cu2Pt", view="static", width="200px", height="160px")
    assert v.mode == "static" and type(v.view).__name__ == "Image"
    img = _rgb(v.view.value)
    assert img.shape[:2] == (160, 200)
    assert _has_colour(img, element_color("Cu")) and _has_colour(img, element_color("Pt"))
    assert not _has_colour(img, element_color("Au"), tol=20)
    assert "Cu × 2" in v.legend_text and "Pt × 1" in v.legend_text
    v.set_structure(Icosahedron("Au", 2), title="Au13")
    img = _rgb(v.view.value)
    assert _has_colour(img, element_color("Au")) and not _has_colour(img, element_color("Cu"), tol=20)
    assert v.elements == ["Au"] and "Au13" in v.title.value


def test_view_mode_falls_back_to_static_without_the_nglview_front_end(monkeypatch, tmp_path):
    monkeypatch.delenv(structure_mod.VIEW_ENV, raising=False)
    # nglview importable, its lab extension nowhere on the Jupyter path: static
    monkeypatch.setattr("jupyter_core.paths.jupyter_path", lambda *parts: [str(tmp_path / "none")])
    assert structure_view_mode() == "static"
    assert StructureView(view="auto").mode == "static"
    # the extension present: 3D
    ext = tmp_path / "labextensions" / "nglview-js-widgets"
    ext.mkdir(parents=True)
    (ext / "package.json").write_text("{}")
    monkeypatch.setattr("jupyter_core.paths.jupyter_path", lambda *parts: [str(tmp_path / "labextensions")])
    expected = "3d" if structure_mod.importlib.util.find_spec("nglview") else "static"
    assert structure_view_mode() == expected
    # nglview not importable at all: static, even with the extension
    real = structure_mod.importlib.util.find_spec
    monkeypatch.setattr(structure_mod.importlib.util, "find_spec",
                        lambda name, *a: None if name == "nglview" else real(name, *a))
    assert structure_view_mode() == "static"
    # the environment variable and the argument win
    monkeypatch.setenv(structure_mod.VIEW_ENV, "static")
    assert structure_view_mode("auto") == "static"
    monkeypatch.setenv(structure_mod.VIEW_ENV, "bogus")
    with pytest.raises(ValueError, match="NANONB_STRUCTURE_VIEW"):
        structure_view_mode()
    with pytest.raises(ValueError, match="view must be one of"):
        StructureView(view="2d")
