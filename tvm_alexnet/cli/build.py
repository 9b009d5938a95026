"""compile, kernels, schedules: build a network, list and time its kernels, export their schedules."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from .. import build, placement, report, schedules
from ..model import AlexNet
from ..spec import network
from ..target import target_dirname, vector_unit
from .common import (
    batch_or_any,
    network_options,
    notes,
    results,
    table,
    target_option,
    target_text,
)


@click.command("compile")
@network_options
@click.option("--batch", default="any", show_default=True, callback=batch_or_any,
              help="Batch size the kernels are built for, or 'any' for a symbolic batch dimension.")
@target_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write alexnet.so and manifest.json into.")
@click.option("--tuning-log", type=click.Path(file_okay=False, exists=True), default=None,
              help="MetaSchedule log folder (e.g. tuning_logs/llvm-znver3): kernels with a record for this "
                   "batch and target use it, the others their default schedule.")
def compile_cmd(variant, num_classes, width, lrn, pool, activation, batch, target, output, tuning_log):
    """Compile every kernel of a variant for a target.

    Writes OUTPUT/alexnet.so (the Relax VM functions `forward` and one per
    layer, and every kernel) and OUTPUT/manifest.json (the kernels with their
    shapes and FLOPs). Builds are cached in ~/.cache/tvm-alexnet (or
    $TVM_ALEXNET_CACHE), so a second compile of the same thing is a copy.
    """
    net = network(variant, num_classes, width, lrn, pool, activation)
    start = time.perf_counter()
    if tuning_log and batch is None:
        raise click.BadParameter("a tuning log holds schedules for fixed batch sizes: give --batch N",
                                 param_hint="'--batch'")
    with notes.status(f"compiling {variant} for {target_text(target)} ..."):
        out = build.build(net, target, batch, output, tuning_log)
    manifest = build.Manifest.load(out / build.MANIFEST)
    _print_kernels(net, manifest.batch)
    if tuning_log:
        fallback = [k.name for k in net.compiled_kernels() if k.name not in manifest.tuned]
        notes.print(f"tuned from {tuning_log}: {', '.join(manifest.tuned) or 'none'}")
        notes.print(f"default schedule: {', '.join(fallback) or 'none'}")
    size = (out / build.LIBRARY).stat().st_size / 2**20
    notes.print(f"wrote {out / build.LIBRARY} ({size:.1f} MiB) and {out / build.MANIFEST} "
                f"in {time.perf_counter() - start:.1f} s (compile took {manifest.build_seconds} s)")


def _print_kernels(net, batch: int | None) -> None:
    b = "n" if batch is None else str(batch)
    result = Table(title=f"{net.variant} kernels (batch {b})")
    for col in ("kernel", "op", "inputs", "params", "output", "MFLOP/image"):
        result.add_column(col, justify="right" if col == "MFLOP/image" else "left")
    for k in net.compiled_kernels():
        result.add_row(k.name, k.op, ", ".join(_shape(b, s) for s in k.inputs),
                       ", ".join(_shape(None, s) for s in k.params), _shape(b if k.batch_output else None, k.output),
                       f"{k.flops / 1e6:,.1f}")
    results.print(result)


def _shape(batch: str | None, shape) -> str:
    return "x".join(([batch] if batch else []) + [str(d) for d in shape])


@click.command("kernels")
@network_options
@click.option("--batch", default="any", show_default=True, callback=batch_or_any, help="Batch size, or 'any'.")
@target_option
@click.option("--source", type=click.Choice(["none", "tvmscript", "cuda"]), default="none", show_default=True,
              help="Also print each kernel's TVMScript (as scheduled for the target) or CUDA C source.")
@click.option("--kernel", "only", default=None, help="Only this kernel (e.g. conv2_lrn).")
@click.option("--time", "timed", is_flag=True,
              help="Compile and time each kernel on random input on this machine (at --batch, 1 for 'any').")
def kernels_cmd(variant, num_classes, width, lrn, pool, activation, batch, target, source, only, timed):
    """List every kernel with its shapes and FLOPs, print its source, time it."""
    net = network(variant, num_classes, width, lrn, pool, activation)
    names = [k.name for k in net.compiled_kernels()]
    if only is not None and only not in names:
        raise click.BadParameter(f"no kernel {only!r}; kernels are {', '.join(names)}", param_hint="'--kernel'")
    if timed:
        _time_kernels(AlexNet(variant, num_classes, width, lrn, pool, activation), target, batch or 1, only)
    elif source == "none":
        _print_kernels(net, batch)
    else:
        if source == "cuda" and target.kind.name != "cuda":
            raise click.BadParameter("--source cuda needs a cuda target, e.g. --target cuda:sm_90",
                                     param_hint="'--target'")
        comment = "//" if source == "cuda" else "#"
        for name, code in schedules.sources(net, batch, target, source, [only] if only else None).items():
            click.echo(f"{comment} ---- {name} ----")
            click.echo(code)


def _time_kernels(model: AlexNet, target, batch: int, only: str | None) -> None:
    with notes.status(f"compiling for {target_text(target)} ..."):
        model.compile(target)
    placement.move(model, placement.model_device(model))
    kernels = [k for k in model.spec.compiled_kernels() if only in (None, k.name)]
    rows = [[k.name, f"{seconds * 1e3:.2f}", f"{k.flops * batch / seconds / 1e9:.2f}"]
            for k, seconds in zip(kernels, report.time_kernels(model, batch, kernels))]
    results.print(table(f"{model.spec.variant} kernels, batch {batch}, {target_text(target)} (median of 5)",
                        ("kernel", "ms", "GFLOP/s"), rows))


@click.command("schedules")
@click.option("--tuning-log", type=click.Path(file_okay=False, exists=True), default=None,
              help="Export the log's best schedules (default: the hand-written default CPU schedules).")
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Batch size of the log's records (the defaults are exported for any batch).")
@target_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder (default: schedules/<target>/b<batch>, or schedules/default-<isa>).")
def schedules_cmd(tuning_log, variant, num_classes, width, lrn, pool, activation, batch, target, output):
    """Write each kernel's schedule as readable TVMScript, one file per kernel.

    What the log's best record (or the default schedule) does to the kernel:
    tiling, layout, parallel and vector loops, before lowering. Read it
    without running TVM.
    """
    net = network(variant, num_classes, width, lrn, pool, activation)
    if tuning_log is None:
        isa = vector_unit(target).isa.lower().replace("-", "")
        output = output or Path("schedules") / f"default-{isa}"
        regenerate = f"tvm-alexnet schedules --variant {variant} --target {target_text(target, name_host=True)}"
    else:
        output = output or Path("schedules") / target_dirname(target) / f"b{batch}"
        regenerate = (f"tvm-alexnet schedules --tuning-log {tuning_log} --variant {variant} --batch {batch} "
                      f"--target {target_text(target, name_host=True)}")
    written, removed = schedules.export(net, target, output, regenerate, tuning_log, batch)
    notes.print(f"wrote {len(written)} schedules to {output}: {', '.join(written) or 'none (no records)'}")
    if removed:
        notes.print(f"removed {len(removed)} no longer used: {', '.join(removed)}")
