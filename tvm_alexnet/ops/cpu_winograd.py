"""The CPU schedule of the Winograd convolution (winograd.py), and its
builds: the network's kernel (`kernel_func`, what registry.default_schedule
gives a kernel winograd.applies to) and the stages alone, for the tests and
scripts/bench_winograd.py."""

from __future__ import annotations

import tvm
from tvm import s_tir, te, tirx

from ..spec import Kernel
from ..target import VectorUnit
from .cpu_schedules import block_map, scheduled_func
from .winograd import Plan, compute, grad_input_compute, kernel_plan, weight_transform
from .winograd_grad_weight import grad_weight_compute


def schedule(sch: s_tir.Schedule, plan: Plan, unit: VectorUnit, unroll: int = 4) -> None:
    """Schedule whichever Winograd stages the function holds (the tests and
    the benchmark also build them one at a time). With the output, every
    stage runs per chunk of images, the chunk loop outermost: each stage's
    intermediate then stays in cache for the next. `unroll`: reduction
    steps of the GEMM unrolled."""
    blocks = block_map(sch)
    if "winograd_flip" in blocks:  # an input gradient's weights, read flipped by the transform
        sch.compute_inline(blocks.pop("winograd_flip"))
    if "winograd_u" in blocks:
        _schedule_weights(sch, blocks, unit)
    chunk = _schedule_output(sch, blocks, plan, unit) if "winograd_y" in blocks else None
    if plan.chunks == 1:
        chunk = None  # each stage over the whole batch, at the root
    if "winograd_m" in blocks:
        if chunk is not None:
            sch.compute_at(blocks["winograd_m"], chunk)
        _schedule_gemm(sch, blocks, plan, unit, unroll)
    if "winograd_v" in blocks:
        if chunk is not None:
            sch.compute_at(blocks["winograd_v"], chunk)
        _schedule_input(sch, blocks, unit, chunk)


def _loops(sch, block):
    """The block's loops inside the chunk loop (its first). compute_at makes
    none for axes of extent 1 (a single group, a single image per chunk)."""
    return sch.get_loops(block)[1:]


def _vector(sch, loop, lanes):
    """Vectorise `loop` in vectors of `lanes` (whole vectors unrolled outside)."""
    extent = sch.get(loop).extent.value
    if extent > lanes and extent % lanes == 0:
        outer, loop = sch.split(loop, [None, lanes])
        sch.unroll(outer)
    sch.vectorize(loop)


def _schedule_half(sch, half):
    # A separable transform's first half of a tile, in registers: its two
    # tile loops and its sum unrolled (the transform's zeros folded away),
    # the channels vectorised.
    a, b, c, r = sch.get_loops(half)[-4:]
    sch.reorder(a, b, r, c)
    for loop in (a, b, r):
        sch.unroll(loop)
    sch.vectorize(c)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(half, r))[-1])


def _schedule_weights(sch, blocks, unit):
    wt, u = blocks["winograd_wt"], blocks["winograd_u"]
    g, ci, r, s, co = sch.get_loops(wt)
    sch.parallel(sch.fuse(g, ci))
    co_o, co_i = sch.split(co, [None, unit.lanes])
    sch.vectorize(co_i)
    e, g, cb, ci, co, r1, r2 = sch.get_loops(u)
    co_o, co_i = sch.split(co, [None, unit.lanes])
    sch.reorder(g, cb, ci, co_o, e, r1, r2, co_i)
    sch.parallel(sch.fuse(g, cb, ci))
    acc = sch.cache_write(u, 0, "local")
    sch.reverse_compute_at(acc, e)
    sch.vectorize(sch.get_loops(acc)[-1])
    for loop in (e, r1, r2):
        sch.unroll(loop)
    sch.vectorize(co_i)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(u, r1))[-1])


