"""How CUDA builds schedule and lower their kernels: the default schedules
(ops.gpu_default_schedule) where a kernel has no tuning record, dlight's
rules for the rest, and a TIR pipeline that keeps the defaults' registers."""

from __future__ import annotations

import re

import tvm
from tvm import IRModule, s_tir, tirx
from tvm.target import Target

from .ops import gpu_default_schedule
from .ops.gpu_schedules import OWN_REGISTERS
from .spec import Kernel

# These schedules size their register tiles themselves. Given only
# __launch_bounds__(threads), as TVM writes it, ptxas may still squeeze a
# kernel's registers to fit one more block per SM and spill a few to local
# memory to get there (seen at 4-20 bytes for some tiles and not for
# others, by batch, arch and tile: no tile choice avoids it everywhere).
# __launch_bounds__(threads, 1), as CUTLASS writes it, turns that off:
# ptxas then spills only past its real limits (255 registers, or 64K per
# block). The pipeline below is TVM's own, writing that bound for every
# kernel this module scheduled (OWN_REGISTERS) and leaving dlight's as they are.
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

    class Matmul(dl.gpu.Matmul):
        # It takes a strided convolution's input gradient (phases) and then
        # asserts on the stage interleaving them; that goes on to the next rule.
        def apply(self, func, target, tunable):
            try:
                return super().apply(func, target, tunable)
            except (s_tir.schedule.ScheduleError, AssertionError):
                return None

    with target:  # dlight leaves kernels that already have a schedule alone
        return dl.ApplyDefaultSchedule(
            Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), GeneralReduction(), dl.gpu.Fallback()
        )(mod)


def schedule_module(mod: IRModule, kernels: list[Kernel], batch: int | None, target: Target,
                    skip=()) -> IRModule:
    """Every kernel of `mod` (named as in `kernels`) but those in `skip`
    (tuned ones) with its default schedule, then dlight for the rest."""
    for kernel in kernels:
        if kernel.name in skip:
            continue
        func = gpu_default_schedule(mod[kernel.name], kernel, batch)
        if func is not None:
            mod[kernel.name] = func
    return dlight(mod, target)
