"""Small pretrained learners shipped with nanonb, and the command that rebuilds them.

The files in ``nanonb/pretrained_weights/`` are produced by::

    python -m nanonb.pretrained build            # writes into nanonb/pretrained_weights/
    python -m nanonb.pretrained build --out DIR  # anywhere else

which meta-trains on the embedded EMT nanoalloy data (:func:`nanonb.data.nanoalloys.load_nanoalloys`)
with every element pair containing the held-out element (Pt by default) removed, so the shipped
learners have never seen Pt. Everything is fixed: the data seed, the training seed, the budget and
``torch.set_num_threads(1)`` (single-threaded CPU kernels give the same floating-point sums on every
run of the same machine). What is built (:data:`BUILD_CONFIG`):

- ``nanoalloys-bml-ens`` (the default, :data:`DEFAULT_LEARNER`): the quickstart's meta-validation
  winner, five ``nanoalloys-bml`` learners differing only in seed
  (:class:`~nanonb.learners.bml_ensemble.BMLEnsemble`, equal-weight Gaussian mixture), with the settings
  chosen for ``nanoalloys-bml`` (that selection is reused, not re-run).
- ``nanoalloys-bml``: one Bayesian last layer (ALPaCA,
  :class:`~nanonb.learners.alpaca.BayesianMetaLearner`) on an MLP over the 12 cluster descriptors,
  wrapped in :class:`~nanonb.learners.descriptors.OnDescriptors` so that it takes the
  structure tasks directly; ``adapt`` is exact Bayesian conditioning and
  ``predict_dist`` gives mean and standard deviation (eV/atom). Its MLP width and budget are chosen
  by leave-one-element-out *inside meta-train* (:func:`nanonb.pretrained_bml.select_settings`; the
  validation table is in the manifest): the held-out pairs are never looked at.
- ``nanoalloys-anil``: an ANIL :class:`~nanonb.learners.anil.ANIL` learner on a small
  :class:`~nanonb.models.gnn.InvariantGNN` (width 32, 2 interaction blocks), kept for notebook 02.
- ``nanoalloys-pooled``: the :class:`~nanonb.baselines.nets.Pooled` baseline (the same graph network,
  trained on all meta-train clusters pooled), so notebooks can compare with pooled / pooled+fine-tune.

``manifest.json`` records the exact command, seed, configuration, library versions, a fingerprint of
the training data, the sha256 of every weight file, held-out sanity numbers measured at build time
(with the in-task ceiling of every held-out task, :func:`heldout_ceiling`), and reference predictions
that the tests use to check that a rebuild reproduces the shipped files.

Load with :func:`load_pretrained` (meta-learners) and :func:`load_pretrained_baseline`; both read the
tensors with ``torch.load(weights_only=True)`` (no pickle).

Example
-------
>>> learner = load_pretrained()                      # the Bayesian last layer  # doctest: +SKIP
>>> train, test = heldout_tasks()                    # doctest: +SKIP
>>> ep = test.episode("Cu-Pt", 5, seed=0)             # doctest: +SKIP
>>> mean, std = learner.adapt(ep.support).predict_dist(ep.query)   # eV/atom  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import save_state, write_json
from .pretrained_load import (  # noqa: F401  (re-exported: the loading half lives there)
    DEFAULT_BASELINE,
    DEFAULT_LEARNER,
    MANIFEST,
    WEIGHTS_DIR,
    _sha256,
    available,
    load_pretrained,
    load_pretrained_baseline,
    manifest,
)
from .threads import limit_threads

FORMAT_VERSION = 1
#: Iteration at which a reference prediction is recorded (lets a test check the code path in seconds).
CHECKPOINT_ITERATION = 25

from .pretrained_config import BUILD_CONFIG  # noqa: E402  (the build configuration)


# ---------------------------------------------------------------------- helpers
def _versions() -> dict[str, str]:
    import ase
    import higher

    from . import __version__

    return {"nanonb": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "higher": getattr(higher, "__version__", "unknown"), "ase": ase.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}


def _load_data(cache_dir=None, progress: bool = False):
    from .data.nanoalloys import load_nanoalloys

    d = BUILD_CONFIG["data"]
    tasks = load_nanoalloys(n_per_pair=d["n_per_pair"], seed=d["seed"], cache_dir=cache_dir, progress=progress)
    train, test = tasks.split_by_group(d["holdout"])
    return tasks, train, test


#: Decimals (of eV/atom) to which :func:`data_fingerprint` rounds the targets: 1e-6 eV/atom (1e-3 meV/atom).
FINGERPRINT_DECIMALS = 6


def data_fingerprint(tasks, decimals: int = FINGERPRINT_DECIMALS) -> str:
    """sha256 of all task names and targets (eV/atom) rounded to ``decimals`` places: identifies the training
    data, not the last bits of their floats.

    EMT energies computed on another CPU (other BLAS / libm kernels) differ in the last bits of float64, so a
    hash of the raw bytes would call the same data different on the next machine (it did, in CI). 1e-6 eV/atom
    is far below any difference that matters (errors are ~10 meV/atom) and far above that drift (~1e-16
    eV/atom); the shipped data's targets lie at least 3e-10 eV/atom from a rounding boundary.

    Example
    -------
    >>> from nanonb.tasks import Task
    >>> y = np.array([0.0123456789012, -0.05])
    >>> a = data_fingerprint([Task("Cu-Pt", np.zeros((2, 1)), y)])
    >>> a == data_fingerprint([Task("Cu-Pt", np.zeros((2, 1)), np.nextafter(y, 1.0))])    # last bit: same data
    True
    >>> a == data_fingerprint([Task("Cu-Pt", np.zeros((2, 1)), y + 1e-5)])                 # other data
    False
    """
    h = hashlib.sha256()
    for t in tasks:
        h.update(t.name.encode())
        y = np.round(np.asarray(t.targets, dtype=np.float64), decimals) + 0.0  # + 0.0: -0.0 -> 0.0
        h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def reference_predictions(method, test, k: int | None = None, seed: int | None = None,
                          n_points: int | None = None) -> dict[str, list[float]]:
    """Predictions (eV/atom) after adapting on one fixed ``k``-shot episode of every held-out task.

    Uses the first ``n_points`` query points of ``test.episode(task, k, seed=seed)``. These are the
    numbers stored in the manifest and compared by the reproducibility tests.
    """
    c = BUILD_CONFIG["check"]
    k = c["k"] if k is None else k
    seed = c["episode_seed"] if seed is None else seed
    n_points = c["n_points"] if n_points is None else n_points
    out = {}
    for task in test:
        ep = test.episode(task, k, seed=seed)
        out[task.name] = [float(v) for v in np.asarray(method.adapt(ep.support).predict(ep.query))[:n_points]]
    return out


def _train_learner(name: str, train, progress: bool = False, checkpoint: Callable[[Any], None] | None = None,
                   stop_after: int | None = None):
    """Meta-train one learner of :data:`BUILD_CONFIG` (same code path for the build and the tests).

    ``checkpoint(learner)`` is called after iteration :data:`CHECKPOINT_ITERATION`; ``stop_after``
    trains only that many iterations (the state then equals the full build's state at that iteration,
    because nothing in the training loop depends on the total number of iterations).
    """
    from .learners.registry import make_learner

    cfg = dict(BUILD_CONFIG["learners"][name])
    n_full = cfg.pop("n_iterations")
    n_iter = n_full if stop_after is None else int(stop_after)
    learner = make_learner(**cfg, n_iterations=n_iter, seed=BUILD_CONFIG["seed"])

    def cb(lrn, it):
        if it == CHECKPOINT_ITERATION and checkpoint is not None:
            checkpoint(lrn)

    with limit_threads(BUILD_CONFIG["torch_num_threads"]):
        learner.fit(train, val=None, progress=progress, callback=cb)
    return learner


def _train_pooled(name: str, train, progress: bool = False):
    from .baselines.nets import Pooled

    cfg = BUILD_CONFIG["baselines"][name]
    pooled = Pooled(model=cfg["model"], model_kwargs=cfg["model_kwargs"], epochs=cfg["epochs"],
                    batch_size=cfg["batch_size"], lr=cfg["lr"], seed=BUILD_CONFIG["seed"])
    with limit_threads(BUILD_CONFIG["torch_num_threads"]):
        pooled.fit(train, progress=progress)
    return pooled


def _save_pooled(pooled, path: Path, extra: dict) -> Path:
    meta = {"method": "Pooled", "model": pooled.model_name, "model_kwargs": pooled.model_kwargs,
            "epochs": pooled.epochs, "batch_size": pooled.batch_size, "lr": pooled.lr, "seed": pooled.seed,
            "scaler": asdict(pooled.scaler), "history": pooled.history, "nanonb_format": 1, **extra}
    return save_state(path, meta, pooled.model.state_dict())


def _sanity(methods: Sequence, test, k: int, n_episodes: int) -> dict[str, float]:
    """Held-out MAE (meV/atom) at ``k`` shots, mean over tasks of the mean over episodes."""
    from .evaluation import evaluate

    df = evaluate(list(methods), test, shots=(k,), n_episodes=n_episodes, seed=BUILD_CONFIG["seed"], progress=False)
    per_task = df.groupby(["method", "task"], sort=False)["mae"].mean().groupby("method", sort=False).mean()
    return {m: round(float(v) * 1000.0, 3) for m, v in per_task.items()}


def _algorithm(name: str) -> str | None:
    return BUILD_CONFIG["learners"][name].get("algorithm")


def _files(path: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in (path.with_suffix(".pt"), path.with_suffix(".json"))}


def _stamp(path: Path, **extra) -> None:
    """Add build information to a saved learner's JSON."""
    info = json.loads(path.with_suffix(".json").read_text())
    info.update(extra)
    write_json(path.with_suffix(".json"), info)


