"""Overlapping max-pooling and adaptive average pooling (NCHW)."""

from tvm import te, tirx, topi

# max, except that a NaN anywhere in the window wins, as in torch's max-pool
# (a plain max keeps whichever side its comparison happens to favour).
_nan_max = te.comm_reducer(lambda acc, x: tirx.Select(tirx.isnan(x) | (x > acc), x, acc),
                           lambda dtype: tirx.min_value(dtype), name="nan_max")


def max_pool(x: te.Tensor, *, size: int, stride: int) -> te.Tensor:
    n, c, h, w = x.shape
    rows, cols = (h - size) // stride + 1, (w - size) // stride + 1
    dy, dx = te.reduce_axis((0, size), "rv0"), te.reduce_axis((0, size), "rv1")
    return te.compute((n, c, rows, cols),
                      lambda b, k, i, j: _nan_max(x[b, k, i * stride + dy, j * stride + dx], axis=[dy, dx]),
                      name="pool_max")


def avg_pool(x: te.Tensor, *, output_size: int) -> te.Tensor:
    return topi.nn.adaptive_pool(x, (output_size, output_size), "avg")
