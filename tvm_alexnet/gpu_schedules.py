"""Hand-written default CUDA schedules, one per op (the GPU counterpart of
ops/cpu_schedules.py).

A kernel without a tuning record gets one of these instead of dlight's
generic rules, which give grouped convolutions, the input gradients of
convolutions, LRN, pooling and their gradients a Fallback or
GeneralReduction schedule: an output per thread, no reuse of loads. Where
a rule returns None (dense layers at batch > 1 and their gradients,
softmax), dlight's Matmul and reduction rules schedule the kernel.

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
  dense  at batch 1 a GEMV: a warp per row of W, 16-byte loads, a warp-shuffle sum.
  lrn, lrn_grad  a thread per pixel (coalesced), each a run of 8 channels
      whose window sums are computed in registers; the gradient's sums in a
      first kernel.
  max_pool  an output per thread along rows; max_pool_grad  a block per
      image plane, its windows' first maxima in shared memory.
  relu_grad, dropout, avg_pool_grad  4 elements (16 bytes) per thread.
  bias_grad  a block per channel summing across its threads (conv), or
      threads along channels x 8 rows of images summed across threadIdx.y (dense).

Every schedule takes a symbolic batch (a grid dimension or a serial loop,
never a thread count or a shared buffer) and stays within every NVIDIA GPU
since sm_50: 1024 threads and 48 KiB of static shared memory a block,
16-byte vectors. Builds compile them with TIR_PIPELINE, which gives these
kernels __launch_bounds__(threads, 1) (see there). Nothing here has been
timed on a GPU: tiles are sized from the arithmetic and checked statically
(static_check: verify_gpu_code, nvcc, ptxas; tests/test_gpu_schedules.py).
estimates() bounds each kernel's time from its FLOPs and bytes.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm import IRModule, s_tir, tirx
from tvm.target import Target

from .spec import Kernel

THREADS = 256  # threads per block of the memory-bound kernels
SHARED_BYTES = 44 * 1024  # what a tile may stage in shared memory, of the 48 KiB every GPU has


def _largest_divisor(n: int, candidates) -> int:
    return next((c for c in candidates if n % c == 0), 1)


def _blocks(sch: s_tir.Schedule) -> dict[str, object]:
    return {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}


def _loops_under(sch: s_tir.Schedule, block, loop) -> list:
    """The loops of `block` nested inside `loop`."""
    loops = sch.get_loops(block)
    where = next(i for i, l in enumerate(loops) if sch.get_sref(l).same_as(sch.get_sref(loop)))
    return loops[where + 1:]


def _cooperative_fetch(sch: s_tir.Schedule, block, loop, threads: int) -> None:
    """Stage `block` (a copy into shared memory) at `loop`, its elements
    spread over the block's `threads` (consecutive threads on consecutive
    elements of the innermost axis: coalesced)."""
    sch.compute_at(block, loop, preserve_unit_loops=True)
    _, t = sch.split(sch.fuse(*_loops_under(sch, block, loop)), [None, threads])
    sch.bind(t, "threadIdx.x")


def _flat(sch: s_tir.Schedule, block, threads: int = THREADS, lanes: int = 1) -> None:
    """One element per thread (or `lanes` per thread, vectorized) over the
    block's fused loops, consecutive threads on consecutive elements."""
    loops = sch.get_loops(block)
    fused = sch.fuse(*loops)
    if lanes > 1:
        fused, v = sch.split(fused, [None, lanes])
        sch.vectorize(v)
    b, t = sch.split(fused, [None, threads])
    sch.bind(b, "blockIdx.x")
    sch.bind(t, "threadIdx.x")


# --------------------------------------------------------------------------- convolutions


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
    chunk = _largest_divisor(in_group, [c for c in (8, 4, 2, 1) if c * per_input_channel <= SHARED_BYTES])
    return ConvTile(best.channels, best.rows, best.cols, best.reg_channels, best.reg_cols, chunk)


