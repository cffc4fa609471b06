"""VTFNet: a conductivity network whose head is the Vogel–Tammann–Fulcher law (see :mod:`nanonb.physics.vtf`).

:class:`VTFNet` is a ``head(body(x))`` network registered with :func:`nanonb.models.registry.register_model`
(``make_learner(name, model="VTFNet", model_kwargs=vtf_model_kwargs(meta_train))``). The body is an MLP on
the tabular electrolyte features with the temperature columns masked out (optionally more, e.g. the
anion descriptors) ending in a linear layer that predicts how composition and concentration shift
the five VTF parameters ``(ln A, B, T0, alpha, beta)``. The **head** (:class:`VTFHead`) holds the
task-level VTF parameters (one offset each) that the inner loop adapts (ANIL adapts only those
five numbers, MAML/FOMAML everything) and evaluates the VTF law at the point's temperature. The
meta-learned initialisation is the prior over a task's VTF parameters; the SGD steps from it act as
an implicit Gaussian prior (early stopping), there is no explicit penalty term.
``T0 = t0_max - softplus(.)`` stays below ``t0_max`` (by default 20 K below the coldest meta-train
point) and the denominator is smoothly clamped to ``T - T0 >= 5 K``, so nothing blows up on colder
held-out points. Everything is functional (no in-place parameter updates), so ``higher`` can
differentiate through the inner loop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nanonb.models.registry import register_model
from nanonb.physics.vtf import (
    LN10,
    PARAM_NAMES,
    RawColumns,
    VTFPrior,
    _column,
    _softplus_inv,
    check_target_unit,
    empirical_prior,
    soft_conc,
    soft_gap,
)
from nanonb.scaling import standardization
from nanonb.tasks import TaskSet


class VTFHead(nn.Module):
    """The per-task VTF parameters and the VTF law.

    Input: ``z = [q (5), T (K), c]`` (what :meth:`VTFNet.forward` returns for ``output="features"``),
    where ``q`` is the body's composition-dependent correction of the five parameters. The head holds
    the task-level parameters the inner loop adapts, one offset per VTF parameter (``theta``, 5
    numbers), giving ``p = theta + q``; their meta-learned initial values are the prior. Output:
    standardized ``log10 k``, ``(log10 k - y_mean) / y_std`` (the learners' ``Scaler`` convention,
    :func:`nanonb.scaling.standardization`). Parameterisation of ``p``:

    - ``ln A = lnA_ref + p0`` (ln mS/cm),
    - ``B = softplus(softplus^-1(B_ref) + 100 p1)`` (K, positive),
    - ``T0 = t0_max - softplus(softplus^-1(t0_max - T0_ref) + 20 p2)`` (K, below ``t0_max``),
    - ``alpha = alpha_ref + p3`` and ``beta = beta_ref + 0.5 p4``,

    so that a unit change of any ``p_j`` moves ``log10 k`` by a comparable amount (well-conditioned
    inner-loop steps). ``ln k = ln A + alpha ln c + beta c - B / max_soft(T - T0, 5 K)``.

    Example
    -------
    >>> import torch
    >>> head = VTFHead(ref=(6.0, 600.0, 160.0, 0.0, 0.0), t0_max=180.0, y_mean=0.0, y_std=1.0)
    >>> z = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 298.15, 1.0]])  # [q (5), T (K), c]
    >>> round(head.log10k(z).item(), 2)  # log10(k / mS/cm)
    0.72
    """

    n_params = len(PARAM_NAMES)

    def __init__(self, ref: tuple[float, ...], t0_max: float, y_mean: float, y_std: float):
        super().__init__()
        k = self.n_params
        self.theta = nn.Parameter(torch.zeros(k))
        lnA, B, T0, alpha, beta = (float(v) for v in ref)
        self.t0_max = float(t0_max)
        self.lnA_ref, self.alpha_ref, self.beta_ref = lnA, alpha, beta
        self.b_raw = _softplus_inv(max(B, 10.0))
        self.t0_raw = _softplus_inv(max(self.t0_max - T0, 1.0))
        self.y_mean, self.y_std = float(y_mean), float(y_std)

    def params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-point VTF parameters ``{lnA, B (K), T0 (K), alpha, beta}`` from head input ``z``."""
        p = self.theta + z[:, : self.n_params]
        return {
            "lnA": self.lnA_ref + p[:, 0],
            "B": F.softplus(self.b_raw + 100.0 * p[:, 1]),
            "T0": self.t0_max - F.softplus(self.t0_raw + 20.0 * p[:, 2]),
            "alpha": self.alpha_ref + p[:, 3],
            "beta": self.beta_ref + 0.5 * p[:, 4],
        }

    def log10k(self, z: torch.Tensor) -> torch.Tensor:
        """``log10 k`` (k in mS/cm) for head input ``z``."""
        q = self.params(z)
        T, c = z[:, self.n_params], z[:, self.n_params + 1]
        lnk = q["lnA"] + q["alpha"] * torch.log(soft_conc(c)) + q["beta"] * c - q["B"] / soft_gap(T - q["T0"])
        return lnk / LN10

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.log10k(z) - self.y_mean) / self.y_std


