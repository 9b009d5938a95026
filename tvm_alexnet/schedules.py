"""Kernels' schedules and generated code as readable text: TVMScript after
scheduling, CUDA C after building, and the export of each kernel's schedule
to its own file (`tvm-alexnet schedules`), to read without running TVM."""

from __future__ import annotations

import os
from pathlib import Path

import tvm

from . import build, cuda, graph, tuning
from .files import write_atomic
from .ops import default_schedule, op_of
from .spec import Kernel, Network
from .target import target_dirname, vector_unit


def sources(net: Network, batch: int | None, target: tvm.target.Target, language: str,
            names: list[str] | None = None) -> dict[str, str]:
    """The code for `target` of each compiled kernel (or of those `names`):
    its TVMScript as scheduled ("tvmscript") or its CUDA C as built ("cuda")."""
    names = names or [k.name for k in net.compiled_kernels()]
    if language == "cuda":
        code = cuda.source(build.compile_module(net, batch, target)[0].mod)
        return {name: cuda.kernel_source(code, name) for name in names}
    mod, _ = build.schedule(graph.build_module(net, batch), net, batch, target)
    return {name: mod[name].with_attr("global_symbol", name).script() for name in names}


def default_schedules(net: Network, target: tvm.target.Target) -> dict[Kernel, tuple[tvm.tirx.PrimFunc, str]]:
    """The hand-written default CPU schedule for `target`'s vector unit of
    every kernel that has one, at a symbolic batch, each with a line saying
    where it comes from."""
    unit = vector_unit(target)
    return {k: (default_schedule(graph.kernel_func(k, None), k, None, unit),
                f"hand-written default for {unit.isa} (tvm_alexnet/ops/cpu_schedules.py), batch n")
            for k in net.compiled_kernels() if op_of(k).schedule is not None}


def tuned_schedules(net: Network, log_dir: str | os.PathLike, batch: int,
                    target: tvm.target.Target) -> dict[Kernel, tuple[tvm.tirx.PrimFunc, str]]:
    """The kernels whose best record in the log (at `batch`, for `target`)
    builds use, each with a line saying how fast it measured."""
    database = tuning.read_log(log_dir)
    defaults = tuning.default_times(log_dir)
    found = {}
    for kernel in net.compiled_kernels():
        func = tuning.tuned_kernel(database, kernel, batch, target, defaults)
        if func is None:
            continue
        task = tuning.task_module(kernel, batch)
        seconds = tuning.mean_seconds(tuning.best_record(database, task, target))
        about = (f"batch {batch}, for {target_dirname(target)}: best of {tuning.trials_done(database, task, target)} "
                 f"trials in {log_dir}, {seconds * 1e3:.3f} ms, {kernel.flops * batch / seconds / 1e9:.1f} GFLOP/s")
        found[kernel] = (func, about)
    return found


def export(net: Network, target: tvm.target.Target, output: str | os.PathLike, regenerate: str,
           log_dir: str | os.PathLike | None = None, batch: int = 32) -> tuple[list[str], list[str]]:
    """Write each kernel's schedule for `target` as TVMScript to
    OUTPUT/<kernel>.py: the default schedules, or with `log_dir` the log's
    best at `batch`. Each file's header names the kernel, where its schedule comes
    from and `regenerate`, the command that writes it. Files of the
    network's other kernels are deleted, since builds do not use them.
    Returns the names of the kernels written and of those deleted."""
    output = Path(output)
    schedules = default_schedules(net, target) if log_dir is None else tuned_schedules(net, log_dir, batch, target)
    for kernel, (func, about) in schedules.items():
        header = f"# {kernel.name} ({kernel.op}) of {net.variant}, {about}\n# regenerate: {regenerate}\n"
        write_atomic(output / f"{kernel.name}.py", header + func.with_attr("global_symbol", kernel.name).script())
    written = [k.name for k in schedules]
    stale = [output / f"{k.name}.py" for k in net.compiled_kernels() if k.name not in written]
    stale = [path for path in stale if path.exists()]
    for path in stale:
        path.unlink()
    return written, [path.stem for path in stale]
