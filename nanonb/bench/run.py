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
from .schema import OptionError, format_table, parse_options, write_json

#: protocol name -> "module:function"
PROTOCOLS: dict[str, str] = {
    "nanoalloys": "nanonb.bench.nanoalloys:run_nanoalloys",
    "nanoalloys-loeo": "nanonb.bench.nanoalloys_loeo:run_nanoalloys_loeo",
    "calisol": "nanonb.bench.calisol:run_calisol",
    "lnpdb": "nanonb.bench.lnpdb:run_lnpdb",
    "active": "nanonb.bench.active:run_active_bench",
    "tb": "nanonb.bench.tb:run_tb_bench",
    "forces": "nanonb.bench.forces:run_forces_bench",
    "notebooks": "nanonb.bench.notebooks:run_notebooks",
    "soak": "nanonb.bench.soak:run_soak",
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (``python -m nanonb.bench``, ``nanonb bench``); returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m nanonb.bench", description="Run a benchmark protocol: print its "
                                "table, write its JSON (--out).")
    p.add_argument("protocol", choices=sorted(PROTOCOLS))
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument("--quick", action="store_true", help="reduced configuration (seconds, for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout", default=None, help="nanoalloys: element to hold out (default Pt)")
    p.add_argument("--data", default=None, help="active: data set (nanoalloys, calisol, lnpdb)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the protocol's configuration (repeatable; VALUE is JSON or a "
                        "string); an unknown KEY is an error that lists the valid ones")
    p.add_argument("--no-progress", action="store_true")
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
