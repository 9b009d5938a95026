"""Winograd convolution F(m x m, r x r), stride 1, padding r // 2, for the
CPU: r = 3 (conv3-5) and r = 5 (conv2).

For conv3-5 (3x3 on 13x13 maps) a direct convolution cannot beat oneDNN,
which runs them at the SGEMM peak; Winograd needs fewer multiply-adds
(F(4x4, 3x3): 36 per 16 outputs instead of 144, less the tiles' padding;
F(3x3, 5x5) on conv2's 27x27 maps: 49 per 9 outputs instead of 225).
One PrimFunc of four stages (plus the weight transform, see below), all
per chunk of images where the batch divides into chunks whose tiles make
whole register tiles (`plan`; each stage's output then stays in cache for
the next: F(5,3) at batch 32 runs 4 chunks of 8), else over the whole batch.
The batch size is static (a symbolic batch is not supported):

- pad: the input padded by r // 2 pixels and to whole tiles, channels last, with
  images of zeros up to the padded tile count (a pass that makes every
  tile's channels contiguous);
- input transform V[k, e, g, p, ci] = (B^T d B)[e] of chunk k's tile p, channel ci of
  group g, e = one of the alpha x alpha positions (alpha = m + r - 1),
  vectorised over channels;
- batched GEMM M[k, e, g, p, co] = sum over ci of V[k, e, g, p, ci] U[e, g, ci, co]:
  a register tile of `rows` tiles x `block` output channels (whole vectors)
  accumulating over ci, like an SGEMM micro-kernel, parallel over (e, group,
  channel block);
- output transform Y = A^T M A, separably (along the tile's columns, then its
  rows), cropped to the map, plus the bias, through the activation, NCHW.

The weight transform U[e, g, co // block, ci, co % block] = (G w G^T)[e] is
its own function (`weight_transform`; in a product cached per weight
version) or the first stages of the same one (`transform_weights=True`).
The input gradient of such a convolution is one too, of dy with the weights
flipped and their channels swapped (`grad_input_compute`); its weight
gradient sums F(r, s) products of dy's s x s tiles and x's patches
(`winograd_grad_weight.py`).

Numerics (float32 against a float64 convolution, relative L2 error of the
output after ReLU on normal inputs, conv3-5's shapes at batch 2): F(2,3)
4-5e-7, F(3,3) 1.6-1.8e-6, F(4,3) 1.8-2.1e-6, F(5,3) 4.3-4.9e-6, F(6,3)
5.5-6.2e-6 (torch's float32 direct convolution: 2.2e-7); on conv2's
(5x5, 27x27 maps, 48 input channels per group) F(2,5) 1.2e-6, F(3,5)
2.7e-6, F(4,5) 3.1e-6, F(5,5) 3.1e-5. `ERROR_BOUND` is the bound the tests
hold each (m, r) to, a few times those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

from ..spec import Kernel
from ..target import VectorUnit

# Relative L2 error bound per F(m, r) that the tests assert (a few times what was measured, see above).
ERROR_BOUND = {(2, 3): 2e-6, (3, 3): 6e-6, (4, 3): 1e-5, (5, 3): 2e-5, (6, 3): 2.5e-5,
               (2, 5): 5e-6, (3, 5): 1e-5, (4, 5): 1.5e-5}

# What CPU builds use (registry.default_schedule, cpu_winograd.kernel_func):
# F(m, r) with the largest m up to DEFAULT_M[r] (the fastest at batch 32:
# F(5,3) for conv3-5, F(3,5) for conv2, whose 27x27 maps it tiles exactly)
# whose GEMM uses each transformed weight for at least MIN_REUSE tiles
# (tile_size): U is (m+r-1)^2/r^2 times the weights' size and at small batches
# streams from memory on every call (docs/performance.md). A kernel that transforms its weights itself
# (training's, called per layer) at batches of at least MIN_BATCH: below it
# the transform costs more than the convolution saves. `forward` takes them
# transformed once per weight version (graph.Transformed), at any static batch.
DEFAULT_M, MIN_REUSE, MIN_BATCH = {3: 5, 5: 3}, 48, 8

# The weight gradient of an r x r convolution by F(r, s), s x s tiles of dy
# (GRAD_WEIGHT_S[r]), in chunks of at most GRAD_WEIGHT_CHUNK images: conv2's
# by F(5,3). conv3-5's by F(3,3) ran slower than their direct kernels.
GRAD_WEIGHT_S, GRAD_WEIGHT_CHUNK = {5: 3}, 4


def tile_size(batch: int, size: int, r: int = 3) -> int:
    """m of the F(m, r) a CPU build computes a batch of size x size maps by (see MIN_REUSE)."""
    return max((m for m in range(2, DEFAULT_M[r] + 1) if batch * math.ceil(size / m) ** 2 >= MIN_REUSE),
               default=2)


def transform_matrices(m: int, r: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (alpha x m), B (alpha x alpha), G (alpha x r) of F(m, r), float64,
    with topi's interpolation points (those of Barabasz et al., for accuracy):
    y = A^T [(G g G^T) * (B^T d B)] A."""
    a, b, g = _cook_toom_convolution(_interpolation_points(m + r - 2), m, r)
    return np.asarray(a, np.float64), np.asarray(b, np.float64), np.asarray(g, np.float64)


