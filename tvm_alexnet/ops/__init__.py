"""Tensor-expression definitions of every op, by the names spec.Kernel.op uses."""

from .conv import conv2d
from .dense import dense
from .elementwise import dropout, softmax
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
}
