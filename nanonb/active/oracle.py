"""Oracles of a live campaign: who generates candidates and who measures them.

An oracle has ``goal`` (``"min"``/``"max"``), ``source`` (recorded with each measurement), ``unit``,
``initial(rng, n)`` (the first random designs), ``candidates(rng, incumbents, n)`` (a fresh candidate
set per round: random designs plus local moves from the incumbents), ``describe(designs)`` (model
inputs, ``(n, d)``) and ``measure_batch(items)``, which yields ``(proposal id, value)`` as values arrive.

- :class:`AlloyOracle`: nanoalloy clusters of one element pair, labelled by EMT then and there.
- :class:`CSVDropOracle`: the "human oracle". It writes the batch to ``<drop_dir>/proposals.csv`` and
  waits until ``<drop_dir>/results.csv`` holds a ``value`` for each ``proposal_id`` (a lab fills it
  in, or :func:`nanonb.widgets.campaign.results_form` does); designs come from the wrapped oracle.

Example
-------
>>> import numpy as np
>>> oracle = AlloyOracle("Cu", "Pt", max_atoms=13)
>>> [(pid, round(v, 4)) for pid, v in oracle.measure_batch([(7, {"cluster": "Ih13", "b_sites": []})])]
[(7, 0.0)]
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.alloy_clusters import DESCRIPTOR_NAMES
from ..data.alloy_design import (
    check_design_space,
    describe,
    design_structure,
    mixing_energy,
    random_designs,
    swap_moves,
)

__all__ = ["AlloyOracle", "CSVDropOracle"]


class AlloyOracle:
    """Designed ``A-B`` clusters (shape, size, composition, ordering) labelled by EMT mixing energy (eV/atom).

    ``candidates`` mixes ``random_fraction`` of fresh random designs with swap/flip moves from the
    ``n_parents`` best measured designs (generate-and-score: the acquisition picks among them);
    ``neighbours`` gives the same swap/flip moves of any design, for the acquisition local search that
    ``run_live_campaign(..., search_steps=...)`` runs from the best-scored candidates.

    The goal is the most stable design across shapes, sizes and compositions by default. The most stable
    ordering *at a composition*: ``cluster`` (one catalogue label, e.g. ``"Ih55"``; it overrides
    ``max_atoms``) and/or ``composition`` (the B fraction; ``N_B`` = ``composition * N`` rounded half up):
    every design keeps that shape and composition, and the moves are A<->B swaps only (no flips).

    Example
    -------
    >>> oracle = AlloyOracle("Cu", "Pt")
    >>> len(oracle.candidates(np.random.default_rng(0), [{"cluster": "Ih13", "b_sites": [0]}], 10))
    10
    >>> fixed = AlloyOracle("Cu", "Pt", cluster="Ih55", composition=0.5)
    >>> {(d["cluster"], len(d["b_sites"])) for d in fixed.initial(np.random.default_rng(0), 5)}
    {('Ih55', 28)}
    """

    goal, source, unit = "min", "emt", "eV/atom"
    feature_names = DESCRIPTOR_NAMES

    def __init__(self, a: str, b: str, max_atoms: int = 55, random_fraction: float = 0.5, n_parents: int = 3,
                 cluster: str | None = None, composition: float | None = None):
        check_design_space(cluster, composition)
        self.a, self.b, self.max_atoms = a, b, int(max_atoms)
        self.random_fraction, self.n_parents = float(random_fraction), int(n_parents)
        self.cluster, self.composition = cluster, None if composition is None else float(composition)
        self.name = f"{a}-{b}"

    def config(self) -> dict:
        """What defines the oracle (recorded in the campaign log; the fixed shape/composition only when set)."""
        fixed = {k: v for k, v in (("cluster", self.cluster), ("composition", self.composition)) if v is not None}
        return {"oracle": "emt-alloy", "pair": self.name, "max_atoms": self.max_atoms,
                "random_fraction": self.random_fraction, "n_parents": self.n_parents, **fixed}

    def _random(self, rng: np.random.Generator, n: int) -> list[dict]:
        clusters = None if self.cluster is None else [self.cluster]
        return random_designs(rng, n, self.max_atoms, clusters=clusters, composition=self.composition)

    def _moves(self, rng: np.random.Generator, design: dict, n: int) -> list[dict]:
        return swap_moves(rng, design, n, flips=self.composition is None)

    def initial(self, rng: np.random.Generator, n: int) -> list[dict]:
        """``n`` random designs (the campaign's first round)."""
        return self._random(rng, n)

    def candidates(self, rng: np.random.Generator, incumbents: Sequence[dict], n: int) -> list[dict]:
        """``n`` designs: random ones and moves from the best ``n_parents`` of ``incumbents`` (best first)."""
        parents = list(incumbents)[: self.n_parents]
        n_rand = n if not parents else int(round(self.random_fraction * n))
        out = self._random(rng, n_rand)
        for i in range(n - n_rand):
            out += self._moves(rng, parents[i % len(parents)], 1)
        return out

    def neighbours(self, rng: np.random.Generator, design: dict, n: int) -> list[dict]:
        """``n`` local moves of ``design`` (1-3 A<->B swaps or one site flipped; swaps only at a fixed
        composition; the moves the acquisition local search of :func:`~nanonb.active.live.run_live_campaign`
        climbs with, ``search_steps > 0``)."""
        return self._moves(rng, design, n)

    def describe(self, designs: Sequence[dict]) -> np.ndarray:
        """The 12 cluster descriptors of each design (``DESCRIPTOR_NAMES``)."""
        return describe(self.a, self.b, designs)

    def structure(self, design: dict):
        """The design as a :class:`~nanonb.graphs.Structure` (for a 3D view)."""
        return design_structure(self.a, self.b, design)

    def measure_batch(self, items: Sequence[tuple[int, dict]]) -> Iterator[tuple[int, float]]:
        """Run EMT on each design; yields ``(proposal id, mixing energy in eV/atom)`` one at a time."""
        for pid, design in items:
            yield pid, mixing_energy(self.a, self.b, design)


class CSVDropOracle:
    """The human oracle: proposals go out as a CSV, results come back as a CSV dropped in the same folder.

    ``proposals.csv`` has ``proposal_id`` and the design (JSON); the lab writes ``results.csv`` with
    ``proposal_id,value`` (target units; extra columns are ignored, rows may arrive over time).
    ``on_request(path)`` (optional) is called once the request is written. After ``timeout_s`` without
    all results, :class:`TimeoutError` is raised with what is still missing; the values already read
    have been yielded (and recorded by the loop), so rerunning the campaign later asks only for the rest.

    Example
    -------
    >>> oracle = CSVDropOracle(AlloyOracle("Cu", "Pt"), "lab_drop", timeout_s=3600)   # doctest: +SKIP
    """

    source = "human"

    def __init__(self, designer, drop_dir: str | Path, poll_s: float = 1.0, timeout_s: float | None = None,
                 on_request=None):
        self.designer, self.on_request = designer, on_request
        self.drop_dir = Path(drop_dir)
        self.poll_s, self.timeout_s = float(poll_s), timeout_s
        self.goal, self.unit, self.name = designer.goal, designer.unit, designer.name
        self.feature_names = getattr(designer, "feature_names", None)

    def __getattr__(self, item):
        if item == "designer":
            raise AttributeError(item)
        return getattr(self.designer, item)

    def config(self) -> dict:
        """The wrapped designer's config, marked as measured by hand."""
        return {**self.designer.config(), "measured_by": "human (CSV drop)"}

    @property
    def proposals_csv(self) -> Path:
        return self.drop_dir / "proposals.csv"

    @property
    def results_csv(self) -> Path:
        return self.drop_dir / "results.csv"

    def measure_batch(self, items: Sequence[tuple[int, dict]]) -> Iterator[tuple[int, float]]:
        """Write the batch to ``proposals.csv``; yield ``(proposal id, value)`` as they appear in ``results.csv``."""
        import json

        self.drop_dir.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"proposal_id": [p for p, _ in items],
                      "design": [json.dumps(d, sort_keys=True) for _, d in items]}).to_csv(self.proposals_csv,
                                                                                          index=False)
        if self.on_request is not None:  # e.g. a notebook form or a lab script told where the request is
            self.on_request(self.proposals_csv)
        missing = {int(p) for p, _ in items}
        t0 = time.monotonic()
        while missing:
            if self.results_csv.exists():
                res = pd.read_csv(self.results_csv)
                for pid, val in zip(res["proposal_id"].astype(int), res["value"].astype(float)):
                    if pid in missing and np.isfinite(val):
                        missing.discard(pid)
                        yield pid, float(val)
            if missing:
                if self.timeout_s is not None and time.monotonic() - t0 > self.timeout_s:
                    raise TimeoutError(f"no result yet for proposals {sorted(missing)} in {self.results_csv}; "
                                       "add rows 'proposal_id,value' and run the campaign again to continue")
                time.sleep(self.poll_s)
