"""Meta-learned-kernel GPs of the case studies, with nested model selection inside each fold's meta-train set.

The learners (per fold, fitted on that fold's meta-train tasks only):

- ``dkt-vtf`` (CALiSol): :class:`~nanonb.learners.dkt_mean.MeanDKT` with the pooled VTF network as the GP mean
  and a meta-learned kernel over the electrolyte inputs (temperature, concentration, solvent fractions):
  ``rbf`` = an RBF kernel on a learned linear map of the inputs; ``jac`` = the same plus a linear kernel on
  the gradient of the pooled curve with respect to its five VTF parameters (:func:`vtf_jacobian`), a Bayesian,
  meta-learned version of fine-tuning the VTF curve. Residuals for meta-training are cross-fitted over salts.
- ``bml``, ``ensemble`` (CALiSol): the Bayesian last layer and a FOMAML deep ensemble on the same inputs.
- ``tanimoto-gp`` (LNPDB): :class:`~nanonb.learners.tanimoto_gp.TanimotoGP`, pooled gradient boosting as the
  GP mean, Tanimoto kernel on the lipid's Morgan count fingerprint + ARD RBF on descriptors, formulation and
  assay columns, hyper-parameters meta-learned across (study, assay) tasks.

Honest selection (:func:`nested_select`): every candidate is fitted on an inner leave-group-out split of the
fold's meta-train set (the held-out inner groups are meta-train groups of this fold, never another fold's
test groups), scored on seeded episodes of the inner held-out tasks at every K, and the best at each K is
kept; the candidates are then refitted on the whole meta-train set and evaluated on the fold's test tasks,
each under its own name and the chosen one again as ``selected`` (a per-K choice). The choice and the inner
scores go into the bench JSON (``folds[tag]["selection"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..baselines.nets import FineTune
from ..baselines.pooled_mean_gp import PooledMeanGP
from ..baselines.tabular import PooledTrees, SupportExtraTrees, SupportRF
from ..data.lnpdb import fingerprint_columns
from ..evaluation import Named, evaluate
from ..learners.dkt_mean import MeanDKT
from ..learners.registry import make_learner
from ..learners.stack import StackLearner
from ..learners.tanimoto_gp import TanimotoGP
from ..physics.vtfnet import vtf_model_kwargs
from ..recipes import PooledVTFFineTune
from ..tasks import Task, TaskSet
from .casestudy import _fit_pooled
from .memo import MemoAdapt, once_per_trainset

__all__ = ["PerShot", "calisol_candidates", "lnpdb_candidates", "nested_select", "vtf_jacobian"]


@torch.no_grad()
def vtf_jacobian(pred, inputs, eps: float = 1e-3) -> np.ndarray:
    """``d log10 k / d theta`` of a pooled VTF network's prediction, one column per VTF parameter, ``(n, 5)``.

    ``pred`` is the pooled network's predictor (``Pooled(...).adapt(None)``; its model has ``head.theta``,
    the five task-level VTF parameters); central differences of step ``eps`` (theta is restored).

    Example
    -------
    >>> vtf_jacobian(pooled.adapt(None), task).shape  # doctest: +SKIP
    (24, 5)
    """
    theta = pred.model.head.theta
    original = theta.detach().clone()
    cols = []
    try:
        for j in range(len(theta)):
            with torch.no_grad():
                theta[j] = original[j] + eps
            up = np.asarray(pred.predict(inputs), dtype=np.float64)
            with torch.no_grad():
                theta[j] = original[j] - eps
            down = np.asarray(pred.predict(inputs), dtype=np.float64)
            cols.append((up - down) / (2 * eps))
    finally:
        with torch.no_grad():
            theta.copy_(original)  # the same bits back (adding and subtracting eps in float32 does not do that)
    return np.stack(cols, 1)


def _pooled_vtf_fitter(cfg, seed: int) -> Callable[[TaskSet], object]:
    def fit(train: TaskSet):
        kw = vtf_model_kwargs(train, hidden=(32, 32), mask_prefixes=("anion_",))
        return _fit_pooled("VTFNet", kw, train, cfg.pooled_epochs, cfg.pooled_batch, seed, False).adapt(None)
    return fit


def _weighted_stacks(cfg, gp_fit: Callable, other_fit: Callable, scale: str, prefix: str = "stack"
                     ) -> dict[str, Callable]:
    """One two-member stack per GP weight ``w`` in ``cfg.stack_gp_weights`` (default ``(0.5,)``): the GP gets
    ``w``, the other member ``1 - w``; named ``<prefix>`` for 0.5 and ``<prefix>-gp<w>`` otherwise."""
    def stack(w: float, name: str) -> Callable[[TaskSet], StackLearner]:
        return lambda tr: StackLearner([gp_fit(tr), other_fit(tr)], weights=[w, 1 - w], scale=scale, name=name)

    names = {w: prefix if w == 0.5 else f"{prefix}-gp{w:g}" for w in getattr(cfg, "stack_gp_weights", (0.5,))}
    return {name: stack(w, name) for w, name in names.items()}


def _keep(cands: dict[str, Callable], keep, what: str) -> dict[str, Callable]:
    """Only the candidates named in ``keep`` (None: all); an unknown name is an error."""
    if keep is None:
        return cands
    unknown = sorted(set(keep) - set(cands))
    if unknown:
        raise ValueError(f"unknown {what} candidates {unknown}; choose from {sorted(cands)}")
    return {n: f for n, f in cands.items() if n in keep}


def calisol_candidates(cfg, seed: int) -> dict[str, Callable[[TaskSet], object]]:
    """Learners of the CALiSol selection: name -> ``fit(meta_train) -> fitted learner`` (``ensemble`` too;
    the protocol fits it on the outer meta-train set only, see :func:`nested_select`'s ``also``). ``stack`` is
    the plain mean of ``dkt-vtf-rbf`` and ``pooled-vtf+finetune`` (:class:`~nanonb.learners.stack.StackLearner`,
    ``scale="mean"``; it reuses their fits on the same tasks). ``cfg.stack_gp_weights`` (if the config has it)
    gives one stack per weight ``w`` of ``dkt-vtf-rbf`` (the fine-tune gets ``1 - w``), named ``stack`` for 0.5
    and ``stack-gp<w>`` otherwise, so the nested selection can choose the weight on inner validation.
    ``stack3`` / ``stack3-eq``: the weighted mean of ``dkt-vtf-rbf``, ``dkt-vtf-jac`` and the control with weights
    0.25 / 0.25 / 0.5 or 1/3 each (all three fitted once per meta-train set and shared).
    ``ft-ens``: ``cfg.ft_ens_members`` (default 3) pooled VTF networks (seeds ``seed, seed + 1, ...``; the
    first is the control's) each fine-tuned as the control, predictions averaged
    (:class:`~nanonb.recipes.PooledVTFFineTune`); ``dkt-vtf-rbf-ens``: ``dkt-vtf-rbf`` with the mean of those
    pooled networks as its GP mean (the whole-set ensemble shared with ``ft-ens``); ``stack-ens`` /
    ``stack-ens-gp<w>``: the weighted stacks of ``dkt-vtf-rbf-ens`` and ``ft-ens`` (weights as above).
    ``ft-map``: the control's pooled network fine-tuned 200 steps under a Gaussian prior on its weights
    (``FineTune(prior=cfg.ft_map_prior)``); ``stack-map`` / ``stack-map-gp<w>``: its stacks with ``dkt-vtf-rbf``;
    ``cfg.ft_map_priors`` (if set): one more ``ft-map-p<prior>`` per prior strength, with its stacks
    ``stack-map-p<prior>`` / ``stack-map-p<prior>-gp<w>``, so the selection can choose the prior on inner splits.
    The fine-tunes adapt once per support, shared with their stacks (:class:`~nanonb.bench.memo.MemoAdapt`).
    ``cfg.candidates`` (if set) keeps the names it lists.

    Example
    -------
    >>> sorted(calisol_candidates(CalisolConfig(), 0))  # doctest: +SKIP
    ['bml', 'dkt-vtf-jac', 'dkt-vtf-rbf', 'ensemble', 'pooled-vtf+finetune', 'stack']
    """
    it = cfg.gp_iterations
    mean = _pooled_vtf_fitter(cfg, seed)
    rbf = dict(kernel="rbf", hidden=(), n_features=8, linear=False, mean="constant", n_iterations=it, seed=seed)
    jac = dict(kernel="rbf", hidden=(), n_features=8, linear=True, mean="constant", n_iterations=it, seed=seed)

    def pooled_ft(train: TaskSet):
        pooled = _fit_pooled("VTFNet", vtf_model_kwargs(train, hidden=(32, 32), mask_prefixes=("anion_",)), train,
                             cfg.pooled_epochs, cfg.pooled_batch, seed, False)
        return MemoAdapt(Named(FineTune(pooled, steps=50, lr=3e-3), "pooled-vtf+finetune"))

    def bml(train: TaskSet):
        n_in = int(train[0].inputs.shape[1])
        return make_learner("bml", model="MLP", model_kwargs={"n_in": n_in, "hidden": (64, 64)},
                            n_iterations=cfg.bml_iterations, meta_batch_size=8, k_support=(0, 20), k_query=30,
                            seed=seed).fit(train, progress=False)

    def ensemble(train: TaskSet):
        n_in = int(train[0].inputs.shape[1])
        return make_learner("ensemble", n_members=cfg.ens_members, algorithm="anil", model="MLP",
                            model_kwargs={"n_in": n_in, "hidden": (64, 64)}, n_iterations=cfg.ens_iterations,
                            meta_batch_size=8, seed=seed).fit(train, progress=False)

    rbf_fit = once_per_trainset(lambda tr: MeanDKT(mean, crossfit=2, name="dkt-vtf-rbf", **rbf).fit(tr))
    ft_fit = once_per_trainset(pooled_ft)
    jac_fit = once_per_trainset(lambda tr: MeanDKT(mean, crossfit=2, name="dkt-vtf-jac", features=vtf_jacobian,
                                                   **jac).fit(tr))
    cands = {
        "dkt-vtf-rbf": rbf_fit,
        "dkt-vtf-jac": jac_fit,
        "pooled-vtf+finetune": ft_fit,
        "bml": bml,
        "ensemble": ensemble,
        **_weighted_stacks(cfg, rbf_fit, ft_fit, "mean"),
    }

    def stack3(weights: list[float], name: str) -> Callable[[TaskSet], StackLearner]:
        return lambda tr: StackLearner([rbf_fit(tr), jac_fit(tr), ft_fit(tr)], weights=weights, scale="mean", name=name)

    cands["stack3"] = stack3([0.25, 0.25, 0.5], "stack3")
    cands["stack3-eq"] = stack3([1, 1, 1], "stack3-eq")
    n_ens = getattr(cfg, "ft_ens_members", 3)
    ens_fit = once_per_trainset(lambda tr: MemoAdapt(PooledVTFFineTune(
        hidden=(32, 32), mask_prefixes=("anion_",), epochs=cfg.pooled_epochs, batch_size=cfg.pooled_batch, steps=50,
        lr=3e-3, seed=seed, n_members=n_ens).fit(tr)), size=4)
    rbf_ens_fit = once_per_trainset(lambda tr: MeanDKT(lambda t: ens_fit(t).adapt(None), crossfit=2,
                                                       name="dkt-vtf-rbf-ens", **rbf).fit(tr))
    cands["ft-ens"] = ens_fit
    cands["dkt-vtf-rbf-ens"] = rbf_ens_fit
    cands.update(_weighted_stacks(cfg, rbf_ens_fit, ens_fit, "mean", prefix="stack-ens"))

    def map_ft(prior: float, name: str) -> Callable[[TaskSet], object]:
        # the control's pooled network (same fit), MAP fine-tune: 200 steps, L2-SP prior
        return once_per_trainset(lambda tr: MemoAdapt(Named(
            FineTune(ft_fit(tr).method.pooled, steps=200, lr=3e-3, prior=prior), name)))
    more = [p for p in getattr(cfg, "ft_map_priors", ()) if p != cfg.ft_map_prior]
    priors = {"": cfg.ft_map_prior, **{f"-p{p:g}": p for p in more}}
    for tag, prior in priors.items():
        cands[f"ft-map{tag}"] = map_fit = map_ft(prior, f"ft-map{tag}")
        cands.update(_weighted_stacks(cfg, rbf_fit, map_fit, "mean", prefix=f"stack-map{tag}"))
    return _keep(cands, getattr(cfg, "candidates", None), "CALiSol")


def lnpdb_candidates(cfg, seed: int) -> dict[str, Callable[[TaskSet], object]]:
    """Candidate learners of the LNPDB selection (name -> fitter): Tanimoto GPs with and without the pooled
    GBM as their mean, the random forest on the support (the strongest baseline so far), and ``stack``: the
    equal-weight average of the per-task z-scored predictions of ``tanimoto-gp`` and ``rf-support``
    (:class:`~nanonb.learners.stack.StackLearner`; it reuses the ``tanimoto-gp`` fitted on the same tasks).
    ``cfg.stack_gp_weights`` (if the config has it) gives one stack per weight ``w`` of the GP (the RF gets
    ``1 - w``), named ``stack`` for 0.5 and ``stack-gp<w>`` otherwise, so the nested selection can choose the
    weight on inner validation. Also offered (not in the config's default list): ``et-support``, extremely
    randomized trees on the support (:class:`~nanonb.baselines.tabular.SupportExtraTrees`); ``stack-et``, the
    equal-weight stack of ``tanimoto-gp`` and ``et-support``; ``stack3``, the equal-weight (1/3 each) stack of
    ``tanimoto-gp``, ``rf-support`` and ``et-support``; ``stack-pooled`` and ``stack3-pooled``, the same as
    ``stack`` and ``stack3`` with ``tanimoto-gp+pooled`` (fitted once, shared) in place of ``tanimoto-gp``.
    ``tanimoto-gp+pooled-bs``: ``tanimoto-gp+pooled`` with a per-task Bayesian scale of the pooled GBM
    (``TanimotoGP(bayes_scale=True)``); ``stack-pooled-bs``, ``stack3-pooled-bs`` and ``stack4-pooled-bs``: the
    ``-pooled`` stacks with it in place of ``tanimoto-gp+pooled``. ``<stack>-cv`` for every stack above:
    the same members and weights re-weighted per task by 3-fold cross-validation on the support
    (``StackLearner(support_cv=3)``).
    ``cfg.candidates`` (if the config has it) keeps only the names it lists.

    Example
    -------
    >>> sorted(lnpdb_candidates(LNPDBConfig(), 0))  # doctest: +SKIP
    ['rf-support', 'stack', 'tanimoto-gp', 'tanimoto-gp+pooled']
    """
    def gbm(train: TaskSet):
        return PooledTrees("gbm", max_iter=cfg.gbm_iter, seed=seed).fit(train)

    def fp_cols(train: TaskSet) -> np.ndarray:
        return np.array(fingerprint_columns(train.feature_names))

    kw = dict(n_iterations=cfg.gp_iterations, seed=seed)

    def rf(train: TaskSet):
        return SupportRF(n_estimators=cfg.rf_trees, seed=seed).fit(train)

    def et(train: TaskSet):
        return SupportExtraTrees(n_estimators=cfg.rf_trees, seed=seed).fit(train)

    shared_gbm = once_per_trainset(gbm)  # deterministic: sharing the fit changes no prediction
    tgp = once_per_trainset(lambda tr: TanimotoGP(fp_cols(tr), name="tanimoto-gp", **kw).fit(tr))
    tgp_pooled = once_per_trainset(lambda tr: TanimotoGP(fp_cols(tr), fit_mean=shared_gbm,
                                                          name="tanimoto-gp+pooled", **kw).fit(tr))
    gp_pooled = once_per_trainset(lambda tr: PooledMeanGP(shared_gbm, scale=1.0, n_restarts=cfg.gp_restarts,
                                                           seed=seed, name="gp+pooled").fit(tr))
    cands = {
        "rf-support": rf,
        "et-support": et,
        "tanimoto-gp": tgp,
        "tanimoto-gp+pooled": tgp_pooled,
    }
    def stack(gp: Callable, others: tuple[Callable, ...], name: str) -> Callable[[TaskSet], StackLearner]:
        """Equal-weight z-score stack of ``gp`` and ``others`` (each fitted once per training set, shared)."""
        return lambda tr: StackLearner([gp(tr), *(f(tr) for f in others)], scale="zscore", name=name)

    cands.update(_weighted_stacks(cfg, tgp, rf, "zscore"))
    cands["stack-et"] = stack(tgp, (et,), "stack-et")
    cands["stack3"] = stack(tgp, (rf, et), "stack3")
    cands["stack-pooled"] = stack(tgp_pooled, (rf,), "stack-pooled")
    cands["stack3-pooled"] = stack(tgp_pooled, (rf, et), "stack3-pooled")
    cands["gp+pooled"] = gp_pooled
    cands["stack-gp+pooled"] = stack(gp_pooled, (rf,), "stack-gp+pooled")
    cands["stack4-pooled"] = stack(tgp_pooled, (rf, et, gp_pooled), "stack4-pooled")
    tgp_bs = cands["tanimoto-gp+pooled-bs"] = once_per_trainset(lambda tr: TanimotoGP(
        fp_cols(tr), fit_mean=shared_gbm, bayes_scale=True, name="tanimoto-gp+pooled-bs", **kw).fit(tr))
    for prefix, others in (("stack", (rf,)), ("stack3", (rf, et)), ("stack4", (rf, et, gp_pooled))):
        cands[f"{prefix}-pooled-bs"] = stack(tgp_bs, others, f"{prefix}-pooled-bs")

    def cv(fit: Callable[[TaskSet], StackLearner], name: str) -> Callable[[TaskSet], StackLearner]:
        def build(tr: TaskSet) -> StackLearner:
            s = fit(tr)
            return StackLearner(s.members, weights=s.weights, scale=s.scale, name=name, support_cv=3)
        return build
    cands.update({f"{n}-cv": cv(f, f"{n}-cv") for n, f in list(cands.items()) if n.startswith("stack")})
    return _keep(cands, getattr(cfg, "candidates", None), "LNPDB")


class PerShot:
    """A method that adapts with ``chosen[k]`` for a support of size ``k`` (the per-K nested choice).

    Example
    -------
    >>> sel = PerShot({5: gp, 10: finetune}, "selected")  # doctest: +SKIP
    """

    kind = "meta"

    def __init__(self, chosen: dict[int, object], name: str = "selected"):
        self.chosen, self.name = chosen, name

    def adapt(self, support: Task):
        k = 0 if support is None else len(support)
        if k not in self.chosen:
            raise ValueError(f"{self.name}: no learner was selected for K = {k} (selected for {sorted(self.chosen)}).")
        return self.chosen[k].adapt(support)


def nested_select(candidates: dict[str, Callable], train: TaskSet, key: Callable[[Task], str], shots: Sequence[int],
                  n_episodes: int, metric: str, higher_is_better: bool, seed: int = 0, n_inner: int = 3,
                  k_query_cap: int | None = None, log: Callable = print, also: dict[str, Callable] | None = None,
                  n_select_folds: int = 1) -> tuple[list, dict]:
    """Choose among ``candidates`` on inner leave-group-out splits of ``train``; refit all on ``train``.

    The inner splits are the first ``n_select_folds`` of ``train.group_kfold(n_inner, key)``: each holds out
    about a ``1/n_inner`` share of the meta-train groups (``n_select_folds = n_inner``: every meta-train group
    is held out once, a less noisy choice for ``n_inner`` times the inner fits). In each, every candidate is
    fitted on the rest and scored on ``n_episodes`` seeded episodes per held-out task and K; ``metric`` is
    averaged over episodes, then over all held-out tasks of all the inner splits, and the best per K is
    chosen. Returns ``(methods, record)``: every candidate refitted on all of ``train`` plus a
    :class:`PerShot` ``selected``; ``record`` has the inner groups (``inner_val_groups``: all of them;
    ``inner_folds``: per split), scores (``scores_per_fold``: per split), choice and timings. ``also``
    (name -> fitter) are fitted on ``train`` and returned too, without taking part in the selection (to
    save their inner fits).

    Example
    -------
    >>> methods, rec = nested_select(calisol_candidates(cfg, 0), train, key=lambda t: t.groups[0],
    ...                              shots=(5, 10), n_episodes=3, metric="mae",
    ...                              higher_is_better=False)  # doctest: +SKIP
    >>> rec["chosen"]  # doctest: +SKIP
    {'5': 'pooled-vtf+finetune', '10': 'dkt-vtf-jac'}
    """
    if not 1 <= n_select_folds <= n_inner:
        raise ValueError(f"n_select_folds must be in 1..{n_inner} (n_inner), not {n_select_folds}")
    splits = train.group_kfold(n_inner, key=key)[:n_select_folds]
    frames: dict[str, list] = {name: [] for name in candidates}
    timings: dict[str, float] = {}
    for inner_train, inner_val in splits:  # folds outside, candidates inside: a stack reuses its members' fits
        for name, fit in candidates.items():
            t0 = time.perf_counter()
            model = Named(fit(inner_train), name)
            frames[name].append(evaluate([model], inner_val, shots, n_episodes, k_query=k_query_cap, seed=seed + 1,
                                         progress=False, metrics=[metric]))
            timings[f"inner {name}"] = timings.get(f"inner {name}", 0.0) + time.perf_counter() - t0

    def mean_score(df: pd.DataFrame) -> dict[str, float]:
        per_task = df.groupby(["k", "task"])[metric].mean().groupby("k").mean()
        return {str(int(k)): float(v) for k, v in per_task.items()}

    scores = {name: mean_score(pd.concat(dfs)) for name, dfs in frames.items()}
    fold_scores = [{name: mean_score(dfs[i]) for name, dfs in frames.items()} for i in range(len(splits))]
    chosen = {}
    for k in shots:
        vals = {n: s[str(k)] for n, s in scores.items() if str(k) in s}
        chosen[str(k)] = (max if higher_is_better else min)(vals, key=vals.get)
    inner_folds = [sorted({key(t) for t in val}) for _, val in splits]
    log(f"    nested selection on {inner_folds if n_select_folds > 1 else inner_folds[0]}: {chosen}")
    fitted = {}
    for name, fit in {**candidates, **(also or {})}.items():
        t0 = time.perf_counter()
        fitted[name] = Named(fit(train), name)
        timings[f"outer {name}"] = time.perf_counter() - t0
    selected = PerShot({int(k): fitted[n] for k, n in chosen.items()}, "selected")
    record = {"candidates": sorted(candidates), "not_selectable": sorted(also or {}),
              "inner_val_groups": sorted({g for f in inner_folds for g in f}), "inner_folds": inner_folds,
              "metric": metric, "scores": scores, "scores_per_fold": fold_scores, "chosen": chosen,
              "timings_s": timings}
    return [*fitted.values(), selected], record
