"""What torch runs for each op: the library call computing a kernel's output
(forward, or autograd's backward op) on the kernel's own arguments, for
timing and checking the kernels against torch; and random arguments that
look like what the kernel gets in the network.

Each equivalent is `(kernel, args) -> call`, `args` as the compiled kernel
takes them (activations, then weight and bias); the call returns the output.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..layers import torch_lrn
from ..spec import Kernel

Call = Callable[[], torch.Tensor]
aten = torch.ops.aten


def random_inputs(k: Kernel, batch: int, device: torch.device) -> list[torch.Tensor]:
    """Random activations (batched), one per input of the kernel."""
    return [torch.randn(batch, *shape, device=device) for shape in k.inputs]


def relu_grad_inputs(k: Kernel, batch: int, device: torch.device) -> list[torch.Tensor]:
    dy, y = random_inputs(k, batch, device)
    return [dy, y.relu()]  # a ReLU's output


def tanh_grad_inputs(k: Kernel, batch: int, device: torch.device) -> list[torch.Tensor]:
    dy, y = random_inputs(k, batch, device)
    return [dy, y.tanh()]  # a tanh's output


def activate(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    """`y` through the named activation in place (None: as it is)."""
    return y if activation is None else {"relu": y.relu_, "tanh": y.tanh_}[activation]()


def dropout_inputs(k: Kernel, batch: int, device: torch.device) -> list[torch.Tensor]:
    x, _ = random_inputs(k, batch, device)
    return [x, (torch.rand(batch, *k.inputs[1], device=device) < 0.5).float() * 2]  # a mask, keeping half


def conv2d(k: Kernel, args: list[torch.Tensor]) -> Call:
    a = k.attrs

    def conv():
        y = F.conv2d(args[0], args[1], args[2], a["stride"], a["padding"], groups=a["groups"])
        return activate(y, a["activation"])
    return conv


def lrn(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: torch_lrn(args[0], **k.attrs)


def max_pool(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: F.max_pool2d(args[0], k.attrs["size"], k.attrs["stride"])


def avg_pool(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: F.adaptive_avg_pool2d(args[0], k.attrs["output_size"])


def dense(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: activate(F.linear(*args), k.attrs["activation"])


def dropout(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: args[0] * args[1]


def softmax(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: args[0].softmax(-1)


def relu_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: aten.threshold_backward(args[0], args[1], 0)


def tanh_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: aten.tanh_backward(args[0], args[1])


def bias_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    dims = [0, 2, 3] if len(k.inputs[0]) == 3 else [0]
    return lambda: args[0].sum(dims)


def _conv2d_backward(k: Kernel, args: list[torch.Tensor], grad_input: bool) -> Call:
    a, dy = k.attrs, args[0]
    x = dy.new_empty(len(dy), *k.output) if grad_input else args[1]
    w = args[1] if grad_input else dy.new_empty(k.output)
    mask = [grad_input, not grad_input, False]
    return lambda: aten.convolution_backward(dy, x, w, None, [a["stride"]] * 2, [a["padding"]] * 2, [1, 1],
                                             False, [0, 0], a["groups"], mask)[0 if grad_input else 1]


def conv2d_grad_input(k: Kernel, args: list[torch.Tensor]) -> Call:
    return _conv2d_backward(k, args, grad_input=True)


def conv2d_grad_weight(k: Kernel, args: list[torch.Tensor]) -> Call:
    return _conv2d_backward(k, args, grad_input=False)


def dense_grad_input(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: args[0] @ args[1]


def dense_grad_weight(k: Kernel, args: list[torch.Tensor]) -> Call:
    return lambda: args[0].t() @ args[1]


def lrn_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    x = args[1].detach().requires_grad_()
    with torch.enable_grad():
        y = torch_lrn(x, **k.attrs)

    def grad():
        with torch.enable_grad():
            return torch.autograd.grad(y, x, args[0], retain_graph=True)[0]
    return grad


def max_pool_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    size, stride = k.attrs["size"], k.attrs["stride"]
    _, indices = F.max_pool2d(args[1], size, stride, return_indices=True)
    return lambda: aten.max_pool2d_with_indices_backward(args[0], args[1], [size] * 2, [stride] * 2,
                                                         [0, 0], [1, 1], False, indices)


def avg_pool_grad(k: Kernel, args: list[torch.Tensor]) -> Call:
    x = args[0].new_empty(len(args[0]), *k.output)
    return lambda: aten._adaptive_avg_pool2d_backward(args[0], x)
