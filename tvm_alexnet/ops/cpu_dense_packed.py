"""Dense layers at a small static batch on CPU, on weights packed once per
weight version (graph.Transformed): what `forward` runs for fc6-8 below
MAX_BATCH images.

There a dense layer reads each weight once per call and the whole call is
bound by streaming W from memory (fc6-8 hold 234 MB). torch's layout (a
row per output) makes a register tile of C outputs read C rows at once, C
streams far apart; packed as P[j // C, k // L, j % C, k % L] the tile
reads one contiguous stream, which memory delivers faster.
"""

from __future__ import annotations

from tvm import s_tir, te, tirx

from ..spec import Kernel
from ..target import VectorUnit
from . import elementwise
from .cpu_schedules import accumulator_budget, block_map, largest_divisor, scheduled_func

# Below this batch the default dense schedule tiles no rows: each row is a GEMV.
MAX_BATCH = 4


def applies(kernel: Kernel, batch: int | None) -> bool:
    """Whether `forward` of a CPU build takes `kernel`'s weights packed: a dense layer at a static batch below MAX_BATCH."""
    return kernel.op == "dense" and batch is not None and batch < MAX_BATCH


def _blocks(kernel: Kernel, unit: VectorUnit) -> tuple[int, int]:
    """(C, L): outputs per register tile (one accumulator each, within the
    budget) and the reduction's vector length."""
    out_features, in_features = kernel.params[0]
    budget = accumulator_budget(unit)
    return (largest_divisor(out_features, [c for c in (16, 8, 4, 2) if c <= budget]),
            largest_divisor(in_features, (unit.lanes, 4, 2)))


def packed_shape(kernel: Kernel, unit: VectorUnit) -> tuple[int, ...]:
    out_features, in_features = kernel.params[0]
    c, lanes = _blocks(kernel, unit)
    return (out_features // c, in_features // lanes, c, lanes)


def _pack(weight: te.Tensor, shape: tuple[int, ...]) -> te.Tensor:
    _, _, c, lanes = shape
    return te.compute(shape, lambda a, b, i, k: weight[a * c + i, b * lanes + k], name="dense_pack")


def _packed_dense(x: te.Tensor, packed: te.Tensor, bias: te.Tensor, activation: str | None) -> te.Tensor:
    blocks, k_blocks, c, lanes = packed.shape
    kb, kk = te.reduce_axis((0, k_blocks), "kb"), te.reduce_axis((0, lanes), "kk")
    y = te.compute((x.shape[0], blocks * c),
                   lambda n, j: te.sum(x[n, kb * lanes + kk] * packed[j // c, kb, j % c, kk], axis=[kb, kk]),
                   name="dense_packed")
    y = te.compute(y.shape, lambda n, j: y[n, j] + bias[j], name="bias_add")
    return elementwise.activate(y, activation)


def _schedule_pack(sch: s_tir.Schedule) -> None:
    a, b, i, k = sch.get_loops(block_map(sch)["dense_pack"])
    sch.parallel(a)
    sch.vectorize(k)


def _schedule_dense(sch: s_tir.Schedule, c: int) -> None:
    # Per task a block of C outputs: each (image, block of the reduction)
    # loads C contiguous vectors of P and one of x into C vector partial
    # sums (rfactor), added up at the end, with the bias and the activation.
    blocks = block_map(sch)
    dense = blocks["dense_packed"]
    if "compute" in blocks:  # the activation, the bias added in it
        sch.compute_inline(blocks["bias_add"])
        epilogue = blocks["compute"]
    else:
        epilogue = blocks["bias_add"]
    *_, kk = sch.get_loops(dense)
    partial = sch.rfactor(kk, 2)
    n, j, kb, kk = sch.get_loops(partial)
    j_out, j_in = sch.split(j, [None, c])
    sch.reorder(j_out, n, kb, j_in, kk)
    sch.reverse_compute_at(sch.cache_write(partial, 0, "local"), j_out)
    sch.reverse_compute_at(dense, j_out)
    sch.reverse_compute_at(epilogue, j_out)
    sch.vectorize(kk)
    sch.unroll(j_in)
    sch.parallel(j_out)
    sch.decompose_reduction(partial, kb)


def transformed_funcs(kernel: Kernel, batch: int, unit: VectorUnit
                      ) -> tuple[tirx.PrimFunc, tirx.PrimFunc, tuple[int, ...]]:
    """The scheduled packing (weight, packed), the scheduled dense layer
    (x, packed, bias, out) and the packed shape (see graph.Transformed)."""
    shape = packed_shape(kernel, unit)
    weight = te.placeholder(kernel.params[0], "float32", name="weight")
    x = te.placeholder((batch, *kernel.inputs[0]), "float32", name="x")
    packed = te.placeholder(shape, "float32", name="packed")
    bias = te.placeholder(kernel.params[1], "float32", name="bias")
    out = _packed_dense(x, packed, bias, kernel.attrs["activation"])
    return (scheduled_func([weight, _pack(weight, shape)], _schedule_pack),
            scheduled_func([x, packed, bias, out], _schedule_dense, shape[2]), shape)
