"""Convolution with bias and activation (ReLU or tanh), grouped as the paper's towers need."""

from tvm import te, topi

from . import elementwise


def conv2d(x: te.Tensor, weight: te.Tensor, bias: te.Tensor, *, stride: int, padding: int,
           groups: int, activation: str | None) -> te.Tensor:
    if groups == 1:
        y = topi.nn.conv2d_nchw(x, weight, stride, padding, 1)
    else:
        y = topi.nn.group_conv2d_nchw(x, weight, stride, padding, 1, groups)
    # Bias and activation in the same kernel: one pass over the output instead of three.
    y = te.compute(y.shape, lambda n, c, h, w: y[n, c, h, w] + bias[c], name="bias_add")
    return elementwise.activate(y, activation)
