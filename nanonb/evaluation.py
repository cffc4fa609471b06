"""Few-shot evaluation on held-out tasks: THE episode loop, its metrics, and the rename wrapper.

:func:`evaluate` runs every method on the same seeded episodes of every task and shot count and
returns one row per (method, task, k, episode); :func:`summarize` averages over episodes within a
task, then reports mean, standard error and median over tasks (tasks, not episodes, are the
independent units); :func:`table` makes a wide text table of that.

The loop is shared by every benchmark. What varies is plugged in:

- ``metrics``: names from :data:`METRICS` (:func:`mae`, :func:`rmse`, :func:`spearman`,
  :func:`top_recall` as ``top10_recall``) or ``{name: fn}``; ``fn(pred, y, seed=...)`` returns a float
  or a dict of columns (e.g. one per calibration level);
- ``predict``: how a method predicts one episode (default ``adapt(support).predict(query)``; e.g.
  a predictive distribution ``(mean, std)`` instead). Methods with ``predict_many(supports, queries)``
  get all episodes of one (task, k) in one call (vectorised adaptation);
- ``seed_fn``: the episode seed (default :func:`episode_seed`);
- ``include``, ``extra``, ``columns``: which methods take part at a k (e.g. only zero-shot capable
  ones at ``k = 0``), extra per-row columns, constant columns (e.g. the fold).

Example
-------
>>> df = evaluate([learner, Named(pooled, "pooled net")], meta_test, shots=(1, 5), n_episodes=10)  # doctest: +SKIP
>>> table(summarize(df, "mae", scale=1000.0))                       # meV/atom  # doctest: +SKIP
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from .tasks import Task, TaskSet


# ---------------------------------------------------------------------- metrics
def _point(pred) -> np.ndarray:
    """Point predictions: ``pred`` itself, or the mean of a ``(mean, std)`` pair."""
    return np.asarray(pred[0] if isinstance(pred, tuple) else pred, dtype=np.float64)


def mae(pred, y: np.ndarray, **_) -> float:
    """Mean absolute error (target units)."""
    return float(np.mean(np.abs(_point(pred) - y)))


def rmse(pred, y: np.ndarray, **_) -> float:
    """Root mean squared error (target units)."""
    return float(np.sqrt(np.mean((_point(pred) - y) ** 2)))


def spearman(pred, y: np.ndarray, **_) -> float:
    """Spearman rank correlation; 0.0 when either side is constant (no ranking information)."""
    pred = _point(pred)
    if len(y) < 2 or np.ptp(pred) == 0 or np.ptp(y) == 0:
        return 0.0
    r = spearmanr(pred, y).statistic
    return 0.0 if not np.isfinite(r) else float(r)


def top_recall(pred, y: np.ndarray, frac: float = 0.1, seed: int = 0) -> float:
    """Share of the true top ``frac`` of the query found in the predicted top ``frac``.

    ``n_top = max(1, round(frac * n))``. The true top set holds every point whose value is at least
    the ``n_top``-th largest value (ties at the threshold included: several LNPDB studies report only
    3–8 distinct outcome values); the predicted top set is the ``n_top`` highest predictions (ties
    broken at random with ``seed``). Returns ``|predicted ∩ true| / n_top`` (equal to the plain
    recall of the top ``frac`` when there are no ties). A random ranking scores ``|true| / n`` on
    average, i.e. ``frac`` without ties and more with them.

    Example
    -------
    >>> y = np.arange(20.0)
    >>> top_recall(y, y), top_recall(-y, y)   # perfect ranking, reversed ranking (top 2 of 20)
    (1.0, 0.0)
    """
    y = np.asarray(y, dtype=np.float64)
    pred = _point(pred)
    n = len(y)
    n_top = max(1, int(round(frac * n)))
    thr = np.sort(y)[-n_top]
    true_top = y >= thr
    tiebreak = np.random.default_rng(seed).random(n)
    order = np.lexsort((tiebreak, -pred))
    return float(true_top[order[:n_top]].sum() / n_top)


#: Metric functions by name: ``fn(pred, y, seed=episode_seed) -> float`` (pred: array or (mean, std)).
METRICS: dict[str, Callable[..., Any]] = {"mae": mae, "rmse": rmse, "spearman": spearman, "top10_recall": top_recall}


def _metric_functions(metrics: Sequence[str] | Mapping[str, Callable]) -> dict[str, Callable]:
    if isinstance(metrics, Mapping):
        return dict(metrics)
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"Unknown metric(s) {bad}; available: {sorted(METRICS)} (or pass {{name: function}})")
    return {m: METRICS[m] for m in metrics}


# ---------------------------------------------------------------------- methods under another name
class Named:
    """A fitted method under another display name (e.g. two versions of one learner in a table).

    Parameters: ``method`` (anything with ``adapt(support)``), ``name``, ``kind`` ("meta" or
    "baseline"; default the method's), ``adapt_kwargs`` passed to every ``method.adapt`` call (e.g.
    ``steps``/``lr`` of a meta-learner's test-time inner loop), ``attrs`` extra attributes (e.g.
    ``zero_shot=False``). Other attributes are looked up on ``method``.

    Example
    -------
    >>> a = Named(learner, "anil (100 steps)", adapt_kwargs={"steps": 100})   # doctest: +SKIP
    """

    def __init__(self, method, name: str, kind: str | None = None, adapt_kwargs: dict | None = None, **attrs):
        self.method, self.name = method, name
        self.kind = kind or getattr(method, "kind", "meta")
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.__dict__.update(attrs)

    def adapt(self, support):
        return self.method.adapt(support, **self.adapt_kwargs)

    def __getattr__(self, item):
        if item == "method":
            raise AttributeError(item)
        return getattr(self.method, item)

    def __repr__(self) -> str:
        return f"Named({self.name!r}, {self.method!r})"


# ---------------------------------------------------------------------- the episode loop
def episode_seed(seed: int, task: str, k: int, episode: int) -> int:
    """Deterministic episode seed from (seed, task name, k, episode index)."""
    return (zlib.crc32(f"{seed}|{task}|{k}|{episode}".encode()) + seed) % (2**31 - 1)


@dataclass
class ZeroShotEpisode:
    """A ``k = 0`` episode: no support (``support=None``), the query is the whole task or a seeded part."""

    task: Task
    query: Task
    query_idx: np.ndarray
    seed: int
    support: None = None
    support_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def make_episode(test: TaskSet, task: Task, k: int, k_query: int | None, seed: int):
    """``test.episode(task, k, k_query, seed)``, or a :class:`ZeroShotEpisode` at ``k = 0``."""
    if k > 0:
        return test.episode(task, k, k_query, seed=seed)
    if k_query is None or k_query >= len(task):
        return ZeroShotEpisode(task, task, np.arange(len(task)), seed)
    ep = test.episode(task, 0, k_query, seed=seed)
    return ZeroShotEpisode(task, ep.query, ep.query_idx, seed)


def predict_episode(method, task: Task, episode) -> np.ndarray:
    """The default per-episode prediction: ``method.adapt(episode.support).predict(episode.query)``."""
    return method.adapt(episode.support).predict(episode.query)


def _timed(fn, method, task: Task, episode) -> tuple[Any, float]:
    t0 = time.perf_counter()
    pred = fn(method, task, episode)
    return pred, time.perf_counter() - t0


def _checked(pred, method, task: Task, k: int, n: int):
    parts = pred if isinstance(pred, tuple) else (pred,)
    parts = tuple(np.asarray(p, dtype=np.float64).reshape(-1) for p in parts)
    for p in parts:
        if p.shape != (n,) or not np.isfinite(p).all():
            raise RuntimeError(f"{method.name} returned {p.shape} predictions with "
                               f"{int((~np.isfinite(p)).sum())} non-finite values on task {task.name}, k={k}.")
    return parts if isinstance(pred, tuple) else parts[0]


def evaluate(methods: Sequence, test: TaskSet, shots: Sequence[int] = (1, 5, 10), n_episodes: int = 10,
             k_query: int | None = None, seed: int = 0, progress: bool = True, *,
             metrics: Sequence[str] | Mapping[str, Callable] = ("mae", "rmse"),
             predict: Callable[[Any, Task, Any], Any] | None = None,
             seed_fn: Callable[[int, str, int, int], int] = episode_seed,
             include: Callable[[Any, int], bool] | None = None,
             extra: Callable[[Any, Task, Any, Any], dict] | None = None,
             columns: Mapping[str, Any] | None = None, order: str = "episode", return_predictions: bool = False,
             desc: str = "evaluating", seeds: Sequence[int] | None = None
             ) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Evaluate fitted ``methods`` on the same seeded episodes of every task of ``test``.

    Parameters
    ----------
    methods:
        Fitted methods with ``name``, ``kind`` and ``adapt(support).predict(query)``.
    test:
        The meta-test tasks.
    shots:
        Support sizes ``k``; ``k = 0`` is zero-shot (one episode, ``support=None``, the query is the
        whole task or a seeded ``k_query`` of it). Tasks with ``len <= k`` are skipped.
    n_episodes:
        Episodes per (task, k >= 1), seeded by ``seed_fn(seed, task.name, k, episode)``.
    seeds:
        The episode seeds themselves (e.g. ``range(20)``): episode ``e`` of every (task, k) is
        ``test.episode(task, k, k_query, seed=seeds[e])`` (:meth:`TaskSet.episodes
        <nanonb.tasks.TaskSet.episodes>` gives the same episodes by hand); replaces ``n_episodes``
        and ``seed_fn``.
    k_query:
        Query size cap (``None``: the rest of the task).
    metrics:
        Metric names of :data:`METRICS` or ``{name: fn(pred, y, seed=...)}``; a function may
        return a dict of columns instead of a float.
    predict:
        ``predict(method, task, episode)`` -> predictions (array, or ``(mean, std)``); default
        :func:`predict_episode`, or ``method.predict_many(supports, queries)`` for all episodes of
        one (task, k) when the method has it.
    include:
        ``include(method, k)`` -> whether the method takes part at ``k`` (default: always).
    extra:
        ``extra(method, task, episode, pred)`` -> dict of additional columns per row; called right
        after that episode's ``predict`` (so a ``predict`` hook may leave state for it, e.g. the
        adapted model).
    columns:
        Constant columns added to every row (e.g. ``{"fold": 0}``).
    order:
        Row order within a (task, k): ``"episode"`` (episode by episode, methods within) or
        ``"method"`` (method by method, episodes within). Summaries do not depend on it beyond the
        last bit of float sums (pandas' group means follow the row order), so each benchmark keeps
        the order its published numbers were made with.
    return_predictions:
        Also return ``{method name: concatenated point predictions}`` (in (task, k, episode) order).

    Returns
    -------
    pandas.DataFrame
        Columns ``method, kind, task, k, episode``, the constant columns, one per metric,
        ``n_query``, ``adapt_s`` (seconds for adapt + predict per episode) and the ``extra``
        columns. Errors are in the tasks' target units. With ``return_predictions``, a tuple.

    Example
    -------
    >>> from nanonb.baselines.nets import SupportMean
    >>> y = np.r_[np.linspace(-0.10, -0.05, 6), np.linspace(0.0, 0.10, 6)]     # mixing energies, eV/atom
    >>> test = TaskSet.from_arrays(np.zeros((12, 1)), y, ["Cu-Pt"] * 6 + ["Ag-Pt"] * 6)
    >>> df = evaluate([SupportMean()], test, shots=(1, 3), n_episodes=2, progress=False)
    >>> len(df), list(df.columns)                     # 2 tasks x 2 shot counts x 2 episodes
    (8, ['method', 'kind', 'task', 'k', 'episode', 'mae', 'rmse', 'n_query', 'adapt_s'])
    >>> table(summarize(df, "mae", scale=1000.0))     # eV/atom -> meV/atom  # doctest: +NORMALIZE_WHITESPACE
                         k=1         k=3
    method
    support mean  32.0 ± 8.0  25.0 ± 8.3
    """
    fns = _metric_functions(metrics)
    columns = dict(columns or {})
    if order not in ("episode", "method"):
        raise ValueError(f"order must be 'episode' or 'method', not {order!r}")
    # Methods run one after the other on the episodes of a (task, k) (so predict_many can batch them);
    # rows are keyed (group, method index, episode) and sorted by ``order`` at the end.
    rows: dict[tuple[int, int, int], dict] = {}
    preds: dict[str, list[np.ndarray]] = {}
    groups = [(t, k) for t in test for k in shots if k < len(t)]
    for g, (task, k) in enumerate(tqdm(groups, desc=desc, disable=not progress, leave=False)):
        kq = None if k_query is None else min(k_query, len(task) - k)
        if seeds is None:
            ep_seeds = [seed_fn(seed, task.name, k, e) for e in range(n_episodes if k > 0 else 1)]
        else:
            ep_seeds = [int(s) for s in seeds][: None if k > 0 else 1]
        eps = [make_episode(test, task, k, kq, s) for s in ep_seeds]
        for mi, m in enumerate(methods):
            if include is not None and not include(m, k):
                continue
            if predict is None and k > 0 and hasattr(m, "predict_many"):  # vectorised over this group
                t0 = time.perf_counter()
                out = m.predict_many([ep.support for ep in eps], [ep.query for ep in eps])
                results = zip(out, [(time.perf_counter() - t0) / len(eps)] * len(eps))
            else:  # lazily, so that ``extra`` runs right after its episode's prediction
                results = (_timed(predict or predict_episode, m, task, ep) for ep in eps)
            for e, (ep, s, (pred, dt)) in enumerate(zip(eps, ep_seeds, results)):
                y = ep.query.targets
                pred = _checked(pred, m, task, k, len(y))
                row = {"method": m.name, "kind": m.kind, "task": task.name, "k": k, "episode": e, **columns}
                for name, fn in fns.items():
                    value = fn(pred, y, seed=s)
                    row.update(value if isinstance(value, dict) else {name: value})
                row.update(n_query=len(y), adapt_s=dt)
                if extra is not None:
                    row.update(extra(m, task, ep, pred))
                rows[(g, mi, e)] = row
                if return_predictions:
                    preds.setdefault(m.name, []).append(_point(pred))
    sort_key = (lambda key: (key[0], key[2], key[1])) if order == "episode" else None
    df = pd.DataFrame([rows[key] for key in sorted(rows, key=sort_key)])
    if return_predictions:
        return df, {name: np.concatenate(v) for name, v in preds.items()}
    return df


