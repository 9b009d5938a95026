"""Hand-written default CPU schedules, one per op (see registry.OPS).

A kernel without a tuning record gets one of these instead of TVM's
unscheduled lowering, whose naive loops run two orders of magnitude slower.
Register tiles and blocks are sized for the target's vector unit (8 or 16
float lanes, 16 or 32 vector registers: target.vector_unit), loops run
parallel over the outermost axes, and every schedule works for a symbolic
batch, so one build serves every batch size. The convolutions' are in
cpu_conv.py. `tvm-alexnet schedules` (without a log) writes what they
produce to schedules/default-<isa>.
"""

from __future__ import annotations

from typing import Callable

from tvm import s_tir, te, tirx

from ..spec import Kernel
from ..target import VectorUnit


# Reduction elements per block of the dense layers' default schedule (see dense).
DENSE_K_BLOCK = 256
# Rows of W summed between additions into dx (see _dense_grad_input_images_in_vectors).
DENSE_GRAD_J_BLOCK = 8
# Columns of x packed at a time for the dense weight gradient (see dense_grad_weight).
DENSE_GRAD_I_BLOCK = 1024


def accumulator_budget(unit: VectorUnit) -> int:
    # Registers a tile may hold as accumulators: the rest go to weights, a
    # broadcast and LLVM's own temporaries (fuller tiles spill).
    return unit.registers - 4


def largest_divisor(n: int, candidates) -> int:
    return next((c for c in candidates if n % c == 0), 1)


def block_map(sch: s_tir.Schedule) -> dict[str, object]:
    return {sch.get(b).name_hint: b for b in sch.get_child_blocks(sch.get_sblock("root"))}


def scheduled_func(tensors: list[te.Tensor], rule: Callable, *args) -> tirx.PrimFunc:
    """The PrimFunc of `tensors` with int64 indices (as Relax's shapes have
    them) after `rule(schedule, *args)`: a kernel built outside graph.kernel_func."""
    sch = s_tir.Schedule(te.create_prim_func(tensors, index_dtype_override="int64"))
    rule(sch, *args)
    return sch.mod["main"]


