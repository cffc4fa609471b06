"""Measure deep kernel transfer (DKT) against the references on the nanoalloys, Pt pairs held out.

MAE in meV/atom (mean +- s.e.m. over the 6 held-out Pt tasks; per task the mean over ``--episodes``
episodes ``TaskSet.episode(task, k, seed)`` with seeds 0..N-1, the same for every method) at K = 1, 5, 10
for DKT, DKT with per-task kernel refit (``adapt_kernel``), the Bayesian last layer (ALPaCA, settings of
notebook 05), a pooled MLP on the same descriptors, the GP on the support, the support mean, and the
in-task ceiling (GP trained on 80 % of each held-out task, 5-fold); plus ``closed`` per K.

DKT's settings are chosen on meta-train tasks only (nested): for each candidate in ``CANDIDATES`` and each
validation element (default: every element of the meta-train pairs in turn), DKT is trained on the
meta-train pairs without that element and scored (MAE at K = 5) on the meta-train pairs with it; the
Bayesian last layer is scored on the same folds for reference. The winner is retrained on all meta-train
pairs. The held-out tasks are touched only for the final table. ``--holdout X`` holds out element X
instead of Pt (leave-one-element-out tables; ``--no-select`` uses the DKT defaults).

    python tools/measure_dkt.py --episodes 10 --out dkt_results.json     # about 3 min on one thread
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch

from nanonb.active import descriptor_tasks
from nanonb.data.nanoalloys import load_nanoalloys
from nanonb.learners.dkt import DKT

try:  # package layout after the restructure (issue 13)
    from nanonb.baselines.gp_dist import SupportGPDist
    from nanonb.baselines.nets import Pooled, SupportMean
    from nanonb.learners.alpaca import BayesianMetaLearner

    from nanonb.baselines.ceiling import closed, in_task_ceiling
except ImportError:  # before it: nanonb/baselines.py shadows the baselines/ folder, load ceiling.py by path
    from nanonb.baselines import Pooled, SupportMean
    from nanonb.uncertainty import BayesianMetaLearner, SupportGPDist

    _path = Path(__file__).resolve().parents[1] / "nanonb" / "baselines" / "ceiling.py"
    _spec = importlib.util.spec_from_file_location("nanonb.baselines.ceiling", _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    closed, in_task_ceiling = _mod.closed, _mod.in_task_ceiling

#: DKT variants compared on the meta-train validation folds (adapt_kernel is scored on the same fits).
_MATERN = {"kernel": "matern52", "linear": False, "center": "none", "k_support": (0, 20), "objective": "predictive"}
CANDIDATES: dict[str, dict] = {
    "support-centred, matern 16": {**_MATERN, "center": "support", "k_support": (1, 20), "n_features": 16},
    "bayes offset, matern 16": {**_MATERN, "n_features": 16},
    "bayes offset, matern 32": {**_MATERN, "n_features": 32},
    "bayes offset, matern 32 + linear": {**_MATERN, "n_features": 32, "linear": True},
    "joint mll (paper), matern 32": {**_MATERN, "n_features": 32, "objective": "mll"},
    "linear kernel only (ALPaCA-like), 64": {**_MATERN, "kernel": "none", "linear": True, "n_features": 64},
}
SHOTS = (1, 5, 10)


def episode_scores(method, tasks, shots, n_episodes: int) -> dict:
    """``{k: {task: (mae, coverage90 or nan)}}`` averaged over episodes (target units)."""
    out: dict = {}
    for k in shots:
        out[k] = {}
        for t in tasks:
            maes, covs = [], []
            for s in range(n_episodes):
                ep = tasks.episode(t.name, k, seed=s)
                pred = method.adapt(ep.support)
                y = ep.query.targets
                if hasattr(pred, "predict_dist"):
                    m, sd = pred.predict_dist(ep.query)
                    covs.append(np.mean(np.abs(m - y) <= 1.6449 * sd))
                else:
                    m = pred.predict(ep.query)
                maes.append(np.mean(np.abs(np.asarray(m) - y)))
            out[k][t.name] = (float(np.mean(maes)), float(np.mean(covs)) if covs else float("nan"))
    return out


def _bml():
    return BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (64, 64)}, n_iterations=250, meta_batch_size=8,
                               k_support=(0, 20), seed=0)


def select(train, val_elements, n_episodes: int, log=print) -> tuple[dict, bool, list]:
    """Nested selection on meta-train: returns (best DKT overrides, its adapt_kernel flag, rows).

    Every DKT candidate (with and without ``adapt_kernel``, scored on the same fit) and, for reference,
    the Bayesian last layer are trained without one validation element and scored on its pairs (MAE at
    K = 1 and 5, meV/atom); the DKT candidate with the lowest mean MAE at K = 5 wins.
    """
    rows: dict[tuple[str, bool], dict] = {}
    for name, over in [*CANDIDATES.items(), ("bml (notebook 05)", None)]:
        for el in val_elements:
            tr, va = train.split_by_group(el)
            t0 = time.perf_counter()
            learner = _bml() if over is None else DKT(seed=0, **over)
            learner.fit(tr, progress=False)
            fit_s = time.perf_counter() - t0
            msg = []
            for adapt in (False,) if over is None else (False, True):
                if over is not None:
                    learner.config.adapt_kernel = adapt
                sc = episode_scores(learner, va, (1, 5), n_episodes)
                row = rows.setdefault((name, adapt), {"candidate": name, "adapt_kernel": adapt, "dkt": over is not None,
                                                      "val_mae_k1": [], "val_mae_k5": []})
                for k in (1, 5):
                    row[f"val_mae_k{k}"].append(1000 * float(np.mean([v[0] for v in sc[k].values()])))
                tag = "adapt " if adapt else ""
                msg.append(f"{tag}K=1 {row['val_mae_k1'][-1]:.1f} K=5 {row['val_mae_k5'][-1]:.1f}")
            log(f"  {name:34s} val {el}: fit {fit_s:5.1f} s  " + " | ".join(msg))
    out = list(rows.values())
    for r in out:
        r["mean_k1"], r["mean_k5"] = float(np.mean(r["val_mae_k1"])), float(np.mean(r["val_mae_k5"]))
    best = min((r for r in out if r["dkt"]), key=lambda r: r["mean_k5"])
    return CANDIDATES[best["candidate"]], best["adapt_kernel"], out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=10, help="episodes per task and K (seeds 0..N-1)")
    ap.add_argument("--holdout", default="Pt", help="element whose pairs are the meta-test tasks")
    ap.add_argument("--val-elements", default="all",
                    help="comma-separated meta-train elements held out in turn for selection; 'all': every element "
                         "of the meta-train pairs (leave-one-element-out inside meta-train)")
    ap.add_argument("--val-episodes", type=int, default=5)
    ap.add_argument("--no-select", action="store_true", help="skip the nested selection; use the DKT defaults")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    tasks = descriptor_tasks(load_nanoalloys(progress=False))
    train, test = tasks.split_by_group(args.holdout)
    print(f"{len(train)} meta-train pairs, {len(test)} held-out: {', '.join(test.names)}")
    if args.no_select:
        over, adapt_best, rows = {}, False, []
    else:
        print("nested selection on meta-train (MAE at K=5, meV/atom):")
        els = train.all_groups if args.val_elements == "all" else args.val_elements.split(",")
        over, adapt_best, rows = select(train, [e for e in els if e != args.holdout], args.val_episodes)
        print("  mean over validation elements: MAE@1  MAE@5")
        for r in sorted(rows, key=lambda r: r["mean_k5"]):
            tag = " + adapt_kernel" if r["adapt_kernel"] else ""
            print(f"  {r['mean_k1']:6.2f} {r['mean_k5']:6.2f}  {r['candidate']}{tag}")
    print(f"chosen DKT settings: {over}; adapt_kernel {'helps' if adapt_best else 'does not help'} on validation")

    timings, methods = {}, {}
    t0 = time.perf_counter()
    dkt = DKT(seed=0, **over).fit(train, progress=False)
    timings["dkt"] = time.perf_counter() - t0
    methods["dkt"] = dkt
    methods["dkt adapt_kernel"] = copy.deepcopy(dkt)
    methods["dkt adapt_kernel"].config.adapt_kernel = True
    t0 = time.perf_counter()
    methods["bml"] = _bml().fit(train, progress=False)
    timings["bml"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    methods["pooled MLP"] = Pooled(model="MLP", model_kwargs={"hidden": (64, 64)}, epochs=30, seed=0).fit(train)
    timings["pooled MLP"] = time.perf_counter() - t0
    methods["gp on support"] = SupportGPDist(n_restarts=0).fit(train)
    methods["support mean"] = SupportMean()
    scores = {}
    for name, m in methods.items():
        t0 = time.perf_counter()
        scores[name] = episode_scores(m, test, SHOTS, args.episodes)
        timings[f"eval {name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ceil = in_task_ceiling(test)
    timings["ceiling"] = time.perf_counter() - t0

    def stat(v) -> tuple[float, float]:
        v = 1000 * np.asarray(v)
        return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))

    names = test.names
    cm, cs = stat([ceil[n] for n in names])
    table = {}
    print(f"\nMAE (meV/atom, mean +- s.e.m. over {len(names)} {args.holdout} tasks, {args.episodes} episodes each); "
          f"closed = (SM - method) / (SM - ceiling); cov90 = share of query points in the 90 % interval")
    print(f"{'method':18s}" + "".join(f"{'K=' + str(k):>16s}{'closed':>8s}{'cov90':>7s}" for k in SHOTS))
    for name in methods:
        line = f"{name:18s}"
        for k in SHOTS:
            m, s = stat([scores[name][k][n][0] for n in names])
            sm = stat([scores["support mean"][k][n][0] for n in names])[0]
            c = closed(sm, m, cm)
            covs = [scores[name][k][n][1] for n in names]
            cov = float(np.mean(covs)) if np.isfinite(covs).all() else float("nan")
            table.setdefault(name, {})[k] = {"mae": m, "sem": s, "closed": c, "coverage90": cov}
            line += f"{m:10.1f} ± {s:4.1f}{c:8.2f}{cov:7.2f}"
        print(line)
    print(f"{'in-task ceiling':18s}{cm:10.1f} ± {cs:4.1f}   (GP on 80 % of each task, 5-fold)")
    k5 = {n: table[n][5]["mae"] for n in ("dkt", "dkt adapt_kernel", "bml")}
    best = min(k5, key=k5.get)
    sm5, gp5 = table["support mean"][5]["mae"], table["gp on support"][5]["mae"]
    print(f"\nbest meta-learner at K=5 (by the table, for reporting only): {best}: {k5[best] / sm5:.2f} x support "
          f"mean, {k5[best] / gp5:.2f} x GP on support, closed {table[best][5]['closed']:.2f}; K=1: "
          f"{table[best][1]['mae']:.1f} vs pooled MLP {table['pooled MLP'][1]['mae']:.1f}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"chosen": over, "selection": rows, "table": table,
                                              "ceiling": ceil, "timings": timings, "episodes": args.episodes},
                                             indent=1))


if __name__ == "__main__":
    main()