def _schedule_input(sch, blocks, unit, chunk):
    # Per (group, tile) in parallel, per vector of channels: the alpha x
    # alpha tile into registers, its column transform, then its row
    # transform (the transform's zeros folded away by unrolling).
    pad, tile, half, v = blocks["winograd_pad"], blocks["winograd_d"], blocks["winograd_h"], blocks["winograd_v"]
    e, *g, p, ci, rb = _loops(sch, v)
    ci_o, ci_i = sch.split(ci, [None, unit.lanes])
    sch.reorder(*g, p, ci_o, e, rb, ci_i)
    sch.parallel(sch.fuse(*g, p))
    sch.compute_at(half, ci_o)
    sch.compute_at(tile, ci_o)
    for stage in (tile, half):
        sch.set_scope(stage, 0, "local")
    ty, tx, tc = sch.get_loops(tile)[-3:]
    sch.unroll(ty)
    sch.unroll(tx)
    sch.vectorize(tc)
    _schedule_half(sch, half)
    acc = sch.cache_write(v, 0, "local")
    sch.reverse_compute_at(acc, e)
    sch.vectorize(sch.get_loops(acc)[-1])
    for loop in (e, rb):
        sch.unroll(loop)
    sch.vectorize(ci_i)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(v, rb))[-1])
    if chunk is not None:
        sch.compute_at(pad, chunk)
    *rows, x, c = _loops(sch, pad)
    sch.parallel(sch.fuse(*rows))
    _vector(sch, c, unit.lanes)


def _schedule_gemm(sch, blocks, plan, unit, unroll):
    # Per (position, group, channel block) in parallel: the block's U panel
    # (ci x block) is reused by every row tile of V; the register tile
    # (rows x block) accumulates over ci, each step `block / lanes` vector
    # loads of U and `rows` broadcasts of V.
    mm = blocks["winograd_m"]
    *outer, p, co, rc = _loops(sch, mm)  # outer: e and the group where there are groups
    p_o, p_i = sch.split(p, [None, plan.rows])
    co_o, co_i = sch.split(co, [None, plan.block])
    sch.reorder(*outer, co_o, p_o, rc, p_i, co_i)
    sch.parallel(sch.fuse(*outer, co_o))
    acc = sch.cache_write(mm, 0, "local")
    sch.reverse_compute_at(acc, p_o)
    if unroll > 1 and plan.cin % unroll == 0:
        rc, rc_i = sch.split(rc, [None, unroll])
        sch.unroll(rc_i)
    sch.unroll(p_i)
    _vector(sch, co_i, unit.lanes)
    init = sch.decompose_reduction(mm, rc)
    _vector(sch, sch.get_loops(init)[-1], unit.lanes)
    _vector(sch, sch.get_loops(acc)[-1], unit.lanes)


def _schedule_output(sch, blocks, plan, unit):
    # Per (image, vector of channels) in parallel, per tile: the column
    # transform (alpha x m vectors) into registers, then each output pixel's
    # sum over it, bias and activation, stored channel by channel (NCHW).
    half, y = blocks["winograd_o"], blocks["winograd_y"]
    epilogue = next(blocks[name] for name in ("compute", "bias_add", "winograd_store") if name in blocks)
    n, c, h, w, ra = sch.get_loops(y)
    chunk, n = sch.split(n, [None, plan.images])
    c_o, c_i = sch.split(c, [None, unit.lanes])
    th, hi = sch.split(h, [None, plan.m])
    tw, wi = sch.split(w, [None, plan.m])
    sch.reorder(chunk, n, c_o, th, tw, hi, wi, ra, c_i)
    acc = sch.cache_write(y, 0, "local")
    sch.compute_inline(acc)
    sch.reverse_compute_at(epilogue, wi)
    sch.vectorize(sch.get_loops(epilogue)[-1])
    sch.parallel(sch.fuse(n, c_o))
    sch.compute_at(half, tw)
    sch.set_scope(half, 0, "local")
    _schedule_half(sch, half)
    for loop in (hi, wi, ra):
        sch.unroll(loop)
    sch.vectorize(c_i)
    sch.vectorize(sch.get_loops(sch.decompose_reduction(y, ra))[-1])
    return chunk


