"""The result schema every benchmark protocol writes, and the one rule for ``--set`` options.

Every protocol returns (and ``python -m nanonb.bench`` writes as JSON)::

    {"protocol": str,
     "results": [{"split", "method", "kind": "meta" | "baseline", "k", "metric",
                  "mean", "sem", "median", "n_tasks"}],
     "runtime_s": float, "config": {...}}

Metric names are lower case (``mae``, ``rmse``, ``spearman``, ``top10_recall``, ``nll``, ...).

``--set KEY=VALUE`` options override fields of the protocol's configuration dataclass, all through
:func:`apply_options`: a key that is not a field is an error that lists the valid keys.
Protocols import this module; it imports no protocol.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_write

SCHEMA_KEYS = ("split", "method", "kind", "k", "metric", "mean", "sem", "median", "n_tasks")


class OptionError(ValueError):
    """An option (``--set KEY=VALUE`` or a keyword argument) that the protocol does not have."""


def summary_to_rows(summary: pd.DataFrame, split: str) -> list[dict]:
    """Rows of the shared schema from :func:`nanonb.evaluation.summarize` output (metric units unchanged).

    Example
    -------
    >>> rows = summary_to_rows(summarize(df, "mae", scale=1000.0), "holdout-Pt")  # doctest: +SKIP
    """
    rows = []
    for r in summary.itertuples(index=False):
        rows.append({"split": split, "method": r.method, "kind": r.kind, "k": int(r.k), "metric": r.metric,
                     "mean": float(r.mean), "sem": float(r.sem), "median": float(r.median),
                     "n_tasks": int(r.n_tasks)})
    return rows


def make_result(protocol: str, rows: list[dict], runtime_s: float, config: dict, **extra) -> dict:
    """Assemble and validate a result dict (``runtime_s`` in seconds; ``extra`` keys are added as they are).

    Raises ``ValueError`` for a row without a schema key, a ``kind`` other than ``"meta"`` /
    ``"baseline"`` or a metric name that is not lower case.

    Example
    -------
    >>> row = {"split": "s", "method": "m", "kind": "meta", "k": 5, "metric": "mae", "mean": 1.0,
    ...        "sem": 0.1, "median": 1.0, "n_tasks": 3}
    >>> make_result("toy", [row], 0.5, {"quick": True})["results"][0]["mean"]
    1.0
    """
    for r in rows:
        missing = [k for k in SCHEMA_KEYS if k not in r]
        if missing:
            raise ValueError(f"result row lacks {missing}: {r}")
        if r["kind"] not in ("meta", "baseline"):
            raise ValueError(f"kind must be 'meta' or 'baseline', got {r['kind']!r}")
        if r["metric"] != r["metric"].lower():
            raise ValueError(f"metric names are lower case, got {r['metric']!r}")
    return {"protocol": protocol, "results": rows, "runtime_s": float(runtime_s), "config": config, **extra}


def format_table(result: dict, digits: int = 3) -> str:
    """Text table: one block per (split, metric), methods × k with ``mean ± sem`` (result units).

    Example
    -------
    >>> print(format_table(result))  # doctest: +SKIP
    """
    df = pd.DataFrame(result["results"])
    if df.empty:
        return "(no results)"
    out = []
    for (split, metric), g in df.groupby(["split", "metric"], sort=False):
        g = g.assign(cell=[f"{m:.{digits}g} ± {s:.{digits - 1}g}" for m, s in zip(g["mean"], g["sem"])])
        wide = g.pivot_table(index=["method", "kind"], columns="k", values="cell", aggfunc="first", sort=False)
        wide.columns = [f"k={k}" for k in wide.columns]
        n = int(g["n_tasks"].max())
        out.append(f"[{result['protocol']}] split={split} metric={metric} (mean ± s.e.m. over {n} tasks)")
        out.append(wide.to_string())
        out.append("")
    out.append(f"runtime {result['runtime_s']:.1f} s")
    return "\n".join(out)


def json_default(o):
    """``json.dumps`` fallback: numpy scalars as numbers, tuples and sets as lists, anything else as ``str``.

    Example
    -------
    >>> json.dumps({"k": np.int64(5)}, default=json_default)
    '{"k": 5}'
    """
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)


def write_json(path: str | Path, result: dict) -> Path:
    """Write ``result`` as indented JSON (with :func:`json_default`), atomically, creating the parent folder.

    Example
    -------
    >>> write_json("results/calisol.json", result)  # doctest: +SKIP
    """
    return atomic_write(path, json.dumps(result, indent=1, default=json_default))


def parse_value(text: str):
    """The value of a ``--set KEY=VALUE`` option: JSON if it parses (``5``, ``[5, 10]``, ``null``), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[1, 2]"]`` -> ``{"a": 1, "b": [1, 2]}`` (values through :func:`parse_value`)."""
    opts: dict[str, Any] = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--set needs KEY=VALUE, got {kv!r}")
        opts[key.strip()] = parse_value(value)
    return opts


def config_keys(config) -> list[str]:
    """The option names a protocol accepts: the fields of its configuration dataclass, sorted."""
    return sorted(f.name for f in dataclasses.fields(config))


def apply_options(config, options: Mapping[str, Any], reserved: Mapping[str, str] | None = None):
    """THE ``--set`` rule: override fields of a configuration dataclass, in place; returns ``config``.

    - A key that is not a field raises :class:`OptionError` naming the configuration class and
      listing the valid keys; ``reserved`` keys (``{"seed": "--seed"}``) raise and name the flag to use.
    - A dict for a field holding a dict updates it (``iterations={"anil": 300}`` keeps the others).
    - A list for a field holding a tuple becomes a tuple.
    - Dicts in a list for a field holding a list of dataclasses become that dataclass
      (``meta=[{"name": "m", "n_iterations": 50}]`` -> ``[MetaSpec(...)]``).

    Example
    -------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Cfg:
    ...     shots: tuple = (5, 10)
    ...     n_episodes: int = 20
    >>> apply_options(Cfg(), {"shots": [1, 5]})
    Cfg(shots=(1, 5), n_episodes=20)
    >>> apply_options(Cfg(), {"n_episode": 3})
    Traceback (most recent call last):
    ...
    nanonb.bench.schema.OptionError: unknown option(s) ['n_episode'] for Cfg; valid keys: ['n_episodes', 'shots']
    """
    reserved = dict(reserved or {})
    valid = [k for k in config_keys(config) if k not in reserved]
    for key in options:
        if key in reserved:
            raise OptionError(f"option {key!r} of {type(config).__name__} is set with {reserved[key]}, not --set")
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for {type(config).__name__}; valid keys: {valid}")
    for key, value in options.items():
        setattr(config, key, _coerce(getattr(config, key), value))
    return config


def _coerce(current, value):
    if isinstance(current, dict) and isinstance(value, dict):
        return {**current, **value}
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(current, list) and isinstance(value, list) and current and dataclasses.is_dataclass(current[0]):
        cls = type(current[0])
        return [cls(**v) if isinstance(v, dict) else v for v in value]
    return value