def _build_gradient_learner(name: str, train, test, out: Path, command: str, progress: bool):
    ckpt: dict[str, Any] = {}
    learner = _train_learner(name, train, progress,
                             checkpoint=lambda lrn, ck=ckpt: ck.update(reference_predictions(lrn, test)))
    path = learner.save(out / name)
    _stamp(path, build={"command": command, "seed": BUILD_CONFIG["seed"], "name": name})
    return learner, {
        "files": _files(path),
        "reference_predictions_ev_per_atom": {"final": reference_predictions(learner, test),
                                              f"iteration_{CHECKPOINT_ITERATION}": ckpt},
        "final_train_loss_mean_last_25": float(np.mean(learner.history["train_loss"][-25:])),
    }


def _build_bml(name: str, train, test, out: Path, command: str, log: Callable[[str], None]):
    """Select the settings on meta-train (leave one element out), train the winner, save it."""
    from .pretrained_bml import select_settings, train_bml

    cfg = BUILD_CONFIG["learners"][name]
    with limit_threads(BUILD_CONFIG["torch_num_threads"]):
        log(f"  {name}: choosing the settings by leave-one-element-out inside meta-train")
        best, rows = select_settings(cfg, train, seed=BUILD_CONFIG["seed"], log=log)
        learner = train_bml(cfg, best, train, seed=BUILD_CONFIG["seed"])
    log(f"  {name}: chose {best!r}")
    path = learner.learner.save(out / name)
    _stamp(path, learner="bml", inputs="descriptors", chosen=best,
           build={"command": command, "seed": BUILD_CONFIG["seed"], "name": name})
    return learner, {
        "files": _files(path), "chosen": best,
        "selection": {"how": "leave-one-element-out inside meta-train; query MAE at k="
                             f"{cfg['selection']['k']} (meV/atom), {cfg['selection']['episodes']} episodes "
                             "per validation task; lowest mean wins; held-out pairs never used", "rows": rows},
        "reference_predictions_ev_per_atom": {"final": reference_predictions(learner, test)},
        "final_train_nll_mean_last_25": float(np.mean(learner.history["train_nll"][-25:])),
    }


