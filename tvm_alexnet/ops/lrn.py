"""Local response normalisation across channels, in the paper's form.

b[c] = a[c] / (k + alpha * sum_{j in window(c)} a[j]^2) ** beta. topi.nn.lrn
divides alpha by the window size (torch's convention), so it is written here.
With `groups`, a window stays within its channel group (the paper's towers).
"""

from tvm import te, tirx


def same_group(c, j, channels, groups: int):
    """Whether channels c and j (j possibly out of range) share a group."""
    per = channels // groups
    return tirx.floordiv(j, per) == tirx.floordiv(c, per)


def lrn(x: te.Tensor, *, size: int, alpha: float, beta: float, k: float, groups: int = 1) -> te.Tensor:
    n, channels, h, w = x.shape
    before = size // 2  # torch's window: c - size//2 .. c + (size-1)//2

    # Loads clamped in bounds times 0 or 1, not if_then_else: that guards
    # its branches, and vectorized code then tests every lane.
    # Nor Select: TVM's simplifier drops a clamp that its condition makes
    # redundant, and both of Select's sides are loaded.
    def square(b, c, i, j):
        nearest = tirx.min(tirx.max(c - before, 0), channels - 1)
        real = tirx.all(c >= before, c < channels + before)
        return x[b, nearest, i, j] * x[b, nearest, i, j] * tirx.Cast(x.dtype, real)

    padded = te.compute((n, channels + size - 1, h, w), square, name="lrn_square")
    r = te.reduce_axis((0, size), name="r")

    def term(b, c, i, j):
        if groups == 1:
            return padded[b, c + r, i, j]
        return padded[b, c + r, i, j] * tirx.Cast(x.dtype, same_group(c, c + r - before, channels, groups))

    window = te.compute(x.shape, lambda b, c, i, j: te.sum(term(b, c, i, j), axis=r), name="lrn_sum")
    alpha, k = (tirx.const(v, x.dtype) for v in (alpha, k))

    def scale(s):
        # The paper's beta = 3/4 as two square roots: they vectorize, pow does not.
        if beta == 0.75:
            return te.sqrt(s) * te.sqrt(te.sqrt(s))
        return te.power(s, tirx.const(beta, x.dtype))

    return te.compute(x.shape, lambda b, c, i, j: x[b, c, i, j] / scale(k + alpha * window[b, c, i, j]), name="lrn")
