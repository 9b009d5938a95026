"""Hand-written default CUDA schedules, one per op (the GPU counterpart of
cpu_schedules.py; the convolutions' are in gpu_conv.py).

A kernel without a tuning record gets one of these instead of dlight's
generic rules, which give grouped convolutions, the input gradients of
convolutions, LRN, pooling and their gradients a Fallback or
GeneralReduction schedule: an output per thread, no reuse of loads. Where
a rule returns False (dense layers at batch > 1), or an op has none (their
gradients, softmax), dlight's Matmul and reduction rules schedule the kernel.

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
16-byte vectors. Builds compile them with gpu_build.TIR_PIPELINE, which
gives these kernels __launch_bounds__(threads, 1). Nothing here has been
timed on a GPU: tiles are sized from the arithmetic and checked statically
(gpu_checks.py; tests/test_gpu_schedules.py).
"""

from __future__ import annotations

import math

from tvm import s_tir

from ..spec import Kernel
from .cpu_schedules import block_map, largest_divisor

# Marks a kernel these rules scheduled: gpu_build's pipeline gives it
# __launch_bounds__(threads, 1).
OWN_REGISTERS = "tvm_alexnet.own_registers"

THREADS = 256  # threads per block of the memory-bound kernels
SHARED_BYTES = 44 * 1024  # what a tile may stage in shared memory, of the 48 KiB every GPU has


def loops_under(sch: s_tir.Schedule, block, loop) -> list:
    """The loops of `block` nested inside `loop`."""
    loops = sch.get_loops(block)
    where = next(i for i, l in enumerate(loops) if sch.get_sref(l).same_as(sch.get_sref(loop)))
    return loops[where + 1:]


def cooperative_fetch(sch: s_tir.Schedule, block, loop, threads: int) -> None:
    """Stage `block` (a copy into shared memory) at `loop`, its elements
    spread over the block's `threads` (consecutive threads on consecutive
    elements of the innermost axis: coalesced)."""
    sch.compute_at(block, loop, preserve_unit_loops=True)
    _, t = sch.split(sch.fuse(*loops_under(sch, block, loop)), [None, threads])
    sch.bind(t, "threadIdx.x")


def flat(sch: s_tir.Schedule, block, threads: int = THREADS, lanes: int = 1) -> None:
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
    lanes = largest_divisor(features, [v for v in (4, 2, 1) if features % (warp * v) == 0])
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
    lane = loops_under(sch, lanes_sums, j_thr)[0]
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
    return largest_divisor(channels, (8, 6, 4, 2, 1))


def lrn(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # Threads along an image's pixels (coalesced), each a run of 8
    # channels: the window sums are computed per run in registers, so each
    # input value is loaded about twice (the run and its 4-channel halo),
    # not 6 times.
    channels = kernel.output[0]
    sch.compute_inline(sch.get_sblock("lrn_square"))
    window = sch.get_sblock("lrn_sum")
    pixel, _ = _pixels_by_runs(sch, sch.get_sblock("lrn"), _channel_run(channels))
    sch.compute_at(window, pixel)
    sch.set_scope(window, 0, "local")
    for loop in loops_under(sch, window, pixel):
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
    run = _channel_run(kernel.output[0])
    blocks = block_map(sch)
    for name in ("lrn_square", "lrn_scale", "lrn_power"):
        sch.compute_inline(blocks[name])
    window = blocks["lrn_sum"]
    _, r = _pixels_by_runs(sch, window, run)[1], sch.get_loops(window)[-1]
    sch.unroll(r)
    pixel, _ = _pixels_by_runs(sch, blocks["lrn_grad"], run)
    for name in ("lrn_back", "lrn_t"):  # each follows its readers
        sch.compute_at(blocks[name], pixel)
        sch.set_scope(blocks[name], 0, "local")
        for loop in loops_under(sch, blocks[name], pixel):
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
    flat(sch, avg)
    window = sch.get_sblock("adaptive_pool_sum")
    sch.compute_at(window, sch.get_loops(avg)[-1])
    sch.set_scope(window, 0, "local")


def max_pool_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # A block per image plane (or a few, for small planes): first each
    # window's first maximum into shared memory, then each input pixel sums
    # the gradients of the windows whose maximum it is. Threads along rows.
    channels, height, width = kernel.output
    planes = largest_divisor(channels, [p for p in (8, 4, 2, 1) if p * height * width <= 4 * THREADS])
    blocks = block_map(sch)
    grad, argmax = blocks["max_pool_grad"], blocks["pool_argmax"]
    b, c, y, x = sch.get_loops(grad)
    c_out, c_in = sch.split(c, [None, planes])
    block_index = sch.fuse(b, c_out)
    sch.bind(block_index, "blockIdx.x")
    _, t = sch.split(sch.fuse(c_in, y, x), [None, THREADS])
    sch.bind(t, "threadIdx.x")
    cooperative_fetch(sch, argmax, block_index, THREADS)
    sch.set_scope(argmax, 0, "shared")


# --------------------------------------------------------------------------- elementwise and sums


def elementwise(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # 4 consecutive elements per thread (16-byte loads and stores) where an
    # image's elements divide by 4.
    lanes = largest_divisor(math.prod(kernel.output), (4, 2, 1))
    for block in block_map(sch).values():
        flat(sch, block, lanes=lanes)


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
