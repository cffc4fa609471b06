"""The protocol registry and the command line ``python -m nanonb.bench <protocol>``.

This is the only module that knows the protocols, by name: :data:`PROTOCOLS` maps a protocol to
``"module:function"`` and :func:`run` imports the module when the protocol is asked for. Every
protocol function takes ``(quick: bool, seed: int, progress: bool, **options)`` and returns a
:func:`nanonb.bench.schema.make_result` dict (it may add extra keys); ``options`` override fields
of its configuration dataclass through :func:`nanonb.bench.schema.apply_options`.

Example
-------
``python -m nanonb.bench calisol --quick --set shots=[5] --out results/calisol.json``
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

from .._io import check_writable
from ..threads import limit_threads
from .catalog import describe, option_lines, overview_lines
from .schema import OptionError, format_table, parse_options, write_json

#: protocol name -> "module:function"
PROTOCOLS: dict[str, str] = {
    "nanoalloys": "nanonb.bench.nanoalloys:run_nanoalloys",
    "nanoalloys-loeo": "nanonb.bench.nanoalloys_loeo:run_nanoalloys_loeo",
    "calisol": "nanonb.bench.calisol:run_calisol",
    "lnpdb": "nanonb.bench.lnpdb:run_lnpdb",
    "active": "nanonb.bench.active:run_active_bench",
    "campaign": "nanonb.bench.campaign:run_campaign_bench",
    "tb": "nanonb.bench.tb:run_tb_bench",
    "forces": "nanonb.bench.forces:run_forces_bench",
    "notebooks": "nanonb.bench.notebooks:run_notebooks",
    "soak": "nanonb.bench.soak:run_soak",
    "speed": "nanonb.bench.speed:run_speed",
    "calisol-narrow": "nanonb.bench.narrow:run_narrow",
    "stability": "nanonb.bench.stability:run_stability",
}


def protocol_function(protocol: str):
    """The function registered for ``protocol`` (its module is imported now).

    Example
    -------
    >>> protocol_function("calisol").__name__
    'run_calisol'
    """
    if protocol not in PROTOCOLS:
        raise SystemExit(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    mod, fn = PROTOCOLS[protocol].split(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as exc:
        if exc.name != mod:
            raise
        raise SystemExit(f"protocol {protocol!r} is registered as {PROTOCOLS[protocol]} but {mod} "
                         "does not exist") from exc
    func = getattr(module, fn, None)
    if func is None:
        raise SystemExit(f"protocol {protocol!r} is registered but {mod}.{fn} does not exist")
    return func


def run(protocol: str, quick: bool = False, seed: int = 0, out: str | Path | None = None, **options) -> dict:
    """Run a registered protocol, print its table and write its JSON to ``out`` (if given).

    Threads: the one policy of :mod:`nanonb.threads` (``NANONB_NUM_THREADS``, default 1, for torch and
    BLAS), applied here once for every protocol, after the protocol's module (and so its BLAS) is loaded,
    and restored afterwards.

    ``out`` is checked before any work starts (:class:`OptionError` naming it if it cannot be written);
    if writing it still fails at the end, the result goes to a file in the temporary folder instead
    (printed), so a finished run is never lost.

    Example
    -------
    >>> result = run("nanoalloys", quick=True, out="results/nanoalloys_quick.json")  # doctest: +SKIP
    """
    func = protocol_function(protocol)
    if out is not None:
        try:
            check_writable(out)
        except OSError as exc:
            raise OptionError(f"--out {out}: {exc}. Nothing was run: choose a writable path.") from None
    with limit_threads():
        result = func(quick=quick, seed=seed, **options)
    print(format_table(result))
    if out is not None:
        try:
            write_json(out, result)
            print(f"wrote {out}")
        except OSError as exc:
            rescue = Path(tempfile.gettempdir()) / f"nanonb-{protocol}-{os.getpid()}.json"
            write_json(rescue, result)
            print(f"could not write {out} ({exc}); the result is in {rescue}", file=sys.stderr)
    return result


def _parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser; its epilog lists every protocol from :data:`nanonb.bench.catalog.CATALOG`."""
    epilog = ("protocols (python -m nanonb.bench PROTOCOL --help: its --set keys and their defaults):\n  "
              + "\n  ".join(overview_lines(PROTOCOLS)))
    p = argparse.ArgumentParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
                                description="Run a benchmark protocol: print its table, write its JSON (--out). "
                                            "Runtimes: one thread (NANONB_NUM_THREADS, default 1) on 2 cores.")
    p.add_argument("protocol", choices=sorted(PROTOCOLS), metavar="PROTOCOL",
                   help=f"one of: {', '.join(sorted(PROTOCOLS))}")
    p.add_argument("--out", default=None, help="write the JSON result here (default: print only)")
    p.add_argument("--quick", action="store_true", help="reduced configuration (seconds to a minute; for tests, "
                                                        "not for numbers)")
    p.add_argument("--seed", type=int, default=0, help="data, training and episode seed (default: %(default)s)")
    p.add_argument("--holdout", default=None, help="nanoalloys: element whose pairs are held out (default: Pt)")
    p.add_argument("--data", default=None, help="active: data set, nanoalloys, calisol or lnpdb "
                                                "(default: nanoalloys); campaign: nanoalloys or flakes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the protocol's configuration (repeatable; VALUE is JSON or a "
                        "string); PROTOCOL --help lists the keys; an unknown KEY is an error that lists them")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return p


def protocol_help(protocol: str, prog: str = "python -m nanonb.bench") -> str:
    """The help of one protocol: summary, runtime, data, and its ``--set`` keys with defaults.

    Example
    -------
    >>> "n_episodes = 20" in protocol_help("calisol")
    True
    """
    func = protocol_function(protocol)
    lines = [f"usage: {prog} {protocol} [--out OUT] [--quick] [--seed SEED] [--set KEY=VALUE ...] [--no-progress]",
             "", *describe(protocol), "", "--set keys:", *option_lines(protocol, func), "",
             f"common flags: {prog} --help"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m nanonb.bench") -> int:
    """Command line entry point (``python -m nanonb.bench``, ``nanonb bench``); returns the exit status.

    ``PROTOCOL --help`` prints :func:`protocol_help`; ``--help`` alone the overview of every protocol.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    named = [a for a in argv if a in PROTOCOLS]
    if named and any(a in ("-h", "--help") for a in argv):
        print(protocol_help(named[0], prog))
        return 0
    p = _parser(prog)
    a = p.parse_args(argv)
    try:
        opts = {k: v for k, v in {"holdout": a.holdout, "data": a.data}.items() if v is not None}
        set_opts = parse_options(a.set)
        flags = [k for k in ("seed", "quick", "out", "progress") if k in set_opts]
        if flags:
            raise OptionError(f"--set {flags[0]}=...: use the command-line flag --{flags[0]} instead")
        opts.update(set_opts)
        run(a.protocol, quick=a.quick, seed=a.seed, out=a.out, progress=not a.no_progress, **opts)
    except OptionError as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
