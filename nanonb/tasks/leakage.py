"""Leakage reports: how close meta-test points sit to meta-train points, so that a leaky split is visible."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from .task import Task
from .taskset import TaskSet


@dataclass
class LeakageReport:
    """Nearest-neighbour similarity of meta-test points to meta-train points.

    Distances are Euclidean in descriptor space standardized on meta-train. ``ratio`` is the
    median test-to-train NN distance divided by the median train-to-train NN distance
    (leave-one-out): ~1 or below means meta-test points look like meta-train points (a leaky
    split); well above 1 means meta-test is genuinely new. ``near_duplicate_fraction`` is the share
    of test points closer to a train point than ``dup_quantile`` of the train NN distances.
    ``unseen_group_fraction`` is the share of test tasks with at least one group label (element,
    salt, study) that no meta-train task has: 0 means every test task's chemistry was seen in
    meta-training (as in a random task split), 1 means every test task brings something new.

    Verdict: *leaky* when more than 5 % of test points are near-duplicates, or when no test task
    has an unseen group and the test points are not farther from train than train points are from
    each other (ratio < 1.5).

    Example
    -------
    >>> print(leakage_report(meta_train, meta_test))     # doctest: +SKIP
    leakage: meta-test is new chemistry. Median NN distance test->train ...
    """

    median_nn_test_to_train: float
    median_nn_train_to_train: float
    ratio: float
    near_duplicate_fraction: float
    shared_groups: list[str]
    n_train_points: int
    n_test_points: int
    unseen_group_fraction: float = 0.0

    @property
    def leaky(self) -> bool:
        return self.near_duplicate_fraction > 0.05 or (self.unseen_group_fraction == 0 and self.ratio < 1.5)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__ | {"shared_groups": ",".join(self.shared_groups)}])

    def __str__(self) -> str:
        verdict = "LEAKY: meta-test looks like meta-train" if self.leaky else "meta-test is new chemistry"
        return (
            f"leakage: {verdict}. Median NN distance test->train {self.median_nn_test_to_train:.3g} vs "
            f"train->train {self.median_nn_train_to_train:.3g} (ratio {self.ratio:.2f}); "
            f"{100 * self.near_duplicate_fraction:.1f}% near-duplicates; "
            f"{100 * self.unseen_group_fraction:.0f}% of test tasks have a group unseen in meta-train; "
            f"shared groups: {self.shared_groups or 'none'}"
        )


def _stack(tasks: Iterable[Task], max_points: int | None, rng) -> np.ndarray:
    d = np.vstack([TaskSet._descriptors(t) for t in tasks])
    if max_points is not None and len(d) > max_points:
        d = d[rng.choice(len(d), max_points, replace=False)]
    return d


def _nn_report(train_d: np.ndarray, test_d: np.ndarray, dup_quantile: float):
    mu, sd = train_d.mean(0), train_d.std(0)
    sd[sd < 1e-12] = 1.0
    a, b = (train_d - mu) / sd, (test_d - mu) / sd
    nn = NearestNeighbors(n_neighbors=2).fit(a)
    d_tt = nn.kneighbors(a)[0][:, 1]
    d_te = nn.kneighbors(b, n_neighbors=1)[0][:, 0]
    ref = float(np.median(d_tt))
    thr = float(np.quantile(d_tt, dup_quantile))
    return float(np.median(d_te)), ref, float(np.median(d_te) / max(ref, 1e-12)), float(np.mean(d_te <= thr))


def leakage_report(
    train: TaskSet | Task, test: TaskSet | Task, max_points: int | None = 5000,
    dup_quantile: float = 0.05, seed: int = 0,
) -> LeakageReport:
    """Measure how close meta-test points are to meta-train points (see :class:`LeakageReport`).

    Also works for one episode: ``leakage_report(ep.support, ep.query)``. Distances are in units
    of the meta-train descriptor standard deviation (dimensionless).

    Example
    -------
    >>> ts = TaskSet.from_arrays(np.arange(20.0).reshape(10, 2), np.arange(10.0), list("aaaaabbbbb"))
    >>> rep = leakage_report(ts.select(["a"]), ts.select(["b"]))
    >>> rep.n_train_points, rep.n_test_points, rep.unseen_group_fraction
    (5, 5, 1.0)
    """
    rng = np.random.default_rng(seed)
    tr = [train] if isinstance(train, Task) else list(train)
    te = [test] if isinstance(test, Task) else list(test)
    a, b = _stack(tr, max_points, rng), _stack(te, max_points, rng)
    if len(a) < 2:
        raise ValueError("leakage_report needs at least 2 train points.")
    m_te, m_tt, ratio, dup = _nn_report(a, b, dup_quantile)
    train_groups = {g for t in tr for g in t.groups}
    shared = sorted(train_groups & {g for t in te for g in t.groups})
    unseen = float(np.mean([bool(set(t.groups) - train_groups) for t in te]))
    return LeakageReport(m_te, m_tt, ratio, dup, shared, len(a), len(b), unseen)
