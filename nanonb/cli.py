"""Command line: ``nanonb quickstart`` (the main job) and ``nanonb bench`` (alias of ``python -m nanonb.bench``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .bench.nanoalloys import NanoalloyConfig, run_nanoalloys
from .bench.run import main as bench_main
from .bench.schema import format_table, write_json
from .data.nanoalloys import ELEMENTS
from .threads import set_threads


def quickstart(holdout: str = "Pt", out: str | Path = "nanonb-quickstart", quick: bool = False, seed: int = 0,
               progress: bool = True, cache_dir: str | None = None) -> dict:
    """Generate (or load) the EMT nanoalloy tasks, hold out every pair with ``holdout``, meta-train every
    family (MAML, FOMAML, ANIL, Meta-SGD on structures; BML, DKT, ensemble on descriptors), pick the best
    learner on meta-validation pairs (a second element's meta-train pairs, never the held-out ones),
    evaluate it, the other learners and the baselines (scratch, pooled, pooled + fine-tune, GP on the
    support, support mean, in-task ceiling) at 1/5/10 shots on the held-out pairs, print the MAE and
    ``closed`` tables and a one-line verdict, and write ``results.json``, ``quickstart.png`` and the
    trained learners to ``out``. Errors in meV/atom. 2-5 minutes on 2 CPU cores (``quick``: about
    one minute).

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
    print(format_table({**result, "results": [r for r in result["results"] if r["metric"] in ("mae", "closed")]},
                       digits=3))
    print("\nMAE in meV/atom on held-out pairs, lower is better; closed = share of the learnable error "
          "(support mean -> in-task ceiling) a method removes. " + result["leakage"])
    print("\n" + result["verdict"])
    print("\nstage timings:")
    for stage, s in result["timings"].items():
        print(f"  {stage:32s} {s:7.1f} s")
    print(f"\nwrote {out / 'results.json'}, {out / 'quickstart.png'}, {out / 'learners'}/ "
          f"in {time.perf_counter() - t0:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """The ``nanonb`` command; returns the exit status (``nanonb quickstart --help``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # every flag after "bench" (--help included) belongs to the bench command line
        return bench_main(argv[1:], prog="nanonb bench")
    p = argparse.ArgumentParser(prog="nanonb", description="Few-shot meta-learning for nanotechnology.")
    cfg = NanoalloyConfig()  # the defaults quoted in the help are read from the protocol's configuration
    sub = p.add_subparsers(dest="cmd", title="commands", metavar="{quickstart,bench}")
    q = sub.add_parser("quickstart", help="meta-learn nanoalloy mixing energies, evaluate on an unseen element "
                                          "(2-5 min on 2 CPU cores)",
                       description="Meta-train every learner family on EMT nanoalloy pairs, pick the best by "
                                   "meta-validation on meta-train pairs, and compare it with the baselines on the "
                                   "pairs of an unseen element (MAE in meV/atom and 'closed'), then print a one-line "
                                   f"verdict. Defaults: hold out {cfg.holdout}, seed 0, "
                                   f"{'/'.join(map(str, cfg.shots))} shots, {cfg.n_episodes} episodes per task, "
                                   "output in ./nanonb-quickstart; 2-5 minutes on 2 CPU cores (one thread). "
                                   "Data: none to download (the EMT nanoalloys are generated offline on first use, "
                                   "~20 s, and cached). Options of the underlying protocol: nanonb bench "
                                   "nanoalloys --help.")
    q.add_argument("--holdout", default=cfg.holdout, help=f"element whose pairs are held out ({', '.join(ELEMENTS)}); "
                                                   "default: %(default)s")
    q.add_argument("--out", default="nanonb-quickstart", help="output folder (default: %(default)s)")
    q.add_argument("--quick", action="store_true", help="tiny configuration (smaller data and networks, few "
                                                        "iterations): about a minute; for tests, not for numbers")
    q.add_argument("--seed", type=int, default=0, help="data, training and episode seed (default: %(default)s)")
    q.add_argument("--cache-dir", default=None, help="where generated data is cached (default: user cache)")
    q.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")
    sub.add_parser("bench", help="run a benchmark protocol (nanonb bench --help lists them, with runtimes and data)")
    a, extra = p.parse_known_args(argv)
    bad = f"unrecognized arguments: {' '.join(extra)}; " if extra else ""
    if a.cmd is None:
        p.error(f"{bad}choose a command: quickstart (meta-learn nanoalloy mixing energies; e.g. nanonb "
                "quickstart --quick) or bench (run a benchmark protocol; nanonb bench --help)")
    if a.cmd == "bench":  # options before "bench" (nanonb --x bench ...): the bench command line sees the rest
        return bench_main(argv[argv.index("bench") + 1:], prog="nanonb bench")
    if extra:
        p.error(f"{bad}see nanonb {a.cmd} --help")
    if a.holdout not in ELEMENTS:
        p.error(f"--holdout must be one of {', '.join(ELEMENTS)}, not {a.holdout!r}")
    quickstart(a.holdout, a.out, a.quick, a.seed, not a.no_progress, a.cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
