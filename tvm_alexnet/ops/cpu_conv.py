"""Default CPU schedules of the convolutions and their gradients: direct
convolution with register tiles sized for the target's vector unit, and the
spaces tuning searches around them (see cpu_schedules.py for the rest)."""

from __future__ import annotations

import math

from tvm import s_tir, te, tirx

from ..spec import Kernel
from ..target import VectorUnit
from . import conv, cpu_winograd, winograd
from .cpu_schedules import accumulator_budget, block_map, largest_divisor, scheduled_func

# Below this static batch `forward` runs a direct convolution on weights
# packed once per weight version: the per-call repack is a pass over the
# weights, a share of the call that shrinks as the batch grows.
PACKED_MAX_BATCH = 4

# From this static batch a weight gradient that sums per image runs one task
# per image (enough of them to share the cores) and repacks that image's
# output gradient within the task, where it stays in cache.
IMAGE_TASKS_MIN_BATCH = 8


def conv2d_tile(kernel: Kernel, unit: VectorUnit, batch: int | None = None) -> tuple[int, int]:
    """The default register tile of a convolution: (output channels, output pixels).

    Two vectors of channels x the whole output row where that fits the
    accumulators (13-wide maps on 32 registers: each broadcast feeds two
    FMAs) and the batch is static and above 1 (with a symbolic batch LLVM
    keeps that tile's accumulators in memory, 2.8x slower; one image has
    too few channel blocks to share). Else one vector x a row of pixels that divides the output width
    where one of at least 7 fits, else two vectors x as many pixels as fit.
    A strided convolution (conv1) takes two vectors x a row of at most 6
    that divides the width: longer rows, or more channels, ran slower.
    Groups of channels that two vectors do not divide (narrow networks)
    take what does."""
    lanes, accumulators = unit.lanes, accumulator_budget(unit)
    channels, _, width = kernel.output
    per_group = channels // kernel.attrs["groups"]
    if kernel.op == "conv2d" and kernel.attrs["stride"] > 1:
        return largest_divisor(per_group, (2 * lanes, lanes, 8, 4, 2)), largest_divisor(width, range(6, 2, -1))
    if per_group % (2 * lanes):
        return (largest_divisor(per_group, (lanes, 8, 4, 2)),
                largest_divisor(width, range(accumulators + 2, 3, -1)))
    if 2 * width <= accumulators and batch is not None and batch > 1:
        return 2 * lanes, width
    row = largest_divisor(width, range(accumulators, 6, -1))
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
    block, row = tile or conv2d_tile(kernel, unit, batch)
    blocks = block_map(sch)
    conv = blocks[next(n for n in blocks if "conv2d" in n)]
    if "bias_add" in blocks:
        sch.compute_inline(blocks["bias_add"])
    if "dilate" in blocks:
        sch.compute_inline(blocks["dilate"])
    epilogue = blocks["compute"] if kernel.attrs.get("activation") else None  # ReLU or tanh
    if "weight_unpack" in blocks:  # weights packed ahead (transformed_funcs): read in place
        sch.compute_inline(blocks["weight_unpack"])
        packed = None
    else:  # the flipped weights of the input gradient are computed in the packed layout directly
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
    # Channels innermost in the accumulators, or LLVM may gather each vector of them.
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
    pad = blocks["pad_temp"]
    if kernel.op == "conv2d" and kernel.attrs["padding"] == 0:
        sch.compute_inline(pad)  # a copy of the input, read in place
        pad = None
    if packed is not None:
        _channels_innermost(sch, packed, 4, block, unit)  # (o, i, h, w)
    for stage in (pad, packed):
        if stage is not None:
            sch.parallel(sch.fuse(*sch.get_loops(stage)[:2]))


def _channels_innermost(sch: s_tir.Schedule, pack, axes: int, block: int, unit: VectorUnit) -> None:
    """Loop a repack into channel blocks (c, ... -> c / block, ..., c % block;
    c the first of the last `axes` loops) with the channels innermost: each
    vector written whole, its reads a gather (far cheaper than the scatter
    of writes that the last axis innermost makes)."""
    c, *rest = sch.get_loops(pack)[-axes:]
    c_out, c_in = sch.split(c, [None, block])
    sch.reorder(c_out, *rest, c_in)
    vectors, lanes = sch.split(c_in, [None, min(block, unit.lanes)])
    sch.unroll(vectors)
    sch.vectorize(lanes)


