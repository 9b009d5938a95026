"""Fully connected layers: y = x W^T + b, ReLU fused (torch's weight layout)."""

from tvm import te, topi

from . import elementwise


def dense(x: te.Tensor, weight: te.Tensor, bias: te.Tensor, *, relu: bool) -> te.Tensor:
    y = topi.nn.dense(x, weight, bias)
    return elementwise.relu(y) if relu else y