# ---------------------------------------------------------------------- summaries
def summarize(df: pd.DataFrame, metric: str = "mae", scale: float = 1.0) -> pd.DataFrame:
    """Mean over episodes per task, then mean, s.e.m. and median over tasks (× ``scale``).

    ``df`` is :func:`evaluate` output and ``metric`` one of its columns; ``scale`` converts units
    (e.g. ``1000.0`` for an MAE in eV/atom to meV/atom; leave 1 for log10(mS/cm) or rank metrics).
    Returns one row per (method, kind, k) with ``mean``, ``sem`` (over tasks, 0 for one task),
    ``median`` and ``n_tasks``.

    Example
    -------
    >>> df = pd.DataFrame({"method": "anil", "kind": "meta", "task": ["a", "a", "b", "b"], "k": 1,
    ...                    "episode": [0, 1, 0, 1], "mae": [0.010, 0.020, 0.030, 0.050]})   # eV/atom
    >>> summarize(df, "mae", scale=1000.0)            # per task 15 and 40 meV/atom
      method  kind  k metric  mean   sem  median  n_tasks
    0   anil  meta  1    mae  27.5  12.5    27.5        2
    """
    per_task = df.groupby(["method", "kind", "k", "task"], sort=False)[metric].mean().reset_index()
    g = per_task.groupby(["method", "kind", "k"], sort=False)[metric]
    out = pd.DataFrame({
        "mean": g.mean() * scale,
        "sem": g.sem(ddof=1).fillna(0.0) * scale,
        "median": g.median() * scale,
        "n_tasks": g.count(),
    }).reset_index()
    out.insert(3, "metric", metric)
    return out


