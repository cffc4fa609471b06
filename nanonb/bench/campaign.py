"""The ``campaign`` benchmark protocol: live campaigns with the simulator in the loop.

``python -m nanonb.bench campaign --data nanoalloys [--quick]`` runs :func:`run_campaign_bench`:
for every held-out element pair (the Pt pairs, never seen by the shipped Bayesian last layer) and
every seed, each strategy proposes new clusters (:class:`~nanonb.active.oracle.AlloyOracle`: shape
and size from the catalogue up to ``max_atoms``, composition, chemical ordering), each proposal
labelled by EMT then and there, ``budget`` simulator calls in all. Every strategy sees the same
first ``n_init`` random designs and the same candidate generator:

- ``random``: a random candidate of each round's set;
- ``gp-<acq>``: plain GP-BO, BoTorch ``SingleTaskGP`` on the same 12 descriptors, refitted each round;
- ``meta-<acq>``: the shipped meta-learned surrogate (``load_pretrained("nanoalloys-bml")``) adapted
  to the measured clusters, as a BoTorch model;
- ``metagp-<acq>``: GP-BO whose prior mean is the meta-learned surrogate's zero-shot prediction
  (:func:`~nanonb.active.live.meta_prior_gp`).

``--data flakes`` runs the same loop, strategies and metrics on new graphene flakes labelled by GFN2-xTB
(narrowest HOMO-LUMO gap within a size budget; config, oracle and the meta-trained surrogate in
:mod:`nanonb.bench.campaign_flakes`; tolerance ``tol_ev`` in eV).

Metrics (rows of the shared schema; ``median`` and ``iqr`` over pairs x seeds):

- ``simulator_calls_to_target``: calls until the best-so-far is within ``tol_ev_per_atom`` (5 meV/atom)
  of the lowest mixing energy *any* strategy found for that pair (censored at ``budget + 1``);
- ``simulator_calls_to_target_same_seed``: the same with the target taken per (pair, seed), i.e. over
  the strategies' campaigns from the same first designs (a less extreme target);
- ``simulator_calls_to_random_best``: calls to do at least as well as the random campaign of the same
  seed did with the whole budget;
- ``best_after_budget``: the best mixing energy found (eV/atom).

Example
-------
>>> res = run_campaign_bench(quick=True, progress=False, log=lambda *a: None)   # doctest: +SKIP
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from ..active.live import calls_to_target, run_live_campaign
from ..active.oracle import AlloyOracle
from ..data.alloy_clusters import PAIRS
from ..threads import limit_threads
from .campaign_flakes import FlakeCampaignConfig, flakes_setup
from .fanout import fan_out
from .schema import apply_options, make_result

#: ``CampaignConfig`` fields passed on to :func:`~nanonb.active.live.run_live_campaign` when a config has them
#: (the flake config has no local search; the defaults are ``run_live_campaign``'s).
SEARCH_OPTIONS = ("search_steps", "search_starts", "search_neighbours", "warm_start")

__all__ = ["CampaignConfig", "add_call_metrics", "campaign_table", "run_campaign_bench"]


@dataclass
class CampaignConfig:
    """Configuration of ``python -m nanonb.bench campaign`` (``--set key=value``).

    ``budget`` counts simulator (EMT) calls, ``tol_ev_per_atom`` is in eV/atom; ``workers``: processes
    running the (pair, seed, strategy) campaigns side by side (:func:`~nanonb.bench.fanout.fan_out`; 1:
    one after the other in this process; the same numbers either way). ``search_steps > 0``: every
    model-based strategy maximizes its acquisition by local search (``search_starts`` chains of swap/flip
    moves, ``search_neighbours`` per step) on top of the ``n_candidates`` generated per round
    (:func:`~nanonb.active.local_search.local_search`); ``random`` picks from the generated set.
    ``warm_start``: each round's GP fit (``gp``, ``metagp``) starts from the previous round's hyper-parameters.
    ``cluster`` / ``composition`` (B fraction): the goal is the most stable ordering at that shape and
    composition (:class:`~nanonb.active.oracle.AlloyOracle`; swaps only); ``None``: across shapes, sizes
    (``<= max_atoms``) and compositions.

    Example
    -------
    >>> CampaignConfig.for_data("nanoalloys", quick=True).budget
    6
    """

    data: str = "nanoalloys"
    pairs: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in PAIRS if "Pt" in (a, b))
    strategies: tuple[str, ...] = ("random", "gp-qlogei", "meta-qlogei", "meta-qucb", "metagp-qlogei")
    seeds: tuple[int, ...] = tuple(range(10))
    budget: int = 20
    n_init: int = 3
    batch_size: int = 1
    n_candidates: int = 128
    max_atoms: int = 55
    tol_ev_per_atom: float = 0.005
    surrogate: str = "nanoalloys-bml"
    search_steps: int = 0
    search_starts: int = 8
    search_neighbours: int = 16
    warm_start: bool = False
    cluster: str | None = None
    composition: float | None = None
    workers: int = 1
    extra: dict = field(default_factory=dict)

    @classmethod
    def for_data(cls, data: str, quick: bool = False) -> CampaignConfig:
        """Defaults per data set; ``quick``: one pair, one seed, 6 calls, 24 candidates (seconds)."""
        if data != "nanoalloys":
            raise ValueError(f"CampaignConfig is for --data nanoalloys only, not {data!r}; flakes (GFN2-xTB in the "
                             "loop) has its own config, nanonb.bench.campaign_flakes.FlakeCampaignConfig")
        cfg = cls(data=data)
        if quick:
            cfg = cls(**{**asdict(cfg), "pairs": ("Cu-Pt",),
                         "strategies": ("random", "gp-qlogei", "meta-qlogei", "metagp-qlogei"),
                         "seeds": (0,), "budget": 6, "n_candidates": 24, "max_atoms": 19})
        return cfg


def add_call_metrics(runs: pd.DataFrame, curves: dict, tol_ev_per_atom: float = 0.005) -> pd.DataFrame:
    """Add the calls-to-target columns to ``runs`` (one row per campaign: ``pair, seed, strategy,
    best_after_budget``); ``curves[(pair, seed, strategy)]`` is the best-so-far curve (eV/atom).

    ``calls_to_target``: within ``tol`` of the best any campaign of the pair found; ``..._same_seed``:
    of the best any strategy found from the same first designs; ``calls_to_random_best``: calls to do
    at least as well as the ``random`` campaign of the same seed did with the whole budget (``None``: never).

    Example
    -------
    >>> runs = add_call_metrics(pd.DataFrame(res["campaigns"]), curves)   # doctest: +SKIP
    """
    runs = runs.copy()
    runs["target"] = runs.groupby("pair")["best_after_budget"].transform("min")
    target_seed = runs.groupby(["pair", "seed"])["best_after_budget"].transform("min")
    key = list(zip(runs["pair"], runs["seed"], runs["strategy"]))
    runs["calls_to_target"] = [calls_to_target(curves[k], t, "min", tol_ev_per_atom) for k, t in zip(key, runs.target)]
    runs["calls_to_target_same_seed"] = [calls_to_target(curves[k], t, "min", tol_ev_per_atom)
                                         for k, t in zip(key, target_seed)]
    if "random" in set(runs["strategy"]):
        rand = runs[runs.strategy == "random"].set_index(["pair", "seed"])["best_after_budget"]
        runs["calls_to_random_best"] = [calls_to_target(curves[k], rand[(k[0], k[1])], "min") for k in key]
    return runs


def campaign_table(runs: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per strategy: median and IQR of calls to target (censored at ``budget + 1``; per pair and per
    (pair, seed)) and the median best value (eV/atom).

    Example
    -------
    >>> campaign_table(pd.DataFrame(res["campaigns"]), 20)   # doctest: +SKIP
    """
    out = []
    for name, g in runs.groupby("strategy", sort=False):
        calls = g["calls_to_target"].fillna(budget + 1).to_numpy(float)
        calls_seed = g["calls_to_target_same_seed"].fillna(budget + 1).to_numpy(float)
        best = g["best_after_budget"].to_numpy(float)
        out.append({"strategy": name, "calls_median": float(np.median(calls)),
                    "calls_q25": float(np.quantile(calls, 0.25)), "calls_q75": float(np.quantile(calls, 0.75)),
                    "reached": float(g["calls_to_target"].notna().mean()),
                    "calls_same_seed_median": float(np.median(calls_seed)),
                    "calls_same_seed_q25": float(np.quantile(calls_seed, 0.25)),
                    "calls_same_seed_q75": float(np.quantile(calls_seed, 0.75)),
                    **_random_best(g, budget),
                    "best_median_ev_per_atom": float(np.median(best)), "n_runs": len(g),
                    "n_pairs": int(g["pair"].nunique()), "runtime_s": float(g["runtime_s"].sum())})
    return pd.DataFrame(out)


