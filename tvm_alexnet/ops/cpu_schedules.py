"""Hand-written default CPU schedules, one per op (see registry.OPS).

A kernel without a tuning record gets one of these instead of TVM's
unscheduled lowering, whose naive loops run two orders of magnitude slower.
Register tiles and blocks are sized for the target's vector unit (8 or 16
float lanes, 16 or 32 vector registers: target.vector_unit), loops run
parallel over the outermost axes, and every schedule works for a symbolic
batch, so one build serves every batch size. `tvm-alexnet schedules` (without a log) writes what
they produce to schedules/default.
"""

from __future__ import annotations

import math

from tvm import s_tir

from ..spec import Kernel
from ..target import VectorUnit


def _accumulators(unit: VectorUnit) -> int:
    # Registers a tile may hold as accumulators: the rest go to weights, a
    # broadcast and LLVM's own temporaries (fuller tiles spill).
    return unit.registers - 4


def _largest_divisor(n: int, candidates) -> int:
    return next((c for c in candidates if n % c == 0), 1)


def _blocks(sch: s_tir.Schedule) -> dict[str, object]:
    return {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}


def _pixel_major(kernel: Kernel) -> bool:
    # Channels innermost in the accumulators too, or LLVM may gather each
    # vector of them; the stride-4 conv1 runs faster in its own layout.
    return kernel.op == "conv2d_grad_input" or kernel.attrs["stride"] == 1


