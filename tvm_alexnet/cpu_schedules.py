"""Hand-written default CPU schedules, one per op.

A kernel without a tuning record gets one of these instead of TVM's
unscheduled lowering (~2 GFLOP/s). They are written for AVX2 (8 float
lanes, 16 vector registers) and parallel over the outermost loops, and they
work for a symbolic batch, so one build serves every batch size.
`tvm-alexnet schedules` (without a log) writes what they produce to schedules/default.
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx

from .spec import Kernel

LANES = 8  # float32 lanes of an AVX2 register


def _largest_divisor(n: int, candidates) -> int:
    return next((c for c in candidates if n % c == 0), 1)


def _blocks(sch: s_tir.Schedule) -> dict[str, object]:
    return {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}


def _pixel_major(kernel: Kernel) -> bool:
    # Channels innermost in the accumulators too, or LLVM may gather each
    # vector of them (measured: conv2-5 at batch 32 gain 15-60%; the
    # stride-4 conv1 loses 20%, so it keeps the layout).
    return kernel.op == "conv2d_grad_input" or kernel.attrs["stride"] == 1


def conv2d_tile(kernel: Kernel) -> tuple[int, int]:
    """The default register tile of a convolution: (output channels, output pixels).

    Measured in the any-batch build at batch 1 and 32 (one vector is 8
    channels): two vectors x 5 pixels ran 1.2-1.45x one vector x 13 on the
    13-wide conv3-5 and 1.2x one vector x 11 on conv1, but one vector x 9
    ran 1.4x two x 5 on the 27-wide conv2. A tile of 13-14 pixels leaves
    LLVM too few registers (0.65-0.8x); without the pixel-major output
    layout (conv1) a row that does not divide the width runs 10x slower."""
    channels, _, width = kernel.output
    per_group = channels // kernel.attrs["groups"]
    if per_group % (2 * LANES):
        return _largest_divisor(per_group, (LANES, 4, 2)), _largest_divisor(width, range(14, 3, -1))
    if not _pixel_major(kernel):
        return 2 * LANES, _largest_divisor(width, range(6, 2, -1))
    row = _largest_divisor(width, range(12, 6, -1))
    return (LANES, row) if row > 1 else (2 * LANES, 5)


def conv2d(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, tile: tuple | None = None,
           rows_outer: bool = False) -> None:
    # Direct convolution with a register tile of `row` output pixels x
    # `block` output channels (one or two vectors): per reduction step the
    # weight vectors are loaded and `row` input pixels are broadcast into
    # their FMAs. The weights are repacked per call so that those channels
    # are contiguous. Also the input gradient, a convolution of the
    # (dilated) output gradient with the flipped weights. `tile` and
    # `rows_outer` (output rows outside channel blocks in the parallel loop)
    # are what tuning searches; `row` may be a sampled variable.
    block, row = tile or conv2d_tile(kernel)
    blocks = _blocks(sch)
    conv = blocks[next(n for n in blocks if "conv2d" in n)]
    if "bias_add" in blocks:
        sch.compute_inline(blocks["bias_add"])
    if "dilate" in blocks:
        sch.compute_inline(blocks["dilate"])
    epilogue = blocks["compute"] if kernel.attrs.get("relu") else None
    # The flipped weights of the input gradient are computed in the packed layout directly.
    packed = blocks.get("weight_flip") or sch.cache_read(conv, 1, "global")
    sch.transform_layout(conv, ("read", 1), lambda o, i, h, w: (o // block, i, h, w, o % block))
    n, f, y, x, rc, ry, rx = sch.get_loops(conv)
    f_out, f_in = sch.split(f, [None, block])
    x_out, x_in = sch.split(x, [None, row])
    outer = (n, y, f_out) if rows_outer else (n, f_out, y)
    sch.reorder(*outer, x_out, rc, ry, rx, x_in, f_in)
    accumulate = sch.cache_write(conv, 0, "local")  # in registers
    if epilogue is not None:
        sch.compute_inline(accumulate)
        sch.reverse_compute_at(epilogue, x_out)
    else:
        sch.reverse_compute_at(accumulate, x_out)
    if _pixel_major(kernel):
        sch.transform_layout(conv, ("write", 0), lambda n, f, y, x: (n, y, x, f))
    sch.parallel(sch.fuse(*outer))
    if block > LANES:
        vectors, lanes = sch.split(f_in, [None, LANES])
        sch.unroll(vectors)
        sch.vectorize(lanes)
    else:
        sch.vectorize(f_in)
    sch.unroll(x_in)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(conv, rc))[-1])
    for stage in (blocks["pad_temp"], packed):
        sch.parallel(sch.fuse(*sch.get_loops(stage)[:2]))


def conv2d_space(sch: s_tir.Schedule, kernel: Kernel, batch: int) -> list[s_tir.Schedule]:
    """The convolution's default schedule with its tile and loop order left
    open, as MetaSchedule's design spaces: one per channel block and order,
    the row length a sampled choice (register budget: row x block/8
    accumulators + block/8 weights + 1 broadcast <= 16 registers)."""
    per_group = kernel.output[0] // kernel.attrs["groups"]
    blocks = [b for b in (LANES, 2 * LANES) if per_group % b == 0] or [conv2d_tile(kernel)[0]]
    spaces = []
    for block in blocks:
        vectors = max(1, block // LANES)
        rows = list(range(3, (16 - 1 - vectors) // vectors + 1))
        for rows_outer in (False, True):
            space = sch.copy()
            row = space.sample_categorical(rows, [1 / len(rows)] * len(rows))
            conv2d(space, kernel, batch, (block, row), rows_outer)
            spaces.append(space)
    return spaces


def conv2d_grad_weight_block(kernel: Kernel) -> int:
    """Output channels per task of the weight gradient (see conv2d_grad_weight)."""
    out_channels, _, _, k = kernel.output
    return _largest_divisor(out_channels // kernel.attrs["groups"],
                            [LANES * m for m in range(max(1, min(2, 12 // k)), 0, -1)] + [4, 2])


def conv2d_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, block: int | None = None) -> None:
    # dW[o, i, h, w] = sum over images and output pixels of dy * x, per group.
    # The output gradient is repacked as (channel block, n, oh, ow, 8 or 16
    # channels) so that a vector of output channels is one load; the register
    # tile is (kernel width) x (that block), the reduction runs over images
    # and output pixels. Every task streams its block of the output gradient:
    # at 32 channels that is 0.7 MB for conv3-5 at batch 32, more than a
    # core's L2, and 16 ran 1.1-1.55x faster (conv3-5 at batch 32 and 128;
    # 8 ran slower than 32; scripts/bench_grad_weight.py). `block` overrides it.
    block = block or conv2d_grad_weight_block(kernel)
    blocks = _blocks(sch)
    grad = blocks["conv2d_grad_weight"]
    packed = sch.cache_read(grad, 0, "global")
    sch.transform_layout(grad, ("read", 0), lambda n, c, h, w: (c // block, n, h, w, c % block))
    # Where dW is small next to what one image reads (conv1's is a twelfth),
    # each image sums into a dW of its own, added up after: the tasks running
    # at once then share one image's data in cache instead of each streaming
    # the whole batch from memory (conv1: 1.3x; conv2-5, whose dW are as big
    # as an image's data, ran 1.1-1.5x slower so).
    by_image = 4 * math.prod(kernel.output) < sum(math.prod(shape) for shape in kernel.inputs)
    if by_image:
        partial = sch.rfactor(sch.get_loops(grad)[5], 0)  # loop 5: the images
        sch.parallel(sch.fuse(*sch.get_loops(grad)[:3]))  # what remains of grad: the sum of the partials
        grad = partial
    g, o, i, h, w, rn, ry, rx = sch.get_loops(grad)
    o_out, o_in = sch.split(o, [None, block])
    if by_image:
        sch.reorder(rn, g, o_out, i, h, ry, rx, w, o_in)
        tasks, reduction = (rn, g, o_out, i, h), ry
    else:
        sch.reorder(g, o_out, i, h, rn, ry, rx, w, o_in)
        tasks, reduction = (g, o_out, i, h), rn
    sch.reverse_compute_at(sch.cache_write(grad, 0, "local"), h)
    # Channels innermost in the accumulators too, or each vector of them is a gather.
    if by_image:
        sch.transform_layout(grad, ("write", 0), lambda n, g, o, i, h, w: (n, g, i, h, w, o))
    else:
        sch.transform_layout(grad, ("write", 0), lambda g, o, i, h, w: (g, i, h, w, o))
    sch.parallel(sch.fuse(*tasks))
    sch.vectorize(o_in)
    sch.unroll(w)
    sch.decompose_reduction(grad, reduction)
    for stage in (packed, blocks.get("pad_temp"), blocks["join_groups"]):
        if stage is not None:
            sch.parallel(sch.get_loops(stage)[0])


def dense_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # dx[n, i] = sum_j dy[n, j] W[j, i]: W's rows are contiguous in i, so a
    # tile of one row x 96 i (12 vectors, dy broadcast) accumulates over j.
    # j in blocks of 64, all images within a block: the block's 24 KiB of W
    # stay in L1 while every image uses them, and a symbolic batch needs no
    # tiling. (Before: W repacked per call, tiles of 4 images x 16 i; fc6
    # and fc7 ran 1.6-2.3x slower so, with a batch size or without.)
    grad = _blocks(sch)["dense_grad_input"]
    n, i, j = sch.get_loops(grad)
    i_out, i_in = sch.split(i, [None, 12 * LANES])
    j_out, j_in = sch.split(j, [None, 64])
    sch.reorder(i_out, j_out, n, j_in, i_in)
    sch.parallel(i_out)
    vectors, lanes = sch.split(i_in, [None, LANES])
    sch.unroll(vectors)
    sch.vectorize(lanes)
    sch.decompose_reduction(grad, j_out)


def dense_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # dW[j, i] = sum_n dy[n, j] x[n, i]: a tile of 4 j x 16 i accumulates
    # over the batch; writing dW is most of the cost.
    out_features, in_features = kernel.output
    rows = _largest_divisor(out_features, (4, 2))
    cols = _largest_divisor(in_features, (2 * LANES, LANES, 4, 2))
    grad = _blocks(sch)["dense_grad_weight"]
    j, i, n = sch.get_loops(grad)
    j_out, j_in = sch.split(j, [None, rows])
    i_out, i_in = sch.split(i, [None, cols])
    sch.reorder(j_out, i_out, n, j_in, i_in)
    sch.reverse_compute_at(sch.cache_write(grad, 0, "local"), i_out)
    sch.parallel(j_out)
    sch.vectorize(i_in)
    sch.unroll(j_in)
    sch.decompose_reduction(grad, n)


def _rows(sch: s_tir.Schedule, block, reduction: bool = False) -> None:
    """Parallel over images x channels, vector over the last axis; a
    reduction's own loops go outside the vector loop."""
    loops = sch.get_loops(block)
    if len(loops) == 2 or (reduction and len(loops) == 3):  # (n, features[, r])
        n, c, *r = loops
        c_out, c_in = sch.split(c, [None, _largest_divisor(sch.get(c).extent.value, (LANES, 4, 2))])
        sch.reorder(n, c_out, *r, c_in)
        sch.parallel(sch.fuse(n, c_out))
        sch.vectorize(c_in)
    else:
        b, c, _, w, *r = loops
        if r:
            sch.reorder(*r, w)
        sch.parallel(sch.fuse(b, c))
        sch.vectorize(w)
    if reduction:
        sch.decompose_reduction(block, sch.get_loops(block)[-2])


