"""Rows, verdict and figure of the ``nanoalloys`` protocol: the in-task ceiling, ``closed``, the one-line verdict.

All values in meV/atom except ``closed`` (a fraction: 0 = no better than the support mean, 1 = as good as
the in-task ceiling; see :func:`nanonb.baselines.ceiling.closed`).

Example
-------
>>> rows = [{"split": "s", "method": m, "kind": "baseline", "k": 5, "metric": "mae", "mean": v, "sem": 0.0,
...          "median": v, "n_tasks": 6} for m, v in [("support mean", 32.0), ("in-task ceiling", 16.0),
...                                                 ("gp", 32.0), ("pooled", 50.0)]]
>>> rows.append({**rows[0], "method": "best=bml", "kind": "meta", "mean": 18.0})
>>> verdict(rows, "best=bml")[:68]
'best learner: bml; at K=5 it closes 88 % of the learnable error (MAE'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..baselines.ceiling import closed

SUPPORT_MEAN, CEILING = "support mean", "in-task ceiling"


def ceiling_rows(ceiling: dict[str, float], shots, split: str) -> list[dict]:
    """MAE rows (meV/atom) of the in-task ceiling (``{task: MAE in eV/atom}``), one per K (the same value)."""
    v = 1000 * np.asarray(list(ceiling.values()), dtype=np.float64)
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return [{"split": split, "method": CEILING, "kind": "baseline", "k": int(k), "metric": "mae",
             "mean": float(v.mean()), "sem": sem, "median": float(np.median(v)), "n_tasks": len(v)} for k in shots]


def _mae(rows, split=None) -> dict[tuple[str, int], dict]:
    return {(r["method"], r["k"]): r for r in rows if r["metric"] == "mae" and (split is None or r["split"] == split)}


def closed_rows(rows: list[dict], split: str) -> list[dict]:
    """``closed`` rows per method and K from the MAE rows (task-averaged means; ``sem`` 0, ``median`` = mean)."""
    mae = _mae(rows, split)
    out = []
    for (method, k), r in mae.items():
        if method in (SUPPORT_MEAN, CEILING) or (SUPPORT_MEAN, k) not in mae or (CEILING, k) not in mae:
            continue
        c = closed(mae[(SUPPORT_MEAN, k)]["mean"], r["mean"], mae[(CEILING, k)]["mean"])
        out.append({**r, "metric": "closed", "mean": c, "sem": 0.0, "median": c})
    return out


def verdict(rows: list[dict], best: str, k: int = 5) -> str:
    """One line computed from the MAE rows: the best learner at ``k`` against the support mean, GP and ceiling."""
    mae = _mae(rows)
    b, sm, c = mae[(best, k)]["mean"], mae[(SUPPORT_MEAN, k)]["mean"], mae[(CEILING, k)]["mean"]
    gp = f", {b / mae[('gp', k)]['mean']:.2f}x GP on support" if ("gp", k) in mae else ""
    frac = closed(sm, b, c)
    return (f"best learner: {best.removeprefix('best=')}; at K={k} it closes {100 * frac:.0f} % of the learnable error "
            f"(MAE {b:.1f} = {b / sm:.2f}x support mean{gp}); support mean {sm:.1f}, ceiling {c:.1f} meV/atom")


def quickstart_figure_best(best, test, rows: list[dict], cfg, path) -> None:
    """Two panels written to ``path``: parity (meV/atom) of ``best`` and of the support mean at K = 5 on one
    episode per held-out task, with the diagonal and the in-task ceiling quoted; MAE vs shots of every
    method with the support-mean and in-task-ceiling reference lines."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..plots import color

    k = 5 if 5 in cfg.shots else cfg.shots[-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13.5, 4.8))
    yt, yb, ys = [], [], []
    for task in test:
        ep = test.episode(task, k, seed=cfg.seed)
        yt.append(ep.query.targets * 1000)
        yb.append(np.asarray(best.adapt(ep.support).predict(ep.query)) * 1000)
        ys.append(np.full(len(ep.query), ep.support.targets.mean() * 1000))
    yt, yb, ys = np.concatenate(yt), np.concatenate(yb), np.concatenate(ys)
    a1.scatter(yt, ys, s=8, alpha=0.5, c="0.6", label=f"support mean (MAE {np.abs(ys - yt).mean():.1f})")
    a1.scatter(yt, yb, s=8, alpha=0.7, c="C0", label=f"{best.name} (MAE {np.abs(yb - yt).mean():.1f})")
    lo, hi = float(min(yt.min(), yb.min())), float(max(yt.max(), yb.max()))
    a1.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    mae = _mae(rows)
    ceil = mae.get((CEILING, k), {}).get("mean")
    a1.set(xlabel="true (meV/atom)", ylabel="predicted (meV/atom)",
           title=f"held-out {cfg.holdout} pairs, K={k}, one episode per pair"
           + (f"\nin-task ceiling (GP on 80 % of each pair): MAE {ceil:.1f}" if ceil is not None else ""))
    a1.legend(fontsize=8)
    methods = list(dict.fromkeys(m for m, _ in mae))
    extra = iter(["#1f3b8a", "#c2185b", "#00897b", "#6d4c41", "#fbc02d", "#5e35b1"])
    for m in methods:
        ks = sorted(kk for mm, kk in mae if mm == m)
        mean = [mae[(m, kk)]["mean"] for kk in ks]
        if m in (SUPPORT_MEAN, CEILING):
            a2.plot(ks, mean, "k-" if m == SUPPORT_MEAN else "k:", lw=2, label=m)
        else:
            sem = [mae[(m, kk)]["sem"] for kk in ks]
            kind = mae[(m, ks[0])]["kind"]
            a2.errorbar(ks, mean, yerr=sem, marker="o", ms=3, capsize=2, lw=2.5 if m == best.name else 1,
                        ls="-" if kind == "meta" else "--", label=m,
                        color="C0" if m == best.name else (color(m) if color(m) != "#333333" else next(extra, "0.3")))
    a2.set(xlabel="shots K (support points)", ylabel="MAE (meV/atom)", xticks=sorted(cfg.shots),
           title="mean ± s.e.m. over held-out pairs")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: covers no curve
    a2.grid(alpha=0.3)
    fig.suptitle(f"EMT nanoalloys, held-out element {cfg.holdout}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
