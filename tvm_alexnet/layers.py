"""The torch side of the spec's layers: their parameter modules, the paper's
LRN and the activations in torch ops, and the one walk through the layers
that every forward (compiled: single device, towers, the CLI's demo; and the
torch reference) shares.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .spec import Conv, Dense, Network

# The spec's activations (spec.ACTIVATIONS) in torch ops.
TORCH_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "tanh": torch.tanh}


def torch_activation(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    """`x` through the named activation (None: `x` as it is)."""
    return x if activation is None else TORCH_ACTIVATIONS[activation](x)


def torch_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float, groups: int) -> torch.Tensor:
    """The spec's LRN in torch ops, windows within each channel group (torch
    divides alpha by the size; ours multiplies the plain sum)."""
    return torch.cat([F.local_response_norm(part, size, alpha=alpha * size, beta=beta, k=k)
                      for part in x.chunk(groups, 1)], 1)


def layer_modules(net: Network) -> dict[str, nn.Module]:
    """conv1 ... fc8 as torch modules holding the parameters, in the spec's order."""
    modules = {c.name: nn.Conv2d(c.in_channels, c.out_channels, c.kernel, c.stride, c.padding, groups=c.groups)
               for c in net.convs}
    return modules | {d.name: nn.Linear(d.in_features, d.out_features) for d in net.dense}


def dropout_mask(layer: Conv | Dense, x: torch.Tensor) -> torch.Tensor | None:
    """A fresh mask for the output of a layer with dropout, 0 or 1/keep
    (inverted dropout), None for a layer without."""
    if not getattr(layer, "dropout", 0.0):
        return None
    keep = 1 - layer.dropout
    return torch.empty((x.shape[0], layer.out_features), device=x.device).bernoulli_(keep).div_(keep)


def _each(fn: Callable[[torch.Tensor], object], x):
    """fn(x), or [fn(t) for t in x] where x holds one tensor per tower."""
    return [fn(t) for t in x] if isinstance(x, (list, tuple)) else fn(x)


def walk_layers(net: Network, x, run_layer: Callable, training: bool = False, until: str | None = None):
    """x through every layer of `net` in order, `x = run_layer(layer, x,
    mask)`: flattened before the first dense layer, with `mask` a fresh
    dropout mask (per tower where `x` is a list, one tensor per tower) while
    `training`, else None. With `until` (a layer name) the walk stops after
    that layer and returns its output."""
    names = [layer.name for layer in net.layers]
    if until is not None and until not in names:
        raise UserError(f"no layer {until!r} in variant {net.variant!r}; choose one of {', '.join(names)}")
    for layer in net.layers:
        if layer.name == net.dense[0].name:
            x = _each(lambda t: t.flatten(1), x)
        mask = _each(lambda t: dropout_mask(layer, t) if training else None, x)
        x = run_layer(layer, x, mask)
        if layer.name == until:
            break
    return x
