"""StructureView driven headlessly (:mod:`nanonb.widgets.structure`; no browser, no kernel)."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("nglview")

from nanonb.graphs import Structure  # noqa: E402
from nanonb.widgets.structure import StructureView, element_color  # noqa: E402


def _ngl_calls(view) -> list[dict]:
    return [m for m in view._ngl_msg_archive if m.get("type") == "call_method"]


def test_structure_view_colours_by_element_with_legend():
    s = Structure(numbers=[29, 29, 78], positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    v = StructureView(s, title="Cu2Pt")
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