def conv2d_tile(kernel: Kernel, unit: VectorUnit) -> tuple[int, int]:
    """The default register tile of a convolution: (output channels, output pixels).

    One vector of channels x a row of pixels that divides the output width
    where one of at least 7 fits the accumulators, else two vectors x as many
    pixels as fit. Without the pixel-major output layout (conv1) the row must
    divide the width, or it runs far slower. Groups of channels that two
    vectors do not divide (narrow networks) take what does."""
    lanes, accumulators = unit.lanes, _accumulators(unit)
    channels, _, width = kernel.output
    per_group = channels // kernel.attrs["groups"]
    if per_group % (2 * lanes):
        return (_largest_divisor(per_group, (lanes, 8, 4, 2)),
                _largest_divisor(width, range(accumulators + 2, 3, -1)))
    if not _pixel_major(kernel):
        return 2 * lanes, _largest_divisor(width, range(accumulators // 2, 2, -1))
    row = _largest_divisor(width, range(accumulators, 6, -1))
    return (lanes, row) if row > 1 else (2 * lanes, accumulators // 2 - 1)


def conv2d(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit, tile: tuple | None = None,
           rows_outer: bool = False) -> None:
    # Direct convolution with a register tile of `row` output pixels x
    # `block` output channels (one or two vectors): per reduction step the
    # weight vectors are loaded and `row` input pixels are broadcast into
    # their FMAs. The weights are repacked per call so that those channels
    # are contiguous. Also the input gradient, a convolution of the
    # (dilated) output gradient with the flipped weights. `tile` and
    # `rows_outer` (output rows outside channel blocks in the parallel loop)
    # are what tuning searches; `row` may be a sampled variable.
    block, row = tile or conv2d_tile(kernel, unit)
    blocks = _blocks(sch)
    conv = blocks[next(n for n in blocks if "conv2d" in n)]
    if "bias_add" in blocks:
        sch.compute_inline(blocks["bias_add"])
    if "dilate" in blocks:
        sch.compute_inline(blocks["dilate"])
    epilogue = blocks["compute"] if kernel.attrs.get("activation") else None  # ReLU or tanh
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
    if block > unit.lanes:
        vectors, lanes = sch.split(f_in, [None, unit.lanes])
        sch.unroll(vectors)
        sch.vectorize(lanes)
    else:
        sch.vectorize(f_in)
    sch.unroll(x_in)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(conv, rc))[-1])
    for stage in (blocks["pad_temp"], packed):
        sch.parallel(sch.fuse(*sch.get_loops(stage)[:2]))


def conv2d_space(sch: s_tir.Schedule, kernel: Kernel, batch: int, unit: VectorUnit) -> list[s_tir.Schedule]:
    """The convolution's default schedule with its tile and loop order left
    open, as MetaSchedule's design spaces: one per channel block and order,
    the row length a sampled choice (register budget: row x vectors
    accumulators + the weight vectors + 1 broadcast <= the registers)."""
    lanes = unit.lanes
    per_group = kernel.output[0] // kernel.attrs["groups"]
    blocks = [b for b in (lanes, 2 * lanes) if per_group % b == 0] or [conv2d_tile(kernel, unit)[0]]
    spaces = []
    for block in blocks:
        vectors = max(1, block // lanes)
        rows = list(range(3, (unit.registers - 1 - vectors) // vectors + 1))
        for rows_outer in (False, True):
            space = sch.copy()
            row = space.sample_categorical(rows, [1 / len(rows)] * len(rows))
            conv2d(space, kernel, batch, unit, (block, row), rows_outer)
            spaces.append(space)
    return spaces


def conv2d_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    """The input gradient: a convolution (`conv2d`), or in phases where the
    forward is strided (`strided_conv2d_grad_input`)."""
    if kernel.attrs["stride"] > 1:
        strided_conv2d_grad_input(sch, kernel, batch, unit)
    else:
        conv2d(sch, kernel, batch, unit)


def conv2d_grad_input_space(sch: s_tir.Schedule, kernel: Kernel, batch: int, unit: VectorUnit
                            ) -> list[s_tir.Schedule]:
    if kernel.attrs["stride"] == 1:
        return conv2d_space(sch, kernel, batch, unit)
    vectors = _phase_vectors(sch, unit)
    space = sch.copy()
    choice = space.sample_categorical(vectors, [1 / len(vectors)] * len(vectors))
    strided_conv2d_grad_input(space, kernel, batch, unit, choice)
    return [space]


def _phase_vectors(sch: s_tir.Schedule, unit: VectorUnit) -> list[int]:
    """Vectors of columns per register tile of strided_conv2d_grad_input:
    those that divide the padded columns and fit the accumulators
    alongside the phases (stride x vectors), most first."""
    *_, phases, columns, _, _, _ = sch.get_loops(_blocks(sch)["conv2d_grad_input_phases"])
    stride, per_row = sch.get(phases).extent.value, sch.get(columns).extent.value // unit.lanes
    fitting = [v for v in range(per_row, 0, -1) if per_row % v == 0 and stride * v <= _accumulators(unit)]
    return fitting or [1]


def strided_conv2d_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit,
                              vectors=None) -> None:
    # See ops.grad.strided_conv2d_grad_input. Parallel over input rows
    # (image, channel, row); per row a register tile of (the stride's
    # phases) x (`vectors` vectors of columns) accumulates over output
    # channels and the taps, each step broadcasting a tap per phase and
    # loading a vector of dy's row per vector; the row's phases are then
    # interleaved while they are in cache.
    vectors = _phase_vectors(sch, unit)[0] if vectors is None else vectors
    blocks = _blocks(sch)
    phases = blocks["conv2d_grad_input_phases"]
    n, c, i, q, v, ro, ra, rb = sch.get_loops(phases)
    v_out, v_vec, v_lane = sch.split(v, [None, vectors, unit.lanes])
    sch.reorder(n, c, i, v_out, ro, ra, rb, q, v_vec, v_lane)
    row = sch.fuse(n, c, i)
    sch.reverse_compute_at(sch.cache_write(phases, 0, "local"), v_out)  # in registers
    sch.parallel(row)
    sch.unroll(q)
    sch.unroll(v_vec)
    sch.vectorize(v_lane)
    sch.decompose_reduction(phases, ro)
    sch.reverse_compute_at(blocks["conv2d_grad_input"], row)
    for stage in (blocks["dy_pad"], blocks["weight_taps"]):
        sch.parallel(sch.fuse(*sch.get_loops(stage)[:2]))


def conv2d_grad_weight_block(kernel: Kernel, unit: VectorUnit) -> int:
    """Output channels per task of the weight gradient (see conv2d_grad_weight):
    at most 16, whole vectors, as many as (kernel width) x vectors accumulators allow."""
    out_channels, _, _, k = kernel.output
    fitting = [c for c in (16, 8) if c % unit.lanes == 0 and k * c // unit.lanes <= _accumulators(unit)]
    return _largest_divisor(out_channels // kernel.attrs["groups"], [*fitting, unit.lanes, 4, 2])


def conv2d_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit,
                       block: int | None = None) -> None:
    # dW[o, i, h, w] = sum over images and output pixels of dy * x, per group.
    # The output gradient is repacked as (channel block, n, oh, ow, 8 or 16
    # channels) so that a vector of output channels is one load; the register
    # tile is (kernel width) x (that block), the reduction runs over images
    # and output pixels. Every task streams its block of the output gradient,
    # so the block stays at 16 channels or fewer, small enough for a core's
    # L2 (see conv2d_grad_weight_block). `block` overrides it.
    block = block or conv2d_grad_weight_block(kernel, unit)
    blocks = _blocks(sch)
    grad = blocks["conv2d_grad_weight"]
    packed = sch.cache_read(grad, 0, "global")
    sch.transform_layout(grad, ("read", 0), lambda n, c, h, w: (c // block, n, h, w, c % block))
    # Where dW is small next to what one image reads (conv1's is a twelfth),
    # each image sums into a dW of its own, added up after: the tasks running
    # at once then share one image's data in cache instead of each streaming
    # the whole batch from memory. Where dW is as big as an image's data, the
    # partial dWs cost more than that saves.
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


def dense_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # dx[n, i] = sum_j dy[n, j] W[j, i]: W's rows are contiguous in i, so a
    # tile of one row x 12 vectors of i (dy broadcast) accumulates over j.
    # j in blocks of 24 KiB of W, all images within a block: the block stays
    # in L1 while every image uses it, and a symbolic batch needs no tiling.
    grad = _blocks(sch)["dense_grad_input"]
    n, i, j = sch.get_loops(grad)
    i_out, i_in = sch.split(i, [None, 12 * unit.lanes])
    j_out, j_in = sch.split(j, [None, 24 * 1024 // (4 * 12 * unit.lanes)])
    sch.reorder(i_out, j_out, n, j_in, i_in)
    sch.parallel(i_out)
    vectors, lanes = sch.split(i_in, [None, unit.lanes])
    sch.unroll(vectors)
    sch.vectorize(lanes)
    sch.decompose_reduction(grad, j_out)


def dense_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # dW[j, i] = sum_n dy[n, j] x[n, i]: a tile of 4 j x 2 vectors of i accumulates
    # over the batch; writing dW is most of the cost.
    out_features, in_features = kernel.output
    rows = _largest_divisor(out_features, (4, 2))
    cols = _largest_divisor(in_features, (2 * unit.lanes, unit.lanes, 4, 2))
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


def _rows(sch: s_tir.Schedule, block, lanes: int, reduction: bool = False) -> None:
    """Parallel over images x channels, vector over the last axis; a
    reduction's own loops go outside the vector loop."""
    loops = sch.get_loops(block)
    if len(loops) == 2 or (reduction and len(loops) == 3):  # (n, features[, r])
        n, c, *r = loops
        c_out, c_in = sch.split(c, [None, _largest_divisor(sch.get(c).extent.value, (lanes, 4, 2))])
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


def elementwise(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    for block in _blocks(sch).values():
        _rows(sch, block, unit.lanes)


def bias_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # One sum per channel is one chain of dependent adds, bound by the adds'
    # latency: sum a row's columns apart (or, for dense layers, a vector of
    # channels) and add those up at the end, so the adds overlap.
    grad = _blocks(sch)["bias_grad"]
    loops = sch.get_loops(grad)
    if len(loops) == 2:  # (channels, images)
        c, rn = loops
        c_out, c_in = sch.split(c, [None, _largest_divisor(sch.get(c).extent.value, (4 * unit.lanes, 2 * unit.lanes, unit.lanes))])
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


def lrn_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # One image at a time, its channels in parallel: LRN couples channels
    # only, so an image's window sums and terms stay in cache from one stage
    # to the next instead of each stage streaming the whole batch through
    # memory, and the power is recomputed where it is used instead of
    # stored, which is cheaper than another pass through memory.
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


def max_pool_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # One image plane at a time: its windows' maxima and argmaxima stay in
    # cache. Unrolled along rows, so that which windows hold a pixel (its
    # column's parity and the edges) is known when compiling. The argmax
    # unrolls by up to 16 columns: longer rows (conv1's 27) cost more unrolled than they save.
    blocks = _blocks(sch)
    b, c, _, j = sch.get_loops(blocks["max_pool_grad"])
    plane = sch.fuse(b, c)
    sch.parallel(plane)
    sch.unroll(j)
    argmax = blocks["pool_argmax"]
    sch.compute_at(argmax, plane)
    _, _, j = sch.get_loops(argmax)
    sch.unroll(sch.split(j, [None, _largest_divisor(sch.get(j).extent.value, range(16, 0, -1))])[1])


def dense(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # x and W both have the reduction axis contiguous, so each (row, column)
    # pair accumulates a vector of partial sums (rfactor) and adds them
    # at the end. A tile of rows x columns shares the loads; rows are only
    # tiled for a known batch, as a split of a symbolic batch needs predicates
    # that cost more than they save.
    (features,) = kernel.inputs[0]
    lanes = _largest_divisor(features, (unit.lanes, 4, 2))
    tile = _accumulators(unit)
    rows, cols = (4, tile // 4) if batch is not None and batch % 4 == 0 else (1, tile - 4)
    matmul = sch.get_sblock("T_matmul_NT")
    sch.compute_inline(sch.get_sblock("compute"))  # broadcast bias
    if kernel.attrs["activation"]:  # ReLU or tanh
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


def lrn(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
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


def max_pool(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    pool = sch.get_sblock("pool_max")
    b, c, i, j, r0, r1 = sch.get_loops(pool)
    sch.reorder(b, c, i, r0, r1, j)
    sch.parallel(sch.fuse(b, c))
    sch.vectorize(j)
    sch.decompose_reduction(pool, r0)


def dropout(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    i, j = sch.get_loops(sch.get_sblock("dropout"))
    sch.parallel(i)
    sch.vectorize(sch.split(j, [None, _largest_divisor(kernel.output[0], (unit.lanes, 4, 2))])[1])