def transforms_weights(kernel: Kernel, batch: int) -> bool:
    """Whether `forward` takes the convolution's weights transformed:
    Winograd's (winograd.applies), or packed below PACKED_MAX_BATCH."""
    return winograd.applies(kernel, batch, weights_transformed=True) or batch < PACKED_MAX_BATCH


def transformed_funcs(kernel: Kernel, batch: int, unit: VectorUnit
                      ) -> tuple[tirx.PrimFunc, tirx.PrimFunc, tuple[int, ...]]:
    """What `forward` runs where transforms_weights: the scheduled weight
    transform (weight, out), the scheduled convolution on its output (x,
    transformed, bias, out), and that output's shape (graph.Transformed)."""
    if winograd.applies(kernel, batch, weights_transformed=True):
        return cpu_winograd.transformed_funcs(kernel, batch, unit)
    block, _ = conv2d_tile(kernel, unit, batch)
    out_channels, *rest = kernel.params[0]
    shape = (out_channels // block, *rest, block)
    weight = te.placeholder(kernel.params[0], "float32", name="weight")
    pack = te.compute(shape, lambda a, i, h, w, c: weight[a * block + c, i, h, w], name="weight_pack")
    packed = te.placeholder(shape, "float32", name="packed")
    unpacked = te.compute(kernel.params[0], lambda o, i, h, w: packed[o // block, i, h, w, o % block],
                          name="weight_unpack")
    x = te.placeholder((batch, *kernel.inputs[0]), "float32", name="x")
    bias = te.placeholder(kernel.params[1], "float32", name="bias")
    attrs = {name: kernel.attrs[name] for name in ("stride", "padding", "groups", "activation")}

    def parallel_pack(sch):
        sch.parallel(sch.fuse(*sch.get_loops(block_map(sch)["weight_pack"])[:2]))

    return (scheduled_func([weight, pack], parallel_pack),
            scheduled_func([x, packed, bias, conv.conv2d(x, unpacked, bias, **attrs)], conv2d, kernel, batch, unit),
            shape)


def conv2d_space(sch: s_tir.Schedule, kernel: Kernel, batch: int, unit: VectorUnit) -> list[s_tir.Schedule]:
    """The convolution's default schedule with its tile and loop order left
    open, as MetaSchedule's design spaces: one per channel block and order,
    the row length a sampled choice (register budget: row x vectors
    accumulators + the weight vectors + 1 broadcast <= the registers)."""
    lanes = unit.lanes
    per_group = kernel.output[0] // kernel.attrs["groups"]
    blocks = [b for b in (lanes, 2 * lanes) if per_group % b == 0] or [conv2d_tile(kernel, unit, batch)[0]]
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
    *_, phases, columns, _, _, _ = sch.get_loops(block_map(sch)["conv2d_grad_input_phases"])
    stride, per_row = sch.get(phases).extent.value, sch.get(columns).extent.value // unit.lanes
    fitting = [v for v in range(per_row, 0, -1) if per_row % v == 0 and stride * v <= accumulator_budget(unit)]
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
    blocks = block_map(sch)
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


def conv2d_grad_weight_tile(kernel: Kernel, unit: VectorUnit) -> tuple[int, int, int]:
    """The weight gradient's register tile (see conv2d_grad_weight): (output
    channels, input channels, kernel columns), as many accumulators, (output
    channels / lanes) x (input channels) x (columns), as the budget holds,
    output channels in one or two whole vectors (two where that ties: each
    broadcast then feeds more FMAs), every kernel column where that fits.
    Where a row of taps is too wide for two vectors (conv1's 11 on AVX2), two
    vectors take as many columns as fit, the last chunk partly masked: one
    vector x the whole row reads as many broadcasts as it makes FMAs. Groups
    that no vector divides (narrow networks) take a part of one vector and
    one input channel."""
    out_channels, group_in, _, k = kernel.output
    group_out = out_channels // kernel.attrs["groups"]
    budget = accumulator_budget(unit)
    tiles = [(vectors * unit.lanes, ib, k) for vectors in (2, 1) if group_out % (vectors * unit.lanes) == 0
             for ib in range(budget // (vectors * k), 0, -1) if group_in % ib == 0]
    if group_out % (2 * unit.lanes) == 0 and not any(t[0] == 2 * unit.lanes for t in tiles):
        tiles.append((2 * unit.lanes, 1, budget // 2))
    if not tiles:
        return largest_divisor(group_out, (4, 2)), 1, k
    return max(tiles, key=lambda t: (t[0] // unit.lanes * t[1] * t[2], t[0]))


def conv2d_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit,
                       tile: tuple[int, int, int] | None = None) -> None:
    # dW[o, i, h, w] = sum over images and output pixels of dy * x, per group.
    # The output gradient is repacked as (channel block, n, oh, ow, block) so
    # that a vector of output channels is one load; the register tile is
    # (block) x (input channels) x (kernel columns), each dy vector feeding
    # (input channels) x (columns) FMAs, each broadcast of x one per vector;
    # the reduction runs over images and output pixels, and a task is
    # (block, input channels, kernel row, columns), in turn as below. `tile`
    # overrides conv2d_grad_weight_tile.
    block, in_block, columns = tile or conv2d_grad_weight_tile(kernel, unit)
    blocks = block_map(sch)
    grad = blocks["conv2d_grad_weight"]
    packed = sch.cache_read(grad, 0, "global")
    sch.transform_layout(grad, ("read", 0), lambda n, c, h, w: (c // block, n, h, w, c % block))
    # Each task streams its block of dy for the whole batch. Where that
    # outgrows a core's L2 (conv1 and conv2 at batch 32), or dW is small next
    # to what one image reads (conv1's is a twelfth), each image sums into a
    # dW of its own, added up after: the tasks running at once then share one
    # image's data in cache. Otherwise the partial dWs cost more than that saves.
    _, out_size, _ = kernel.inputs[0]
    dy_block_bytes = 4 * block * out_size * out_size * (batch or 1)
    by_image = (4 * math.prod(kernel.output) < sum(math.prod(shape) for shape in kernel.inputs)
                or (batch is not None and dy_block_bytes > unit.l2_bytes))
    if by_image:
        partial = sch.rfactor(sch.get_loops(grad)[5], 0)  # loop 5: the images
        sch.parallel(sch.fuse(*sch.get_loops(grad)[:3]))  # what remains of grad: the sum of the partials
        grad = partial
    g, o, i, h, w, rn, ry, rx = sch.get_loops(grad)
    o_out, o_in = sch.split(o, [None, block])
    i_out, i_in = sch.split(i, [None, in_block])
    w_out, w_in = sch.split(w, [None, columns])
    image_tasks = by_image and batch is not None and batch >= IMAGE_TASKS_MIN_BATCH
    if by_image:
        sch.reorder(rn, g, o_out, i_out, h, w_out, ry, rx, i_in, w_in, o_in)
        tasks, reduction = ((rn,) if image_tasks else (rn, g, o_out, i_out, h, w_out)), ry
    else:
        # Tasks that share a block of dy run in turn where it fits half of L2
        # (the rest holds x and what streams past); else those that share a
        # block of x, far smaller, and dy streams from L3.
        shared = (o_out, i_out) if dy_block_bytes <= unit.l2_bytes // 2 else (i_out, o_out)
        sch.reorder(g, *shared, h, w_out, rn, ry, rx, i_in, w_in, o_in)
        tasks, reduction = (g, *shared, h, w_out), rn
    sch.reverse_compute_at(sch.cache_write(grad, 0, "local"), w_out)
    # Channels innermost in the accumulators too, or each vector of them is a gather.
    if by_image:
        sch.transform_layout(grad, ("write", 0), lambda n, g, o, i, h, w: (n, g, i, h, w, o))
    else:
        sch.transform_layout(grad, ("write", 0), lambda g, o, i, h, w: (g, i, h, w, o))
    task = sch.fuse(*tasks)
    sch.parallel(task)
    vectors, lanes = sch.split(o_in, [None, min(block, unit.lanes)])
    sch.vectorize(lanes)
    for loop in (vectors, w_in, i_in):
        sch.unroll(loop)
    sch.decompose_reduction(grad, reduction)
    if image_tasks:
        sch.compute_at(packed, task)
    else:
        sch.parallel(sch.get_loops(packed)[0])
    _channels_innermost(sch, packed, 3, block, unit)  # (c, h, w) of an image
    pad = blocks.get("pad_temp")
    if pad is not None and kernel.attrs["padding"] == 0:
        sch.compute_inline(pad)  # a copy of x, read in place
        pad = None
    for stage in (pad, blocks["join_groups"]):
        if stage is not None:
            sch.parallel(sch.get_loops(stage)[0])
