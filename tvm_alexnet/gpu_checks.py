"""What can be known of the CUDA kernels without a GPU: each kernel's
schedule checked against the GPU limits (verify_gpu_code), compiled by
nvcc with its registers, spills and shared memory read from ptxas, and its
time bounded from below by its FLOPs and bytes against a GPU's datasheet peaks."""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from pathlib import Path

import tvm
from tvm import IRModule, s_tir, tirx
from tvm.target import Target

from .gpu_build import TIR_PIPELINE, dlight
from .ops import gpu_default_schedule
from .spec import Kernel

# verify_gpu_code's limits: every NVIDIA GPU since sm_50 (static shared memory
# 48 KiB, 1024 threads), and MetaSchedule's own (8 virtual threads, 16-byte vectors).
GPU_LIMITS = {"max_shared_memory_per_block": 49152, "max_threads_per_block": 1024, "max_thread_x": 1024,
              "max_thread_y": 1024, "max_thread_z": 64, "max_vthread": 8, "max_vector_bytes": 16}


def scheduled_kernel(kernel: Kernel, batch: int | None, target: Target) -> tuple[tirx.PrimFunc, str]:
    """The kernel as a GPU build schedules it without a tuning log, and who
    scheduled it ("default" or "dlight")."""
    from .graph import kernel_func

    func = kernel_func(kernel, batch)
    ours = gpu_default_schedule(func, kernel, batch)
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
    text = re.sub(r'^n = TypeVar\("n"\)\n', "", text, flags=re.MULTILINE)
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
                                check=False, capture_output=True, text=True)
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
    {"kernel", "op", "scheduler", "verified", "functions": ptxas's report per
    __global__ function (a kernel may launch several)}."""
    return static_checks([kernel], batch, target)[0]


def static_checks(kernels: list[Kernel], batch: int | None, target: Target) -> list[dict]:
    """static_check of each kernel, all built as one module through one nvcc
    run (a sweep over a network pays nvcc's and the host build's start once)."""
    from .cuda import source

    scheduled = {k.name: scheduled_kernel(k, batch, target) for k in kernels}
    module = IRModule({name: func for name, (func, _) in scheduled.items()})
    report = ptxas(source(tvm.compile(module, target=target, tir_pipeline=TIR_PIPELINE).mod), target.attrs["arch"])
    return [{"kernel": k.name, "op": k.op, "scheduler": scheduled[k.name][1],
             "verified": verify(scheduled[k.name][0], target),
             "functions": {f: r for f, r in report.items() if re.fullmatch(rf"{re.escape(k.name)}_kernel(_\d+)?", f)}}
            for k in kernels]


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
