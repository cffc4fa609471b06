"""Command line: ``nanonb quickstart`` (the main job) and ``nanonb bench`` (alias of ``python -m nanonb.bench``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .bench.nanoalloys import run_nanoalloys
from .bench.run import main as bench_main
from .bench.schema import format_table, write_json
from .data.nanoalloys import ELEMENTS
from .threads import set_threads


def quickstart(holdout: str = "Pt", out: str | Path = "nanonb-quickstart", quick: bool = False, seed: int = 0,
               progress: bool = True, cache_dir: str | None = None) -> dict:
    """Generate (or load) the EMT nanoalloy tasks, hold out every pair with ``holdout``, meta-train
    MAML / first-order MAML / ANIL / Meta-SGD and the baselines, evaluate 1/5/10 shots on the held-out
    pairs, and write ``results.json``, ``quickstart.png`` and the trained learners to ``out``.
    Errors in meV/atom.

    Example
    -------
    >>> result = quickstart("Cu", out="qs-Cu", quick=True)  # doctest: +SKIP
    """
    set_threads()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"nanonb quickstart: few-shot mixing energies of nanoalloys with unseen element {holdout} "
          f"(EMT labels, simulated){' [quick]' if quick else ''}")
    result = run_nanoalloys(quick=quick, seed=seed, holdout=holdout, progress=progress,
                            fig_path=out / "quickstart.png", save_dir=out / "learners", cache_dir=cache_dir)
    write_json(out / "results.json", result)
    print()
    print(format_table({**result, "results": [r for r in result["results"] if r["metric"] == "mae"]}, digits=3))
    print("\nMAE in meV/atom on held-out pairs; lower is better. " + result["leakage"])
    print("\nstage timings:")
    for stage, s in result["timings"].items():
        print(f"  {stage:32s} {s:7.1f} s")
    print(f"\nwrote {out / 'results.json'}, {out / 'quickstart.png'}, {out / 'learners'}/ "
          f"in {time.perf_counter() - t0:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """The ``nanonb`` command; returns the exit status (``nanonb quickstart --help``)."""
    p = argparse.ArgumentParser(prog="nanonb", description="Few-shot meta-learning for nanotechnology.")
    sub = p.add_subparsers(dest="cmd", title="commands", metavar="{quickstart,bench}")
    q = sub.add_parser("quickstart", help="meta-learn nanoalloy mixing energies, evaluate on an unseen element")
    q.add_argument("--holdout", default="Pt", help="element whose pairs are held out (Al, Cu, Ag, Au, Ni, Pd, Pt)")
    q.add_argument("--out", default="nanonb-quickstart", help="output folder")
    q.add_argument("--quick", action="store_true", help="tiny configuration that runs in well under a minute")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--cache-dir", default=None, help="where generated data is cached (default: user cache)")
    q.add_argument("--no-progress", action="store_true")
    b = sub.add_parser("bench", help="run a benchmark protocol (see python -m nanonb.bench --help)")
    b.add_argument("args", nargs=argparse.REMAINDER)
    a, extra = p.parse_known_args(argv)
    bad = f"unrecognized arguments: {' '.join(extra)}; " if extra else ""
    if a.cmd is None:
        p.error(f"{bad}choose a command: quickstart (meta-learn nanoalloy mixing energies; e.g. nanonb "
                "quickstart --quick) or bench (run a benchmark protocol; nanonb bench --help)")
    if extra and a.cmd != "bench":
        p.error(f"{bad}see nanonb {a.cmd} --help")
    if a.cmd == "quickstart":
        if a.holdout not in ELEMENTS:
            p.error(f"--holdout must be one of {', '.join(ELEMENTS)}, not {a.holdout!r}")
        quickstart(a.holdout, a.out, a.quick, a.seed, not a.no_progress, a.cache_dir)
        return 0
    return bench_main(a.args)


if __name__ == "__main__":
    sys.exit(main())
