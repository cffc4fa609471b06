"""Optimize an acquisition over a discrete design space by local search from the best candidates.

A live campaign scores a fresh candidate set each round (random designs plus moves from the incumbents).
Scoring is cheap next to a simulator call, so instead of picking the best of that small set,
:func:`local_search` climbs from the ``n_starts`` best-scored candidates: each step proposes
``n_neighbours`` moves of the current design (the oracle's ``neighbours``, e.g. swap/flip of sites),
scores them and moves to the best if it beats the current score (first-improvement hill climbing;
a chain stops at a local maximum). Every design visited joins the pool the acquisition is maximized
over, in the spirit of BoTorch's ``optimize_acqf_discrete_local_search`` for spaces that are only given
by a move generator. Designs already measured (``seen``) are never returned.

Example
-------
>>> import numpy as np
>>> nb = lambda rng, d, n: [{"v": d["v"] + s} for s in (-1, 1)][:n]
>>> designs, x = local_search(lambda x: -abs(x[:, 0] - 5), nb, lambda ds: np.array([[d["v"]] for d in ds], float),
...                           [{"v": 0}], np.array([-5.0]), set(), np.random.default_rng(0), steps=10)
>>> {"v": 5} in designs and {"v": 7} not in designs
True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["design_key", "local_search"]


def design_key(design: dict) -> str:
    """The key of a design: its JSON with sorted keys, as the campaign log stores proposals.

    Example
    -------
    >>> design_key({"b": 1, "a": 2})
    '{"a": 2, "b": 1}'
    """
    return json.dumps(design, sort_keys=True)


def local_search(score: Callable[[np.ndarray], np.ndarray], neighbours: Callable, describe: Callable,
                 starts: Sequence[dict], start_scores: np.ndarray, seen: set[str], rng: np.random.Generator,
                 steps: int = 8, n_neighbours: int = 16) -> tuple[list[dict], np.ndarray]:
    """Hill-climb ``score`` (higher is better; ``(n, d)`` descriptors -> ``(n,)``) from each of ``starts``.

    ``neighbours(rng, design, n)`` gives ``n`` moves of a design, ``describe(designs)`` their ``(n, d)``
    descriptors; ``start_scores`` are the scores of ``starts``; ``seen`` holds the JSON keys
    (``sort_keys=True``) of designs that must not be returned (measured ones, and the starts' pool).
    Returns the new designs visited (each once, none in ``seen``) and their descriptors.

    Example
    -------
    >>> nb = lambda rng, d, n: [{"v": d["v"] + 1}]
    >>> local_search(lambda x: x[:, 0], nb, lambda ds: np.array([[d["v"]] for d in ds], float),
    ...              [{"v": 0}], np.array([0.0]), set(), np.random.default_rng(0), steps=2)[0]
    [{'v': 1}, {'v': 2}]
    """
    visited = set(seen) | {design_key(d) for d in starts}
    chains = [(d, float(s)) for d, s in zip(starts, np.asarray(start_scores, float))]
    out_d: list[dict] = []
    out_x: list[np.ndarray] = []
    for _ in range(int(steps)):
        moved = []
        for design, s in chains:
            cand = []
            for m in neighbours(rng, design, n_neighbours):
                k = design_key(m)
                if k not in visited:
                    visited.add(k)
                    cand.append(m)
            if not cand:
                continue
            x = describe(cand)
            sc = np.asarray(score(x), float)
            out_d += cand
            out_x.append(x)
            j = int(np.argmax(sc))
            if sc[j] > s:
                moved.append((cand[j], float(sc[j])))
        if not moved:
            break
        chains = moved
    return out_d, (np.vstack(out_x) if out_x else np.empty((0, 0)))