def elementwise(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    for block in _blocks(sch).values():
        _rows(sch, block)


def bias_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # One sum per channel is one chain of dependent adds, bound by the adds'
    # latency: sum a row's columns apart (or, for dense layers, a vector of
    # channels) and add those up at the end (3-15x faster).
    grad = _blocks(sch)["bias_grad"]
    loops = sch.get_loops(grad)
    if len(loops) == 2:  # (channels, images)
        c, rn = loops
        c_out, c_in = sch.split(c, [None, _largest_divisor(sch.get(c).extent.value, (4 * LANES, 2 * LANES, LANES))])
        sch.reorder(c_out, rn, c_in)
        sch.parallel(c_out)
        sch.vectorize(c_in)
        sch.decompose_reduction(grad, rn)
        return
    c, _, _, columns = loops
    partial = sch.rfactor(columns, 1)  # (channel, column) sums over images and rows
    c, rn, _, _ = sch.get_loops(partial)
    sch.parallel(c)
    sch.decompose_reduction(partial, rn)
    sch.reverse_compute_at(grad, c)


def lrn_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # One image at a time, its channels in parallel: LRN couples channels
    # only, so an image's window sums and terms stay in cache from one stage
    # to the next instead of each stage streaming the whole batch through
    # memory, and the power is recomputed where it is used instead of
    # stored. Batch 32 and 128: 1.6-2.9x one pass over the batch per stage;
    # batch 1: 0.96x, 0.01-0.02 ms (scripts/bench_lrn_grad.py).
    blocks = _blocks(sch)
    for name in ("lrn_square", "lrn_scale", "lrn_power"):
        sch.compute_inline(blocks[name])
    image = sch.get_loops(blocks["lrn_grad"])[0]
    for name in ("lrn_back", "lrn_t", "lrn_sum"):  # a block follows its readers under the loop
        sch.compute_at(blocks[name], image)
    for name in ("lrn_sum", "lrn_t", "lrn_back", "lrn_grad"):
        _, channels, _, columns, *window = sch.get_loops(blocks[name])
        if window:
            sch.reorder(*window, columns)
        sch.parallel(channels)
        sch.vectorize(columns)
        if window:
            sch.decompose_reduction(blocks[name], window[0])


def max_pool_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # One image plane at a time: its windows' maxima and argmaxima stay in
    # cache. Unrolled along rows, so that which windows hold a pixel (its
    # column's parity and the edges) is known when compiling: ~2x faster.
    # The argmax unrolls by up to 16 columns (conv1's whole rows of 27: 1.4x slower).
    blocks = _blocks(sch)
    b, c, _, j = sch.get_loops(blocks["max_pool_grad"])
    plane = sch.fuse(b, c)
    sch.parallel(plane)
    sch.unroll(j)
    argmax = blocks["pool_argmax"]
    sch.compute_at(argmax, plane)
    _, _, j = sch.get_loops(argmax)
    sch.unroll(sch.split(j, [None, _largest_divisor(sch.get(j).extent.value, range(16, 0, -1))])[1])


def dense(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # x and W both have the reduction axis contiguous, so each (row, column)
    # pair accumulates 8 partial sums in one vector (rfactor) and adds them
    # at the end. A tile of rows x columns shares the loads; rows are only
    # tiled for a known batch, as a split of a symbolic batch needs predicates
    # that cost more than they save.
    (features,) = kernel.inputs[0]
    lanes = _largest_divisor(features, (LANES, 4, 2))
    rows, cols = (4, 3) if batch is not None and batch % 4 == 0 else (1, 8)
    matmul = sch.get_sblock("T_matmul_NT")
    sch.compute_inline(sch.get_sblock("compute"))  # broadcast bias
    if kernel.attrs["relu"]:
        sch.compute_inline(sch.get_sblock("T_add"))
        epilogue = sch.get_sblock("compute_1")
    else:
        epilogue = sch.get_sblock("T_add")
    _, _, k = sch.get_loops(matmul)
    _, k_in = sch.split(k, [None, lanes])
    partial = sch.rfactor(k_in, 2)
    i, j, k_out, k_in = sch.get_loops(partial)
    i_out, i_in = sch.split(i, [None, rows])
    j_out, j_in = sch.split(j, [None, cols])
    # Columns outermost: a tile of W stays in cache while every row uses it.
    sch.reorder(j_out, i_out, k_out, i_in, j_in, k_in)
    sch.reverse_compute_at(sch.cache_write(partial, 0, "local"), i_out)
    sch.reverse_compute_at(matmul, i_out)
    sch.reverse_compute_at(epilogue, i_out)
    sch.vectorize(k_in)
    sch.unroll(j_in)
    sch.unroll(i_in)
    sch.parallel(j_out)
    sch.decompose_reduction(partial, k_out)


def lrn(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # One image row at a time: the window sums of the row, then the row.
    sch.compute_inline(sch.get_sblock("lrn_square"))
    window = sch.get_sblock("lrn_sum")
    b, c, i, j = sch.get_loops(sch.get_sblock("lrn"))
    sch.compute_at(window, i)
    sch.parallel(sch.fuse(b, c))
    sch.vectorize(j)
    *_, w, r = sch.get_loops(window)
    sch.reorder(r, w)
    sch.vectorize(w)
    sch.decompose_reduction(window, r)


def max_pool(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    pool = sch.get_sblock("pool_max")
    b, c, i, j, r0, r1 = sch.get_loops(pool)
    sch.reorder(b, c, i, r0, r1, j)
    sch.parallel(sch.fuse(b, c))
    sch.vectorize(j)
    sch.decompose_reduction(pool, r0)


def dropout(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    i, j = sch.get_loops(sch.get_sblock("dropout"))
    sch.parallel(i)
    sch.vectorize(sch.split(j, [None, _largest_divisor(kernel.output[0], (LANES, 4, 2))])[1])


SCHEDULES = {
    "conv2d": conv2d, "dense": dense, "lrn": lrn, "max_pool": max_pool, "dropout": dropout,
    "conv2d_grad_input": conv2d, "conv2d_grad_weight": conv2d_grad_weight,
    "dense_grad_input": dense_grad_input, "dense_grad_weight": dense_grad_weight,
    "relu_grad": elementwise, "avg_pool_grad": elementwise, "bias_grad": bias_grad,
    "lrn_grad": lrn_grad, "max_pool_grad": max_pool_grad,
}


# Ops whose default schedule tuning searches around (see tuning.search_space).
SPACES = {"conv2d": conv2d_space, "conv2d_grad_input": conv2d_space}


def default_schedule(func: tirx.PrimFunc, kernel: Kernel, batch: int | None) -> tirx.PrimFunc:
    """The kernel's PrimFunc with its op's default schedule applied (ops
    that take microseconds, softmax and the adaptive pool, are left as they
    are)."""
    rule = SCHEDULES.get(kernel.op)
    if rule is None:
        return func
    sch = s_tir.Schedule(func)
    rule(sch, kernel, batch)
    return sch.mod["main"].with_attr("global_symbol", kernel.name)
