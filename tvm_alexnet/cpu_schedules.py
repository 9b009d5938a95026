"""Hand-written default CPU schedules, one per op.

A kernel without a tuning record gets one of these instead of TVM's
unscheduled lowering (~2 GFLOP/s). They are written for AVX2 (8 float
lanes, 16 vector registers) and parallel over the outermost loops, and they
work for a symbolic batch, so one build serves every batch size.
`tvm-alexnet schedules --defaults` prints what they produce.
"""

from __future__ import annotations

from tvm import s_tir, tirx

from .spec import Kernel

LANES = 8  # float32 lanes of an AVX2 register


def _largest_divisor(n: int, candidates) -> int:
    return next((c for c in candidates if n % c == 0), 1)


def conv2d(sch: s_tir.Schedule, kernel: Kernel, batch: int | None) -> None:
    # Direct convolution with a register tile of `row` output pixels x 8
    # output channels: per reduction step one weight vector is loaded and
    # `row` input pixels are broadcast into `row` FMAs. The weights are
    # repacked per call so that those 8 channels are contiguous.
    channels, _, width = kernel.output
    groups = kernel.attrs["groups"]
    block = _largest_divisor(channels // groups, (LANES, 4, 2))
    row = _largest_divisor(width, range(14, 3, -1))  # row accumulators + 2 registers <= 16
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    conv = sch.get_sblock(next(n for n in names if "conv2d" in n))
    sch.compute_inline(sch.get_sblock("bias_add"))
    epilogue = sch.get_sblock("compute") if kernel.attrs["relu"] else None
    packed = sch.cache_read(conv, 1, "global")
    sch.transform_layout(conv, ("read", 1), lambda o, i, h, w: (o // block, i, h, w, o % block))
    n, f, y, x, rc, ry, rx = sch.get_loops(conv)
    f_out, f_in = sch.split(f, [None, block])
    x_out, x_in = sch.split(x, [None, row])
    sch.reorder(n, f_out, y, x_out, rc, ry, rx, x_in, f_in)
    sch.compute_inline(sch.cache_write(conv, 0, "local"))  # accumulate in registers
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, x_out)
    sch.parallel(sch.fuse(n, f_out, y))
    sch.vectorize(f_in)
    sch.unroll(x_in)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(conv, rc))[-1])
    for stage in (sch.get_sblock("pad_temp"), packed):
        sch.parallel(sch.fuse(*sch.get_loops(stage)[:2]))


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


SCHEDULES = {"conv2d": conv2d, "dense": dense, "lrn": lrn, "max_pool": max_pool, "dropout": dropout}


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
