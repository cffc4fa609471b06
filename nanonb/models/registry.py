"""The model registry: class name -> model class, so saved learners can rebuild their network by name.

Every model registers itself with the :func:`register_model` decorator where it is defined; a
saved learner stores only the class name and its keyword arguments (JSON), never a class path.

Example
-------
>>> from torch import nn
>>> from nanonb.models.registry import build_model, register_model
>>> @register_model
... class Tiny(nn.Module):
...     def __init__(self, n_in: int = 2):
...         super().__init__()
...         self.head = nn.Linear(n_in, 1)
>>> build_model("Tiny", n_in=3).head.in_features
3
"""

from __future__ import annotations

import importlib
import inspect

from torch import nn

#: Registered model classes by class name.
MODELS: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Register a model class so saved learners can rebuild it by name (usable as a decorator)."""
    MODELS[cls.__name__] = cls
    return cls


#: Modules that register more models (imported on the first lookup of a name not registered yet, so
#: ``model="VTFNet"`` works whatever was imported before).
PROVIDERS = ("nanonb.physics",)


def model_class(name: str) -> type[nn.Module]:
    """The registered class ``name`` (importing :data:`PROVIDERS` on a miss); ``ValueError`` listing
    :data:`MODELS` for an unknown name.

    Example
    -------
    >>> model_class("VTFNet").__name__      # registered by nanonb.physics, imported on demand
    'VTFNet'
    """
    if name not in MODELS:
        for module in PROVIDERS:
            importlib.import_module(module)
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name]


def missing_kwargs(name: str, kwargs: dict) -> list[str]:
    """Required constructor arguments of model ``name`` that ``kwargs`` lacks.

    Example
    -------
    >>> missing_kwargs("MLP", {}), missing_kwargs("MLP", {"n_in": 3})
    (['n_in'], [])
    """
    sig = inspect.signature(model_class(name).__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in kwargs]


def model_kwargs_for(name: str, tasks, kwargs: dict | None = None) -> dict:
    """``kwargs`` completed from the meta-train ``tasks`` by the model's ``kwargs_from_tasks`` hook
    (``MLP``: ``n_in``; ``VTFNet``: temperature/concentration columns, prior, standardization), and
    checked against the model's ``input_kind`` (``"tabular"`` or ``"structures"``).

    Example
    -------
    >>> import numpy as np
    >>> from nanonb.tasks import TaskSet
    >>> ts = TaskSet.from_arrays(np.zeros((4, 3)), np.arange(4.0), ["a", "a", "b", "b"])
    >>> model_kwargs_for("MLP", ts, {"hidden": [8]})
    {'n_in': 3, 'hidden': [8]}
    """
    cls = model_class(name)
    check_input_kind(name, tasks[0].is_tabular)
    hook = getattr(cls, "kwargs_from_tasks", None)
    return dict(hook(tasks, **dict(kwargs or {}))) if hook is not None else dict(kwargs or {})


def check_input_kind(name: str, tabular: bool) -> None:
    """``ValueError`` when model ``name`` does not take the tasks' kind of inputs (tabular or structures).

    Example
    -------
    >>> check_input_kind("InvariantGNN", tabular=True)    # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model='InvariantGNN' is a network for structures (atoms and positions), ... use model='MLP', ...
    """
    kind = getattr(model_class(name), "input_kind", None)
    want = "tabular" if tabular else "structures"
    if kind is None or kind == want:
        return
    same = sorted(n for n, c in MODELS.items() if getattr(c, "input_kind", None) == want)
    if tabular:
        raise ValueError(f"model={name!r} is a network for structures (atoms and positions), but these tasks are "
                         "tabular (a feature table): use model='MLP', or model='VTFNet' for conductivities "
                         f"(tabular models: {same}).")
    raise ValueError(f"model={name!r} takes a feature table, but these tasks hold structures: use "
                     f"model='InvariantGNN' (structure models: {same}), or OnDescriptors for their descriptors.")


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered model by class name (used when building and loading learners).

    ``kwargs`` go to the class: e.g. ``MLP(n_in, hidden)`` for tabular inputs, ``InvariantGNN(width,
    n_blocks, n_rbf, cutoff)`` for structures (``cutoff`` in Å). Models predict standardized targets;
    the learners convert back to the task's unit. Unknown names raise ``ValueError`` listing
    :data:`MODELS`; missing required arguments raise ``ValueError`` naming them (learners fill them
    from the meta-train tasks at ``fit``, see :func:`model_kwargs_for`).

    Example
    -------
    >>> import torch
    >>> model = build_model("MLP", n_in=3, hidden=(8,))
    >>> model(torch.zeros(5, 3)).shape, model(torch.zeros(5, 3), output="features").shape
    (torch.Size([5]), torch.Size([5, 8]))
    >>> "InvariantGNN" in MODELS
    True
    >>> build_model("VTFNet")                             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: VTFNet needs n_in: pass model_kwargs={'n_in': ...}, or let a learner fill them from the ...
    """
    cls = model_class(name)
    missing = missing_kwargs(name, kwargs)
    if missing:
        given = ", ".join(f"{m!r}: ..." for m in missing)
        raise ValueError(f"{name} needs {', '.join(missing)}: pass model_kwargs={{{given}}}"
                         f", or let a learner fill them from the meta-train tasks (make_learner(..., model={name!r})"
                         ".fit(meta_train)); for VTFNet, vtf_model_kwargs(meta_train) builds all of them.")
    return cls(**kwargs)
