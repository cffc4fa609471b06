"""Models that run inside ``higher``'s differentiable inner loops, and their registry.

Every model is ``head(body(x))``: ``body`` maps inputs to a feature vector per sample and ``head``
is one linear layer to the (standardized) target. ANIL adapts only the head; a Bayesian last layer
puts a posterior on it.

- :mod:`.registry`: :func:`register_model` / :func:`build_model` (name -> class, for saved learners).
- :mod:`.elements`: physical element descriptors (:func:`element_table`).
- :mod:`.mlp`: :class:`MLP` for tabular inputs.
- :mod:`.gnn`: :class:`InvariantGNN` and :class:`EquivariantGNN` for 3D structures.

Importing the package registers MLP, InvariantGNN and EquivariantGNN.
"""

from .elements import ELEMENT_FEATURES, MAX_Z, element_table
from .gnn import EquivariantGNN, InvariantGNN
from .mlp import MLP
from .registry import MODELS, build_model, register_model

__all__ = ["ELEMENT_FEATURES", "MAX_Z", "element_table", "EquivariantGNN", "InvariantGNN", "MLP", "MODELS",
           "build_model", "register_model"]