def _const(matrix: np.ndarray, i, j, dtype: str = "float32"):
    """matrix[i, j] for indices that unrolling makes constant: a Select chain
    over the nonzeros, which folds to the entry (and a zero term drops out)."""
    value = tirx.const(0.0, dtype)
    rows, cols = matrix.shape
    for ii in range(rows):
        for jj in range(cols):
            if matrix[ii, jj] != 0:
                value = tirx.Select(tirx.all(i == ii, j == jj), tirx.const(float(matrix[ii, jj]), dtype), value)
    return value


@dataclass(frozen=True)
class Plan:
    """A Winograd convolution F(m, 3) of an N x C x H x W input (H = W),
    and the GEMM's register tile: `rows` tiles x `block` output channels."""

    batch: int
    in_channels: int
    out_channels: int
    size: int
    groups: int
    m: int
    rows: int
    block: int
    chunk: int = 0  # images per chunk (0: the whole batch)
    r: int = 3  # the kernel's size (r x r, padding r // 2)

    @property
    def alpha(self) -> int:
        return self.m + self.r - 1

    @property
    def padding(self) -> int:
        return self.r // 2

    @property
    def tiles(self) -> int:  # per side
        return math.ceil(self.size / self.m)

    @property
    def images(self) -> int:  # per chunk
        return min(self.chunk or self.batch, self.batch)

    @property
    def chunks(self) -> int:
        return math.ceil(self.batch / self.images)

    @property
    def p(self) -> int:  # tiles of a chunk
        return self.images * self.tiles ** 2

    @property
    def p_padded(self) -> int:  # to whole register tiles
        return math.ceil(self.p / self.rows) * self.rows

    @property
    def cin(self) -> int:
        return self.in_channels // self.groups

    @property
    def cout(self) -> int:
        return self.out_channels // self.groups

    @property
    def u_shape(self) -> tuple[int, ...]:
        return (self.alpha ** 2, self.groups, self.cout // self.block, self.cin, self.block)

    @property
    def direct_flops(self) -> int:
        """FLOPs of the direct convolution (2 per multiply-add), the yardstick of GFLOP/s."""
        return 2 * self.batch * self.out_channels * self.size ** 2 * self.cin * self.r ** 2

    @property
    def gemm_flops(self) -> int:
        return 2 * self.chunks * self.alpha ** 2 * self.p_padded * self.cin * self.cout * self.groups


# The most bytes of GEMM products (alpha^2 x tiles x output channels) one
# chunk makes, so that they stay in cache for the output transform (conv2's
# F(3,5) made 32 MB per chunk of 8 images).
PRODUCTS_MAX_BYTES = 16 << 20


def plan(batch: int, in_channels: int, out_channels: int, size: int, groups: int, m: int,
         unit: VectorUnit, chunk: int = 8, r: int = 3) -> Plan:
    """The default register tile: 4 vectors of output channels x 6 tiles on
    32 registers (24 accumulators, 4 weight vectors, a broadcast), 2 x 6 on
    16; fewer vectors where a group's channels are not a multiple (3 for 48
    channels on AVX-512). Chunks of at most `chunk` images (and
    PRODUCTS_MAX_BYTES of products) where some such count divides the batch and
    makes whole register tiles of tiles (a partial tile would be predicated
    and lose its accumulators to memory), else the whole batch at once."""
    per_group = out_channels // groups
    vectors = next((v for v in range(4 if unit.registers >= 32 else 2, 0, -1) if per_group % (v * unit.lanes) == 0),
                   None)
    block = vectors * unit.lanes if vectors else per_group
    rows = 6
    per_image = math.ceil(size / m) ** 2
    most = max(1, PRODUCTS_MAX_BYTES // (4 * (m + r - 1) ** 2 * per_image * out_channels))
    images = next((i for i in range(min(chunk, most, batch - 1), 0, -1)
                   if batch % i == 0 and i * per_image % rows == 0), 0)
    return Plan(batch, in_channels, out_channels, size, groups, m, rows, block, images, r)


# -- compute ------------------------------------------------------------------------------------------


def weight_transform(weight: te.Tensor, plan: Plan) -> te.Tensor:
    """U[e, g, co // block, ci, co % block] = (G w G^T)[e // alpha, e % alpha]
    of output channel g * cout + co, input channel ci (of its group). The
    weights are first transposed to (g, ci, kh, kw, co): a vector of output
    channels is then one load."""
    _, _, g_mat = transform_matrices(plan.m, plan.r)
    alpha, block, cout, r = plan.alpha, plan.block, plan.cout, plan.r
    wt = te.compute((plan.groups, plan.cin, r, r, cout), lambda g, ci, i, j, co: weight[g * cout + co, ci, i, j],
                    name="winograd_wt")
    r1 = te.reduce_axis((0, r), "r1")
    r2 = te.reduce_axis((0, r), "r2")
    return te.compute(
        plan.u_shape,
        lambda e, g, cb, ci, co: te.sum(_const(g_mat, e // alpha, r1) * _const(g_mat, e % alpha, r2)
                                        * wt[g, ci, r1, r2, cb * block + co], axis=[r1, r2]),
        name="winograd_u")


def weight_transform_numpy(weight: np.ndarray, plan: Plan) -> np.ndarray:
    """U as weight_transform computes it, in float64 (for tests)."""
    _, _, g_mat = transform_matrices(plan.m, plan.r)
    u = np.einsum("ar,ocrs,bs->aboc", g_mat, np.asarray(weight, np.float64), g_mat)
    u = u.reshape(plan.alpha ** 2, plan.groups, plan.cout // plan.block, plan.block, plan.cin)
    return np.ascontiguousarray(u.transpose(0, 1, 2, 4, 3))


def conv2d_winograd(x: te.Tensor, u: te.Tensor, bias: te.Tensor | None, plan: Plan, activation: str | None
                    ) -> te.Tensor:
    """The convolution's output (NCHW) from the input `x` (NCHW) and the transformed weights `u`."""
    return output_transform(batched_gemm(input_transform(x, plan), u, plan), bias, plan, activation)


def input_transform(x: te.Tensor, plan: Plan) -> te.Tensor:
    """V[k, e, g, p, ci] = (B^T d B)[e] of chunk k's tile p, channel ci (of group g)."""
    _, b_mat, _ = transform_matrices(plan.m, plan.r)
    m, alpha, t, size, cin, pad = plan.m, plan.alpha, plan.tiles, plan.size, plan.cin, plan.padding
    images, side = math.ceil(plan.p_padded / (t * t)), t * m + plan.r - 1
    zero = tirx.const(0, x.dtype)

    def padded(k, i, y, xx, c):
        n = k * plan.images + i
        inside = tirx.all(i < plan.images, n < plan.batch, y >= pad, y < size + pad, xx >= pad, xx < size + pad)
        return tirx.if_then_else(inside, x[n, c, y - pad, xx - pad], zero)

    chunks = plan.chunks
    pad = te.compute((chunks, images, side, side, plan.in_channels), padded, name="winograd_pad")
    tile = te.compute((chunks, plan.groups, plan.p_padded, alpha, alpha, cin),
                      lambda k, g, p, y, xx, ci: pad[k, p // (t * t), p // t % t * m + y, p % t * m + xx, g * cin + ci],
                      name="winograd_d")
    # Separably: along the tile's columns (winograd_h: alpha x alpha), then its rows.
    ra = te.reduce_axis((0, alpha), "ra")
    half = te.compute((chunks, plan.groups, plan.p_padded, alpha, alpha, cin),
                      lambda k, g, p, a, xx, ci: te.sum(_const(b_mat, ra, a) * tile[k, g, p, ra, xx, ci], axis=ra),
                      name="winograd_h")
    rb = te.reduce_axis((0, alpha), "rb")
    return te.compute(
        (chunks, alpha * alpha, plan.groups, plan.p_padded, cin),
        lambda k, e, g, p, ci: te.sum(_const(b_mat, rb, e % alpha) * half[k, g, p, e // alpha, rb, ci], axis=rb),
        name="winograd_v")


def batched_gemm(v: te.Tensor, u: te.Tensor, plan: Plan) -> te.Tensor:
    """M[k, e, g, p, co] = sum over ci of V[k, e, g, p, ci] U[e, g, ci, co]."""
    block = plan.block
    rc = te.reduce_axis((0, plan.cin), "rc")
    return te.compute(
        (plan.chunks, plan.alpha ** 2, plan.groups, plan.p_padded, plan.cout),
        lambda k, e, g, p, co: te.sum(v[k, e, g, p, rc] * u[e, g, co // block, rc, co % block], axis=rc),
        name="winograd_m")


def output_transform(mm: te.Tensor, bias: te.Tensor | None, plan: Plan, activation: str | None) -> te.Tensor:
    """Y = A^T M A of each tile, cropped to the map, plus the bias, through
    the activation; NCHW. Separable: first along each tile's columns
    (winograd_o: alpha x m per tile), then its rows."""
    a_mat, _, _ = transform_matrices(plan.m, plan.r)
    m, alpha, t, size, cout = plan.m, plan.alpha, plan.tiles, plan.size, plan.cout
    dtype = mm.dtype
    rb = te.reduce_axis((0, alpha), "rb")
    half = te.compute((plan.chunks, plan.groups, plan.p_padded, alpha, m, cout),
                      lambda k, g, p, a, j, co: te.sum(_const(a_mat, rb, j) * mm[k, a * alpha + rb, g, p, co], axis=rb),
                      name="winograd_o")
    ra = te.reduce_axis((0, alpha), "ra")

    def y(n, c, h, w):
        p = n % plan.images * t * t + h // m * t + w // m
        return te.sum(_const(a_mat, ra, h % m) * half[n // plan.images, c // cout, p, ra, w % m, c % cout], axis=ra)

    out = te.compute((plan.batch, plan.out_channels, size, size), y, name="winograd_y")
    if bias is None:  # an input gradient: the output as it is, stored as an epilogue would
        return te.compute(out.shape, lambda n, c, h, w: out[n, c, h, w], name="winograd_store")
    zero = tirx.const(0, dtype)
    if activation == "relu":  # max(0, y) as elementwise.relu: a NaN passes through
        return te.compute(out.shape, lambda n, c, h, w: tirx.max(zero, out[n, c, h, w] + bias[c]), name="compute")
    if activation == "tanh":
        return te.compute(out.shape, lambda n, c, h, w: te.tanh(out[n, c, h, w] + bias[c]), name="compute")
    return te.compute(out.shape, lambda n, c, h, w: out[n, c, h, w] + bias[c], name="bias_add")


def compute(plan: Plan, activation: str | None = "relu", transform_weights: bool = False,
            dtype: str = "float32") -> list[te.Tensor]:
    """The function's tensors: (x, u or weight, bias, output)."""
    x = te.placeholder((plan.batch, plan.in_channels, plan.size, plan.size), dtype, name="x")
    bias = te.placeholder((plan.out_channels,), dtype, name="bias")
    if transform_weights:
        w = te.placeholder((plan.out_channels, plan.cin, plan.r, plan.r), dtype, name="weight")
        return [x, w, bias, conv2d_winograd(x, weight_transform(w, plan), bias, plan, activation)]
    u = te.placeholder(plan.u_shape, dtype, name="u")
    return [x, u, bias, conv2d_winograd(x, u, bias, plan, activation)]


def grad_input_compute(plan: Plan, dtype: str = "float32") -> list[te.Tensor]:
    """(dy, weight, dx): the input gradient of a 3x3, stride-1, padding-1
    convolution, itself such a convolution: of dy with the weights flipped
    in space and their channels swapped within each group. `plan` is that
    convolution's (its inputs: the forward's outputs, dy)."""
    dy = te.placeholder((plan.batch, plan.in_channels, plan.size, plan.size), dtype, name="dy")
    r = plan.r
    weight = te.placeholder((plan.in_channels, plan.cout, r, r), dtype, name="weight")
    flipped = te.compute(
        (plan.out_channels, plan.cin, r, r),
        lambda i, o, h, w: weight[i // plan.cout * plan.cin + o, i % plan.cout, r - 1 - h, r - 1 - w],
        name="winograd_flip")
    return [dy, weight, conv2d_winograd(dy, weight_transform(flipped, plan), None, plan, None)]


def grad_weight_plan(batch: int, in_channels: int, out_channels: int, size: int, groups: int, r: int,
                     chunk: int = GRAD_WEIGHT_CHUNK) -> Plan:
    """x's tiles for the weight gradient by F(r, s), s = GRAD_WEIGHT_S[r]: a
    Plan of F(s, r) (tiles s apart, alpha = s + r - 1, padding r // 2; B
    depends on alpha alone), in chunks of the most images up to `chunk`
    that divide the batch."""
    images = max(i for i in range(1, min(chunk, batch) + 1) if batch % i == 0)
    return Plan(batch, in_channels, out_channels, size, groups, m=GRAD_WEIGHT_S[r], rows=1, block=0, chunk=images,
                r=r)


# Channels per group a multiple of this: whole vectors on AVX2 and AVX-512
# (the transforms' vectors may not straddle groups).
CHANNEL_MULTIPLE = 16


def _convolution(kernel: Kernel) -> tuple[int | None, int, int, int | None]:
    """(r, input channels, output channels, map size) of the convolution a
    kernel computes (an input gradient's: of dy into dx), or for a weight
    gradient of the forward one; r or the size None where not square."""
    if kernel.op == "conv2d_grad_weight":
        (out_channels, height, width), (in_channels, _, _) = kernel.inputs
        r = kernel.output[2]
    else:  # the convolution, or its input gradient: a convolution of dy
        in_channels, (out_channels, height, width) = kernel.inputs[0][0], kernel.output
        r = kernel.params[0][2] if kernel.params[0][2] == kernel.params[0][3] else None
    return r, in_channels, out_channels, height if height == width else None


def applies(kernel: Kernel, batch: int | None, weights_transformed: bool = False) -> bool:
    """Whether a CPU build computes `kernel` by Winograd: an r x r (r in
    DEFAULT_M), stride-1 convolution padded by r // 2 on square maps, or its
    input gradient, or its weight gradient (r in GRAD_WEIGHT_S), its channels
    per group whole vectors, at a static batch (of MIN_BATCH or more, unless
    its weights come transformed)."""
    sizes = {"conv2d": DEFAULT_M, "conv2d_grad_input": DEFAULT_M, "conv2d_grad_weight": GRAD_WEIGHT_S}
    if (kernel.op not in sizes or batch is None
            or batch < (1 if weights_transformed else MIN_BATCH)):
        return False
    r, in_channels, out_channels, size = _convolution(kernel)
    groups = kernel.attrs["groups"]
    return (r in sizes[kernel.op] and size is not None
            and kernel.attrs["stride"] == 1 and kernel.attrs["padding"] == r // 2
            and all(c // groups % CHANNEL_MULTIPLE == 0 for c in (in_channels, out_channels)))


def kernel_plan(kernel: Kernel, batch: int, unit: VectorUnit) -> Plan:
    """The plan of `kernel` (see applies) at a static batch."""
    r, in_channels, out_channels, size = _convolution(kernel)
    if kernel.op == "conv2d_grad_weight":
        return grad_weight_plan(batch, in_channels, out_channels, size, kernel.attrs["groups"], r)
    return plan(batch, in_channels, out_channels, size, kernel.attrs["groups"], tile_size(batch, size, r), unit, r=r)


def error_bound(kernel: Kernel, batch: int) -> float:
    """The relative error bound of `kernel` (see applies) at a static batch: its F(m, r)'s."""
    r, _, _, size = _convolution(kernel)
    if kernel.op == "conv2d_grad_weight":
        return ERROR_BOUND[r, GRAD_WEIGHT_S[r]]
    return ERROR_BOUND[tile_size(batch, size, r), r]
