"""A live oracle for graphene flakes: new flakes within a size budget, labelled by GFN2-xTB then and there.

:class:`FlakeOracle` speaks the oracle interface of :mod:`nanonb.active.oracle` (``initial``,
``candidates``, ``describe``, ``measure_batch``), so :func:`~nanonb.active.live.run_live_campaign`
runs it unchanged. A *design* is the JSON-able recipe of one flake of
:func:`nanonb.data.honeycomb.generate_flake` (shape, polygon size and aspect in Å, polygon centre,
edge irregularity, dopant family and the seed that places the dopants and jitters the edges); the
flake is regenerated from it exactly, so the campaign log stores recipes, not coordinates.

- Random designs: a shape of :data:`~nanonb.data.honeycomb.SHAPES` and its size parameters drawn as
  :func:`~nanonb.data.honeycomb.generate_family` draws them, kept when the flake is a valid closed
  shell with ``min_heavy <= n_heavy <= max_heavy`` (the size budget).
- Local moves from an incumbent: grow or shrink the cut by about one ring row (``size`` ± 0.6-1.6 Å),
  change its aspect, shift its centre (a different edge), or redraw the dopant sites and edge jitter.
- Every candidate is a molecule not measured yet and not in ``exclude`` (fingerprints, e.g. of the
  meta-training molecules), up to isomorphism (:func:`~nanonb.data.honeycomb.fingerprint`).
- Descriptors: the 10 flake descriptors of the ``load_flakes`` tasks
  (:data:`~nanonb.data.honeycomb.DESCRIPTOR_NAMES`), computed from the structure, no xTB needed.
- Label: the GFN2-xTB HOMO-LUMO gap (eV) of :func:`nanonb.data.flakes.xtb_gap` (single point at the
  idealised geometry, simulated, not experiment); ``goal`` is ``"min"`` (the narrowest gap).

Example
-------
>>> import numpy as np
>>> oracle = FlakeOracle("BN", max_heavy=30)
>>> d = oracle.initial(np.random.default_rng(0), 2)
>>> [21 <= oracle.flake(x).info["n_heavy"] <= 30 for x in d]
[True, True]
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import numpy as np

from ..data._lattice import A1, A2, HEX_CENTRE
from ..data.flakes import xtb_gap
from ..data.honeycomb import DESCRIPTOR_NAMES, SHAPES, Flake, _sample_shape_params, fingerprint, generate_flake

__all__ = ["FlakeOracle"]

_MOVES = ("grow", "shrink", "aspect", "shift", "redraw")


class FlakeOracle:
    """New ``dopant``-family flakes with ``min_heavy..max_heavy`` heavy atoms, labelled by GFN2-xTB gap (eV).

    ``candidates`` mixes ``random_fraction`` of random designs with local moves from the ``n_parents``
    best measured designs (generate-and-score). ``exclude``: fingerprints never proposed (e.g. the
    meta-training molecules). ``xtb_seconds`` lists the wall time of every xTB call made. ``cache``: a
    dict shared by oracles of the same family (generated flakes by recipe; campaigns from the same seed
    draw the same random designs, so a shared cache regenerates each once; labels are never cached).

    Example
    -------
    >>> oracle = FlakeOracle("none", min_heavy=10, max_heavy=14)
    >>> d = oracle.initial(np.random.default_rng(1), 1)[0]
    >>> [(pid, round(v, 2) > 0) for pid, v in oracle.measure_batch([(3, d)])]   # doctest: +SKIP
    [(3, True)]
    """

    goal, source, unit = "min", "gfn2-xtb", "eV"
    feature_names = DESCRIPTOR_NAMES

    def __init__(self, dopant: str = "none", min_heavy: int = 21, max_heavy: int = 30,
                 random_fraction: float = 0.5, n_parents: int = 3, exclude: set | None = None,
                 max_tries: int = 40, cache: dict | None = None):
        self.dopant, self.min_heavy, self.max_heavy = dopant, int(min_heavy), int(max_heavy)
        self.random_fraction, self.n_parents, self.max_tries = float(random_fraction), int(n_parents), int(max_tries)
        self.exclude = set(exclude or ())
        self.name = f"flakes-{dopant}"
        self.xtb_seconds: list[float] = []
        self._cache: dict[str, tuple[Flake, tuple] | None] = cache if cache is not None else {}

    def config(self) -> dict:
        """What defines the oracle (recorded in the campaign log)."""
        return {"oracle": "gfn2-xtb-flake", "dopant": self.dopant, "min_heavy": self.min_heavy,
                "max_heavy": self.max_heavy, "random_fraction": self.random_fraction, "n_parents": self.n_parents,
                "n_excluded": len(self.exclude)}

    def flake(self, design: dict) -> Flake | None:
        """The flake of ``design`` (regenerated exactly; ``None`` if the recipe gives no valid flake in the budget)."""
        hit = self._generate(design)
        return None if hit is None else hit[0]

    def _generate(self, design: dict) -> tuple[Flake, tuple] | None:
        """``(flake, fingerprint)`` of ``design``, ``None`` if invalid or outside the size budget (cached)."""
        key = json.dumps(design, sort_keys=True)
        if key not in self._cache:
            f = generate_flake(
                design["shape"], design["size"], design["aspect"], centre=(design["cx"], design["cy"]),
                dopant=design["dopant"], rng=np.random.default_rng(design["seed"]),
                irregularity=design["irregularity"], centrosymmetric=design["centro"])
            ok = f is not None and self.min_heavy <= f.info["n_heavy"] <= self.max_heavy
            self._cache[key] = (f, fingerprint(f.structure)) if ok else None
        return self._cache[key]

    def structure(self, design: dict):
        """The design as a :class:`~nanonb.graphs.Structure` (positions in Å, for a view)."""
        return self.flake(design).structure

    def _ok(self, design: dict, seen: set) -> bool:
        hit = self._generate(design)
        if hit is None:
            return False
        fp = hit[1]
        if fp in seen or fp in self.exclude:
            return False
        seen.add(fp)
        return True

    def _random_design(self, rng: np.random.Generator) -> dict:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        size, aspect = _sample_shape_params(shape, rng, int(1.2 * self.max_heavy))  # 1.2: most hits in budget
        on_hexagon = bool(rng.uniform() < 0.4)
        c = HEX_CENTRE if on_hexagon else rng.uniform() * A1 + rng.uniform() * A2
        return {"shape": shape, "dopant": self.dopant, "size": float(size), "aspect": float(aspect),
                "cx": float(c[0]), "cy": float(c[1]), "irregularity": 0.0 if rng.uniform() < 0.3 else 0.35,
                "centro": bool(on_hexagon and shape.startswith("hexagonal")), "seed": int(rng.integers(2**31))}

    def _move(self, rng: np.random.Generator, parent: dict) -> dict:
        d = dict(parent)
        move = _MOVES[int(rng.integers(len(_MOVES)))]
        if move in ("grow", "shrink"):  # about one ring row more or less
            d["size"] = max(1.0, d["size"] + (1 if move == "grow" else -1) * float(rng.uniform(0.6, 1.6)))
        elif move == "aspect":
            if d["shape"] == "triangular-armchair":
                d["aspect"] = float(np.clip(d["aspect"] + rng.uniform(-0.4, 0.4), 0.0, 1.0))
            elif d["shape"] == "rectangular":
                d["aspect"] = float(np.clip(d["aspect"] * np.exp(rng.uniform(-0.4, 0.4)), 0.4, 2.5))
            elif d["shape"].startswith("ribbon"):  # ribbon half-width, Å
                d["aspect"] = float(np.clip(d["aspect"] + rng.uniform(-1.2, 1.2), 1.2, 5.0))
            else:
                d["size"] = max(1.0, d["size"] + float(rng.uniform(-0.5, 0.5)))
        elif move == "shift":  # a different edge; off the hexagon centre, so no longer centrosymmetric
            d["cx"], d["cy"] = d["cx"] + float(rng.uniform(-0.8, 0.8)), d["cy"] + float(rng.uniform(-0.8, 0.8))
            d["centro"] = False
        else:  # redraw the dopant sites and the edge jitter
            d["seed"] = int(rng.integers(2**31))
        return d

    def _collect(self, make, n: int, seen: set) -> list[dict]:
        out: list[dict] = []
        for _ in range(n * self.max_tries):
            if len(out) >= n:
                break
            d = make()
            if self._ok(d, seen):
                out.append(d)
        return out

    def initial(self, rng: np.random.Generator, n: int) -> list[dict]:
        """``n`` random designs within the size budget (the campaign's first round)."""
        return self._collect(lambda: self._random_design(rng), n, set())

    def candidates(self, rng: np.random.Generator, incumbents: Sequence[dict], n: int) -> list[dict]:
        """About ``n`` new molecules: random designs and moves from the best ``n_parents`` of ``incumbents``
        (best first); none is a molecule of ``incumbents`` or of ``exclude``."""
        seen = {hit[1] for hit in map(self._generate, incumbents) if hit is not None}
        parents = list(incumbents)[: self.n_parents]
        n_rand = n if not parents else int(round(self.random_fraction * n))
        out = self._collect(lambda: self._random_design(rng), n_rand, seen)
        if parents:
            it = iter(range(10**9))
            out += self._collect(lambda: self._move(rng, parents[next(it) % len(parents)]), n - n_rand, seen)
        return out

    def describe(self, designs: Sequence[dict]) -> np.ndarray:
        """The 10 flake descriptors of each design (``DESCRIPTOR_NAMES``, as in ``load_flakes``), ``(n, 10)``."""
        rows = [[float(self.flake(d).info[k]) for k in DESCRIPTOR_NAMES] for d in designs]
        return np.asarray(rows, dtype=float).reshape(len(rows), len(DESCRIPTOR_NAMES))

    def measure_batch(self, items: Sequence[tuple[int, dict]]) -> Iterator[tuple[int, float]]:
        """Run GFN2-xTB on each design; yields ``(proposal id, HOMO-LUMO gap in eV)`` one at a time."""
        for pid, design in items:
            t0 = time.perf_counter()
            gap, _ = xtb_gap(self.flake(design).structure)
            self.xtb_seconds.append(time.perf_counter() - t0)
            yield pid, gap
