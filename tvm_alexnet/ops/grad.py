"""Backward kernels: each op's gradient with respect to its input and parameters.

`dy` is the gradient of the loss with respect to the op's output. Every
parameter gradient sums over the batch. The formulas are the exact
derivatives of the forward ops in this package (LRN's included); max-pool
sends each window's gradient to its first maximum, as torch does.
"""

import functools

from tvm import te, tirx, topi

from .lrn import same_group


def relu_grad(dy: te.Tensor, y: te.Tensor) -> te.Tensor:
    # y is the ReLU's output: y > 0 exactly where its input was; a NaN passes
    # its gradient on, as torch's threshold_backward does.
    # Select, not if_then_else: if_then_else guards its branches, which keeps
    # LLVM from vectorizing.
    zero = tirx.const(0.0, dy.dtype)
    return te.compute(dy.shape, lambda *i: tirx.Select(y(*i) <= zero, zero, dy(*i)), name="relu_grad")


def tanh_grad(dy: te.Tensor, y: te.Tensor) -> te.Tensor:
    # y is the tanh's output: d tanh(x)/dx = 1 - tanh(x)^2, as torch's tanh_backward.
    one = tirx.const(1.0, dy.dtype)
    return te.compute(dy.shape, lambda *i: dy(*i) * (one - y(*i) * y(*i)), name="tanh_grad")


def bias_grad(dy: te.Tensor) -> te.Tensor:
    """Sum over every axis but the channel (axis 1)."""
    axes = [te.reduce_axis((0, dy.shape[0]), name="rn")]
    axes += [te.reduce_axis((0, d), name=f"r{i}") for i, d in enumerate(dy.shape[2:])]
    return te.compute((dy.shape[1],), lambda c: te.sum(dy[(axes[0], c, *axes[1:])], axis=axes), name="bias_grad")