def _build_bml_ens(name: str, train, test, out: Path, command: str, log: Callable[[str], None],
                   chosen_of: dict[str, str]):
    """Train the ensemble with the settings chosen for ``settings_of`` (reused, not re-selected), save it.

    Also scores the ensemble by the same leave-one-element-out folds inside meta-train as the
    single learner's selection, so the manifest holds both on the same footing.
    """
    from .pretrained_bml import loeo_scores, make_bml_ens, select_settings, train_bml_ens

    cfg = BUILD_CONFIG["learners"][name]
    of = cfg["settings_of"]
    bcfg = BUILD_CONFIG["learners"][of]
    seed, n = BUILD_CONFIG["seed"], int(cfg["n_members"])
    with limit_threads(BUILD_CONFIG["torch_num_threads"]):
        if of in chosen_of:
            best, how = chosen_of[of], f"the settings chosen for {of} (its selection, read from the manifest)"
        else:
            log(f"  {name}: no selection of {of} available; running it")
            best, _ = select_settings(bcfg, train, seed=seed, log=log)
            how = f"the settings chosen for {of} (its selection, run in this build)"
        log(f"  {name}: {n} members with {best!r}; scoring them leave-one-element-out inside meta-train")
        cand = bcfg["candidates"][best]
        per_el = loeo_scores(lambda: make_bml_ens(bcfg, cand, n, seed=seed), train, bcfg, seed)
        learner = train_bml_ens(bcfg, best, train, n_members=n, seed=seed)
    path = learner.learner.save(out / name)
    _stamp(path, learner="bml-ens", inputs="descriptors", chosen=best,
           build={"command": command, "seed": seed, "name": name})
    return learner, {
        "files": _files(path), "chosen": best, "n_members": n, "settings": how,
        "loeo_in_meta_train_mae_mev_per_atom": {"mae_mev_per_atom": per_el,
                                                "mean": round(float(np.mean(list(per_el.values()))), 3)},
        "reference_predictions_ev_per_atom": {"final": reference_predictions(learner, test)},
    }


