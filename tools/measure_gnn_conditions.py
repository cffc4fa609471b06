"""Measure the Bayesian last layer on a graph network with and without condition inputs (nanoalloys, Pt held out).

The learner is :class:`~nanonb.learners.alpaca.BayesianMetaLearner` (ALPaCA) whose feature network is the
invariant graph network (:class:`~nanonb.models.gnn.InvariantGNN`, width 32, 2 blocks, 16 radial functions)
on the cluster *structures*, meta-trained on the 15 pairs without Pt with the quickstart's BML settings
(250 iterations, meta-batch 8, support sizes 0-20). Variants (``--variants``):

- ``plain``: structures only;
- ``cond``: structures plus the per-structure conditions strain and rattle amplitude (``n_conditions=2``,
  standardized with meta-train statistics; :func:`nanonb.tasks.condition_tasks`);
- ``alldesc``: structures plus all 12 cluster descriptors as conditions (a hybrid: does the structure
  branch add anything to the descriptors?);
- ``desc``: the descriptor model of the quickstart (BML on an MLP 64x64 over the 12 descriptors), the
  reference.

MAE in meV/atom at K = 1, 5, 10 on the 6 held-out Pt pairs (mean +- s.e.m. over pairs; per pair the mean over
``--episodes`` episodes, the same episodes as ``nanonb quickstart``).

    python tools/measure_gnn_conditions.py --variants desc plain cond alldesc    # ~4 min per GNN variant, 1 thread
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from nanonb.data.nanoalloys import load_nanoalloys
from nanonb.evaluation import evaluate, summarize
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.learners.descriptors import OnDescriptors
from nanonb.tasks import condition_tasks

CONDITIONS = ["strain", "rattle_std_A"]
GNN = {"width": 32, "n_blocks": 2, "n_rbf": 16}
BML = {"n_iterations": 250, "meta_batch_size": 8, "k_support": (0, 20), "seed": 0}


def run(variant: str, tasks, episodes: int) -> list[dict]:
    """Meta-train one variant on the pairs without Pt; MAE rows (meV/atom) on the Pt pairs."""
    names = {"cond": CONDITIONS, "alldesc": list(tasks.feature_names)}.get(variant, [])
    ts = condition_tasks(tasks, names) if names else tasks
    train, test = ts.split_by_group("Pt")
    if variant == "desc":
        learner = OnDescriptors(BayesianMetaLearner(model="MLP", model_kwargs={"hidden": (64, 64)}, **BML),
                                "bml (descriptors)")
    else:
        kw = dict(GNN)
        if names:
            cols = [list(tasks.feature_names).index(n) for n in names]
            d = np.vstack([t.descriptors for t in train])[:, cols]
            kw |= {"n_conditions": len(names), "condition_mean": d.mean(0).tolist(),
                   "condition_std": np.maximum(d.std(0), 1e-6).tolist()}
        learner = BayesianMetaLearner(model="InvariantGNN", model_kwargs=kw, name=f"bml-gnn ({variant})", **BML)
    t0 = time.perf_counter()
    learner.fit(train, progress=False)
    fit_s = time.perf_counter() - t0
    df = evaluate([learner], test, shots=(1, 5, 10), n_episodes=episodes, seed=0, progress=False)
    s = summarize(df, "mae", scale=1000.0)
    rows = [{"variant": variant, "k": int(r.k), "mae": float(r.mean), "sem": float(r.sem), "fit_s": fit_s}
            for r in s.itertuples()]
    print(" ".join(f"K={r['k']}: {r['mae']:.1f} ± {r['sem']:.1f}" for r in rows), f"[{variant}, fit {fit_s:.0f} s]",
          flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["desc", "plain", "cond", "alldesc"],
                   choices=["desc", "plain", "cond", "alldesc"])
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--out", default=None, help="JSON file for the rows")
    a = p.parse_args()
    torch.set_num_threads(1)
    tasks = load_nanoalloys(n_per_pair=80, seed=0, progress=False)
    rows = [r for v in a.variants for r in run(v, tasks, a.episodes)]
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