def conv2d_grad_input(dy: te.Tensor, weight: te.Tensor, *, stride: int, padding: int, groups: int,
                      input_size: int) -> te.Tensor:
    """The transposed convolution: dy, dilated by the stride and padded by
    kernel - 1 - padding, convolved with the weights flipped in space and
    with input and output channels swapped within each group. A strided
    convolution's (conv1's) in phases instead: see strided_conv2d_grad_input."""
    if stride > 1:
        return strided_conv2d_grad_input(dy, weight, stride=stride, padding=padding, groups=groups,
                                         input_size=input_size)
    out_channels, group_in, k, _ = weight.shape
    group_out = out_channels // groups
    flipped = te.compute(
        (group_in * groups, group_out, k, k),
        lambda i, o, h, w: weight[(i // group_in) * group_out + o, i % group_in, k - 1 - h, k - 1 - w],
        name="weight_flip")
    size = dy.shape[2]
    if stride > 1:
        dy = topi.nn.dilate(dy, (1, 1, stride, stride), name="dilate")
    before = int(k) - 1 - padding
    # Rows and columns the forward stride skipped at the end get no gradient from dy.
    after = before + input_size + 2 * padding - ((int(size) - 1) * stride + int(k))
    pad = (before, before, after, after)
    if groups == 1:
        return topi.nn.conv2d_nchw(dy, flipped, 1, pad, 1)
    return topi.nn.group_conv2d_nchw(dy, flipped, 1, pad, 1, groups)


# A phase's columns are padded to a multiple of this, whole vectors of either
# vector unit (8 or 16 lanes), so that the computation stays the same on both.
PHASE_COLUMNS_MULTIPLE = 16


def phase_columns(stride: int, padding: int, input_size: int) -> int:
    """Columns per phase of strided_conv2d_grad_input, padded."""
    needed = (input_size - 1 + padding) // stride + 1
    return -(-needed // PHASE_COLUMNS_MULTIPLE) * PHASE_COLUMNS_MULTIPLE


def strided_conv2d_grad_input(dy: te.Tensor, weight: te.Tensor, *, stride: int, padding: int, groups: int,
                              input_size: int) -> te.Tensor:
    """A strided convolution's input gradient without the dilated form's
    zeros (15 of every 16 multiply-adds for conv1's stride 4).

    With u = i + padding = stride * U + r, input row i takes output rows
    U - a through kernel rows r + stride * a, for a < ceil(k / stride) and
    r + stride * a < k; columns likewise, with v = j + padding = stride * V + q.
    So each input row is, per column phase q, a stride-1 correlation of dy's
    rows with a (ceil(k/s) x ceil(k/s)) slice of the weights (`weight_taps`,
    zero where a tap falls off the kernel), computed along V (contiguous in
    dy, so it vectorizes), and the phases are interleaved at the end. dy is
    zero-padded (`dy_pad`) so that no load needs a bound check."""
    n, out_channels, oh, ow = (dy.shape[0], *map(int, dy.shape[1:]))
    _, group_in, k, _ = map(int, weight.shape)
    s, p, group_out = stride, padding, out_channels // groups
    taps = -(-k // s)
    rows = (input_size - 1 + p) // s + 1
    cols = phase_columns(s, p, input_size)
    zero = tirx.const(0.0, dy.dtype)

    def tap(c, r, o, a, b, q):
        h, w = r + s * a, q + s * b
        return tirx.if_then_else(tirx.all(h < k, w < k), weight[o, c, h, w], zero)

    weight_taps = te.compute((group_in, s, out_channels, taps, taps, s), tap, name="weight_taps")

    def padded(b, o, y, x):
        y, x = y - (taps - 1), x - (taps - 1)
        return tirx.if_then_else(tirx.all(y >= 0, y < oh, x >= 0, x < ow), dy[b, o, y, x], zero)

    dy_pad = te.compute((n, out_channels, rows + taps - 1, cols + taps - 1), padded, name="dy_pad")
    ro = te.reduce_axis((0, group_out), "ro")
    ra, rb = te.reduce_axis((0, taps), "ra"), te.reduce_axis((0, taps), "rb")

    def phase(b, c, i, q, v):
        o = c // group_in * group_out + ro
        return te.sum(dy_pad[b, o, (i + p) // s - ra + taps - 1, v - rb + taps - 1]
                      * weight_taps[c % group_in, (i + p) % s, o, ra, rb, q], axis=[ro, ra, rb])

    phases = te.compute((n, group_in * groups, input_size, s, cols), phase, name="conv2d_grad_input_phases")
    return te.compute((n, group_in * groups, input_size, input_size),
                      lambda b, c, i, j: phases[b, c, i, (j + p) % s, (j + p) // s], name="conv2d_grad_input")


def conv2d_grad_weight(dy: te.Tensor, x: te.Tensor, *, kernel: int, stride: int, padding: int,
                       groups: int) -> te.Tensor:
    n, out_channels, oh, ow = dy.shape
    group_in, group_out = x.shape[1] // groups, out_channels // groups
    padded = topi.nn.pad(x, (0, 0, padding, padding), name="pad_temp")
    rn, ry, rx = te.reduce_axis((0, n), "rn"), te.reduce_axis((0, oh), "ry"), te.reduce_axis((0, ow), "rx")
    # Per group, so that no index divides by the group size (a vectorized
    # channel loop would turn it into a gather); the groups are joined after.
    grouped = te.compute(
        (groups, group_out, group_in, kernel, kernel),
        lambda g, o, i, h, w: te.sum(
            dy[rn, g * group_out + o, ry, rx] * padded[rn, g * group_in + i, ry * stride + h, rx * stride + w],
            axis=[rn, ry, rx]),
        name="conv2d_grad_weight")
    return te.compute((out_channels, group_in, kernel, kernel),
                      lambda o, i, h, w: grouped[o // group_out, o % group_out, i, h, w], name="join_groups")


def dense_grad_input(dy: te.Tensor, weight: te.Tensor) -> te.Tensor:
    j = te.reduce_axis((0, weight.shape[0]), "j")
    return te.compute((dy.shape[0], weight.shape[1]), lambda n, i: te.sum(dy[n, j] * weight[j, i], axis=j),
                      name="dense_grad_input")


def dense_grad_weight(dy: te.Tensor, x: te.Tensor) -> te.Tensor:
    n = te.reduce_axis((0, dy.shape[0]), "n")
    return te.compute((dy.shape[1], x.shape[1]), lambda j, i: te.sum(dy[n, j] * x[n, i], axis=n),
                      name="dense_grad_weight")


def lrn_grad(dy: te.Tensor, x: te.Tensor, *, size: int, alpha: float, beta: float, k: float,
             groups: int = 1) -> te.Tensor:
    """b_c = x_c s_c^-beta with s_c = k + alpha sum_{j in window(c)} x_j^2, so
    dx_c = dy_c s_c^-beta - 2 alpha beta x_c sum_{j: c in window(j)} dy_j x_j s_j^(-beta-1),
    windows within `groups` channel groups."""
    n, channels, h, w = x.shape
    before, after = size // 2, (size - 1) // 2  # window(c) = c - before .. c + after

    def zero_outside(value, c):
        """value(nearest channel to c) where c is a channel, else 0: a load
        clamped in bounds times 0 or 1 (see ops.lrn for why not a branch)."""
        nearest = tirx.min(tirx.max(c, 0), channels - 1)
        return value(nearest) * tirx.Cast(x.dtype, tirx.all(c >= 0, c < channels))

    squares = te.compute((n, channels + size - 1, h, w), lambda b, c, i, j: zero_outside(
        lambda m: x[b, m, i, j] * x[b, m, i, j], c - before), name="lrn_square")
    r = te.reduce_axis((0, size), "r")

    def grouped(c, j, value):
        return value if groups == 1 else value * tirx.Cast(x.dtype, same_group(c, j, channels, groups))

    window = te.compute(x.shape, lambda b, c, i, j: te.sum(grouped(c, c + r - before, squares[b, c + r, i, j]),
                                                          axis=r), name="lrn_sum")
    scale = te.compute(x.shape, lambda b, c, i, j: tirx.const(k, x.dtype) + tirx.const(alpha, x.dtype)
                       * window[b, c, i, j], name="lrn_scale")

    def power(s):  # s^-beta; beta = 3/4 as square roots, as the forward does
        if beta == 0.75:
            return tirx.const(1.0, x.dtype) / (te.sqrt(s) * te.sqrt(te.sqrt(s)))
        return te.power(s, tirx.const(-beta, x.dtype))

    scaled = te.compute(x.shape, lambda b, c, i, j: power(scale[b, c, i, j]), name="lrn_power")
    # t_j = dy_j x_j s_j^(-beta-1), padded so that the reverse window needs no bounds.
    t = te.compute((n, channels + size - 1, h, w), lambda b, c, i, j: zero_outside(
        lambda m: dy[b, m, i, j] * x[b, m, i, j] * scaled[b, m, i, j] / scale[b, m, i, j], c - after), name="lrn_t")
    q = te.reduce_axis((0, size), "q")
    back = te.compute(x.shape, lambda b, c, i, j: te.sum(grouped(c, c + q - after, t[b, c + q, i, j]), axis=q),
                      name="lrn_back")
    coef = tirx.const(2.0 * alpha * beta, x.dtype)
    return te.compute(x.shape, lambda b, c, i, j: dy[b, c, i, j] * scaled[b, c, i, j]
                      - coef * x[b, c, i, j] * back[b, c, i, j], name="lrn_grad")


def max_pool_grad(dy: te.Tensor, x: te.Tensor, *, size: int, stride: int) -> te.Tensor:
    """Each window's gradient goes to its first maximum in row-major order
    (torch's choice on ties, common after a ReLU). Written without branches
    or reductions: each window's maximum and the first position holding it,
    then each input pixel sums its windows' gradients times 0 or 1: the
    branches of if_then_else are mispredicted on random data, and dlight's
    GPU rules cannot reduce to an argmax."""
    n, channels, oh, ow = dy.shape
    h, w = x.shape[2], x.shape[3]
    positions = [(r0, r1) for r0 in range(size) for r1 in range(size)]

    def first_max(b, c, i, j):
        values = [x[b, c, i * stride + r0, j * stride + r1] for r0, r1 in positions]
        peak = functools.reduce(tirx.max, values)
        none = tirx.const(len(positions), "int32")
        return functools.reduce(tirx.min, [tirx.Select(v == peak, tirx.const(p, "int32"), none)
                                           for p, v in enumerate(values)])

    index = te.compute(dy.shape, first_max, name="pool_argmax")

    def contribution(b, c, i, j, a, e):
        wi, wj = i // stride - a, j // stride - e  # a window that may hold (i, j)
        di, dj = i - wi * stride, j - wj * stride
        hit = tirx.all(wi >= 0, wi < oh, wj >= 0, wj < ow, di < size, dj < size)
        # Loads clamped in bounds, times 0 or 1: no branch, and no condition
        # under which TVM's simplifier would drop a clamp (as it does in
        # Select, whose both sides are loaded).
        ci, cj = tirx.min(tirx.max(wi, 0), oh - 1), tirx.min(tirx.max(wj, 0), ow - 1)
        first = index[b, c, ci, cj] == di * size + dj
        return dy[b, c, ci, cj] * tirx.Cast(dy.dtype, first) * tirx.Cast(dy.dtype, hit)

    # Each input pixel lies in at most ceil(size/stride) windows per axis.
    reach = range(-(-size // stride))
    return te.compute((n, channels, h, w), lambda b, c, i, j: sum(
        contribution(b, c, i, j, a, e) for a in reach for e in reach), name="max_pool_grad")


def avg_pool_grad(dy: te.Tensor, *, input_size: int) -> te.Tensor:
    """Adaptive average pooling's gradient where the windows tile the input
    evenly (torchvision's 6x6 pool of a 6x6 map is the identity)."""
    n, channels, out, _ = dy.shape
    factor = input_size // int(out)
    inv = tirx.const(1.0 / (factor * factor), dy.dtype)
    return te.compute((n, channels, input_size, input_size),
                      lambda b, c, i, j: dy[b, c, i // factor, j // factor] * inv, name="avg_pool_grad")