def conv2d(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, tile: ConvTile | None = None) -> None:
    # Direct convolution, also the input gradient (a stride-1 convolution of
    # the padded, dilated output gradient with the flipped weights, inlined
    # into the loads). Grid: (tiles of one group's channels x pixels, images).
    # Each step of the reduction stages `chunk` input channels of the block's
    # input patch (padding inlined) and of its weights in shared memory;
    # each thread then accumulates its channels x pixels in registers, and
    # writes them with bias and ReLU applied.
    blocks = _blocks(sch)
    if not any("conv2d_nchw" in name for name in blocks):
        return False  # not a direct convolution (a strided one's input gradient, in phases)
    tile = tile or conv2d_tile(kernel)
    per_group, in_group, height, width, k, stride = _conv_geometry(kernel)
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
        _cooperative_fetch(sch, staged, rc_out, threads)
    blocks = _blocks(sch)
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
    reg_out = _largest_divisor(per_out, (4, 2, 1))
    reg_in = _largest_divisor(per_in, (2, 1)) if k <= 5 else 1
    in_threads = _largest_divisor(per_in // reg_in, [t for t in range(max(1, 64 // k), 0, -1)])
    out_threads = max(t for t in _divisors(per_out // reg_out) if t * in_threads * k <= 256 or t == 1)
    tile_out, tile_in = out_threads * reg_out, in_threads * reg_in

    def shared(rows: int) -> int:
        return 4 * (tile_out * rows * width + tile_in * ((rows - 1) * stride + k) * in_width)

    blocks = groups * (per_out // tile_out) * (per_in // tile_in)
    splits = next((s for s in _divisors(height) if blocks * s >= 264), height)
    band = height // splits
    rows = _largest_divisor(band, [r for r in range(band, 0, -1) if shared(r) <= SHARED_BYTES])
    return GradWeightTile(tile_out, tile_in, reg_out, reg_in, rows, splits)


def conv2d_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None,
                       tile: GradWeightTile | None = None) -> None:
    # dW[g, o, i, h, w] = sum over images n and output pixels (y, x) of
    # dy[n, g, o, y, x] * x[n, g, i, y*s + h, x*s + w]: an implicit GEMM over
    # (o) x (i, h, w) reducing over (n, y, x). The row bands' partial sums
    # (rfactor) are a grid dimension; the images a serial loop (any batch).
    tile = tile or conv2d_grad_weight_tile(kernel)
    k = kernel.attrs["kernel"]
    blocks = _blocks(sch)
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
        _cooperative_fetch(sch, sch.cache_read(partial, index, "shared"), ry_out, threads)
    if "pad_temp" in blocks:
        sch.compute_inline(blocks["pad_temp"])
    for loop in (o_reg, i_reg, w):
        sch.unroll(loop)
    sch.decompose_reduction(partial, rn)
    # The sum of the bands, a thread per weight, written straight into
    # torch's layout (the groups joined).
    join = blocks["join_groups"]
    _flat(sch, join)
    sch.compute_at(grad, sch.get_loops(join)[-1])
    sch.set_scope(grad, 0, "local")


# --------------------------------------------------------------------------- dense layers


def dense(sch: s_tir.Schedule, kernel: Kernel, batch: int | None):
    # One image: a GEMV, bound by reading W once. Each warp reduces rows of
    # W, each lane 4 consecutive floats at a time (one 16-byte load), the
    # lanes' sums added across the warp; 8 rows per block. (dlight's GEMV
    # loads 32 bytes per thread, over the 16-byte vectors verify_gpu_code
    # allows.) Other batches: dlight's Matmul.
    if batch != 1:
        return False
    (features,) = kernel.inputs[0]
    warp = 32
    lanes = _largest_divisor(features, [v for v in (4, 2, 1) if features % (warp * v) == 0])
    if features % (warp * lanes):
        return False
    matmul = sch.get_sblock("T_matmul_NT")
    sch.compute_inline(sch.get_sblock("compute"))  # the broadcast bias
    if kernel.attrs["activation"]:  # ReLU or tanh
        sch.compute_inline(sch.get_sblock("T_add"))
        epilogue = sch.get_sblock("compute_1")
    else:
        epilogue = sch.get_sblock("T_add")
    _, _, kk = sch.get_loops(matmul)
    _, k_lane = sch.split(kk, [None, warp * lanes])
    vectors = sch.rfactor(k_lane, 0)  # sums per (lane, vector element) over the row
    _, _, k_lane = sch.get_loops(matmul)
    lane, _ = sch.split(k_lane, [warp, lanes])
    lanes_sums = sch.rfactor(lane, 0)  # each lane adds up its vector
    # What is left of the matmul adds the lanes' sums across the warp.
    i, j, lane = sch.get_loops(matmul)
    j_blk, j_thr = sch.split(j, [None, 8])
    sch.reorder(j_blk, j_thr, i, lane)
    sch.bind(j_blk, "blockIdx.x")
    sch.bind(j_thr, "threadIdx.y")
    sch.bind(lane, "threadIdx.x")
    sch.reverse_compute_at(epilogue, j_thr)
    sch.set_scope(matmul, 0, "local")
    sch.compute_at(lanes_sums, j_thr)
    sch.set_scope(lanes_sums, 0, "local")
    lane = _loops_under(sch, lanes_sums, j_thr)[0]
    sch.bind(lane, "threadIdx.x")
    # Each lane's vector of sums in registers, 4 consecutive floats of x and W per load.
    sch.compute_at(vectors, lane)
    sch.set_scope(vectors, 0, "local")
    vector, k_out = sch.get_loops(vectors)[-2:]
    sch.reorder(k_out, vector)
    sch.vectorize(vector)
    sch.decompose_reduction(vectors, k_out)
    return None


# --------------------------------------------------------------------------- LRN


def _channel_run(channels: int) -> int:
    return _largest_divisor(channels, (8, 6, 4, 2, 1))


def lrn(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # Threads along an image's pixels (coalesced), each a run of 8
    # channels: the window sums are computed per run in registers, so each
    # input value is loaded about twice (the run and its 4-channel halo),
    # not 6 times.
    channels, height, width = kernel.output
    sch.compute_inline(sch.get_sblock("lrn_square"))
    window = sch.get_sblock("lrn_sum")
    pixel, _ = _pixels_by_runs(sch, sch.get_sblock("lrn"), _channel_run(channels))
    sch.compute_at(window, pixel)
    sch.set_scope(window, 0, "local")
    for loop in _loops_under(sch, window, pixel):
        sch.unroll(loop)


def _pixels_by_runs(sch: s_tir.Schedule, block, run: int):
    """Bind an (image, channel, row, column) nest: a thread per pixel of an
    image (consecutive threads on consecutive pixels: coalesced), looping
    over a run of `run` channels; returns the thread loop and the run loop."""
    b, c, y, x = sch.get_loops(block)[:4]
    c_out, c_in = sch.split(c, [None, run])
    p_blk, p_thr = sch.split(sch.fuse(y, x), [None, THREADS // 2])
    sch.reorder(b, c_out, p_blk, p_thr, c_in)
    sch.bind(sch.fuse(c_out, p_blk), "blockIdx.x")
    sch.bind(b, "blockIdx.y")
    sch.bind(p_thr, "threadIdx.x")
    sch.unroll(c_in)
    return p_thr, c_in


def lrn_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # Two kernels laid out as the forward (a thread per pixel, a run of 8
    # channels): the window sums, then in registers the terms t of the
    # gradient's second sum for the run +- 2 channels, and the run's
    # gradients. The sums go through memory because the second kernel
    # needs them for a run of channels that is shorter at the edges of the
    # channels (a loop of variable length, which registers cannot hold):
    # 6 passes over a tensor of the layer's size, against 11 for dlight's
    # three kernels and 3 at the least.
    channels, height, width = kernel.output
    run = _channel_run(channels)
    blocks = _blocks(sch)
    for name in ("lrn_square", "lrn_scale", "lrn_power"):
        sch.compute_inline(blocks[name])
    window = blocks["lrn_sum"]
    _, r = _pixels_by_runs(sch, window, run)[1], sch.get_loops(window)[-1]
    sch.unroll(r)
    pixel, _ = _pixels_by_runs(sch, blocks["lrn_grad"], run)
    for name in ("lrn_back", "lrn_t"):  # each follows its readers
        sch.compute_at(blocks[name], pixel)
        sch.set_scope(blocks[name], 0, "local")
        for loop in _loops_under(sch, blocks[name], pixel):
            sch.unroll(loop)


# --------------------------------------------------------------------------- pooling


def max_pool(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # One output per thread, consecutive threads along a row: coalesced
    # stores, and the loads of overlapping windows hit the same cache lines.
    pool = sch.get_sblock("pool_max")
    *spatial, r0, r1 = sch.get_loops(pool)
    b, t = sch.split(sch.fuse(*spatial), [None, THREADS])
    sch.bind(b, "blockIdx.x")
    sch.bind(t, "threadIdx.x")
    sch.unroll(r0)
    sch.unroll(r1)


def avg_pool(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    avg = sch.get_sblock("adaptive_pool_avg")
    _flat(sch, avg)
    window = sch.get_sblock("adaptive_pool_sum")
    sch.compute_at(window, sch.get_loops(avg)[-1])
    sch.set_scope(window, 0, "local")


def max_pool_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # A block per image plane (or a few, for small planes): first each
    # window's first maximum into shared memory, then each input pixel sums
    # the gradients of the windows whose maximum it is. Threads along rows.
    channels, height, width = kernel.output
    planes = _largest_divisor(channels, [p for p in (8, 4, 2, 1) if p * height * width <= 4 * THREADS])
    blocks = _blocks(sch)
    grad, argmax = blocks["max_pool_grad"], blocks["pool_argmax"]
    b, c, y, x = sch.get_loops(grad)
    c_out, c_in = sch.split(c, [None, planes])
    block_index = sch.fuse(b, c_out)
    sch.bind(block_index, "blockIdx.x")
    _, t = sch.split(sch.fuse(c_in, y, x), [None, THREADS])
    sch.bind(t, "threadIdx.x")
    _cooperative_fetch(sch, argmax, block_index, THREADS)
    sch.set_scope(argmax, 0, "shared")


# --------------------------------------------------------------------------- elementwise and sums


def elementwise(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # 4 consecutive elements per thread (16-byte loads and stores) where an
    # image's elements divide by 4.
    lanes = _largest_divisor(math.prod(kernel.output), (4, 2, 1))
    for block in _blocks(sch).values():
        _flat(sch, block, lanes=lanes)


def bias_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # A convolution's: a block per channel, its threads striding over the
    # images' planes (coalesced), summed across the block. A dense layer's:
    # threads along the channels (coalesced), 8 rows of images at a time,
    # summed across threadIdx.y.
    grad = sch.get_sblock("bias_grad")
    c, *reduction = sch.get_loops(grad)
    if len(reduction) > 1:
        sch.bind(c, "blockIdx.x")
        _, t = sch.split(sch.fuse(*reduction), [None, THREADS])
        sch.bind(t, "threadIdx.x")
        return
    (rn,) = reduction
    c_blk, c_thr = sch.split(c, [None, 32])
    _, rows = sch.split(rn, [None, 8])
    sch.reorder(c_blk, c_thr, rows)
    sch.bind(c_blk, "blockIdx.x")
    sch.bind(c_thr, "threadIdx.x")
    sch.bind(rows, "threadIdx.y")


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
    blocks = _blocks(sch)
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
    _flat(sch, blocks["conv2d_grad_input"])


SCHEDULES = {
    "conv2d": conv2d, "conv2d_grad_input": conv2d_grad_input, "conv2d_grad_weight": conv2d_grad_weight,
    "dense": dense, "lrn": lrn, "lrn_grad": lrn_grad,
    "max_pool": max_pool, "max_pool_grad": max_pool_grad, "avg_pool": avg_pool,
    "relu_grad": elementwise, "tanh_grad": elementwise, "dropout": elementwise, "avg_pool_grad": elementwise,
    "bias_grad": bias_grad,
    # dense_grad_input, dense_grad_weight, softmax: dlight (Matmul, Reduction, GeneralReduction)
}


def default_schedule(func: tirx.PrimFunc, kernel: Kernel, batch: int | None,
                     target=None) -> tirx.PrimFunc | None:
    """The kernel's PrimFunc with its op's default CUDA schedule applied,
    marked scheduled (dlight then leaves it alone); None where this module
    leaves the kernel to dlight (no rule for the op, or not for this batch).
    `target` is unused: every rule fits every GPU since sm_50."""
    rule = SCHEDULES.get(kernel.op)
    if rule is None:
        return None
    sch = s_tir.Schedule(func)
    if rule(sch, kernel, batch) is False:
        return None
    return (sch.mod["main"].with_attr("global_symbol", kernel.name).with_attr("tirx.is_scheduled", True)
            .with_attr(OWN_REGISTERS, True))


# --------------------------------------------------------------------------- the TIR pipeline of CUDA builds

# These schedules size their register tiles themselves. Given only
# __launch_bounds__(threads), as TVM writes it, ptxas may still squeeze a
# kernel's registers to fit one more block per SM and spill a few to local
# memory to get there (seen at 4-20 bytes for some tiles and not for
# others, by batch, arch and tile: no tile choice avoids it everywhere).
# __launch_bounds__(threads, 1), as CUTLASS writes it, turns that off:
# ptxas then spills only past its real limits (255 registers, or 64K per
# block). The pipeline below is TVM's own, writing that bound for every
# kernel this module scheduled (OWN_REGISTERS) and leaving dlight's as they are.
OWN_REGISTERS = "tvm_alexnet.own_registers"
TIR_PIPELINE = "tvm_alexnet_cuda"


def _tir_pipeline():
    from tvm.s_tir.pipeline import default_s_tir_pipeline

    lower, finalize_host, finalize_device = default_s_tir_pipeline()
    ours: set[str] = set()

    @tvm.transform.module_pass(opt_level=0, name="RecordOwnRegisterKernels")
    def record(mod, _ctx):
        ours.clear()
        ours.update(str(f.attrs["global_symbol"]) for _, f in mod.functions_items()
                    if isinstance(f, tirx.PrimFunc) and f.attrs is not None and f.attrs.get(OWN_REGISTERS))
        return mod

    @tvm.transform.module_pass(opt_level=0, name="OneBlockLaunchBounds")
    def one_block(mod, _ctx):
        for gv, f in list(mod.functions_items()):
            if isinstance(f, tirx.PrimFunc) and re.sub(r"_kernel(_\d+)?$", "", gv.name_hint) in ours:
                mod[gv] = f.with_attr("tirx.launch_bounds_min_blocks_per_sm", 1)
        return mod

    return (tvm.transform.Sequential([record, lower]), finalize_host,
            lambda: tvm.transform.Sequential([one_block, finalize_device()]))


tvm.tirx.compilation_pipeline.register_tir_pipeline(TIR_PIPELINE, _tir_pipeline)


def dlight(mod: IRModule, target: Target) -> IRModule:
    """dlight's GPU rules over every kernel of `mod` not yet scheduled."""
    from tvm.s_tir import dlight as dl

    class GeneralReduction(dl.gpu.GeneralReduction):
        # It takes kernels it then fails to bind; those go on to the next rule.
        def apply(self, func, target, tunable):
            try:
                return super().apply(func, target, tunable)
            except s_tir.schedule.ScheduleError:
                return None

    with target:
        return dl.ApplyDefaultSchedule(
            dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), GeneralReduction(), dl.gpu.Fallback()
        )(mod)


def schedule_module(mod: IRModule, kernels: list[Kernel], batch: int | None, target: Target,
                    skip=()) -> IRModule:
    """Every kernel of `mod` (named as in `kernels`) but those in `skip`
    (tuned ones) with its default schedule, then dlight for the rest."""
    for kernel in kernels:
        if kernel.name in skip:
            continue
        func = default_schedule(mod[kernel.name], kernel, batch, target)
        if func is not None:
            mod[kernel.name] = func
    return dlight(mod, target)


# --------------------------------------------------------------------------- static checks (nvcc, no GPU)

# verify_gpu_code's limits: every NVIDIA GPU since sm_50 (static shared memory
# 48 KiB, 1024 threads), and MetaSchedule's own (8 virtual threads, 16-byte vectors).
GPU_LIMITS = {"max_shared_memory_per_block": 49152, "max_threads_per_block": 1024, "max_thread_x": 1024,
              "max_thread_y": 1024, "max_thread_z": 64, "max_vthread": 8, "max_vector_bytes": 16}


def scheduled_kernel(kernel: Kernel, batch: int | None, target: Target) -> tuple[tirx.PrimFunc, str]:
    """The kernel as a GPU build schedules it without a tuning log, and who
    scheduled it ("default" or "dlight")."""
    from .graph import kernel_func

    func = kernel_func(kernel, batch)
    ours = default_schedule(func, kernel, batch, target)
    if ours is not None:
        return ours, "default"
    return dlight(IRModule({kernel.name: func}), target)[kernel.name], "dlight"


def _with_batch(func: tirx.PrimFunc, value: int) -> tirx.PrimFunc:
    # verify_gpu_code wants constant grid sizes: the symbolic batch `n`
    # (only ever a grid dimension or a serial loop) is bound to `value`
    # through the function's TVMScript.
    text = func.script()
    if 'TypeVar("n")' not in text:
        return func
    text = re.sub(r'^n = TypeVar\("n"\)\n', "", text, flags=re.M)
    return tvm.script.from_source(re.sub(r"\bn\b", f"T.int64({value})", text))


def verify(func: tirx.PrimFunc, target: Target, limits: dict | None = None) -> bool:
    """verify_gpu_code on the function lowered as far as a build lowers it
    before splitting host and device code (MetaSchedule's VerifyGPUCode
    does the same)."""
    from tvm.s_tir.analysis import verify_gpu_code

    mod = IRModule({"main": _with_batch(func, 128).with_attr("target", target)})
    passes = [
        s_tir.transform.CanonicalizeLoop(), s_tir.transform.LowerCrossThreadReduction(),
        s_tir.transform.LowerInitBlock(), s_tir.transform.PlanAndUpdateBufferAllocationLocation(),
        s_tir.transform.ConvertBlocksToOpaque(), s_tir.transform.LiftThreadBinding(),
        s_tir.transform.ManifestSharedMemoryLocalStage(), s_tir.transform.CompactBufferAllocation(),
        s_tir.transform.LowerAutoCopy(), s_tir.transform.UnifyThreadBinding(), s_tir.transform.LowerMatchBuffer(),
        s_tir.transform.StmtSimplify(), s_tir.transform.InjectPermutedLayout(),
        s_tir.transform.AnnotateIrregularLoop(), s_tir.transform.InjectSoftwarePipeline(),
        s_tir.transform.LowerOpaqueBlock(), tirx.transform.FlattenBuffer(), tirx.transform.NarrowDataType(32),
        s_tir.transform.LoopPartition(), tirx.transform.VectorizeLoop(True), s_tir.transform.InjectVirtualThread(),
        s_tir.transform.InjectDoubleBuffer(), tirx.transform.StorageRewrite(), tirx.transform.StmtSimplify(),
    ]
    with target:
        lowered = tvm.transform.Sequential(passes)(mod)["main"]
    return bool(verify_gpu_code(lowered, limits or GPU_LIMITS))


def ptxas(code: str, arch: str) -> dict[str, dict]:
    """Compile CUDA C to a cubin with nvcc -Xptxas -v; per __global__
    function: registers, spill_stores, spill_loads, stack (bytes), smem
    (bytes), threads (its __launch_bounds__)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernels.cu"
        source.write_text(code)
        result = subprocess.run(["nvcc", "-cubin", f"-arch={arch}", "-O3", "-Xptxas", "-v",
                                 "-o", str(Path(tmp) / "kernels.cubin"), str(source)],
                                capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"nvcc failed:\n{result.stderr[-4000:]}")
    report, current = {}, None
    for line in result.stderr.splitlines():
        if m := re.search(r"(?:Compiling entry function '|Function properties for )(\w+)", line):
            current = report.setdefault(m.group(1), {})
        elif current is not None and (m := re.search(
                r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)):
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif current is not None and (m := re.search(r"Used (\d+) registers", line)):
            smem = re.search(r"(\d+) bytes smem", line)
            current.update(registers=int(m.group(1)), smem=int(smem.group(1)) if smem else 0)
    for m in re.finditer(r"__launch_bounds__\((\d+)(?:, \d+)?\) (\w+)\(", code):
        report.setdefault(m.group(2), {})["threads"] = int(m.group(1))
    return report


def static_check(kernel: Kernel, batch: int | None, target: Target) -> dict:
    """Schedule, verify, build and compile one kernel for a CUDA target:
    {"kernel", "scheduler", "verified", "functions": ptxas's report per
    __global__ function (a kernel may launch several)}."""
    from .cuda import source

    func, scheduler = scheduled_kernel(kernel, batch, target)
    verified = verify(func, target)
    code = source(tvm.compile(IRModule({kernel.name: func}), target=target, tir_pipeline=TIR_PIPELINE).mod)
    return {"kernel": kernel.name, "op": kernel.op, "scheduler": scheduler, "verified": verified,
            "functions": ptxas(code, target.attrs["arch"])}


# --------------------------------------------------------------------------- roofline estimates

# Datasheet peaks (dense fp32 without tensor cores, memory bandwidth).
GPUS = {
    "H200": {"flops": 67e12, "bandwidth": 4.8e12, "name": "H200 SXM (67 TFLOP/s fp32, 4.8 TB/s HBM3e)"},
    "H100": {"flops": 67e12, "bandwidth": 3.35e12, "name": "H100 SXM (67 TFLOP/s fp32, 3.35 TB/s HBM3)"},
    "TitanX": {"flops": 6.6e12, "bandwidth": 336.5e9, "name": "GTX Titan X, Maxwell (6.6 TFLOP/s fp32, 336.5 GB/s)"},
}


def estimates(net, batch: int, gpu: str = "H200") -> list[dict]:
    """A roofline lower bound on each compiled kernel's time at `batch`:
    the larger of its FLOPs (spec's count x batch) at the GPU's peak fp32
    rate and its compulsory bytes (every input, parameter and output
    touched once, float32) at its peak bandwidth. Not a measurement: real
    kernels reach a fraction of either peak."""
    peak = GPUS[gpu]
    rows = []
    backward = {k.name for k in net.backward_kernels()}
    for kernel in net.compiled_kernels():
        flops = kernel.flops * batch
        elements = (sum(math.prod(s) for s in kernel.inputs) * batch + sum(math.prod(s) for s in kernel.params)
                    + math.prod(kernel.output) * (batch if kernel.batch_output else 1))
        nbytes = 4 * elements
        compute, memory = flops / peak["flops"], nbytes / peak["bandwidth"]
        rows.append({"kernel": kernel.name, "op": kernel.op,
                     "pass": "backward" if kernel.name in backward else "forward",
                     "flops": flops, "bytes": nbytes, "bound": "compute" if compute >= memory else "memory",
                     "seconds": max(compute, memory)})
    return rows
