"""Fully connected network for tabular inputs (electrolytes, LNPs).

Like every model here it is ``head(body(x))`` (ANIL adapts only ``head``), with no BatchNorm and no
in-place parameter updates, so ``higher.monkeypatch`` works.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


@register_model
class MLP(nn.Module):
    """Fully connected network for tabular inputs: ``head(body(x))``.

    Parameters: ``n_in`` input features, ``hidden`` widths of the body, ``activation`` a
    ``torch.nn`` activation class name.

    Example
    -------
    >>> import torch
    >>> MLP(n_in=3, hidden=(8,))(torch.zeros(5, 3)).shape
    torch.Size([5])
    """

    input_kind = "tabular"

    @classmethod
    def kwargs_from_tasks(cls, tasks, **kwargs) -> dict:
        """``kwargs`` with ``n_in`` (the tasks' input width) filled in."""
        return {"n_in": int(tasks[0].inputs.shape[1]), **kwargs}

    def __init__(self, n_in: int, hidden: tuple[int, ...] = (64, 64), activation: str = "SiLU"):
        super().__init__()
        layers: list[nn.Module] = []
        d = n_in
        for h in hidden:
            layers += [nn.Linear(d, h), getattr(nn, activation)()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, 1)
        self.n_features = d

    def forward(self, x: torch.Tensor, output: str = "target") -> torch.Tensor:
        """``output="target"``: predictions ``(n,)``; ``"features"``: body features ``(n, width)``."""
        f = self.body(x)
        return f if output == "features" else self.head(f).squeeze(-1)
