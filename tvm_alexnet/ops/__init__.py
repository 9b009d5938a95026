"""Tensor-expression definitions of every op and its gradient, by the names spec.Kernel.op uses."""

from .conv import conv2d
from .dense import dense
from .elementwise import dropout, softmax
from .grad import (
    avg_pool_grad,
    bias_grad,
    conv2d_grad_input,
    conv2d_grad_weight,
    dense_grad_input,
    dense_grad_weight,
    lrn_grad,
    max_pool_grad,
    relu_grad,
)
from .lrn import lrn
from .pool import avg_pool, max_pool

OPS = {
    "conv2d": conv2d,
    "lrn": lrn,
    "max_pool": max_pool,
    "avg_pool": avg_pool,
    "dense": dense,
    "dropout": dropout,
    "softmax": softmax,
    # training's backward pass
    "relu_grad": relu_grad,
    "bias_grad": bias_grad,
    "conv2d_grad_input": conv2d_grad_input,
    "conv2d_grad_weight": conv2d_grad_weight,
    "dense_grad_input": dense_grad_input,
    "dense_grad_weight": dense_grad_weight,
    "lrn_grad": lrn_grad,
    "max_pool_grad": max_pool_grad,
    "avg_pool_grad": avg_pool_grad,
}