def _random_best(g: pd.DataFrame, budget: int) -> dict:
    if "calls_to_random_best" not in g:
        return {}
    c = g["calls_to_random_best"].fillna(budget + 1).to_numpy(float)
    return {"calls_to_random_best_median": float(np.median(c)), "calls_to_random_best_q25": float(np.quantile(c, 0.25)),
            "calls_to_random_best_q75": float(np.quantile(c, 0.75))}


def run_campaign_bench(quick: bool = False, seed: int = 0, progress: bool = True, data: str = "nanoalloys",
                       config: CampaignConfig | None = None, log: Callable = print, **options) -> dict:
    """Live campaigns (EMT in the loop) on held-out pairs: meta-learned surrogate vs GP-BO vs random.

    ``seed`` offsets every campaign seed; ``options`` override :class:`CampaignConfig` fields
    (``data="flakes"``: :class:`~nanonb.bench.campaign_flakes.FlakeCampaignConfig` fields).

    Example
    -------
    >>> res = run_campaign_bench(quick=True, progress=False)   # doctest: +SKIP
    >>> res["table"][0]["strategy"]                             # doctest: +SKIP
    'random'
    """
    with limit_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BoTorch input-scaling and fit warnings, once per round
        return _run(quick, seed, progress, data, config, log, options)