def schedule_grad_weight(sch: s_tir.Schedule, plan: Plan, unit: VectorUnit) -> None:
    """Schedule winograd_grad_weight.grad_weight_compute: per chunk of images (the
    outermost loop), the transforms of x and dy (as the forward's input
    transform), then the GEMMs in parallel over (position, group, block of
    output channels), a register tile of 4 output channels (broadcast) x up
    to 4 vectors of input channels accumulating over the chunk's tiles; the
    output transform sums the chunks."""
    blocks = block_map(sch)
    mm = blocks["wgrad_m"]
    vectors = next((v for v in range(4 if unit.registers >= 32 else 2, 0, -1) if plan.cin % (v * unit.lanes) == 0),
                   None)
    rows, block = 4, vectors * unit.lanes if vectors else plan.cin
    chunk, e, g, co, ci, p = sch.get_loops(mm)
    co_o, co_i = sch.split(co, [None, rows])
    ci_o, ci_i = sch.split(ci, [None, block])
    sch.reorder(chunk, e, g, co_o, ci_o, p, co_i, ci_i)
    sch.parallel(sch.fuse(e, g, co_o))
    acc = sch.cache_write(mm, 0, "local")
    sch.reverse_compute_at(acc, ci_o)
    sch.unroll(co_i)
    _vector(sch, ci_i, unit.lanes)
    init = sch.decompose_reduction(mm, p)
    _vector(sch, sch.get_loops(init)[-1], unit.lanes)
    _vector(sch, sch.get_loops(acc)[-1], unit.lanes)
    stages = ("winograd_pad", "winograd_d", "winograd_h", "winograd_v")
    for names in (stages, ("wgrad_dy_pad", "wgrad_dy_d", "wgrad_dy_h", "wgrad_dy_v")):
        sch.compute_at(blocks[names[-1]], chunk)
        _schedule_input(sch, dict(zip(stages, (blocks[n] for n in names))), unit, chunk)
    # The output transform is small; its constants fold where its loops unroll.
    mh, y = blocks["wgrad_o"], blocks["wgrad_y"]
    g, co, ci, a, j, rc, rb = sch.get_loops(mh)
    sch.reorder(g, co, a, j, rc, rb, ci)
    sch.parallel(sch.fuse(g, co))
    for loop in (a, j, rb):
        sch.unroll(loop)
    _vector(sch, ci, unit.lanes)
    _vector(sch, sch.get_loops(sch.decompose_reduction(mh, rc))[-1], unit.lanes)
    o, ci, u, j, ra = sch.get_loops(y)
    sch.parallel(o)
    for loop in (u, j, ra):
        sch.unroll(loop)


# -- building ----------------------------------------------------------------------------------------


def scheduled(tensors: list[te.Tensor], plan: Plan, unit: VectorUnit, unroll: int = 4) -> tvm.IRModule:
    sch = s_tir.Schedule(te.create_prim_func(tensors))
    schedule(sch, plan, unit, unroll)
    return sch.mod


def kernel_func(kernel: Kernel, batch: int, unit: VectorUnit) -> tirx.PrimFunc:
    """`kernel` (see winograd.applies) as a scheduled Winograd PrimFunc that
    takes what the direct one does: (x, weight, bias, out), for an input
    gradient (dy, weight, dx), for a weight gradient (dy, x, dw)."""
    p = kernel_plan(kernel, batch, unit)
    if kernel.op == "conv2d_grad_weight":
        func = scheduled_func(grad_weight_compute(p), schedule_grad_weight, p, unit)
        return func.with_attr("global_symbol", kernel.name)
    if kernel.op == "conv2d_grad_input":
        tensors = grad_input_compute(p)
    else:
        tensors = compute(p, kernel.attrs["activation"], transform_weights=True)
    func = scheduled_func(tensors, schedule, p, unit)
    return func.with_attr("global_symbol", kernel.name)


def transformed_funcs(kernel: Kernel, batch: int, unit: VectorUnit
                      ) -> tuple[tirx.PrimFunc, tirx.PrimFunc, tuple[int, ...]]:
    """`kernel` (see winograd.applies) split for weights transformed ahead of
    the call: the scheduled weight transform (weight, u), the scheduled
    convolution (x, u, bias, out), and the shape of u."""
    p = kernel_plan(kernel, batch, unit)
    w = te.placeholder(kernel.params[0], "float32", name="weight")
    return (scheduled_func([w, weight_transform(w, p)], schedule, p, unit),
            scheduled_func(compute(p, kernel.attrs["activation"]), schedule, p, unit), p.u_shape)


def build(plan: Plan, target: tvm.target.Target, unit: VectorUnit, activation: str | None = "relu",
          transform_weights: bool = False, unroll: int = 4) -> tvm.runtime.Module:
    """The compiled convolution, called as f(x, u, bias, out) (or f(x,
    weight, bias, out) with `transform_weights`); its function is "main"."""
    return tvm.compile(scheduled(compute(plan, activation, transform_weights), plan, unit, unroll),
                       target=target).mod


def build_weight_transform(plan: Plan, target: tvm.target.Target, unit: VectorUnit) -> tvm.runtime.Module:
    """The weight transform alone, f(weight, u)."""
    w = te.placeholder((plan.out_channels, plan.cin, plan.r, plan.r), "float32", name="weight")
    return tvm.compile(scheduled([w, weight_transform(w, plan)], plan, unit), target=target).mod