def _load_built(name: str, out: Path):
    """A learner or baseline of an earlier build in ``out`` (kept by ``merge``), for the sanity table."""
    from .baselines.nets import FineTune

    if name in BUILD_CONFIG["learners"]:
        return [load_pretrained(name, out)]
    pooled = load_pretrained_baseline(name, out)
    return [pooled, FineTune(pooled, steps=20)]


# ---------------------------------------------------------------------- build
def build(out: str | Path | None = None, only: Sequence[str] | None = None, progress: bool = True,
          cache_dir=None, command: str | None = None, log: Callable[[str], None] = print,
          merge: bool = False) -> dict:
    """Train and save the pretrained learners of :data:`BUILD_CONFIG`; return the manifest.

    Parameters
    ----------
    out:
        Output folder (default: the package's ``pretrained_weights/``).
    only:
        Names to build (default: all). A partial build writes ``manifest.json`` with only those.
    progress:
        Show tqdm progress bars.
    cache_dir:
        Nanoalloy data cache folder (default: the user cache; the data are generated on first use, ~20 s).
    merge:
        Keep the entries of ``out``'s existing manifest that are not rebuilt (same data required); the
        held-out sanity table is then measured again over all of them (kept ones loaded from ``out``).
    command:
        Command line to record in the manifest (default: reconstructed from the arguments).
    """
    from .baselines.nets import FineTune

    t_all = time.perf_counter()
    out = WEIGHTS_DIR if out is None else Path(out)
    names_l, names_b = list(BUILD_CONFIG["learners"]), list(BUILD_CONFIG["baselines"])
    wanted = names_l + names_b if only is None else list(only)
    unknown = set(wanted) - set(names_l) - set(names_b)
    if unknown:
        raise ValueError(f"Unknown pretrained name(s) {sorted(unknown)}; available: {names_l + names_b}")
    if command is None:
        command = "python -m nanonb.pretrained build" + ("" if out == WEIGHTS_DIR else f" --out {out}") + (
            "" if only is None else " --only " + " ".join(wanted)) + (" --merge" if merge else "")
    tasks, train, test = _load_data(cache_dir, progress)
    old = json.loads((out / MANIFEST).read_text()) if merge and (out / MANIFEST).exists() else None
    if old is not None and old["data"]["fingerprint_sha256"] != data_fingerprint(tasks):
        raise ValueError(f"--merge: the data of {out / MANIFEST} differ from this build's; rebuild everything")
    log(f"data: {len(train)} meta-train pairs, held-out ({BUILD_CONFIG['data']['holdout']}): {', '.join(test.names)}")
    c = BUILD_CONFIG["check"]
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION, "command": command, "seed": BUILD_CONFIG["seed"],
        "config": copy.deepcopy(BUILD_CONFIG), "checkpoint_iteration": CHECKPOINT_ITERATION,
        "environment": _versions(),
        "data": {"fingerprint_sha256": data_fingerprint(tasks), "fingerprint_decimals": FINGERPRINT_DECIMALS,
                 "n_tasks": len(tasks),
                 "n_points": int(sum(len(t) for t in tasks)), "meta_train": train.names, "meta_test": test.names,
                 "target": "mixing energy (eV/atom)"},
        "learners": {}, "baselines": {}, "timings_s": {},
    }
    kept = [] if old is None else [n for n in names_l + names_b
                                   if n not in wanted and n in {**old["learners"], **old["baselines"]}]
    for n in kept:
        section = "learners" if n in names_l else "baselines"
        manifest[section][n] = old[section][n]
        manifest["timings_s"][n] = old["timings_s"].get(n)
    if kept:
        manifest["kept_from_previous_build"] = {"names": kept, "command": old["command"]}
    out.mkdir(parents=True, exist_ok=True)
    from .baselines.nets import SupportMean

    built: dict[str, list] = {}
    chosen_of = {n: e["chosen"] for n, e in manifest["learners"].items() if "chosen" in e}
    for name in [n for n in names_l if n in wanted]:
        t0 = time.perf_counter()
        if _algorithm(name) == "bml":
            learner, entry = _build_bml(name, train, test, out, command, log)
            chosen_of[name] = entry["chosen"]
        elif _algorithm(name) == "bml-ens":
            learner, entry = _build_bml_ens(name, train, test, out, command, log, chosen_of)
        else:
            learner, entry = _build_gradient_learner(name, train, test, out, command, progress)
        dt = time.perf_counter() - t0
        manifest["learners"][name] = entry
        manifest["timings_s"][name] = round(dt, 1)
        built[name] = [learner]
        log(f"  {name}: built in {dt:.1f} s")
    for name in [n for n in names_b if n in wanted]:
        t0 = time.perf_counter()
        pooled = _train_pooled(name, train, progress)
        dt = time.perf_counter() - t0
        path = _save_pooled(pooled, out / name, {"build": {"command": command, "seed": BUILD_CONFIG["seed"],
                                                           "name": name}})
        manifest["baselines"][name] = {
            "files": {p.name: _sha256(p) for p in (path.with_suffix(".pt"), path.with_suffix(".json"))},
            "reference_predictions_ev_per_atom": {"final": reference_predictions(pooled, test)},
        }
        manifest["timings_s"][name] = round(dt, 1)
        built[name] = [pooled, FineTune(pooled, steps=20)]
        log(f"  {name}: {BUILD_CONFIG['baselines'][name]['epochs']} epochs in {dt:.1f} s")
    if kept:
        write_json(out / MANIFEST, manifest)      # the kept entries' files are verified when loaded
    sanity_methods: list = [SupportMean()]
    for n in names_l + names_b:
        sanity_methods += built[n] if n in built else _load_built(n, out) if n in kept else []
    t0 = time.perf_counter()
    with limit_threads(BUILD_CONFIG["torch_num_threads"]):
        manifest["sanity_heldout_mae_mev_per_atom"] = {
            "k": c["k"], "n_episodes_per_task": c["sanity_episodes"],
            "mae": _sanity(sanity_methods, test, c["k"], c["sanity_episodes"])}
    from .baselines.ceiling import in_task_ceiling

    manifest["heldout_in_task_ceiling_mae_mev_per_atom"] = {
        n: round(1000.0 * v, 3) for n, v in in_task_ceiling(test, **BUILD_CONFIG["ceiling"]).items()}
    manifest["timings_s"]["sanity evaluation"] = round(time.perf_counter() - t0, 1)
    manifest["timings_s"]["total"] = round(time.perf_counter() - t_all, 1)
    write_json(out / MANIFEST, manifest)
    log(f"held-out MAE at k={c['k']} (meV/atom): {manifest['sanity_heldout_mae_mev_per_atom']['mae']}")
    log(f"wrote {out} in {manifest['timings_s']['total']:.0f} s")
    return manifest


