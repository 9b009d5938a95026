"""Default CUDA schedules of the convolutions and their gradients.

  conv2d, conv2d_grad_input  direct convolution: a block per (image, tile of
      one group's output channels x output pixels), the input patch and the
      weights staged in shared memory a chunk of input channels at a time,
      each thread a run of up to 13 pixels x 4 channels in registers (bias
      and ReLU applied on the way out); the tile is the best of the even
      tilings by lanes used, FMAs per shared load and pixels (conv2d_tile).
      A strided convolution's input gradient (computed in phases by
      ops.grad): a thread per (phase, column), then the phases interleaved.
  conv2d_grad_weight  implicit GEMM, (output channels) x (input channels,
      kernel window), summed over images and output pixels; the output
      gradient and input rows staged in shared memory; split-K over bands of
      output rows (rfactor) so that 264+ blocks run, the bands added after.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir

from ..spec import Kernel
from .cpu_schedules import block_map, largest_divisor
from .gpu_schedules import SHARED_BYTES, cooperative_fetch, flat


@dataclass(frozen=True)
class ConvTile:
    """A block computes `channels` output channels (of one group) x `rows` x
    `cols` output pixels of one image; each thread `reg_channels` channels x
    `reg_cols` consecutive pixels of one row, accumulating in registers.
    Per step of the reduction the block stages `chunk` input channels of the
    input patch and of the weights in shared memory."""

    channels: int
    rows: int
    cols: int
    reg_channels: int
    reg_cols: int
    chunk: int

    @property
    def threads(self) -> int:
        return (self.channels // self.reg_channels) * self.rows * (self.cols // self.reg_cols)

    @property
    def accumulators(self) -> int:
        return self.reg_channels * self.reg_cols


def _conv_geometry(kernel: Kernel) -> tuple[int, int, int, int, int, int]:
    """(output channels per group, input channels per group, output height,
    output width, kernel size, stride) of the convolution a kernel computes
    (a stride-1 convolution's input gradient is a stride-1 convolution of
    the padded output gradient with the flipped weights)."""
    channels, height, width = kernel.output
    groups = kernel.attrs["groups"]
    if kernel.op == "conv2d_grad_input":
        (weight,) = kernel.params
        return channels // groups, weight[0] // groups, height, width, weight[-1], 1
    weight = kernel.params[0]
    return channels // groups, weight[1], height, width, weight[-1], kernel.attrs["stride"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _tile_sizes(n: int, limit: int, overhang: bool) -> list[int]:
    """Tile sizes to try along an axis of `n`: its divisors up to `limit`,
    and (`overhang`) the sizes that cover it in 2-8 tiles with the least overhang."""
    sizes = {d for d in _divisors(n) if d <= limit}
    if overhang:
        sizes |= {-(-n // m) for m in range(2, 9) if -(-n // m) <= limit}
    return sorted(sizes)


def conv2d_tile(kernel: Kernel) -> ConvTile:
    """The default tile of a convolution (forward or input gradient).

    Of the tiles of at most 64 columns and 1024 pixels, runs of at most 13
    pixels x 4 channels a thread (52 accumulators), at most 512 threads and
    a shared tile within SHARED_BYTES, the one with at least 128 threads and
    the best product of three efficiencies: the share of the tiles'
    pixels inside the output (tiles that do not divide it overhang), the
    share of busy lanes in the block's warps, and the FMAs per load from
    shared memory over 4 (from 4 on, shared memory keeps up with the FMA
    units: 128 B/clock against 128 FMA/clock per SM); then the most pixels
    up to 256 (reuse of the input patch), then the fewest threads. The reduction
    chunk: up to 8 input channels (16 made ptxas spill at 156 threads)."""
    per_group, in_group, height, width, k, stride = _conv_geometry(kernel)
    # Tiles may overhang the output only without padding: TVM sizes the
    # shared copy of a padded input for an overhanging tile as the whole image.
    overhang = kernel.op == "conv2d" and kernel.attrs["padding"] == 0
    best, best_key = None, None
    for cols in _tile_sizes(width, 64, overhang):
        for rows in [r for r in _tile_sizes(height, 1024, overhang) if r * cols <= 1024]:
            cover = (width / (-(-width // cols) * cols)) * (height / (-(-height // rows) * rows))
            patch = ((rows - 1) * stride + k) * ((cols - 1) * stride + k)
            for reg_cols in [c for c in _divisors(cols) if c <= 13]:
                for reg_channels in [c for c in (4, 3, 2, 1) if per_group % c == 0]:
                    loads = reg_channels * k + (reg_cols - 1) * stride + k  # per step of (channel, kernel row)
                    reuse = min(1.0, reg_channels * reg_cols * k / loads / 4)
                    for channel_threads in _divisors(per_group // reg_channels):
                        tile = ConvTile(channel_threads * reg_channels, rows, cols, reg_channels, reg_cols, 1)
                        if (tile.threads > 512 or tile.accumulators > 52
                                or 4 * (patch + tile.channels * k * k) > SHARED_BYTES):
                            continue
                        lanes = tile.threads / (32 * -(-tile.threads // 32))
                        key = (tile.threads >= 128, round(cover * lanes * reuse, 2), min(rows * cols, 256),
                               -tile.threads)
                        if best_key is None or key > best_key:
                            best, best_key = tile, key
    patch = ((best.rows - 1) * stride + k) * ((best.cols - 1) * stride + k)
    per_input_channel = 4 * (patch + best.channels * k * k)
    chunk = largest_divisor(in_group, [c for c in (8, 4, 2, 1) if c * per_input_channel <= SHARED_BYTES])
    return ConvTile(best.channels, best.rows, best.cols, best.reg_channels, best.reg_cols, chunk)


def conv2d(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, tile: ConvTile | None = None) -> None:
    # Direct convolution, also the input gradient (a stride-1 convolution of
    # the padded, dilated output gradient with the flipped weights, inlined
    # into the loads). Grid: (tiles of one group's channels x pixels, images).
    # Each step of the reduction stages `chunk` input channels of the block's
    # input patch (padding inlined) and of its weights in shared memory;
    # each thread then accumulates its channels x pixels in registers, and
    # writes them with bias and ReLU applied.
    blocks = block_map(sch)
    if not any("conv2d_nchw" in name for name in blocks):
        return False  # not a direct convolution (a strided one's input gradient, in phases)
    tile = tile or conv2d_tile(kernel)
    per_group = _conv_geometry(kernel)[0]
    groups = kernel.attrs["groups"]
    conv = blocks[next(n for n in blocks if "conv2d_nchw" in n)]
    for name in ("bias_add", "dilate", "weight_flip"):
        if name in blocks:
            sch.compute_inline(blocks[name])
    epilogue = blocks.get("compute")
    n, f, y, x, rc, ry, rx = sch.get_loops(conv)
    g, f = sch.split(f, [groups, per_group])
    f_blk, f_thr, f_reg = sch.split(f, [None, tile.channels // tile.reg_channels, tile.reg_channels])
    y_blk, y_thr = sch.split(y, [None, tile.rows])
    x_blk, x_thr, x_reg = sch.split(x, [None, tile.cols // tile.reg_cols, tile.reg_cols])
    rc_out, rc_in = sch.split(rc, [None, tile.chunk])
    sch.reorder(n, g, f_blk, y_blk, x_blk, f_thr, y_thr, x_thr, rc_out, rc_in, ry, rx, f_reg, x_reg)
    block_index = sch.fuse(g, f_blk, y_blk, x_blk)
    thread = sch.fuse(f_thr, y_thr, x_thr)
    sch.bind(block_index, "blockIdx.x")
    sch.bind(n, "blockIdx.y")
    sch.bind(thread, "threadIdx.x")
    accumulate = sch.cache_write(conv, 0, "local")
    if epilogue is not None:
        sch.compute_inline(accumulate)
        accumulate = epilogue
    sch.reverse_compute_at(accumulate, thread)
    threads = tile.threads
    for index in (0, 1):  # the (padded) input, the weights
        staged = sch.cache_read(conv, index, "shared")
        cooperative_fetch(sch, staged, rc_out, threads)
    blocks = block_map(sch)
    if "pad_temp" in blocks:
        sch.compute_inline(blocks["pad_temp"])
    sch.unroll(f_reg)
    sch.unroll(x_reg)
    sch.decompose_reduction(conv, rc_out)


@dataclass(frozen=True)
class GradWeightTile:
    """A block computes `out_channels` x `in_channels` x the whole kernel
    window of one group's weight gradient, summed over the images and over
    one of `splits` bands of output rows (the bands' partial sums are added
    by a second kernel: split-K, so that small gradients still fill the
    GPU). Each thread: `reg_out` x `reg_in` channels x one kernel row, all
    its columns. Per step the block stages `rows` output rows of the output
    gradient and the input rows they read in shared memory."""

    out_channels: int
    in_channels: int
    reg_out: int
    reg_in: int
    rows: int
    splits: int

    def threads(self, k: int) -> int:
        return (self.out_channels // self.reg_out) * (self.in_channels // self.reg_in) * k


def conv2d_grad_weight_tile(kernel: Kernel) -> GradWeightTile:
    """4 output channels x 2 input channels (1 for kernels wider than 5) x
    a kernel row per thread: 24-44 accumulators; a group's input channels over at most 64 / k threads, the
    output channels over as many as make up to 256 threads; as many output
    rows staged per step as fit SHARED_BYTES; as many row bands as make 264
    blocks (two per SM of an H100/H200), where the height allows."""
    groups, k, stride = kernel.attrs["groups"], kernel.attrs["kernel"], kernel.attrs["stride"]
    (out_total, height, width), (in_total, _, in_width) = kernel.inputs
    in_width += 2 * kernel.attrs["padding"]
    per_out, per_in = out_total // groups, in_total // groups
    reg_out = largest_divisor(per_out, (4, 2, 1))
    reg_in = largest_divisor(per_in, (2, 1)) if k <= 5 else 1
    in_threads = largest_divisor(per_in // reg_in, [t for t in range(max(1, 64 // k), 0, -1)])
    out_threads = max(t for t in _divisors(per_out // reg_out) if t * in_threads * k <= 256 or t == 1)
    tile_out, tile_in = out_threads * reg_out, in_threads * reg_in

    def shared(rows: int) -> int:
        return 4 * (tile_out * rows * width + tile_in * ((rows - 1) * stride + k) * in_width)

    blocks = groups * (per_out // tile_out) * (per_in // tile_in)
    splits = next((s for s in _divisors(height) if blocks * s >= 264), height)
    band = height // splits
    rows = largest_divisor(band, [r for r in range(band, 0, -1) if shared(r) <= SHARED_BYTES])
    return GradWeightTile(tile_out, tile_in, reg_out, reg_in, rows, splits)


def conv2d_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None,
                       tile: GradWeightTile | None = None) -> None:
    # dW[g, o, i, h, w] = sum over images n and output pixels (y, x) of
    # dy[n, g, o, y, x] * x[n, g, i, y*s + h, x*s + w]: an implicit GEMM over
    # (o) x (i, h, w) reducing over (n, y, x). The row bands' partial sums
    # (rfactor) are a grid dimension; the images a serial loop (any batch).
    tile = tile or conv2d_grad_weight_tile(kernel)
    k = kernel.attrs["kernel"]
    blocks = block_map(sch)
    grad = blocks["conv2d_grad_weight"]
    g, o, i, h, w, rn, ry, rx = sch.get_loops(grad)
    band, ry = sch.split(ry, [tile.splits, None])
    partial = sch.rfactor(band, 0)
    g, o, i, h, w, rn, band, ry, rx = sch.get_loops(partial)  # band: now a spatial loop
    o_blk, o_thr, o_reg = sch.split(o, [None, tile.out_channels // tile.reg_out, tile.reg_out])
    i_blk, i_thr, i_reg = sch.split(i, [None, tile.in_channels // tile.reg_in, tile.reg_in])
    ry_out, ry_in = sch.split(ry, [None, tile.rows])
    sch.reorder(band, g, o_blk, i_blk, o_thr, i_thr, h, rn, ry_out, ry_in, rx, o_reg, i_reg, w)
    block_index = sch.fuse(band, g, o_blk, i_blk)
    thread = sch.fuse(o_thr, i_thr, h)
    sch.bind(block_index, "blockIdx.x")
    sch.bind(thread, "threadIdx.x")
    sch.reverse_compute_at(sch.cache_write(partial, 0, "local"), thread)
    threads = tile.threads(k)
    for index in (0, 1):  # dy, the (padded) input
        cooperative_fetch(sch, sch.cache_read(partial, index, "shared"), ry_out, threads)
    if "pad_temp" in blocks:
        sch.compute_inline(blocks["pad_temp"])
    for loop in (o_reg, i_reg, w):
        sch.unroll(loop)
    sch.decompose_reduction(partial, rn)
    # The sum of the bands, a thread per weight, written straight into
    # torch's layout (the groups joined).
    join = blocks["join_groups"]
    flat(sch, join)
    sch.compute_at(grad, sch.get_loops(join)[-1])
    sch.set_scope(grad, 0, "local")


def conv2d_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # A strided convolution's input gradient (conv1's) is computed in phases
    # (ops.grad.strided_conv2d_grad_input), not as a convolution (dlight's
    # Matmul rule takes it for one and fails): a block per input row, a
    # thread per (phase, column) accumulating over output channels and taps
    # in a register, consecutive threads reading consecutive columns of dy's
    # rows (the padding and the weight taps inlined into the loads); the
    # phases are then interleaved, a thread per element.
    if kernel.attrs["stride"] == 1:
        return conv2d(sch, kernel, batch)
    blocks = block_map(sch)
    for name in ("dy_pad", "weight_taps"):
        sch.compute_inline(blocks[name])
    phases = blocks["conv2d_grad_input_phases"]
    n, c, i, q, v, ro, _, _ = sch.get_loops(phases)
    sch.bind(sch.fuse(c, i), "blockIdx.x")
    sch.bind(n, "blockIdx.y")
    thread = sch.fuse(q, v)
    sch.bind(thread, "threadIdx.x")
    sch.reverse_compute_at(sch.cache_write(phases, 0, "local"), thread)
    sch.decompose_reduction(phases, ro)
    flat(sch, blocks["conv2d_grad_input"])
