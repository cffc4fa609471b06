"""The ``calisol-narrow`` protocol: CALiSol-23 supports measured at one temperature (does a VTF head extrapolate?).

Leave-salt-out folds as in :mod:`nanonb.bench.calisol`. Per test system, ``n_episodes`` supports of ``k``
points drawn at one temperature (systems with at least ``k`` points at some temperature; the temperature
cycles over those) and, for contrast, ``n_episodes`` random supports of ``k`` points; the query is the rest of
the system. Methods: the VTF learners of the case study (``fomaml-vtf``, ``pooled-vtf+finetune``, ``vtf-fit``,
from :mod:`nanonb.bench.casestudy` with the calisol settings), ``vtf-prior``
(:class:`nanonb.learners.vtfprior.VTFPriorLearner`), its curve without adaptation (``vtf-prior (K=0)``) and the
support mean. Metric ``mae`` of log10(mS/cm), per task then over tasks; ``worst_ratio`` is the largest
per-task ratio of a method's MAE to the support mean's.

Example
-------
``NANONB_DATA_DIR=../shared/data python -m nanonb.bench calisol-narrow --set max_folds=1 --out results/narrow.json``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..baselines.nets import SupportMean
from ..data.calisol import calisol_taskset
from ..evaluation import summarize
from ..learners.registry import make_learner
from ..physics.vtf import RawColumns
from ..threads import limit_threads
from .calisol import CalisolConfig, calisol_splits
from .casestudy import build_meta_learner, drop_low_targets, make_baselines
from .schema import apply_options, make_result, summary_to_rows

__all__ = ["NarrowConfig", "narrow_supports", "run_narrow"]


@dataclass
class NarrowConfig:
    """Configuration of :func:`run_narrow` (``--set key=value``): folds, ``k`` support points, episodes per
    mode, the pooled network's ``pooled_epochs``, ``seed`` and ``tiny_meta`` (2 meta-updates, for tests).

    Example
    -------
    >>> NarrowConfig.quick().n_episodes
    1
    """

    n_folds: int = 5
    max_folds: int | None = None
    k: int = 5
    n_episodes: int = 5
    pooled_epochs: int = 40
    seed: int = 0
    tiny_meta: bool = False

    @classmethod
    def quick(cls) -> NarrowConfig:
        """One fold, one episode per mode, tiny budgets (for tests)."""
        return cls(max_folds=1, n_episodes=1, pooled_epochs=1, tiny_meta=True)


def narrow_supports(temperature_k: np.ndarray, k: int, n_episodes: int) -> list[np.ndarray]:
    """Support indices of ``n_episodes`` episodes with ``k`` points at one temperature (seeded 0, 1, ...).

    Example
    -------
    >>> [s.tolist() for s in narrow_supports(np.array([300.0, 300.0, 310.0, 310.0, 320.0]), 2, 2)]
    [[0, 1], [2, 3]]
    """
    T = np.round(np.asarray(temperature_k, dtype=np.float64), 1)
    values, counts = np.unique(T, return_counts=True)
    ok = values[counts >= k]
    if len(ok) == 0 or len(values) == 1:
        return []
    return [np.sort(np.random.default_rng(e).choice(np.flatnonzero(T == ok[e % len(ok)]), k, replace=False))
            for e in range(n_episodes)]


def _methods(train, cfg: NarrowConfig, seed: int) -> dict:
    case = CalisolConfig(pooled_epochs=cfg.pooled_epochs)
    spec = next(m for m in case.meta if m.model == "VTFNet")
    if cfg.tiny_meta:
        spec.n_iterations, spec.meta_batch_size, spec.adapt_steps = 2, 2, 5
    nets: dict = {}
    out = {"fomaml-vtf": build_meta_learner(spec, train, nets, seed=seed, pooled_epochs=cfg.pooled_epochs)}
    for b in make_baselines(("pooled-vtf+finetune", "vtf-fit"), case, train, seed, nets, True, False):
        out[b.name] = b
    vp = make_learner("vtf-prior", hidden=spec.hidden, epochs=cfg.pooled_epochs, mask_prefixes=spec.vtf_mask,
                      seed=seed).fit(train)
    out["vtf-prior"] = vp
    out["support mean"] = SupportMean()
    return out


def run_narrow(quick: bool = False, seed: int = 0, progress: bool = False, config: NarrowConfig | None = None,
               data_dir=None, log: Callable = print, **options) -> dict:
    """Few-shot CALiSol-23 with one-temperature supports vs random supports (see the module); metric ``mae``.

    Example
    -------
    >>> res = run_narrow(quick=True, data_dir="../shared/data")          # doctest: +SKIP
    """
    t_all = time.perf_counter()
    cfg = apply_options(config or (NarrowConfig.quick() if quick else NarrowConfig()), options,
                        reserved={"seed": "--seed"})
    cfg.seed = seed
    with limit_threads(1):
        ts = calisol_taskset(data_dir=data_dir)
        folds = calisol_splits(ts, cfg.n_folds, splits=("leave-salt-out",))["leave-salt-out"][: cfg.max_folds]
        cols = RawColumns.of(ts)
        rows = []
        for f, (train, test) in enumerate(folds):
            t0 = time.perf_counter()
            methods = _methods(drop_low_targets(train, -3.0), cfg, seed)
            for t in test:
                one_t = narrow_supports(cols.temperature(t), cfg.k, cfg.n_episodes)
                rand = [np.sort(np.random.default_rng(e).choice(len(t), cfg.k, replace=False))
                        for e in range(cfg.n_episodes)]
                for split, supports in (("one-temperature", one_t), ("random", rand)):
                    for e, s in enumerate(supports):
                        q = np.setdiff1d(np.arange(len(t)), s)
                        sup, qry = t.subset(s), t.subset(q)
                        preds = {n: m.adapt(sup).predict(qry) for n, m in methods.items()}
                        preds["vtf-prior (K=0)"] = methods["vtf-prior"].adapt(None).predict(qry)
                        for n, p in preds.items():
                            kind = "baseline" if n in ("support mean", "vtf-fit", "pooled-vtf+finetune") else "meta"
                            rows.append({"split": split, "method": n, "kind": kind, "task": t.name, "k": cfg.k,
                                         "episode": e, "fold": f, "mae": float(np.abs(p - qry.targets).mean())})
            log(f"  [calisol-narrow] fold {f}: {len(test)} test systems in {time.perf_counter() - t0:.0f} s")
    df = pd.DataFrame(rows)
    out_rows, worst = [], {}
    for split, g in df.groupby("split", sort=False):
        out_rows += summary_to_rows(summarize(g, "mae"), split)
        per = g.groupby(["method", "task"]).mae.mean().unstack("method")
        worst[split] = (per.div(per["support mean"], axis=0).max()).round(3).to_dict()
    config = asdict(cfg) | {"unit": "log10(mS/cm)", "quick": quick}
    n_one = int(df[df.split == "one-temperature"].task.nunique())
    return make_result("calisol-narrow", out_rows, time.perf_counter() - t_all, config, worst_ratio=worst,
                       n_one_temperature_tasks=n_one)
