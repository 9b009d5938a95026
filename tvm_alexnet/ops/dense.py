"""Fully connected layers: y = x W^T + b, the activation fused (torch's weight layout)."""

from tvm import te, topi

from . import elementwise


def dense(x: te.Tensor, weight: te.Tensor, bias: te.Tensor, *, activation: str | None) -> te.Tensor:
    return elementwise.activate(topi.nn.dense(x, weight, bias), activation)