def _campaign_job(cfg, seed: int, surrogate, make_oracle: Callable, pair: str, s: int, strat: str
                  ) -> tuple[dict, np.ndarray, list[float]]:
    """One campaign (a :func:`~nanonb.bench.fanout.fan_out` job): its row, its best-so-far curve and the
    wall time (s) of each simulator call it made, where the oracle records them (``xtb_seconds``)."""
    kind, _, acq = strat.partition("-")
    oracle = make_oracle(pair)
    n0 = len(getattr(oracle, "xtb_seconds", []))
    with limit_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BoTorch input-scaling and fit warnings, once per round
        res = run_live_campaign(oracle, kind, surrogate=surrogate, budget=cfg.budget, n_init=cfg.n_init,
                                batch_size=cfg.batch_size, n_candidates=cfg.n_candidates, seed=seed + s,
                                acquisition=acq or "qlogei",
                                **{k: getattr(cfg, k) for k in SEARCH_OPTIONS if hasattr(cfg, k)})
    return ({"pair": pair, "seed": seed + s, "strategy": strat, "runtime_s": res.runtime_s,
             "best_after_budget": float(res.best_curve[-1]), "best_design": res.best_design}, res.best_curve,
            list(getattr(oracle, "xtb_seconds", [])[n0:]))


