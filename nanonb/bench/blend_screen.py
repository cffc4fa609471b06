"""Screen solvent blends on conductivity *and* oxidation stability, each predicted with its uncertainty.

Candidates: blends of CALiSol solvents (:func:`candidate_blends`; weight fractions on a grid, summing
to 1) with LiPF6 at ``c`` mol/kg and 25 °C.

- **Conductivity** (log10 k, k in mS/cm): the Bayesian last-layer meta-learner (``bml``) meta-trained on
  the CALiSol-23 systems (:func:`conductivity_model`) and adapted on the measured CALiSol rows of the
  salt near the screen's conditions (``|T - 298 K| <= 5``, ``|c - 1| <= 0.25``): a support of real
  measurements, not of the candidates. Its ``predict_dist`` gives the mean and the standard deviation.
- **Oxidation limit** (V vs Li/Li+, simulated gas-phase IPEA1-xTB scale): for each solvent, a stability
  meta-learner meta-trained on the *other* families of the library and adapted on ``k_support``
  members of its own family, the solvent itself excluded (:func:`solvent_oxidation`). A blend is
  limited by its most easily oxidized component present at ``>= min_fraction``: its limit is
  the minimum over those components, mean and standard deviation by Monte Carlo over independent
  Gaussian predictions.

:func:`screen_blends` joins both and flags the Pareto front of (conductivity, oxidation limit) with
:func:`nanonb.uncertainty.pareto.pareto_with_uncertainty` ("validate experimentally" where a blend is off the
front of the predicted means but has a fair probability of being on the true front: on it only because of its
uncertainty).

Example
-------
>>> out = screen_blends(calisol_ts, lib, progress=False)                 # doctest: +SKIP
>>> out.blends.query("flag == 'validate experimentally'").head()         # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.calisol import calisol_features
from ..data.electrolyte_tasks import stability_taskset
from ..learners.alpaca import BayesianMetaLearner
from ..tasks import Task, TaskSet
from ..threads import limit_threads
from ..uncertainty.pareto import pareto_with_uncertainty
from .stability import StabilityConfig, make_stability_learner

__all__ = ["MAX_FRACTION", "SCREEN_SOLVENTS", "ScreenResult", "blend_oxidation", "blend_task", "candidate_blends",
           "conductivity_model", "conductivity_support", "screen_blends", "solvent_oxidation"]

#: CALiSol solvents of the default screen (all in the electrolyte library).
SCREEN_SOLVENTS = ("EC", "PC", "DMC", "EMC", "DEC", "FEC", "MA", "DME")


#: Largest weight fraction of a solvent in a screened blend: EC is solid at 25 °C (mp 36 °C) and FEC is used as
#: a co-solvent or additive, not as the main solvent.
MAX_FRACTION = {"EC": 0.6, "FEC": 0.2}


def candidate_blends(solvents=SCREEN_SOLVENTS, step: float = 0.2, max_components: int = 3,
                     max_fraction: dict | None = None) -> pd.DataFrame:
    """Every blend of up to ``max_components`` of ``solvents`` with fractions on a ``step`` grid (sum 1).

    ``max_fraction``: largest fraction per solvent (default none; the screen uses :data:`MAX_FRACTION`).
    Returns one row per blend, one column per solvent (weight fraction) and ``blend`` (a label such as
    ``"EC 0.4 + DMC 0.6"``).

    Example
    -------
    >>> b = candidate_blends(("EC", "DMC"), step=0.5)
    >>> b["blend"].tolist(), b[["EC", "DMC"]].sum(axis=1).tolist()
    (['EC 1.0', 'DMC 1.0', 'EC 0.5 + DMC 0.5'], [1.0, 1.0, 1.0])
    """
    n = int(round(1 / step))
    rows = []
    for m in range(1, max_components + 1):
        for combo in itertools.combinations(solvents, m):
            for parts in itertools.product(range(1, n + 1), repeat=m):
                if sum(parts) != n or any(p / n > (max_fraction or {}).get(s, 1.0) + 1e-9
                                          for s, p in zip(combo, parts)):
                    continue
                frac = dict.fromkeys(solvents, 0.0) | {s: p / n for s, p in zip(combo, parts)}
                frac["blend"] = " + ".join(f"{s} {p / n:.1f}" for s, p in zip(combo, parts))
                rows.append(frac)
    return pd.DataFrame(rows)[[*solvents, "blend"]]


def blend_task(blends: pd.DataFrame, ts: TaskSet, salt: str = "LiPF6", temperature_k: float = 298.15,
               c_mol_kg: float = 1.0) -> Task:
    """The blends as a CALiSol task (inputs in ``ts``'s layout and standardization; targets unknown: 0).

    Example
    -------
    >>> task = blend_task(candidate_blends(("EC", "DMC")), calisol_ts)          # doctest: +SKIP
    """
    solvents = [f[len("frac_"):] for f in ts.feature_names if f.startswith("frac_")]
    unknown = [s for s in blends.columns if s != "blend" and s not in solvents]
    if unknown:
        raise ValueError(f"solvents {unknown} are not CALiSol solvent columns of this task set")
    df = pd.DataFrame({"T": temperature_k, "c": c_mol_kg, "c units": "mol/kg", "solvent ratio type": "w",
                       "salt": salt}, index=blends.index)
    for s in solvents:
        df[s] = blends[s].to_numpy(float) if s in blends.columns else 0.0
    feats, names = calisol_features(df, solvents=solvents)
    if names != list(ts.feature_names):
        raise ValueError("the blend features do not have the task set's columns")
    x = (feats.to_numpy(np.float64) - ts.feature_mean) / ts.feature_std
    return Task("blends", x, np.zeros(len(blends)), meta=blends.reset_index(drop=True), groups=(salt,),
                target_name="log10_k", target_unit="log10(mS/cm)")


def conductivity_support(ts: TaskSet, salt: str = "LiPF6", temperature_k: float = 298.15, c: float = 1.0,
                         dt_k: float = 5.0, dc: float = 0.25) -> Task:
    """The measured CALiSol rows of ``salt`` near ``temperature_k`` and ``c`` (any system), as one task.

    Example
    -------
    >>> len(conductivity_support(calisol_ts))        # doctest: +SKIP
    """
    parts = []
    for t in ts:
        if t.groups[0] != salt:
            continue
        near = np.flatnonzero((np.abs(t.meta["T"].to_numpy(float) - temperature_k) <= dt_k)
                              & (np.abs(t.meta["c"].to_numpy(float) - c) <= dc))
        if len(near):
            parts.append(t.subset(near))
    if not parts:
        raise ValueError(f"no CALiSol rows of {salt} near T={temperature_k} K, c={c}")
    return Task(f"{salt} near {temperature_k:g} K", np.vstack([p.inputs for p in parts]),
                np.concatenate([p.targets for p in parts]), groups=(salt,), target_name="log10_k",
                target_unit="log10(mS/cm)")


def conductivity_model(ts: TaskSet, n_iterations: int = 300, hidden=(64, 64), seed: int = 0) -> BayesianMetaLearner:
    """The CALiSol conductivity meta-learner of the screen: ``bml`` on an MLP, meta-trained on every task of ``ts``.

    Example
    -------
    >>> model = conductivity_model(calisol_taskset(data_dir="../shared/data"))   # doctest: +SKIP
    """
    learner = BayesianMetaLearner(model="MLP", model_kwargs={"hidden": tuple(hidden)}, n_iterations=n_iterations,
                                  meta_batch_size=8, k_support=(0, 20), seed=seed)
    with limit_threads(1):
        return learner.fit(ts, progress=False)


def solvent_oxidation(lib, solvents=SCREEN_SOLVENTS, k_support: int = 5, cfg: StabilityConfig | None = None,
                      learner: str = "bml", seed: int = 0) -> pd.DataFrame:
    """Predicted E_ox (V vs Li/Li+, simulated scale) of each CALiSol solvent, with its standard deviation.

    Per family of the solvents: a ``learner`` meta-trained on the other families, adapted on
    ``k_support`` seeded members of the family (not the solvent). Also returns the xTB label
    (``e_ox_xtb_v``) for comparison.

    Example
    -------
    >>> solvent_oxidation(lib, ("EC", "DMC"))[["solvent", "e_ox_mean_v", "e_ox_std_v", "e_ox_xtb_v"]]  # doctest: +SKIP
    """
    cfg = cfg or StabilityConfig()
    ts = stability_taskset(lib, "e_ox_v")
    where = {s: t.name for t in ts for s in t.meta["calisol"] if s}
    missing = [s for s in solvents if s not in where]
    if missing:
        raise ValueError(f"solvents {missing} are not in the electrolyte library")
    rows = []
    with limit_threads(1):
        for fam in dict.fromkeys(where[s] for s in solvents):
            model = make_stability_learner(learner, cfg).fit(ts.select([n for n in ts.names if n != fam]),
                                                             progress=False)
            task = ts[fam]
            for s in [s for s in solvents if where[s] == fam]:
                i = int(np.flatnonzero(task.meta["calisol"].to_numpy() == s)[0])
                others = np.setdiff1d(np.arange(len(task)), [i])
                sup = np.random.default_rng([seed, i]).choice(others, size=min(k_support, len(others)), replace=False)
                mean, std = model.adapt(task.subset(sup)).predict_dist(task.subset([i]))
                rows.append({"solvent": s, "family": fam, "e_ox_mean_v": float(mean[0]), "e_ox_std_v": float(std[0]),
                             "e_ox_xtb_v": float(task.targets[i])})
    return pd.DataFrame(rows).set_index("solvent").loc[list(solvents)].reset_index()


def blend_oxidation(blends: pd.DataFrame, solvent_ox: pd.DataFrame, min_fraction: float = 0.05,
                    n_samples: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Oxidation limit of each blend: min over its components (fraction >= ``min_fraction``), mean and std (V).

    Monte Carlo over independent Gaussian predictions of the components.

    Example
    -------
    >>> ox = pd.DataFrame({"solvent": ["A", "B"], "e_ox_mean_v": [5.0, 4.0], "e_ox_std_v": [0.01, 0.01]})
    >>> mean, std = blend_oxidation(pd.DataFrame({"A": [1.0, 0.5], "B": [0.0, 0.5]}), ox)
    >>> np.round(mean, 2).tolist()
    [5.0, 4.0]
    """
    ox = solvent_ox.set_index("solvent")
    solvents = [s for s in blends.columns if s in ox.index]
    rng = np.random.default_rng(seed)
    draws = rng.normal(ox.loc[solvents, "e_ox_mean_v"].to_numpy(), ox.loc[solvents, "e_ox_std_v"].to_numpy(),
                       size=(n_samples, len(solvents)))
    present = blends[solvents].to_numpy(float) >= min_fraction
    lim = np.where(present[None, :, :], draws[:, None, :], np.inf).min(-1)    # (samples, blends)
    return lim.mean(0), lim.std(0)


@dataclass
class ScreenResult:
    """The screen: ``blends`` (one row per candidate, with predictions and Pareto flags), ``solvents``
    (per-solvent E_ox predictions) and ``support_size`` (measured CALiSol rows the conductivity model adapted on).

    Example
    -------
    >>> res.blends.sort_values("log10_k_mean", ascending=False).head()      # doctest: +SKIP
    """

    blends: pd.DataFrame
    solvents: pd.DataFrame
    support_size: int


def screen_blends(calisol_ts: TaskSet, lib, solvents=SCREEN_SOLVENTS, step: float = 0.2, max_components: int = 3,
                  max_fraction: dict | None = None, conductivity_learner=None,
                  stability_cfg: StabilityConfig | None = None, k_support: int = 5, p_validate: float = 0.1,
                  seed: int = 0) -> ScreenResult:
    """Predict conductivity and oxidation limit of every candidate blend; flag the Pareto front.

    ``conductivity_learner``: a fitted CALiSol meta-learner with ``adapt(...).predict_dist`` (default:
    :func:`conductivity_model` on ``calisol_ts``). ``max_fraction``: default :data:`MAX_FRACTION`.
    Objectives (both maximized): ``log10_k`` at 25 °C and the oxidation limit ``e_ox`` (V). Flags:
    :func:`~nanonb.uncertainty.pareto.pareto_with_uncertainty` (``"validate experimentally"`` for a blend
    off the front of the means whose probability of being on the front is at least ``p_validate``).

    Example
    -------
    >>> res = screen_blends(calisol_taskset(data_dir="../shared/data"), load_electrolyte_library())  # doctest: +SKIP
    """
    blends = candidate_blends(solvents, step, max_components, MAX_FRACTION if max_fraction is None else max_fraction)
    model = conductivity_learner or conductivity_model(calisol_ts, seed=seed)
    support = conductivity_support(calisol_ts)
    with limit_threads(1):
        k_mean, k_std = model.adapt(support).predict_dist(blend_task(blends, calisol_ts))
    sol = solvent_oxidation(lib, solvents, k_support, stability_cfg, seed=seed)
    ox_mean, ox_std = blend_oxidation(blends, sol, seed=seed)
    front = pareto_with_uncertainty(np.c_[k_mean, ox_mean], np.c_[k_std, ox_std], p_validate=p_validate,
                                    names=["log10_k", "e_ox"], seed=seed)
    out = pd.concat([blends.reset_index(drop=True), front], axis=1)
    return ScreenResult(out, sol, len(support))
