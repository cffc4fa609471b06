"""Choose the descriptor learner's settings by leave-one-element-out inside meta-train (nanoalloys, Pt held out).

For every candidate (one Bayesian last layer with some budget, an ensemble of them, DKT, mixtures of both) and
every element of the meta-train pairs in turn: meta-train on the meta-train pairs without that element, score the
query MAE at K = 5 on the pairs with it (3 episodes per pair, :func:`nanonb.bench.nanoalloy_methods.meta_validate`).
Prints the mean over the 6 elements (meV/atom) and the per-element values. The Pt pairs are never used. This is how
``bml-ens`` (five BMLs) and its settings were chosen for ``nanonb quickstart``.

    python tools/measure_bml_ensemble.py                     # all candidates, ~10 min on one quiet thread
    python tools/measure_bml_ensemble.py bml bml-ens5        # some of them
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from nanonb.bench.nanoalloy_methods import meta_validate
from nanonb.data.nanoalloys import load_nanoalloys
from nanonb.learners.alpaca import BayesianMetaLearner
from nanonb.learners.bml_ensemble import mixture_moments
from nanonb.learners.descriptors import OnDescriptors
from nanonb.learners.dkt import DKT


class _Mixture:
    """Equal-weight mixture of fitted learners of different kinds (BML and DKT), for this measurement only."""

    kind = "meta"

    def __init__(self, makers, name):
        self.makers, self.name = makers, name

    def fit(self, train, progress=False):
        self.members = [m().fit(train, progress=False) for m in self.makers]
        return self

    def adapt(self, support):
        adapted = [m.adapt(support) for m in self.members]
        return _Adapted(adapted)


class _Adapted:
    def __init__(self, adapted):
        self.adapted = adapted

    def predict_dist(self, x):
        d = [a.predict_dist(x) for a in self.adapted]
        return mixture_moments(np.stack([m for m, _ in d]), np.stack([s for _, s in d]))

    def predict(self, x):
        return self.predict_dist(x)[0]


def bml(**kw):
    base = dict(model="MLP", model_kwargs={"hidden": (64, 64)}, n_iterations=250, meta_batch_size=8,
                k_support=(0, 20), seed=0) | kw
    return lambda: OnDescriptors(BayesianMetaLearner(**base))


def dkt(seed=0):
    return lambda: OnDescriptors(DKT(n_iterations=200, seed=seed), "dkt")


CANDIDATES = {
    "bml": [bml()],
    "bml 500 it.": [bml(n_iterations=500)],
    "bml 1000 it.": [bml(n_iterations=1000)],
    "bml-ens5": [bml(seed=s) for s in range(5)],
    "bml-ens5 500 it.": [bml(seed=s, n_iterations=500) for s in range(5)],
    "dkt": [dkt()],
    "bml+dkt": [bml(), dkt()],
    "3 bml + 3 dkt": [bml(seed=s) for s in range(3)] + [dkt(s) for s in range(3)],
}


def main() -> None:
    torch.set_num_threads(1)
    wanted = sys.argv[1:] or list(CANDIDATES)
    train, _ = load_nanoalloys(n_per_pair=80, seed=0, progress=False).split_by_group("Pt")
    for name in wanted:
        t0, per = time.perf_counter(), {}
        for el in sorted(train.all_groups):
            fit_on, val = train.split_by_group(el)
            learner = _Mixture(CANDIDATES[name], name).fit(fit_on)
            per[el] = 1000 * meta_validate([learner], val, k=5, n_episodes=3, seed=0)[name]
        print(f"{name:18s} {np.mean(list(per.values())):6.2f}  " + " ".join(f"{k} {v:.1f}" for k, v in per.items())
              + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