def _run(quick, seed, progress, data, config, log, options) -> dict:
    from ..pretrained import load_pretrained

    t_all = time.perf_counter()
    if data == "flakes" or isinstance(config, FlakeCampaignConfig):  # GFN2-xTB in the loop: campaign_flakes.py
        cfg, surrogate, make_oracle, info = flakes_setup(quick, config, options)
    else:
        cfg = CampaignConfig(**asdict(config or CampaignConfig.for_data(data, quick=quick)))
        apply_options(cfg, options, reserved={"seed": "--seed", "data": "--data"})
        surrogate = load_pretrained(cfg.surrogate)
        info = {"goal": "min", "unit": "eV/atom", "oracle": "EMT (ase), live", "tol": cfg.tol_ev_per_atom}

        def make_oracle(pair):
            return AlloyOracle(*pair.split("-"), max_atoms=cfg.max_atoms, cluster=cfg.cluster,
                               composition=cfg.composition)
    jobs = [(p, s, st) for p in cfg.pairs for s in cfg.seeds for st in cfg.strategies]
    done = fan_out(partial(_campaign_job, cfg, seed, surrogate, make_oracle), jobs, cfg.workers, progress=progress,
                   desc="campaigns", log=log,
                   names=[f"(pair={p}, seed={seed + s}, strategy={st})" for p, s, st in jobs])
    rows = [row for row, _, _ in done]
    curves = {job: curve for job, (_, curve, _) in zip(jobs, done)}
    if "xtb_seconds" in info:  # every simulator call's time, in job order (from worker processes too)
        info["xtb_seconds"][:] = [t for _, _, times in done for t in times]
    runs = add_call_metrics(pd.DataFrame(rows), {(p, seed + q, st): c for (p, q, st), c in curves.items()},
                            info["tol"])
    table = campaign_table(runs, cfg.budget)
    split = f"{'families' if cfg.data == 'flakes' else 'held-out pairs'} ({', '.join(cfg.pairs)})"
    out = []
    for r in table.itertuples():
        g = runs[runs.strategy == r.strategy]
        kind = "meta" if r.strategy.startswith("meta") else "baseline"
        calls = g["calls_to_target"].fillna(cfg.budget + 1).to_numpy(float)
        calls_seed = g["calls_to_target_same_seed"].fillna(cfg.budget + 1).to_numpy(float)
        metrics = [("simulator_calls_to_target", calls, r.calls_median, [r.calls_q25, r.calls_q75]),
                   ("simulator_calls_to_target_same_seed", calls_seed, r.calls_same_seed_median, None)]
        if "calls_to_random_best" in g:  # only when 'random' is among the strategies
            metrics.append(("simulator_calls_to_random_best",
                            g["calls_to_random_best"].fillna(cfg.budget + 1).to_numpy(float),
                            r.calls_to_random_best_median, None))
        metrics.append(("best_after_budget", g["best_after_budget"].to_numpy(float), r.best_median_ev_per_atom, None))
        for metric, v, med, iqr in metrics:
            sem = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
            iqr = iqr or [float(np.quantile(v, 0.25)), float(np.quantile(v, 0.75))]
            out.append({"split": split, "method": r.strategy, "kind": kind, "k": cfg.n_init, "metric": metric,
                        "mean": float(np.mean(v)), "sem": sem, "median": float(med), "n_tasks": int(r.n_pairs),
                        "iqr": iqr, "n_runs": int(r.n_runs)})
    curve_rows = [{"pair": p, "seed": seed + s, "strategy": st, "best": [float(v) for v in c]}
                  for (p, s, st), c in curves.items()]
    log(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return make_result("campaign", out, time.perf_counter() - t_all,
                       asdict(cfg) | info,
                       data=cfg.data, table=table.to_dict(orient="records"),
                       campaigns=runs.drop(columns=["best_design"]).to_dict(orient="records"),
                       best_designs=runs[["pair", "seed", "strategy", "best_design"]].to_dict(orient="records"),
                       curves=curve_rows)
