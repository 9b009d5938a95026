"""Fully connected layers: y = x W^T + b, ReLU fused (torch's weight layout)."""

from tvm import te, topi


def dense(x: te.Tensor, weight: te.Tensor, bias: te.Tensor, *, relu: bool) -> te.Tensor:
    y = topi.nn.dense(x, weight, bias)
    return topi.nn.relu(y) if relu else y
