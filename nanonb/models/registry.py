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

from torch import nn

#: Registered model classes by class name.
MODELS: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Register a model class so saved learners can rebuild it by name (usable as a decorator)."""
    MODELS[cls.__name__] = cls
    return cls


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate a registered model by class name (used when building and loading learners).

    ``kwargs`` go to the class: e.g. ``MLP(n_in, hidden)`` for tabular inputs, ``InvariantGNN(width,
    n_blocks, n_rbf, cutoff)`` for structures (``cutoff`` in Å). Models predict standardized targets;
    the learners convert back to the task's unit. Unknown names raise ``ValueError`` listing
    :data:`MODELS`.

    Example
    -------
    >>> import torch
    >>> model = build_model("MLP", n_in=3, hidden=(8,))
    >>> model(torch.zeros(5, 3)).shape, model(torch.zeros(5, 3), output="features").shape
    (torch.Size([5]), torch.Size([5, 8]))
    >>> "InvariantGNN" in MODELS
    True
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name](**kwargs)