@register_model
class VTFNet(nn.Module):
    """``head(body(x))`` conductivity model with a VTF head (see :class:`VTFHead`).

    The body (an MLP on the inputs with the temperature columns masked, then a linear layer to 5
    outputs, initialised small) predicts how composition and concentration shift the VTF parameters;
    the head holds the task-level VTF parameters and evaluates the law at the point's temperature.

    Parameters
    ----------
    n_in:
        Number of input columns (model inputs, i.e. after the learner's ``Scaler``).
    t_index, t_scale, t_offset:
        Temperature column and its affine map to kelvin: ``T = x[:, t_index] * t_scale + t_offset``.
    c_index, c_scale, c_offset:
        Concentration column and its map to raw units (``c_index=None``: no concentration term).
    mask:
        Input columns hidden from the body (the temperature column always is; pass the ``1000/T``
        column too, so that temperature enters only through the VTF law, and optionally others).
    ref:
        Reference VTF parameters ``(lnA, B, T0, alpha, beta)`` of the initialisation.
    t0_max:
        Upper bound of ``T0`` (K).
    y_mean, y_std:
        Target standardization of the learner (``log10 k``), so the output matches its Scaler.
    hidden, activation:
        Body MLP widths and activation.

    Build the keyword arguments from a meta-train set with :func:`vtf_model_kwargs`.

    Example
    -------
    >>> import torch
    >>> net = VTFNet(n_in=3, t_index=0, t_scale=1.0, t_offset=0.0, hidden=(8,))
    >>> net(torch.tensor([[298.15, 0.0, 0.0]]), output="params").shape  # lnA, B, T0, alpha, beta
    torch.Size([1, 5])
    >>> learner = make_learner("fomaml", model="VTFNet", model_kwargs=vtf_model_kwargs(train))  # doctest: +SKIP
    """

    input_kind = "tabular"

    @classmethod
    def kwargs_from_tasks(cls, tasks: TaskSet, mask_prefixes: tuple[str, ...] = (), **kwargs) -> dict:
        """:func:`vtf_model_kwargs` of the meta-train ``tasks``, updated with ``kwargs`` (e.g. ``hidden``).

        Lets ``make_learner(name, model="VTFNet")`` build the network at ``fit`` without model_kwargs.
        """
        base = vtf_model_kwargs(tasks, hidden=tuple(kwargs.get("hidden", (64, 64))),
                                activation=kwargs.get("activation", "SiLU"), mask_prefixes=tuple(mask_prefixes))
        return {**base, **kwargs}

    def __init__(self, n_in: int, t_index: int = 0, t_scale: float = 1.0, t_offset: float = 0.0,
                 c_index: int | None = None, c_scale: float = 1.0, c_offset: float = 0.0,
                 mask: tuple[int, ...] | list[int] | None = None,
                 ref: tuple[float, ...] | list[float] = (6.0, 600.0, 160.0, 0.5, -0.5), t0_max: float = 180.0,
                 y_mean: float = 0.0, y_std: float = 1.0, hidden: tuple[int, ...] | list[int] = (64, 64),
                 activation: str = "SiLU", init_scale: float = 0.1):
        super().__init__()
        if not 0 <= t_index < n_in:
            raise ValueError(f"t_index={t_index} is not a column of an input with {n_in} features.")
        self.t_index, self.t_scale, self.t_offset = int(t_index), float(t_scale), float(t_offset)
        self.c_index = None if c_index is None else int(c_index)
        self.c_scale, self.c_offset = float(c_scale), float(c_offset)
        keep = torch.ones(n_in)
        for i in {self.t_index, *(mask or ())}:
            keep[int(i)] = 0.0
        self.register_buffer("keep", keep)
        layers: list[nn.Module] = []
        d = n_in
        for h in hidden:
            layers += [nn.Linear(d, h), getattr(nn, activation)()]
            d = h
        out = nn.Linear(d, VTFHead.n_params)
        with torch.no_grad():
            out.weight.mul_(init_scale)
            out.bias.zero_()
        self.body = nn.Sequential(*layers, out)
        self.head = VTFHead(tuple(ref), t0_max, y_mean, y_std)
        self.n_features = VTFHead.n_params + 2

    def _raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = x[:, self.t_index] * self.t_scale + self.t_offset
        if self.c_index is None:
            c = torch.ones_like(T)
        else:
            c = x[:, self.c_index] * self.c_scale + self.c_offset
        return T, c

    def forward(self, x: torch.Tensor, output: str = "target") -> torch.Tensor:
        """``"target"``: standardized ``log10 k`` ``(n,)``; ``"features"``: ``[q, T, c]`` ``(n, 7)``
        (the head's input); ``"log10k"``: ``log10 k``; ``"params"``: ``(n, 5)`` VTF parameters in
        :data:`PARAM_NAMES` order."""
        T, c = self._raw(x)
        q = self.body(x * self.keep)
        z = torch.cat([q, T[:, None], c[:, None]], dim=1)
        if output == "features":
            return z
        if output == "target":
            return self.head(z)
        if output == "log10k":
            return self.head.log10k(z)
        if output == "params":
            p = self.head.params(z)
            return torch.stack([p[n] for n in PARAM_NAMES], dim=1)
        raise ValueError(f"output must be 'target', 'features', 'log10k' or 'params', not {output!r}")


