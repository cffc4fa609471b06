"""Loading the small pretrained learners shipped with nanonb (built by :mod:`nanonb.pretrained`).

:func:`load_pretrained` (meta-learners) and :func:`load_pretrained_baseline` read the files of
``nanonb/pretrained_weights/``: tensors with ``torch.load(weights_only=True)`` (no pickle), and every file
is checked against the sha256 recorded in ``manifest.json`` at build time. All names are re-exported by
:mod:`nanonb.pretrained`.

Example
-------
>>> available()["learners"]                                  # doctest: +SKIP
['nanoalloys-anil', 'nanoalloys-bml', 'nanoalloys-bml-ens']
>>> learner = load_pretrained()                              # the bml-ens ensemble  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ._io import load_state

WEIGHTS_DIR = Path(__file__).resolve().parent / "pretrained_weights"
MANIFEST = "manifest.json"
DEFAULT_LEARNER = "nanoalloys-bml-ens"
DEFAULT_BASELINE = "nanoalloys-pooled"

__all__ = ["DEFAULT_BASELINE", "DEFAULT_LEARNER", "available", "load_pretrained", "load_pretrained_baseline",
           "manifest"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resolve(name: str, directory: str | Path | None, kind: str) -> Path:
    d = WEIGHTS_DIR if directory is None else Path(directory)
    names = available(d)
    section = names["learners"] if kind == "learners" else names["baselines"]
    if name not in section:
        other = names["baselines"] if kind == "learners" else names["learners"]
        use = "baseline: use load_pretrained_baseline" if kind == "learners" else "meta-learner: use load_pretrained"
        hint = f" ({name!r} is a {use})" if name in other else ""
        raise ValueError(f"No pretrained {kind[:-1]} named {name!r} in {d}; available: {section}{hint}. "
                         "Rebuild with `python -m nanonb.pretrained build`.")
    path = d / name
    for ext in (".pt", ".json"):
        if not path.with_suffix(ext).exists():
            raise FileNotFoundError(
                f"{path.with_suffix(ext)} is missing; rebuild with `python -m nanonb.pretrained build`.")
    recorded = json.loads((d / MANIFEST).read_text())[kind][name].get("files", {})
    for fname, sha in recorded.items():
        if _sha256(d / fname) != sha:
            raise ValueError(f"{d / fname} does not match the sha256 recorded in {d / MANIFEST} (modified or "
                             "corrupted after the build); rebuild with `python -m nanonb.pretrained build`.")
    return path


def available(directory: str | Path | None = None) -> dict[str, list[str]]:
    """Names of the shipped learners and baselines (read from ``manifest.json``)."""
    d = WEIGHTS_DIR if directory is None else Path(directory)
    f = d / MANIFEST
    if not f.exists():
        return {"learners": [], "baselines": []}
    m = json.loads(f.read_text())
    return {"learners": sorted(m.get("learners", {})), "baselines": sorted(m.get("baselines", {}))}


def manifest(directory: str | Path | None = None) -> dict:
    """The build manifest (command, seed, config, versions, checksums, sanity numbers)."""
    d = WEIGHTS_DIR if directory is None else Path(directory)
    return json.loads((d / MANIFEST).read_text())


def load_pretrained(name: str = DEFAULT_LEARNER, directory: str | Path | None = None):
    """The shipped learner ``name`` (tensors read with ``weights_only=True``), ready to ``adapt``.

    ``"nanoalloys-bml-ens"`` (default, the quickstart's meta-validation winner): an
    :class:`~nanonb.learners.descriptors.OnDescriptors` ensemble of five Bayesian last layers
    (:class:`~nanonb.learners.bml_ensemble.BMLEnsemble`; takes structure tasks; ``predict_dist`` gives the
    mixture's mean and s.d. in eV/atom). ``"nanoalloys-bml"``: one such Bayesian last layer.
    Every file is checked against the sha256 recorded in the manifest (a modified file is refused).
    ``"nanoalloys-anil"``: the graph-network ANIL :class:`~nanonb.learners.base.MetaLearner`.

    Trained on nanoalloy mixing energies with every Pt pair held out; predictions in eV/atom.

    Example
    -------
    >>> ep = heldout_tasks()[1].episode("Cu-Pt", k_support=5)   # a held-out pair  # doctest: +SKIP
    >>> support, query = ep.support, ep.query            # doctest: +SKIP
    >>> learner = load_pretrained()                      # doctest: +SKIP
    >>> learner.adapt(support).predict(query)            # eV/atom  # doctest: +SKIP
    """
    path = _resolve(name, directory, "learners")
    info = json.loads(path.with_suffix(".json").read_text())
    if info.get("learner") in ("bml", "bml-ens"):
        from .learners.alpaca import BayesianMetaLearner
        from .learners.bml_ensemble import BMLEnsemble
        from .learners.descriptors import OnDescriptors

        cls = BMLEnsemble if info["learner"] == "bml-ens" else BayesianMetaLearner
        return OnDescriptors(cls.load(path))
    from .learners.registry import load

    return load(path)


def load_pretrained_baseline(name: str = DEFAULT_BASELINE, directory: str | Path | None = None):
    """The shipped :class:`~nanonb.baselines.nets.Pooled` baseline (wrap in ``FineTune`` to fine-tune it).

    The same network trained on all meta-train clusters pooled; predictions in eV/atom.

    Example
    -------
    >>> from nanonb.baselines.nets import FineTune
    >>> pooled = load_pretrained_baseline()                              # doctest: +SKIP
    >>> ep = heldout_tasks()[1].episode("Cu-Pt", k_support=5)            # doctest: +SKIP
    >>> pooled.adapt(None).predict(ep.query)             # zero-shot, eV/atom  # doctest: +SKIP
    >>> FineTune(pooled, steps=20).adapt(ep.support).predict(ep.query)   # eV/atom  # doctest: +SKIP
    """
    from .baselines.nets import Pooled
    from .learners.training import Scaler
    from .models.registry import build_model

    meta, tensors = load_state(_resolve(name, directory, "baselines"))
    pooled = Pooled(model=meta["model"], model_kwargs=meta["model_kwargs"], epochs=meta["epochs"],
                    batch_size=meta["batch_size"], lr=meta["lr"], seed=meta["seed"])
    model = build_model(meta["model"], **meta["model_kwargs"])
    model.load_state_dict(tensors)
    model.eval()
    pooled.model = model
    pooled.scaler = Scaler(**meta["scaler"])
    pooled.history = meta["history"]
    return pooled