def table(summary: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Wide table: one row per method, one column per k, cells 'mean ± sem'.

    ``summary`` is :func:`summarize` output (in its units, e.g. meV/atom after ``scale=1000``);
    ``digits`` decimals per cell. Methods keep their order of appearance.

    Example
    -------
    >>> df = pd.DataFrame({"method": "anil", "kind": "meta", "task": ["a", "a", "b", "b"] * 2,
    ...                    "k": [1, 1, 1, 1, 5, 5, 5, 5], "episode": [0, 1] * 4,
    ...                    "mae": [0.010, 0.020, 0.030, 0.050, 0.004, 0.006, 0.010, 0.012]})   # eV/atom
    >>> table(summarize(df, "mae", scale=1000.0))     # meV/atom  # doctest: +NORMALIZE_WHITESPACE
                    k=1        k=5
    method
    anil    27.5 ± 12.5  8.0 ± 3.0
    """
    s = summary.copy()
    s["cell"] = [f"{m:.{digits}f} ± {e:.{digits}f}" for m, e in zip(s["mean"], s["sem"])]
    order = list(dict.fromkeys(s["method"]))
    wide = s.pivot(index="method", columns="k", values="cell").loc[order]
    wide.columns = [f"k={k}" for k in wide.columns]
    return wide