def vtf_model_kwargs(train: TaskSet, hidden: tuple[int, ...] = (64, 64), prior: VTFPrior | None = None,
                     activation: str = "SiLU", mask_prefixes: tuple[str, ...] = ()) -> dict:
    """Keyword arguments of :class:`VTFNet` for learners trained on ``train`` (JSON-serialisable).

    Reads ``train.feature_names`` (``temperature_K``, ``inv_temperature_1000_per_K``,
    ``salt_concentration``) and the loader's ``feature_mean``/``feature_std``, and composes them with
    the statistics a learner's ``Scaler`` fits on ``train`` (:func:`nanonb.scaling.standardization`;
    same statistics, so the model recovers T in K from its standardized input). The reference
    parameters are the empirical prior of the meta-train tasks (:func:`empirical_prior`). Columns
    whose names start with one of ``mask_prefixes`` (e.g. ``"anion_"``) are hidden from the body as
    well.

    Example
    -------
    >>> kw = vtf_model_kwargs(calisol_train, hidden=(32, 32), mask_prefixes=("anion_",))   # doctest: +SKIP
    >>> VTFNet(**kw)                                                                      # doctest: +SKIP
    """
    if not train[0].is_tabular:
        raise ValueError("VTFNet needs tabular electrolyte features (e.g. calisol_taskset()).")
    check_target_unit(train)
    cols = RawColumns.of(train)
    stats = standardization(train)
    xm, xs = np.asarray(stats["x_mean"]), np.asarray(stats["x_std"])
    mask = [cols.t_index]
    try:
        mask.append(_column(train.feature_names, ("inv_temperature_1000_per_K",), "1000/T"))
    except ValueError:
        pass
    mask += [i for i, n in enumerate(train.feature_names) if any(n.startswith(p) for p in mask_prefixes)]
    prior = prior or empirical_prior(train)
    kw = {
        "n_in": int(train[0].inputs.shape[1]),
        "t_index": cols.t_index,
        "t_scale": float(xs[cols.t_index] * cols.t_std),
        "t_offset": float(xm[cols.t_index] * cols.t_std + cols.t_mean),
        "c_index": cols.c_index,
        "c_scale": float(xs[cols.c_index] * cols.c_std) if cols.c_index is not None else 1.0,
        "c_offset": float(xm[cols.c_index] * cols.c_std + cols.c_mean) if cols.c_index is not None else 0.0,
        "mask": mask,
        "ref": [float(v) for v in prior.mean],
        "t0_max": float(prior.t0_max),
        "y_mean": stats["y_mean"],
        "y_std": stats["y_std"],
        "hidden": list(hidden),
        "activation": activation,
    }
    return kw


def vtf_parameters(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-point VTF parameters of a (possibly ``higher``-patched) :class:`VTFNet` for model input ``x``.

    Example
    -------
    >>> import torch
    >>> net = VTFNet(n_in=2, hidden=(4,))
    >>> sorted(vtf_parameters(net, torch.tensor([[300.0, 0.0]])))
    ['B', 'T0', 'alpha', 'beta', 'lnA']
    """
    with torch.no_grad():
        p = model(x, output="params").cpu().numpy().astype(np.float64)
    return {n: p[:, i] for i, n in enumerate(PARAM_NAMES)}
