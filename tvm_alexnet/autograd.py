"""Each layer of a compiled network as a torch.autograd.Function.

Forward runs the layer's forward kernels and keeps what its gradient needs;
backward runs the layer's gradient kernels (spec.Network.backward_kernels),
so torch computes no gradient of a compiled layer itself: it only chains the
layers and applies the optimizer.
"""

from __future__ import annotations

import torch

from .ops import op_of
from .runtime import CompiledNetwork
from .spec import Network


class LayerKernels:
    """One layer's forward kernels and, by name, their gradient kernels."""

    def __init__(self, compiled: CompiledNetwork, net: Network, layer: str):
        self.kernels = [k for k in net.kernels(training=True) if k.layer == layer]
        self.compiled = compiled

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """The layer's output, and per kernel the tensors its gradient needs."""
        call = self.compiled.kernel
        saved = []
        for k in self.kernels:
            op = op_of(k)
            if op.masked and mask is None:  # evaluation: dropout is the identity
                saved.append([])
                continue
            args = [x, mask] if op.masked else [x, weight, bias] if k.params else [x]
            y = call(k.name)(*args)
            # The input for dW (and LRN's and max-pool's gradients), the activation's output for its gradient.
            kept = {"input": x, "output": y, "mask": mask}
            saved.append([kept[name] for name in op.saves])
            x = y
        return x, saved

    def backward(self, dy: torch.Tensor, saved: list[list[torch.Tensor]], weight: torch.Tensor,
                 need_input: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The gradients of the layer's input (None unless `need_input`: the
        first layer's input is the image, which seldom requires one), weight
        and bias, from the gradient `dy` of its output."""
        call = self.compiled.kernel
        dw = db = None
        for k, tensors in zip(reversed(self.kernels), reversed(saved)):
            if op_of(k).masked:
                if tensors:
                    dy = call(k.name)(dy, *tensors)  # its own gradient, with the same mask
            elif k.params:
                x, y = tensors
                if k.attrs["activation"]:
                    dy = call(f"{k.layer}_{k.attrs['activation']}_grad")(dy, y)
                db = call(f"{k.name}_grad_bias")(dy)
                dw = call(f"{k.name}_grad_weight")(dy, x)
                dy = call(f"{k.name}_grad_input")(dy, weight) if need_input else None
            else:
                dy = call(f"{k.name}_grad")(dy, *tensors)
        return dy, dw, db


class CompiledLayer(torch.autograd.Function):
    """y = layer(x; weight, bias[, dropout mask]) through the compiled kernels."""

    @staticmethod
    def forward(ctx, kernels: LayerKernels, x, weight, bias, mask):
        out, saved = kernels.forward(x, weight, bias, mask)
        ctx.kernels, ctx.counts = kernels, [len(t) for t in saved]
        ctx.save_for_backward(weight, *[t for ts in saved for t in ts])
        return out

    @staticmethod
    def backward(ctx, dy):
        weight, *flat = ctx.saved_tensors
        saved, i = [], 0
        for count in ctx.counts:
            saved.append(flat[i:i + count])
            i += count
        dx, dw, db = ctx.kernels.backward(dy.contiguous(), saved, weight, ctx.needs_input_grad[1])
        return None, dx, dw, db, None