def _dense_grad_input_images_in_vectors(sch: s_tir.Schedule, kernel: Kernel, batch: int, unit: VectorUnit) -> bool:
    """At a static batch of whole vectors: dx^T[i, n] = sum_j W[j, i] dy^T[j,
    n], the images filling the vectors (dy transposed first, a small copy),
    each W element broadcast once into a tile of `columns` x the batch. The
    tile sums DENSE_GRAD_J_BLOCK rows of W at a time, few enough that their
    lines (a multiple of 4 KB apart) share an L1 set without evicting each
    other, and adds into dx^T, which LLVM keeps in registers meanwhile. Each
    core takes one range of columns: W's rows stream in long runs. Returns
    False where the batch does not fit that tile."""
    vectors = batch // unit.lanes
    (features,) = kernel.output
    rows = kernel.params[0][0]
    tiles = [t for t in (8, 4, 2) if features % t == 0 and t * vectors <= accumulator_budget(unit)]
    if batch % unit.lanes or not tiles or rows % DENSE_GRAD_J_BLOCK:
        return False
    columns = tiles[0]
    chunks = largest_divisor(features // columns, range(unit.cores, 0, -1))
    grad = block_map(sch)["dense_grad_input"]
    dy_t = sch.cache_read(grad, 0, "global")
    sch.transform_layout(dy_t, ("write", 0), lambda n, j: (j, n))
    sch.parallel(sch.get_loops(dy_t)[0])
    dx_t = sch.cache_write(grad, 0, "global")
    sch.transform_layout(grad, ("write", 0), lambda n, i: (i, n))
    n, i, j = sch.get_loops(grad)
    i_task, i_tile, i_in = sch.split(i, [chunks, None, columns])
    j_out, j_in = sch.split(j, [None, DENSE_GRAD_J_BLOCK])
    n_vectors, lanes = sch.split(n, [None, unit.lanes])
    sch.reorder(i_task, j_out, i_tile, j_in, i_in, n_vectors, lanes)
    sch.parallel(i_task)
    sch.unroll(i_in)
    sch.unroll(n_vectors)
    sch.vectorize(lanes)
    sch.reverse_compute_at(dx_t, i_task)
    sch.decompose_reduction(grad, j_out)
    return True


def dense_grad_input(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    if batch is not None and _dense_grad_input_images_in_vectors(sch, kernel, batch, unit):
        return
    # Otherwise (a symbolic batch, or one of partial vectors):
    # dx[n, i] = sum_j dy[n, j] W[j, i]: W's rows are contiguous in i. Each
    # task takes a contiguous eighth of i, so W streams in long runs (short
    # runs of many rows cost a TLB miss each); within it a register tile of
    # `rows` images x 4 vectors of i (dy broadcast, each W vector feeding
    # every row) accumulates over a block of j that divides j (fc8's 1000
    # takes 8: a remainder's predicates cost more than the block saves). Rows
    # are only tiled for a known batch, as a split of a symbolic batch needs
    # predicates.
    vectors = 4
    (features,) = kernel.output
    chunks = largest_divisor(features // (vectors * unit.lanes), (8, 4, 2))
    rows = next((r for r in (4, 2) if batch and batch % r == 0 and r * vectors <= accumulator_budget(unit)), 1)
    grad = block_map(sch)["dense_grad_input"]
    n, i, j = sch.get_loops(grad)
    i_task, i_mid, i_in = sch.split(i, [chunks, None, vectors * unit.lanes])
    j_block = largest_divisor(kernel.params[0][0], (16, 8, 4, 2) if rows > 1 else (8, 4, 2))
    j_out, j_in = sch.split(j, [None, j_block])
    if rows > 1:
        n_out, n_in = sch.split(n, [None, rows])
        sch.reorder(i_task, j_out, i_mid, n_out, j_in, n_in, i_in)
        sch.unroll(n_in)
    else:
        sch.reorder(i_task, j_out, i_mid, n, j_in, i_in)
    sch.parallel(i_task)
    vector, lanes = sch.split(i_in, [None, unit.lanes])
    sch.unroll(vector)
    sch.vectorize(lanes)
    sch.decompose_reduction(grad, j_out)


def dense_grad_weight(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # dW[j, i] = sum_n dy[n, j] x[n, i]: a tile of rows j x 2 vectors of i
    # accumulates over the batch. x's and dy's rows lie a multiple of 4 KB
    # apart, so a tile's 2 x batch lines would share one L1 set and evict
    # each other: both are packed tile by tile first (x per block of
    # DENSE_GRAD_I_BLOCK columns, which every row tile then reads from L2).
    out_features, in_features = kernel.output
    cols = 2 * unit.lanes
    rows = largest_divisor(out_features, [r for r in (8, 4, 2) if 2 * r <= accumulator_budget(unit)])
    i_block = largest_divisor(in_features, range(DENSE_GRAD_I_BLOCK, 0, -cols))
    grad = block_map(sch)["dense_grad_weight"]
    dy_packed = sch.cache_read(grad, 0, "global")
    sch.transform_layout(dy_packed, ("write", 0), lambda n, j: (j // rows, n, j % rows))
    x_packed = sch.cache_read(grad, 1, "global")
    sch.transform_layout(x_packed, ("write", 0), lambda n, i: (i // cols, n, i % cols))
    j, i, n = sch.get_loops(grad)
    i_block_out, i = sch.split(i, [None, i_block])
    j_out, j_in = sch.split(j, [None, rows])
    i_out, i_in = sch.split(i, [None, cols])
    sch.reorder(i_block_out, j_out, i_out, n, j_in, i_in)
    sch.compute_at(x_packed, i_block_out)
    sch.reverse_compute_at(sch.cache_write(grad, 0, "local"), i_out)
    sch.parallel(j_out)
    vector, lanes = sch.split(i_in, [None, unit.lanes])
    sch.unroll(vector)
    sch.vectorize(lanes)
    sch.unroll(j_in)
    sch.decompose_reduction(grad, n)
    for packed, width in ((dy_packed, rows), (x_packed, cols)):
        sch.vectorize(sch.split(sch.get_loops(packed)[-1], [None, min(unit.lanes, width)])[1])


def _rows(sch: s_tir.Schedule, block, lanes: int, reduction: bool = False) -> None:
    """Parallel over images x channels, vector over the last axis; a
    reduction's own loops go outside the vector loop."""
    loops = sch.get_loops(block)
    if len(loops) == 2 or (reduction and len(loops) == 3):  # (n, features[, r])
        n, c, *r = loops
        c_out, c_in = sch.split(c, [None, largest_divisor(sch.get(c).extent.value, (lanes, 4, 2))])
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
    for block in block_map(sch).values():
        _rows(sch, block, unit.lanes)


def bias_grad(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    # One sum per channel is one chain of dependent adds, bound by the adds'
    # latency: sum a row's columns apart (or, for dense layers, a vector of
    # channels) and add those up at the end, so the adds overlap.
    grad = block_map(sch)["bias_grad"]
    loops = sch.get_loops(grad)
    if len(loops) == 2:  # (channels, images)
        c, rn = loops
        c_out, c_in = sch.split(c, [None, largest_divisor(sch.get(c).extent.value, (4 * unit.lanes, 2 * unit.lanes, unit.lanes))])
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
    blocks = block_map(sch)
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
    # cache. Unrolled along rows, and the rows by the stride, so that which
    # windows hold a pixel (its column's and row's phase, and the edges) is
    # known when compiling. The argmax unrolls by up to 16 columns: longer
    # rows (conv1's 27) cost more unrolled than they save.
    blocks = block_map(sch)
    b, c, i, j = sch.get_loops(blocks["max_pool_grad"])
    plane = sch.fuse(b, c)
    sch.parallel(plane)
    sch.unroll(j)
    sch.unroll(sch.split(i, [None, kernel.attrs["stride"]])[1])
    argmax = blocks["pool_argmax"]
    sch.compute_at(argmax, plane)
    _, _, j = sch.get_loops(argmax)
    sch.unroll(sch.split(j, [None, largest_divisor(sch.get(j).extent.value, range(16, 0, -1))])[1])


def _dense_blocks(sch: s_tir.Schedule, kernel: Kernel) -> tuple:
    """The dense layer's matmul and its epilogue, the bias (and activation) inlined into one block."""
    sch.compute_inline(sch.get_sblock("compute"))  # broadcast bias
    if kernel.attrs["activation"]:  # ReLU or tanh
        sch.compute_inline(sch.get_sblock("T_add"))
        return sch.get_sblock("T_matmul_NT"), sch.get_sblock("compute_1")
    return sch.get_sblock("T_matmul_NT"), sch.get_sblock("T_add")


def _dense_images_in_vectors(sch: s_tir.Schedule, kernel: Kernel, batch: int, unit: VectorUnit) -> bool:
    """At a static batch of whole vectors: the images fill the vectors (x
    transposed first, a small copy), each W element is broadcast once into
    a tile of `outputs` x the batch that accumulates over all inputs, so W
    streams once, along `outputs` rows, and no partial sums are reduced
    across lanes. Returns False where the batch does not fit that tile."""
    vectors = batch // unit.lanes
    tiles = [t for t in (8, 4, 2) if kernel.output[0] % t == 0 and t * vectors <= accumulator_budget(unit)]
    if batch % unit.lanes or not tiles:
        return False
    outputs = tiles[0]
    matmul, epilogue = _dense_blocks(sch, kernel)
    x_t = sch.cache_read(matmul, 0, "global")
    sch.transform_layout(x_t, ("write", 0), lambda n, i: (i, n))
    sch.parallel(sch.get_loops(x_t)[0])
    n, j, k = sch.get_loops(matmul)
    j_out, j_in = sch.split(j, [None, outputs])
    n_vectors, lanes = sch.split(n, [None, unit.lanes])
    sch.reorder(j_out, k, j_in, n_vectors, lanes)
    sch.cache_write(matmul, 0, "local")
    sch.transform_layout(matmul, ("write", 0), lambda n, j: (j, n))  # a vector of images per output
    sch.reverse_compute_at(sch.get_sblock("T_matmul_NT_local"), j_out)
    sch.reverse_compute_at(epilogue, j_out)
    sch.parallel(j_out)
    sch.unroll(j_in)
    sch.unroll(n_vectors)
    sch.vectorize(lanes)
    sch.decompose_reduction(matmul, k)
    return True


def dense(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    if batch is not None and _dense_images_in_vectors(sch, kernel, batch, unit):
        return
    # Otherwise (a symbolic batch, or one of partial vectors):
    # x and W both have the reduction axis contiguous, so each (row, column)
    # pair accumulates a vector of partial sums (rfactor) and adds them
    # at the end. A tile of rows x columns shares the loads; rows are only
    # tiled for a known batch, as a split of a symbolic batch needs predicates
    # that cost more than they save. Where the batch's block of x fits L1,
    # the reduction runs in blocks of DENSE_K_BLOCK, every row tile within a
    # block before the next, so that the block of x stays in L1 instead of
    # the whole x (1.2 MB for fc6 at batch 32) streaming from L2 or L3 for
    # every tile of columns; there the columns per tile divide the outputs
    # (4 of 4096, not 7 with a remainder).
    (features,) = kernel.inputs[0]
    lanes = largest_divisor(features, (unit.lanes, 4, 2))
    tile = accumulator_budget(unit)
    rows_tiled = batch is not None and batch % 4 == 0
    blocked = rows_tiled and batch * DENSE_K_BLOCK * 4 <= unit.l1_bytes
    if blocked:
        rows, cols = 4, largest_divisor(kernel.output[0], range(tile // 4, 1, -1))
    else:
        rows, cols = (4, tile // 4) if rows_tiled else (1, tile - 4)
    matmul, epilogue = _dense_blocks(sch, kernel)
    _, _, k = sch.get_loops(matmul)
    _, k_in = sch.split(k, [None, lanes])
    partial = sch.rfactor(k_in, 2)
    i, j, k_out, k_in = sch.get_loops(partial)
    i_out, i_in = sch.split(i, [None, rows])
    j_out, j_in = sch.split(j, [None, cols])
    # Columns outermost: a tile of W stays in cache while every row uses it.
    if blocked:
        k_block = largest_divisor(features // lanes, (DENSE_K_BLOCK // lanes, 8, 4, 2))
        k_out, k_mid = sch.split(k_out, [None, k_block])
        sch.reorder(j_out, k_out, i_out, k_mid, i_in, j_in, k_in)
        at = j_out
    else:
        sch.reorder(j_out, i_out, k_out, i_in, j_in, k_in)
        at = i_out
    sch.reverse_compute_at(sch.cache_write(partial, 0, "local"), at)
    sch.reverse_compute_at(matmul, at)
    sch.reverse_compute_at(epilogue, at)
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
    # Not vectorized along the output row: a row of 27 lanes with loads 2
    # apart became masked loads and shuffles. With the window unrolled,
    # LLVM's vectorizer reads a long row contiguously and deinterleaves it;
    # a short row unrolls whole.
    pool = sch.get_sblock("pool_max")
    b, c, _, j, r0, r1 = sch.get_loops(pool)
    sch.parallel(sch.fuse(b, c))
    sch.unroll(r0)
    sch.unroll(r1)
    if sch.get(j).extent.value <= 16:
        sch.unroll(j)


def dropout(sch: s_tir.Schedule, kernel: Kernel, batch: int | None, unit: VectorUnit) -> None:
    i, j = sch.get_loops(sch.get_sblock("dropout"))
    sch.parallel(i)
    sch.vectorize(sch.split(j, [None, largest_divisor(kernel.output[0], (unit.lanes, 4, 2))])[1])