def heldout_ceiling(directory: str | Path | None = None) -> dict[str, float]:
    """In-task ceiling of every held-out task (eV/atom), as recorded at build time.

    :func:`nanonb.baselines.ceiling.in_task_ceiling` with ``BUILD_CONFIG["ceiling"]``: a GP on the
    task's descriptors trained on 80 % of the task itself (5-fold), query MAE. Reading it from the
    manifest saves ~2 s per task; ``tests/test_pretrained.py`` checks it against a recomputation.

    Example
    -------
    >>> heldout_ceiling()["Cu-Pt"]        # eV/atom  # doctest: +SKIP
    0.0206
    """
    return {k: v / 1000.0 for k, v in manifest(directory)["heldout_in_task_ceiling_mae_mev_per_atom"].items()}


def heldout_tasks(cache_dir=None, progress: bool = False):
    """``(meta_train, meta_test)`` exactly as used for the build (meta-test = pairs with the held-out element).

    Nanoalloy tasks (one per element pair, targets: mixing energy in eV/atom); the data are generated
    on first use (~20 s) and cached in ``cache_dir`` (default: the user cache).

    Example
    -------
    >>> meta_train, meta_test = heldout_tasks()                          # doctest: +SKIP
    >>> all("Pt" in t.groups for t in meta_test), meta_test[0].target_unit   # doctest: +SKIP
    (True, 'eV/atom')
    """
    _, train, test = _load_data(cache_dir, progress)
    return train, test


