"""What each benchmark protocol is, for ``--help``: one line, typical runtime, data needs, and its ``--set`` keys.

:data:`CATALOG` holds the hand-written part (a :class:`ProtocolInfo` per protocol name of
:data:`nanonb.bench.run.PROTOCOLS`); everything else is read from the code, so it cannot go stale:
the ``--set`` keys and their defaults are the fields of the protocol's configuration dataclass (found
from the ``config`` parameter of the protocol function, or :attr:`ProtocolInfo.config`), the quick
values come from the dataclass's ``quick()`` classmethod when it has one, and extra keyword
parameters of the protocol function are listed too. A protocol missing from :data:`CATALOG` still
gets a help text (without description); ``tests/test_bench_run.py`` fails until it is added.

Runtimes are wall times measured on the project's 2-core machine with one thread (the README's
numbers); ``--quick`` runs take seconds to a minute.

Example
-------
>>> CATALOG["calisol"].data.split(":")[0]
'CALiSol-23 (NANONB_DATA_DIR)'
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CATALOG", "ProtocolInfo", "config_class", "describe", "option_lines", "overview_lines"]


@dataclass(frozen=True)
class ProtocolInfo:
    """The hand-written help of one protocol (plain text, no markup).

    ``summary``: one line; ``runtime``: typical wall time of the full run on 2 cores (and of ``--quick``);
    ``data``: what it needs; ``config``: ``"module:Class"`` of its configuration dataclass when the
    protocol function has no ``config`` parameter that names it.

    Example
    -------
    >>> ProtocolInfo("toy", "1 s", "none").config is None
    True
    """

    summary: str
    runtime: str
    data: str
    config: str | None = None


_NO_DOWNLOAD = "none: the EMT nanoalloy data are generated offline on first use (~20 s) and cached"

#: protocol name -> its help; keep in step with nanonb.bench.run.PROTOCOLS (a test checks)
CATALOG: dict[str, ProtocolInfo] = {
    "nanoalloys": ProtocolInfo(
        "few-shot mixing energies of EMT nanoalloys on the pairs of a held-out element: every learner family, "
        "the best picked on meta-validation, against scratch, pooled, pooled + fine-tune, GP, support mean and "
        "the in-task ceiling (what nanonb quickstart runs)",
        "2-5 min (quick: ~1 min)", _NO_DOWNLOAD),
    "nanoalloys-loeo": ProtocolInfo(
        "the nanoalloys protocol with every element held out in turn (--set holdouts=Cu,Ag for some); "
        "counts on how many elements the best learner beats every baseline at K = 5",
        "~25 min with --set n_episodes=3 (7 x nanoalloys)", _NO_DOWNLOAD,
        config="nanonb.bench.nanoalloys:NanoalloyConfig"),
    "calisol": ProtocolInfo(
        "few-shot ionic conductivity of Li-ion electrolytes, leave-salt-out 5-fold (MAE of log10 k)",
        "~35 min (2110 s measured)", "CALiSol-23 (NANONB_DATA_DIR): the xlsx in ../shared/data"),
    "lnpdb": ProtocolInfo(
        "few-shot ranking of lipid-nanoparticle formulations, leave-study-out 5-fold (Spearman, top-10 % recall)",
        "~26 min (1540 s measured)", "LNPDB (NANONB_DATA_DIR): the csv files in ../shared/data"),
    "active": ProtocolInfo(
        "uncertainty calibration (coverage, NLL) and active-learning campaigns on held-out tasks of one data "
        "set (--data nanoalloys|calisol|lnpdb)",
        "7-8 min per data set (406-453 s measured)",
        "nanoalloys: none (generated); calisol, lnpdb: the files in NANONB_DATA_DIR"),
    "tb": ProtocolInfo(
        "TB-embedded meta-learner vs a plain graph network vs baselines on graphene-nanoflake HOMO-LUMO gaps "
        "(held-out dopants and shapes, size extrapolation)",
        "~28 min (1703 s measured)", "none: flakes built with RDKit and labelled with GFN2-xTB (tblite), cached"),
    "forces": ProtocolInfo(
        "does force supervision improve few-shot energy errors on held-out nanoalloys?",
        "~7 min (442 s measured)", _NO_DOWNLOAD),
    "notebooks": ProtocolInfo(
        "executes every tutorial notebook in a fresh kernel (wall time, peak memory) and times the "
        "adaptation explorer's slider",
        "the notebooks' total, each budgeted < 120 s (quick: 2 notebooks)",
        "the notebooks/ folder; 06 and 07 need the files in NANONB_DATA_DIR"),
    "soak": ProtocolInfo(
        "memory growth while each learner family meta-trains for a long time (RSS before/after)",
        "minutes (quick: 40 iterations, seconds)", "none (synthetic tasks)"),
    "speed": ProtocolInfo(
        "milliseconds per meta-iteration of MAML / FOMAML / ANIL / Meta-SGD on an MLP and a GNN with the torch.func "
        "and higher backends (the speed-up from the same run, and that their gradients agree), the explorer's "
        "slider latency (p50/p95) and each notebook's heaviest cell",
        "~5 min without notebooks, ~15 min with them (quick: seconds)",
        "none for the timings (synthetic tasks); the explorer uses the shipped learner, the notebooks as above"),
    "campaign": ProtocolInfo(
        "live design campaigns on the held-out Pt pairs with EMT in the loop: random vs GP-BO (SingleTaskGP) vs the "
        "meta-learned surrogate and a GP on its residuals (simulator calls to target, best after the budget); "
        "--data flakes: new graphene flakes of 21-30 heavy atoms, narrowest gap, GFN2-xTB in the loop",
        "~19 min with 5 seeds (1136 s measured; quick: seconds); --data flakes: ~21 min with 10 seeds (1277 s)",
        _NO_DOWNLOAD,
        config="nanonb.bench.campaign:CampaignConfig"),
    "stability": ProtocolInfo(
        "few-shot oxidation and reduction potentials (simulated, IPEA1-xTB) of electrolyte solvents on held-out "
        "chemical families: every learner family against support mean, GPs (descriptors, Tanimoto) and pooled "
        "+ fine-tune, with a scaffold leakage report",
        "~11 min (668 s measured; quick: ~20 s)",
        "none: the solvent library's labels ship with the package (verified); shipped=False recomputes them with "
        "tblite (~3-6 min)"),
    "calisol-narrow": ProtocolInfo(
        "CALiSol-23 leave-salt-out with supports measured at one temperature vs random supports: does a VTF "
        "head extrapolate? (MAE of log10 k and the worst ratio to the support mean)",
        "~16 min (971 s measured; quick: ~20 s)", "CALiSol-23 (NANONB_DATA_DIR): the xlsx in ../shared/data"),
}

#: parameters every protocol function takes, or that are plumbing rather than options
_NOT_OPTIONS = {"quick", "seed", "progress", "config", "log", "options", "holdout", "data"}


def _resolve(path: str):
    mod, name = path.split(":")
    return getattr(importlib.import_module(mod), name)


def config_class(protocol: str, func: Callable) -> type | None:
    """The configuration dataclass behind ``func``'s ``--set`` keys (``None`` if it has none).

    Example
    -------
    >>> from nanonb.bench.calisol import run_calisol
    >>> config_class("calisol", run_calisol).__name__
    'CalisolConfig'
    """
    info = CATALOG.get(protocol)
    if info is not None and info.config:
        return _resolve(info.config)
    try:
        hint = typing.get_type_hints(func).get("config")
    except Exception:  # an annotation that does not resolve: fall back to no config
        return None
    for cls in (hint, *typing.get_args(hint)):
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            return cls
    return None


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "(required)"


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def option_lines(protocol: str, func: Callable) -> list[str]:
    """One line per ``--set`` key: ``name = default`` (and the ``--quick`` value where it differs).

    Example
    -------
    >>> from nanonb.bench.soak import run_soak
    >>> any(line.strip().startswith("n_iterations = ") for line in option_lines("soak", run_soak))
    True
    """
    cls = config_class(protocol, func)
    lines = []
    if cls is not None:
        quick = cls.quick() if callable(getattr(cls, "quick", None)) else None
        lines.append(f"fields of {cls.__module__}.{cls.__name__} (default; --quick value where it differs):")
        for f in dataclasses.fields(cls):
            d = _default(f)
            q = getattr(quick, f.name, d) if quick is not None else d
            extra = f"   [quick: {_short(q, 40)}]" if q != d else ""
            lines.append(f"  {f.name} = {_short(d)}{extra}")
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in inspect.signature(func).parameters.values() if p.kind in kinds and p.name not in _NOT_OPTIONS]
    if params:
        lines.append("keyword parameters of the protocol function (also set with --set):")
        lines += [f"  {p.name} = {_short(p.default)}" for p in params]
    if not lines:
        lines.append("(this protocol has no configuration: --set is not used)")
    return lines


def describe(protocol: str) -> list[str]:
    """Summary, runtime and data lines of ``protocol`` (a placeholder when it has no catalog entry).

    Example
    -------
    >>> describe("soak")[0].startswith("memory growth")
    True
    """
    info = CATALOG.get(protocol)
    if info is None:
        return ["(no description yet: add it to nanonb.bench.catalog.CATALOG)"]
    return [info.summary, f"runtime on 2 cores: {info.runtime}", f"data: {info.data}"]


def overview_lines(protocols) -> list[str]:
    """The protocol list of ``python -m nanonb.bench --help``: name, summary, runtime, data.

    Example
    -------
    >>> overview_lines(["soak"])[0]
    'soak'
    """
    lines = []
    for name in sorted(protocols):
        lines.append(name)
        for text in describe(name):
            lines += textwrap.wrap(text, width=100, initial_indent="    ", subsequent_indent="      ")
    return lines
