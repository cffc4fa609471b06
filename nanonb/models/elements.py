"""Physical descriptors of the chemical elements, the input features of the graph networks' atoms.

Elements enter the networks through these descriptors (not a one-hot index), so an element never
seen in meta-training still has a meaningful representation.

Example
-------
>>> from nanonb.models.elements import ELEMENT_FEATURES, MAX_Z, element_table
>>> element_table().shape == (MAX_Z + 1, len(ELEMENT_FEATURES))   # doctest: +SKIP
True
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

ELEMENT_FEATURES = (
    "pauling_electronegativity",
    "atomic_radius_angstrom",
    "group",
    "period",
    "atomic_mass_amu",
    "first_ionization_energy_ev",
)
MAX_Z = 86


@lru_cache(maxsize=1)
def element_table() -> np.ndarray:
    """Standardized physical descriptors of elements Z = 1..86, shape ``(MAX_Z + 1, 6)``.

    Columns are :data:`ELEMENT_FEATURES`, taken from pymatgen's element data, each standardized
    over Z = 1..86 (row 0 is unused). Missing values are filled with the column median.
    """
    import warnings

    from pymatgen.core.periodic_table import Element

    rows = []
    warnings.filterwarnings("ignore", message="No Pauling electronegativity")  # noble gases: NaN, filled below
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)

        def val(f, _el=el):
            try:
                v = f(_el)
                return float(v) if v is not None else np.nan
            except Exception:
                return np.nan

        rows.append([
            val(lambda e: e.X),
            val(lambda e: e.atomic_radius),
            val(lambda e: e.group),
            val(lambda e: e.row),
            val(lambda e: e.atomic_mass),
            val(lambda e: e.ionization_energy),
        ])
    t = np.array(rows, dtype=np.float64)
    med = np.nanmedian(t, axis=0)
    t = np.where(np.isnan(t), med, t)
    t = (t - t.mean(0)) / t.std(0)
    return np.vstack([np.zeros((1, t.shape[1])), t]).astype(np.float32)