# ---------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m nanonb.pretrained",
                                description="Build or list nanonb's small pretrained learners.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="select and meta-train the shipped learners (fixed seed, ~5 min on one CPU core)")
    b.add_argument("--out", default=None, help="output folder (default: the package's pretrained_weights/)")
    b.add_argument("--only", nargs="+", default=None, help="names to build (default: all)")
    b.add_argument("--cache-dir", default=None, help="nanoalloy data cache folder")
    b.add_argument("--merge", action="store_true",
                   help="keep the other entries of the existing manifest in --out (same data required)")
    b.add_argument("--no-progress", action="store_true")
    sub.add_parser("list", help="list the shipped learners and the build manifest summary")
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.out, a.only, progress=not a.no_progress, cache_dir=a.cache_dir,
              command=" ".join(["python -m nanonb.pretrained", *argv]), merge=a.merge)
        return 0
    names = available()
    if not names["learners"] and not names["baselines"]:
        print(f"no pretrained files in {WEIGHTS_DIR}; run `python -m nanonb.pretrained build`")
        return 1
    m = manifest()
    print(f"{WEIGHTS_DIR}\n  built with: {m['command']} (seed {m['seed']})\n  learners: {names['learners']}\n"
          f"  baselines: {names['baselines']}\n  held-out MAE at k={m['sanity_heldout_mae_mev_per_atom']['k']} "
          f"(meV/atom): {m['sanity_heldout_mae_mev_per_atom']['mae']}")
    for name, info in m["learners"].items():
        if "chosen" in info:
            print(f"  {name}: settings chosen on meta-train tasks only: {info['chosen']!r}")
    if "heldout_in_task_ceiling_mae_mev_per_atom" in m:
        print(f"  in-task ceiling (meV/atom): {m['heldout_in_task_ceiling_mae_mev_per_atom']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
