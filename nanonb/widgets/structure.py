"""3D structure views: :class:`StructureView` (nglview) with atoms coloured by element and a legend."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
from ase.data import atomic_numbers
from ase.data.colors import jmol_colors

from .live import plain_text

__all__ = ["ELEMENT_COLORS", "StructureView", "element_color"]


#: Distinct colours for the nanoalloy metals (so two greyish metals are never confused); other
#: elements fall back to the Jmol palette of ``ase.data.colors``.
ELEMENT_COLORS = {
    "Al": "#8fa3b8", "Cu": "#c8672a", "Ag": "#6fb7e8", "Au": "#e6b422", "Ni": "#3aa655", "Pd": "#1f4fd1",
    "Pt": "#9b4dca", "H": "#f2f2f2", "B": "#ffb5b5", "C": "#505050", "N": "#3050f8", "O": "#ff0d0d",
    "F": "#90e050", "S": "#ffff30", "Cl": "#1ff01f", "Li": "#cc80ff", "P": "#ff8000",
}


def element_color(symbol: str) -> str:
    """Hex colour used for ``symbol`` in :class:`StructureView` and its legend.

    Example
    -------
    >>> element_color("Pt")
    '#9b4dca'
    """
    if symbol in ELEMENT_COLORS:
        return ELEMENT_COLORS[symbol]
    r, g, b = (int(round(255 * c)) for c in jmol_colors[atomic_numbers[symbol]])
    return f"#{r:02x}{g:02x}{b:02x}"


def _as_atoms(structure):
    """An ``ase.Atoms`` from an ``ase.Atoms`` or anything with ``to_atoms()`` (``graphs.Structure``)."""
    if hasattr(structure, "to_atoms"):
        return structure.to_atoms()
    if hasattr(structure, "get_chemical_symbols") and hasattr(structure, "get_positions"):
        return structure
    raise TypeError(f"StructureView needs an ase.Atoms or a nanonb.graphs.Structure, got {type(structure).__name__}")


class StructureView(widgets.VBox):
    """nglview 3D view of a cluster, atoms coloured by element, with a legend.

    Parameters
    ----------
    structure:
        ``ase.Atoms`` or :class:`nanonb.graphs.Structure` (positions in Å); ``None`` for an empty
        view to fill later with :meth:`set_structure`.
    title:
        Text (HTML-escaped) shown above the view.
    style:
        NGL representation: ``"spacefill"`` (default; radii scaled by ``radius_scale``),
        ``"ball+stick"`` or ``"licorice"``.
    radius_scale:
        Scale of the van der Waals radii for ``"spacefill"`` (dimensionless).
    width, height:
        CSS size of the view, e.g. ``"360px"``.

    Attributes
    ----------
    view : nglview.NGLWidget
    legend : ipywidgets.HTML
    elements : list of str
        Element symbols of the current structure (sorted by atomic number).

    Example
    -------
    >>> from ase.cluster import Icosahedron
    >>> view = StructureView(Icosahedron("Au", 2), title="Au13")  # display(view) in a notebook
    >>> view.legend_text
    'Au × 13 (13 atoms)'
    """

    def __init__(self, structure=None, title: str = "", style: str = "spacefill", radius_scale: float = 0.7,
                 width: str = "360px", height: str = "300px"):
        import nglview

        if style not in ("spacefill", "ball+stick", "licorice"):
            raise ValueError(f"style must be 'spacefill', 'ball+stick' or 'licorice', not {style!r}")
        self.style, self.radius_scale = style, float(radius_scale)
        self.elements: list[str] = []
        self.n_atoms = 0
        self._nglview = nglview
        self.title = widgets.HTML(layout=widgets.Layout(margin="0 0 2px 0"))
        self.legend = widgets.HTML()
        if structure is not None:
            atoms = _as_atoms(structure)
            self.view = nglview.show_ase(atoms, default_representation=False)
        else:
            self.view = nglview.NGLWidget()
        self.view.layout = widgets.Layout(width=width, height=height)
        super().__init__([self.title, self.view, self.legend])
        self.add_class("nanonb-structure-view")
        if structure is not None:
            self._style(atoms, title)

    def set_structure(self, structure, title: str | None = None) -> StructureView:
        """Replace the displayed structure (``ase.Atoms`` or ``graphs.Structure``)."""
        atoms = _as_atoms(structure)
        for cid in list(self.view._ngl_component_ids):
            self.view.remove_component(cid)
        self.view.add_structure(self._nglview.ASEStructure(atoms), default_representation=False)
        self._style(atoms, title)
        return self

    def _style(self, atoms, title: str | None) -> None:
        symbols = atoms.get_chemical_symbols()
        self.elements = sorted(set(symbols), key=lambda s: atomic_numbers[s])
        self.n_atoms = len(symbols)
        for el in self.elements:
            kw: dict[str, Any] = {"color": element_color(el)}
            if self.style == "spacefill":
                kw["radiusScale"] = self.radius_scale
            self.view.add_representation(self.style, selection=f"_{el.upper()}", **kw)
        self.view.center()
        counts = {el: symbols.count(el) for el in self.elements}
        chips = " ".join(
            f'<span style="display:inline-block;width:0.8em;height:0.8em;border-radius:50%;'
            f'background:{element_color(el)};border:1px solid #555;vertical-align:middle"></span> '
            f"{el} × {counts[el]}" for el in self.elements)
        self.legend.value = f'<div style="font-size:90%">{chips} &nbsp;({self.n_atoms} atoms)</div>'
        if title is not None:
            self.title.value = f"<b>{html.escape(title)}</b>" if title else ""

    @property
    def legend_text(self) -> str:
        """The legend as plain text, e.g. ``"Cu × 30 Pt × 25 (55 atoms)"``."""
        return plain_text(self.legend.value)
