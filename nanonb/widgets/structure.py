"""Structure views: :class:`StructureView`, atoms coloured by element with a legend, in 3D (nglview) or static.

The 3D view needs nglview's front end (its JupyterLab extension ``nglview-js-widgets``); where that is
missing (some JupyterLab / Notebook 7 setups) a 3D view would stay a "Loading widget..." box, so the
view falls back to a static image drawn with ASE and matplotlib. :func:`structure_view_mode` decides:
``view="3d"`` or ``"static"`` force a mode; ``"auto"`` (default) reads ``NANONB_STRUCTURE_VIEW``
(``3d``/``static``) and otherwise uses 3D only when nglview imports and its front-end extension is
installed (:func:`nglview_frontend_installed`).
"""

from __future__ import annotations

import html
import importlib.util
import os
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from ase.data import atomic_numbers, covalent_radii
from ase.data.colors import jmol_colors

from .live import figure_png, plain_text

__all__ = ["ELEMENT_COLORS", "StructureView", "element_color", "nglview_frontend_installed", "static_png",
           "structure_view_mode"]

#: environment variable that sets the default view mode ("3d", "static" or "auto")
VIEW_ENV = "NANONB_STRUCTURE_VIEW"
VIEW_MODES = ("auto", "3d", "static")


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


def nglview_frontend_installed() -> bool:
    """True when nglview imports and its front-end extension is installed where JupyterLab/Voilà look.

    Checks the ``labextensions`` folders of :func:`jupyter_core.paths.jupyter_path` for
    ``nglview-js-widgets`` (the prebuilt extension JupyterLab, Notebook 7 and Voilà load).

    Example
    -------
    >>> isinstance(nglview_frontend_installed(), bool)
    True
    """
    if importlib.util.find_spec("nglview") is None:
        return False
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return False
    return any((Path(d) / "nglview-js-widgets" / "package.json").is_file() for d in jupyter_path("labextensions"))


def structure_view_mode(view: str = "auto") -> str:
    """``"3d"`` or ``"static"``: ``view`` if forced, else ``$NANONB_STRUCTURE_VIEW``, else what is installed.

    Example
    -------
    >>> structure_view_mode("static")
    'static'
    """
    if view not in VIEW_MODES:
        raise ValueError(f"view must be one of {VIEW_MODES}, not {view!r}")
    if view == "auto":
        view = os.environ.get(VIEW_ENV, "auto").strip().lower() or "auto"
        if view not in VIEW_MODES:
            raise ValueError(f"{VIEW_ENV} must be one of {VIEW_MODES}, not {view!r}")
    if view == "auto":
        return "3d" if nglview_frontend_installed() else "static"
    return view


def static_png(atoms, width_px: int = 360, height_px: int = 300, rotation: str = "10x,20y,0z") -> bytes:
    """PNG of ``atoms`` drawn with :func:`ase.visualize.plot.plot_atoms` in the :func:`element_color` colours.

    Example
    -------
    >>> from ase.cluster import Icosahedron
    >>> static_png(Icosahedron("Au", 2), 120, 100)[:4]
    b'\\x89PNG'
    """
    from ase.visualize.plot import plot_atoms
    from matplotlib.figure import Figure

    dpi = 72
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    colors = [element_color(s) for s in atoms.get_chemical_symbols()]
    radii = 1.1 * covalent_radii[atoms.get_atomic_numbers()]  # Å; touching spheres, as in the 3D spacefill view
    plot_atoms(atoms, ax, rotation=rotation, colors=colors, radii=radii)
    ax.set_axis_off()
    ax.set_aspect("equal")
    return figure_png(fig)


def _as_atoms(structure):
    """An ``ase.Atoms`` from an ``ase.Atoms`` or anything with ``to_atoms()`` (``graphs.Structure``)."""
    if hasattr(structure, "to_atoms"):
        return structure.to_atoms()
    if hasattr(structure, "get_chemical_symbols") and hasattr(structure, "get_positions"):
        return structure
    raise TypeError(f"StructureView needs an ase.Atoms or a nanonb.graphs.Structure, got {type(structure).__name__}")


class StructureView(widgets.VBox):
    """View of a cluster, atoms coloured by element, with a legend: nglview 3D, or a static image.

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
    view:
        ``"3d"`` (nglview), ``"static"`` (a PNG drawn with ASE + matplotlib) or ``"auto"`` (default:
        ``$NANONB_STRUCTURE_VIEW``, else 3D where nglview's front end is installed; see
        :func:`structure_view_mode`).

    Attributes
    ----------
    mode : str
        ``"3d"`` or ``"static"``.
    view : nglview.NGLWidget, or ipywidgets.Image in static mode
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
                 width: str = "360px", height: str = "300px", view: str = "auto"):
        if style not in ("spacefill", "ball+stick", "licorice"):
            raise ValueError(f"style must be 'spacefill', 'ball+stick' or 'licorice', not {style!r}")
        self.style, self.radius_scale = style, float(radius_scale)
        self.elements: list[str] = []
        self.n_atoms = 0
        self.mode = structure_view_mode(view)
        self._size_px = (_px(width, 360), _px(height, 300))
        self.title = widgets.HTML(layout=widgets.Layout(margin="0 0 2px 0"))
        self.legend = widgets.HTML()
        atoms = _as_atoms(structure) if structure is not None else None
        if self.mode == "static":
            self._nglview = None
            self.view = widgets.Image(format="png")
        else:
            import nglview

            self._nglview = nglview
            self.view = (nglview.show_ase(atoms, default_representation=False) if atoms is not None
                         else nglview.NGLWidget())
        self.view.layout = widgets.Layout(width=width, height=height)
        super().__init__([self.title, self.view, self.legend])
        self.add_class("nanonb-structure-view")
        if structure is not None:
            self._style(atoms, title)

    def set_structure(self, structure, title: str | None = None) -> StructureView:
        """Replace the displayed structure (``ase.Atoms`` or ``graphs.Structure``)."""
        atoms = _as_atoms(structure)
        if self.mode == "static":
            self._style(atoms, title)
            return self
        for cid in list(self.view._ngl_component_ids):
            self.view.remove_component(cid)
        self.view.add_structure(self._nglview.ASEStructure(atoms), default_representation=False)
        self._style(atoms, title)
        return self

    def _style(self, atoms, title: str | None) -> None:
        symbols = atoms.get_chemical_symbols()
        self.elements = sorted(set(symbols), key=lambda s: atomic_numbers[s])
        self.n_atoms = len(symbols)
        if self.mode == "static":
            self.view.value = static_png(atoms, *self._size_px)
        else:
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


def _px(css: str, default: int) -> int:
    """Pixels of a CSS size such as ``"360px"`` (``default`` for other units)."""
    text = str(css).strip()
    return int(float(text[:-2])) if text.endswith("px") else default
