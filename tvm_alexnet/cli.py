"""The `tvm-alexnet` command line: compile, tune, kernels, report, run, demo, train, eval, convert."""

from __future__ import annotations

import json
import re
import sys
import time
import warnings
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table

from . import build, cuda, graph
from .data import image_files, load_image
from .errors import UserError
from .files import write_atomic
from .model import AlexNet
from .preprocessing import PREPROCESSING
from .spec import LRN_CONVENTIONS, VARIANTS, network

results = Console(highlight=False, soft_wrap=True)
notes = Console(stderr=True, highlight=False, soft_wrap=True)  # progress and remarks


class _Group(click.Group):
    """Errors from bad input end the program with one line, not a traceback."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except click.UsageError as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)
        except (UserError, click.ClickException) as e:
            click.echo(f"error: {e.format_message() if isinstance(e, click.ClickException) else e}", err=True)
            sys.exit(1)
        sys.exit(code or 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tvm-alexnet")
def main():
    """AlexNet (Krizhevsky et al., 2012) with every layer compiled by Apache TVM.

    Targets: `llvm` (this CPU), `llvm:CPU` (another CPU model, e.g.
    llvm:skylake), `cuda:sm_XX` (e.g. cuda:sm_90), or a JSON object such as
    '{"kind": "cuda", "arch": "sm_80"}'.
    """


def _batch(value: str) -> int | None:
    if value == "any":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"expected a positive integer or 'any', got {value!r}", param_hint="'--batch'")
    return int(value)


def network_options(f):
    """--variant, --num-classes, --width, --lrn."""
    options = [
        click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS),
                     help="Network variant: the paper's two-tower net, the single-tower net of tutorials, "
                          "or torchvision's AlexNet."),
        click.option("--num-classes", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Outputs of fc8."),
        click.option("--width", type=float, default=1.0, show_default=True,
                     help="Multiplier on every channel count and hidden unit count (for quick runs)."),
        click.option("--lrn", metavar="|".join(LRN_CONVENTIONS), default=None,
                     help="LRN convention (default: the variant's own; paper: k=2, alpha not divided by n)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


target_option = click.option("--target", default="llvm", show_default=True,
                             help="Where the kernels run (see `tvm-alexnet --help`).")


def _tuning_log_folder(ctx, param, value: str) -> str:
    if value not in ("auto", "none") and not Path(value).is_dir():
        raise click.BadParameter(f"{value}: no such tuning log folder (or 'auto', 'none')")
    return value


tuning_log_option = click.option(
    "--tuning-log", default="auto", show_default=True, callback=_tuning_log_folder,
    help="A tuning log folder, 'auto' (the repository's log for the target, where it was tuned for this network "
         "and batch size) or 'none' (default schedules).")


def _model(weights: str | None, variant: str, num_classes: int, width: float, lrn: str | None) -> AlexNet:
    network(variant, num_classes, width, lrn)  # a bad option fails before any file is read
    if weights:
        return AlexNet.load(weights, variant=variant, num_classes=num_classes, width=width, lrn=lrn)
    return AlexNet(variant, num_classes, width, lrn)


# -- compile -----------------------------------------------------------------------------------


@main.command("compile")
@network_options
@click.option("--batch", default="any", show_default=True,
              help="Batch size the kernels are built for, or 'any' for a symbolic batch dimension.")
@target_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write alexnet.so and manifest.json into.")
@click.option("--tuning-log", type=click.Path(file_okay=False, exists=True), default=None,
              help="MetaSchedule log folder (e.g. tuning_logs/llvm-znver3): kernels with a record for this "
                   "batch and target use it, the others their default schedule.")
def compile_cmd(variant, num_classes, width, lrn, batch, target, output, tuning_log):
    """Compile every kernel of a variant for a target.

    Writes OUTPUT/alexnet.so (the Relax VM functions `forward` and one per
    layer, and every kernel) and OUTPUT/manifest.json (the kernels with their
    shapes and FLOPs). Builds are cached in ~/.cache/tvm-alexnet (or
    $TVM_ALEXNET_CACHE), so a second compile of the same thing is a copy.
    """
    net = network(variant, num_classes, width, lrn)
    tvm_target = build.parse_target(target)
    start = time.perf_counter()
    batch = _batch(batch)
    if tuning_log and batch is None:
        raise click.BadParameter("a tuning log holds schedules for fixed batch sizes: give --batch N",
                                 param_hint="'--batch'")
    with notes.status(f"compiling {variant} for {target} ..."):
        out = build.build(net, tvm_target, batch, output, tuning_log)
    manifest = build.Manifest.load(out / build.MANIFEST)
    _print_kernels(net, manifest.batch)
    if tuning_log:
        fallback = [k.name for k in net.compiled_kernels() if k.name not in manifest.tuned]
        notes.print(f"tuned from {tuning_log}: {', '.join(manifest.tuned) or 'none'}")
        notes.print(f"default schedule: {', '.join(fallback) or 'none'}")
    size = (out / build.LIBRARY).stat().st_size / 2**20
    notes.print(f"wrote {out / build.LIBRARY} ({size:.1f} MiB) and {out / build.MANIFEST} "
                f"in {time.perf_counter() - start:.1f} s (compile took {manifest.build_seconds} s)")


# -- tune --------------------------------------------------------------------------------------


@main.command("tune")
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Batch size to tune for (tuned schedules are per batch size).")
@target_option
@click.option("--trials", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Candidates to search and measure in all, across kernels (0: only re-target --from).")
@click.option("--trials-per-kernel", type=click.IntRange(min=1), default=None,
              help="At most this many per kernel, counting those already in the log (default: --trials).")
@click.option("--kernel", "only", multiple=True, help="Tune only these kernels (repeatable).")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Log folder (default: tuning_logs/<target>, e.g. tuning_logs/llvm-znver3). Existing "
                   "records are kept and count towards the budgets, so rerunning resumes.")
@click.option("--trials-per-round", type=click.IntRange(min=1), default=64, show_default=True,
              help="Candidates measured (and recorded) together; an interrupt loses at most one round.")
@click.option("--seed", type=int, default=None, help="Seed of the search (default: random).")
@click.option("--from", "source", type=click.Path(file_okay=False, exists=True), default=None,
              help="A log tuned for another target (e.g. tuning_logs/cuda-sm_80): re-target its best records "
                   "to --target first, and start the search from them.")
@click.option("--top-k", type=click.IntRange(min=1), default=8, show_default=True,
              help="Records per kernel to re-target with --from.")
@click.option("--backward", is_flag=True, help="Also tune the backward kernels of training.")
def tune_cmd(variant, num_classes, width, lrn, batch, target, trials, trials_per_kernel, only, log_dir,
             trials_per_round, seed, source, top_k, backward):
    """Tune every kernel with MetaSchedule and record the results.

    The gradient task scheduler hands trials to the kernels that take the
    most time. Records are appended as they are measured: interrupt it (Ctrl-C,
    or kill) and run the same command again to continue. Dropout, softmax and
    the elementwise gradients are not tuned (microseconds), nor max-pool's
    gradient (see tuning.tunable). On a CPU the search starts from the default
    schedules, which are recorded first.

    With --from, the best records of a log tuned for another target are
    applied afresh, checked by the new target's postprocessors, built for it,
    measured here and recorded, before the search continues from them.
    """
    from . import tuning

    net = network(variant, num_classes, width, lrn)
    names = [k.name for k in net.kernels() + net.backward_kernels() if tuning.tunable(k)]
    for name in only:
        if name not in names:
            raise click.BadParameter(f"no tunable kernel {name!r}; kernels are {', '.join(names)}",
                                     param_hint="'--kernel'")
    tvm_target = build.parse_target(target)
    log_dir = log_dir or Path("tuning_logs") / tuning.target_dirname(tvm_target)
    start = time.perf_counter()

    def report(task, progress):
        measured = sum(t.done - t.done_before for t in progress)
        planned = min(trials, sum(max(0, t.trials - t.done_before) for t in progress))
        elapsed = time.perf_counter() - start
        eta = f"{elapsed / measured * max(planned - measured, 0) / 60:.1f} min" if measured else "-"
        notes.print(f"{task.kernel.name:<12} {task.done:>5}/{task.trials} trials  best {task.gflops:8.2f} GFLOP/s"
                    f"  | this run {measured}/{planned}, {elapsed / 60:.1f} min, ETA {eta}")

    def retargeted(r):
        best = f", best {r.best_seconds * 1e3:.3f} ms" if r.best_seconds else ""
        notes.print(f"{r.kernel:<12} re-targeted from {source}: {r.candidates} records, {r.applied} apply, "
                    f"{r.built} build, {r.recorded} measured and recorded{best}")

    notes.print(f"tuning {variant} batch {batch} for {target} into {log_dir} ({trials} trials)")
    try:
        result = tuning.tune(net, batch, tvm_target, log_dir, trials, trials_per_kernel, report,
                             list(only) or None, seed, trials_per_round, source, top_k, retargeted, backward)
    except (KeyboardInterrupt, RuntimeError) as e:
        if not isinstance(e, KeyboardInterrupt) and "KeyboardInterrupt" not in str(e):
            raise  # MetaSchedule's C++ loop hands a Ctrl-C back as a RuntimeError
        raise click.ClickException(f"interrupted; what was measured is in {log_dir}: run the same command "
                                   "to continue") from None
    table = Table(title=f"{variant} batch {batch}, {target}: best schedules in {log_dir}")
    for col in ("kernel", "trials", "ms", "GFLOP/s", "builds use"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    for t in result.progress:
        if t.best_seconds < float("inf"):
            table.add_row(t.kernel.name, str(t.done), f"{t.best_seconds * 1e3:.3f}", f"{t.gflops:.2f}", t.used)
        else:
            table.add_row(t.kernel.name, str(t.done), "-", "-", t.used)
    results.print(table)
    if result.skipped:
        notes.print(f"already at their trial budget: {', '.join(result.skipped)}")
    if result.unreadable:
        notes.print(f"[yellow]note:[/] {result.unreadable} records were not logged: MetaSchedule wrote them in a "
                    "form its own reader rejects")
    if result.wall_seconds:
        notes.print(f"{result.wall_seconds / 60:.1f} min: building {result.build_seconds / 60:.1f} min "
                    f"({100 * result.build_seconds / result.wall_seconds:.0f}%), measuring "
                    f"{result.run_seconds / 60:.1f} min ({100 * result.run_seconds / result.wall_seconds:.0f}%), "
                    "the rest searching")


@main.command("logs")
@click.argument("log_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@network_options
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 32), show_default=True,
              help="Batch sizes to report coverage for (repeatable).")
@click.option("--merge-into", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Add every record of the LOG_DIRS (each distinct one once) to this log, and show it.")
@click.option("--prune", is_flag=True,
              help="Drop the records of workloads that no kernel of this network has (left by kernels changed "
                   "since they were tuned, or by other variants: their records go too).")
def logs_cmd(log_dirs, variant, num_classes, width, lrn, batches, merge_into, prune):
    """Show a tuning log: where it came from, its targets, and for each kernel
    of a variant the best GFLOP/s recorded per target and batch size. With
    --merge-into, merge several logs (from other machines or targets) first;
    with --prune, drop what no kernel of the variant can use."""
    from . import tuning

    net = network(variant, num_classes, width, lrn)
    if merge_into is not None:
        added = tuning.merge(list(log_dirs), merge_into)
        notes.print(f"merged {added} new records into {merge_into}")
        log_dirs = (merge_into,)
    elif len(log_dirs) > 1:
        raise click.UsageError("several logs are shown merged: add --merge-into DIR")
    (log_dir,) = log_dirs
    if prune:
        dropped, workloads = tuning.prune(log_dir, net)
        notes.print(f"pruned {dropped} records of {workloads} workloads that no kernel of {net.variant} has")
    database = tuning.read_log(log_dir, best_only=True)
    for entry in tuning.provenance(log_dir):
        notes.print(f"{entry['date']}  {entry['cpu']} ({entry['machine']}), TVM {entry['tvm']}: {entry['note']}")
    targets = tuning.log_targets(database)
    if not targets:
        notes.print(f"{log_dir}: no tuning records yet")
        return
    table = Table(title=f"{log_dir}: best GFLOP/s per kernel ({tuning.record_count(log_dir)} records)")
    table.add_column("kernel")
    columns = [(t, b) for t in targets for b in batches]
    for t, b in columns:
        table.add_column(f"{tuning.target_dirname(t)} b{b}", justify="right")
    forward = [k for k in net.kernels() if tuning.tunable(k)]
    covered = dict.fromkeys(columns, 0)
    for k in forward + [k for k in net.backward_kernels() if tuning.tunable(k)]:
        best = {(t, b): tuning.best_record(database, tuning.task_module(k, b), t) for t, b in columns}
        if k not in forward and not any(best.values()):
            continue  # backward kernels are shown where tuned (tune --backward)
        for c, record in best.items():
            covered[c] += k in forward and record is not None
        table.add_row(k.name, *["-" if record is None else _gflops(k.flops * b / tuning.mean_seconds(record) / 1e9)
                                for (t, b), record in best.items()])
    table.add_row("coverage (forward)", *[f"{covered[c]}/{len(forward)}" for c in columns])
    results.print(table)


def _gflops(rate: float) -> str:
    return f"{rate:.1f}" if rate >= 1 else f"{rate:.2g}"  # tiny kernels run below 0.05


@main.command("schedules")
@click.option("--tuning-log", type=click.Path(file_okay=False, exists=True), default=None,
              help="Export the log's best schedules (default: the hand-written default CPU schedules).")
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Batch size of the log's records (the defaults are exported for any batch).")
@target_option
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder (default: schedules/<target>/b<batch>, or schedules/default).")
def schedules_cmd(tuning_log, variant, num_classes, width, lrn, batch, target, output):
    """Write each kernel's schedule as readable TVMScript, one file per kernel.

    What the log's best record (or the default schedule) does to the kernel:
    tiling, layout, parallel and vector loops, before lowering. Read it
    without running TVM.
    """
    from . import cpu_schedules, tuning

    net = network(variant, num_classes, width, lrn)
    tvm_target = build.parse_target(target)
    if tuning_log is None:
        output = output or Path("schedules") / "default"
        regenerate = f"tvm-alexnet schedules --variant {variant}"
        schedules = {k: (cpu_schedules.default_schedule(graph.kernel_func(k, None), k, None),
                         "hand-written default (tvm_alexnet/cpu_schedules.py), batch n")
                     for k in net.compiled_kernels() if k.op in cpu_schedules.SCHEDULES}
    else:
        output = output or Path("schedules") / tuning.target_dirname(tvm_target) / f"b{batch}"
        regenerate = (f"tvm-alexnet schedules --tuning-log {tuning_log} --variant {variant} --batch {batch} "
                      f"--target {target}")
        database = tuning.read_log(tuning_log)
        defaults = tuning.default_times(tuning_log)
        schedules = {}
        for kernel in net.compiled_kernels():
            func = tuning.tuned_kernel(database, kernel, batch, tvm_target, defaults)
            if func is not None:
                task = tuning.task_module(kernel, batch)
                seconds = tuning.mean_seconds(tuning.best_record(database, task, tvm_target))
                schedules[kernel] = (func, f"batch {batch}, for {tuning.target_dirname(tvm_target)}: best of "
                                           f"{tuning.trials_done(database, task, tvm_target)} trials in "
                                           f"{tuning_log}, {seconds * 1e3:.3f} ms, "
                                           f"{kernel.flops * batch / seconds / 1e9:.1f} GFLOP/s")
    for kernel, (func, about) in schedules.items():
        header = f"# {kernel.name} ({kernel.op}) of {variant}, {about}\n# regenerate: {regenerate}\n"
        write_atomic(output / f"{kernel.name}.py", header + func.with_attr("global_symbol", kernel.name).script())
    names = [k.name for k in schedules]
    notes.print(f"wrote {len(names)} schedules to {output}: {', '.join(names) or 'none (no records)'}")
    # A kernel whose record no longer beats its default would otherwise keep a file that builds do not use.
    stale = [output / f"{k.name}.py" for k in net.compiled_kernels() if k.name not in names]
    stale = [path for path in stale if path.exists()]
    for path in stale:
        path.unlink()
    if stale:
        notes.print(f"removed {len(stale)} no longer used: {', '.join(p.stem for p in stale)}")


# -- kernels -----------------------------------------------------------------------------------


def _print_kernels(net, batch: int | None) -> None:
    table = Table(title=f"{net.variant} kernels (batch {'n' if batch is None else batch})")
    for col in ("kernel", "op", "inputs", "params", "output", "MFLOP/image"):
        table.add_column(col, justify="right" if col == "MFLOP/image" else "left")
    b = "n" if batch is None else str(batch)
    for k in net.compiled_kernels():
        table.add_row(k.name, k.op, ", ".join(_shape(b, s) for s in k.inputs),
                      ", ".join(_shape(None, s) for s in k.params), _shape(b if k.batch_output else None, k.output),
                      f"{k.flops / 1e6:,.1f}")
    results.print(table)


def _shape(batch: str | None, shape) -> str:
    return "x".join(([batch] if batch else []) + [str(d) for d in shape])


@main.command("kernels")
@network_options
@click.option("--batch", default="any", show_default=True, help="Batch size, or 'any'.")
@target_option
@click.option("--source", type=click.Choice(["none", "tvmscript", "cuda"]), default="none", show_default=True,
              help="Also print each kernel's TVMScript (as scheduled for the target) or CUDA C source.")
@click.option("--kernel", "only", default=None, help="Only this kernel (e.g. conv2_lrn).")
@click.option("--time", "timed", is_flag=True,
              help="Compile and time each kernel on random input on this machine (at --batch, 1 for 'any').")
def kernels_cmd(variant, num_classes, width, lrn, batch, target, source, only, timed):
    """List every kernel with its shapes and FLOPs, print its source, time it."""
    net = network(variant, num_classes, width, lrn)
    names = [k.name for k in net.compiled_kernels()]
    if only is not None and only not in names:
        raise click.BadParameter(f"no kernel {only!r}; kernels are {', '.join(names)}", param_hint="'--kernel'")
    tvm_target = build.parse_target(target)
    batch = _batch(batch)
    if timed:
        _time_kernels(AlexNet(variant, num_classes, width, lrn), target, batch or 1, only)
        return
    if source == "none":
        _print_kernels(net, batch)
        return
    if source == "cuda":
        if tvm_target.kind.name != "cuda":
            raise click.BadParameter("--source cuda needs a cuda target, e.g. --target cuda:sm_90",
                                     param_hint="'--target'")
        code = cuda.source(build.compile_module(net, batch, tvm_target)[0].mod)
        for name in [only] if only else names:
            click.echo(f"// ---- {name} ----")
            click.echo(_cuda_kernels(code, name))
        return
    mod, _ = build.schedule(graph.build_module(net, batch), net, batch, tvm_target)
    for name in [only] if only else names:
        click.echo(f"# ---- {name} ----")
        click.echo(mod[name].with_attr("global_symbol", name).script())


def _time_kernels(model: AlexNet, target: str, batch: int, only: str | None) -> None:
    with notes.status(f"compiling for {target} ..."):
        model.compile(target)
    device = torch.device(model.compiled.device_type)
    model.to(device)
    table = Table(title=f"{model.spec.variant} kernels, batch {batch}, {target} (median of 5)")
    for col in ("kernel", "ms", "GFLOP/s"):
        table.add_column(col, justify="left" if col == "kernel" else "right")
    for k in model.spec.compiled_kernels():
        if only and k.name != only:
            continue
        inputs = [torch.randn(batch, *s, device=device) for s in k.inputs]
        layer = getattr(model, k.layer) if k.params else None
        params = [layer.weight.detach(), layer.bias.detach()][:len(k.params)] if layer else []
        seconds = sorted(model.compiled.time_kernel(k.name, inputs + params, number=1, repeat=5))[2]
        table.add_row(k.name, f"{seconds * 1e3:.2f}", f"{k.flops * batch / seconds / 1e9:.2f}")
    results.print(table)


def _cuda_kernels(code: str, name: str) -> str:
    """The __global__ functions generated for one kernel (dlight may split a
    kernel in several)."""
    parts = re.split(r'(?=extern "C" __global__)', code)
    return "".join(p for p in parts if re.search(rf"\b{re.escape(name)}_kernel(_\d+)?\(", p.split("{")[0]))


# -- report ------------------------------------------------------------------------------------


@main.command("report")
@network_options
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True,
              help="Batch size (repeatable; default 1).")
@target_option
@tuning_log_option
@click.option("--repeat", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed repeats per kernel and engine (median reported, spread from their range).")
@click.option("--min-repeat-ms", type=click.IntRange(min=0), default=50, show_default=True,
              help="Each repeat calls a kernel as often as it takes to last this long.")
@click.option("--backward/--no-backward", default=True, show_default=True, help="Include the gradient kernels.")
@click.option("--torch-compile/--no-torch-compile", default=True, show_default=True,
              help="Time the whole network under torch.compile too (its compile takes a minute).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the report as Markdown instead of tables.")
@click.option("--plot", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the per-kernel time breakdown and the roofline chart (PNG) into this folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write JSON, Markdown and both plots into this folder (as reports/ in the repository).")
@click.option("--compare", nargs=2, type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              metavar="A.json B.json", help="Show two reports side by side (B's speed-up over A) instead of measuring.")
def report_cmd(variant, num_classes, width, lrn, batches, target, tuning_log, repeat, min_repeat_ms, backward,
               torch_compile, as_json, as_markdown, plot, out, compare):
    """Time every kernel against torch and the machine's peaks.

    For each kernel (forward and backward): shape, FLOPs, bytes moved,
    median time and spread, GFLOP/s, arithmetic intensity, percent of the
    measured SGEMM and copy bandwidth, tuned or default schedule, and the
    same operation through torch on the same device (oneDNN on CPU, cuDNN on
    GPU). Then the whole network: TVM against torch eager and torch.compile.
    """
    from . import report as rp

    if as_json and as_markdown:
        raise click.UsageError("give --json or --markdown, not both")
    if compare:
        a, b = (rp.load(path) for path in compare)
        _print_comparison(a, b, compare, as_markdown)
        return
    batches = batches or (1,)
    if as_json and len(batches) > 1:
        raise click.UsageError("--json prints one report: give one --batch (or use --out)")
    net = network(variant, num_classes, width, lrn)
    tvm_target = build.parse_target(target)
    model = AlexNet(variant, num_classes, width, lrn).eval()
    for batch in batches:
        log = _tuning_log(tuning_log, net, batch, tvm_target)
        with notes.status(f"compiling for {target} ...") as status:
            model.compile(target, batch=batch if log else None, tuning_log=log)
            model.to(torch.device(model.compiled.device_type))
            report = rp.measure(model, batch, tvm_target, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                backward=backward, torch_compile=torch_compile, tuning_log=log,
                                progress=lambda message: status.update(f"batch {batch}: {message}"))
        written = []
        if out is not None:
            stem = rp.basename(report)
            write_atomic(out / f"{stem}.json", json.dumps(report, indent=1) + "\n")
            write_atomic(out / f"{stem}.md", rp.markdown(report))
            written += [out / f"{stem}.json", out / f"{stem}.md"]
        for folder in {plot, out} - {None}:
            written += rp.plot(report, folder)
        if as_json:
            click.echo(json.dumps(report, indent=1))
        elif as_markdown:
            click.echo(rp.markdown(report))
        else:
            _print_report(report)
        if written:
            notes.print(f"wrote {', '.join(map(str, written))}")


def _print_report(report: dict) -> None:
    from . import report as rp

    results.print(rp.title(report))
    for line in rp.summary(report):
        results.print(f"  {line}")
    results.print(_table("whole network", rp.NETWORK_COLUMNS, rp.network_table(report)))
    results.print(_table("kernels", rp.KERNEL_COLUMNS, rp.kernel_table(report)),
                  width=max(results.width, 150))  # too wide to squeeze into 80 columns


def _print_comparison(a: dict, b: dict, paths, as_markdown: bool) -> None:
    from . import report as rp

    kernels, engines = rp.compare(a, b)
    header = [f"A = {paths[0]}: {rp.title(a)}", f"B = {paths[1]}: {rp.title(b)}"]
    engine_columns = ("engine", "A ms", "B ms", "B vs A")
    if as_markdown:
        click.echo("\n\n".join(["\n".join(f"- {h}" for h in header), rp.markdown_table(engine_columns, engines),
                                 rp.markdown_table(rp.COMPARE_COLUMNS, kernels)]))
        return
    for h in header:
        results.print(h)
    results.print(_table("whole network (B vs A: A's time / B's, above 1x B is faster)", engine_columns, engines))
    results.print(_table("kernels", rp.COMPARE_COLUMNS, kernels))


def _table(title: str, columns, rows) -> Table:
    """A rich table: the first column (and `schedule`) left-aligned, numbers right."""
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 or col == "schedule" else "right")
    for row in rows:
        table.add_row(*row)
    return table


# -- run ---------------------------------------------------------------------------------------


@main.command("run")
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint: .safetensors written by tvm-alexnet or `convert` (it records the variant, width, "
                   "classes, LRN and preprocessing), or a torch state dict (ours, read with the network options; "
                   "or torchvision's alexnet). Without it the weights are random and so are the predictions.")
@network_options
@target_option
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images per call of the compiled network.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="Classes to print per image.")
@click.option("--logits", is_flag=True, help="Print the raw logits instead of the top classes.")
@click.option("--resize/--no-resize", default=True, show_default=True,
              help="Scale the shorter side to 256 and crop the centre (else images must already have the "
                   "network's input size).")
@click.option("--random", "num_random", type=click.IntRange(min=1), default=1, show_default=True,
              help="With no INPUTS: how many random images to run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights and images.")
@tuning_log_option
def run_cmd(inputs, weights, variant, num_classes, width, lrn, target, batch_size, top, logits, resize,
            num_random, seed, tuning_log):
    """Classify images (files or folders) with the compiled network.

    With no INPUTS, runs random images. Prints the top classes of each image
    (or its logits) and the time the kernels took.
    """
    torch.manual_seed(seed)
    model = _model(weights, variant, num_classes, width, lrn).eval()
    net = model.spec
    if inputs:
        files = image_files(inputs)
        images = torch.stack([load_image(f, net.image_size, model.preprocessing, resize) for f in files])
        names = [str(f) for f in files]
    else:
        images = torch.randn(num_random, *net.input_shape)
        names = [f"random[{i}]" for i in range(num_random)]
    if not weights:
        notes.print("[yellow]note:[/] no --weights given: random weights, meaningless classes")
    _compile_any_batch(model, target, tuning_log)
    device = torch.device(model.compiled.device_type)
    model.to(device)
    outputs, seconds = [], 0.0
    with torch.no_grad():
        for batch in images.split(batch_size):
            batch = batch.to(device)
            start = time.perf_counter()
            out = model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            outputs.append(out.cpu())
    outputs = torch.cat(outputs)
    labels = _class_names(net.num_classes)
    for name, out in zip(names, outputs):
        if logits:
            click.echo(f"{name}: {json.dumps([round(v, 6) for v in out.tolist()])}")
            continue
        # Ranked by logit: probabilities too small for float32 all read 0 and would tie.
        idx = out.topk(min(top, net.num_classes)).indices
        probs = out.double().softmax(-1)[idx]
        best = ", ".join(f"{p:.4f} {labels[i]} ({i})" if labels else f"{p:.4f} class {i}"
                         for p, i in zip(probs.tolist(), idx.tolist()))
        click.echo(f"{name}: {best}")
    notes.print(f"{len(images)} image(s) in {seconds * 1e3:.1f} ms ({len(images) / seconds:.1f} images/s, "
                  f"{target}, batch size {batch_size})")


def _class_names(num_classes: int) -> list[str] | None:
    from . import imagenet

    return imagenet.names() if num_classes == imagenet.CLASSES else None


# -- demo --------------------------------------------------------------------------------------


SHIPPED_LOGS = Path(__file__).resolve().parent.parent / "tuning_logs"  # in a source checkout


def _tuning_log(option: str, net, batch: int | None, tvm_target) -> Path | None:
    """--tuning-log: a folder, 'none', or 'auto' (the shipped log where it
    holds the network at this batch size, or at any with batch None)."""
    from . import tuning

    if option == "none":
        return None
    if option != "auto":
        return Path(option)
    path = SHIPPED_LOGS / tuning.target_dirname(tvm_target)
    if not (path / tuning.WORKLOADS).exists():
        return None
    batches = tuning.log_batches(path, net)
    return path if (batch in batches if batch else batches) else None


def _compile_any_batch(model: AlexNet, target: str, tuning_log: str) -> None:
    """Compile for any batch size, with the tuned builds of the log's batch sizes."""
    log = _tuning_log(tuning_log, model.spec, None, build.parse_target(target))
    with notes.status(f"compiling for {target} ..."):
        model.compile(target, tuning_log=log)
    if model.tuned_batches:
        notes.print(f"{log}: batches run in chunks of {' or '.join(map(str, sorted(model.tuned_batches)))} "
                    "on its tuned kernels where they fit, the rest on the default schedules")


@main.command("demo")
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@target_option
@tuning_log_option
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per layer (median reported).")
def demo_cmd(variant, num_classes, width, lrn, batch, target, tuning_log, repeat):
    """Compile a network, check it against torch, time its layers.

    Builds every kernel with TVM (cached after the first run), with the
    shipped tuning log where it covers the network and batch, runs a batch
    of random images through the compiled network and through the plain torch
    reference with the same random weights, prints the relative error and
    each layer's time. No GPU and no download needed.
    """
    torch.manual_seed(0)
    model = AlexNet(variant, num_classes, width, lrn).eval()
    net = model.spec
    results.print(f"[bold]{variant}[/] AlexNet: {net.num_params:,} parameters, "
                  f"{net.flops() / 1e9:.2f} GFLOP per image, input {'x'.join(map(str, net.input_shape))}")
    tvm_target = build.parse_target(target)
    log = _tuning_log(tuning_log, net, batch, tvm_target)
    start = time.perf_counter()
    with notes.status(f"compiling {len(net.compiled_kernels())} kernels for {target} ..."):
        model.compile(target, batch=batch if log else None, tuning_log=log)
    tuned = model.compiled.manifest.tuned
    results.print(f"compiled for {target} in {time.perf_counter() - start:.1f} s "
                  f"(kernels cached in {build.cache_dir()}); "
                  + (f"{len(tuned)} kernels scheduled from {log}, the rest by default" if log
                     else "default schedules (no tuning log for this target and batch)"))
    device = torch.device(model.compiled.device_type)
    model.to(device)
    x = torch.randn(batch, *net.input_shape, device=device)
    with torch.no_grad():
        start = time.perf_counter()
        out = model(x)
        tvm_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ref = model.reference_forward(x)
        torch_seconds = time.perf_counter() - start
    error = ((out - ref).norm() / ref.norm()).item()
    results.print(f"batch {batch}: TVM {tvm_seconds * 1e3:.0f} ms, torch {torch_seconds * 1e3:.0f} ms; "
                  f"relative error ||tvm - torch|| / ||torch|| = {error:.2e}")
    table = Table(title=f"per-layer time, batch {batch} (median of {repeat})")
    for col in ("layer", "kernels", "output", "ms", "GFLOP/s"):
        table.add_column(col, justify="left" if col in ("layer", "kernels") else "right")
    kernels = net.kernels()
    h = x
    total = 0.0
    for layer in net.layers:
        module = getattr(model, layer.name)
        if layer.name == net.dense[0].name:
            h = h.flatten(1)
        args = [h, module.weight.detach(), module.bias.detach()]
        seconds = sorted(model.compiled.time_function(layer.name, args, number=1, repeat=repeat))[repeat // 2]
        with torch.no_grad():
            h = model.compiled.layer(layer.name, h, args[1:])
        mine = [k for k in kernels if k.layer == layer.name]
        flops = sum(k.flops for k in mine) * batch
        total += seconds
        table.add_row(layer.name, " ".join(k.name for k in mine), "x".join(map(str, h.shape)),
                      f"{seconds * 1e3:.1f}", f"{flops / seconds / 1e9:.1f}")
    table.add_row("total", "", "", f"{total * 1e3:.1f}", f"{net.flops() * batch / total / 1e9:.1f}")
    results.print(table)
    if error > 1e-4:
        raise click.ClickException(f"compiled network disagrees with torch: relative error {error:.2e}")


# -- train, eval, pca ----------------------------------------------------------------------------


def _data_sets(data: Path | None, demo: bool, variant: str):
    """(train, validation, classes) of 256x256 images: the demo digits, or DATA/train and DATA/val."""
    from . import data as d

    transform = d.FullImage(PREPROCESSING[variant])
    if demo:
        return d.Digits(True, transform), d.Digits(False, transform), d.Digits.classes
    if data is None:
        raise click.UsageError("give --data DIR (holding train/<class>/ and val/<class>/) or --demo")
    train_set, val_set = d.ImageFolder(data / "train", transform), d.ImageFolder(data / "val", transform)
    if train_set.classes != val_set.classes:
        raise click.BadParameter(f"{data}/train and {data}/val hold different class folders", param_hint="'--data'")
    return train_set, val_set, train_set.classes


@main.command("train")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="An ImageFolder tree: DATA/train/<class>/*.jpg and DATA/val/<class>/*.jpg (ImageNet's layout).")
@click.option("--demo", is_flag=True, help="Train on scikit-learn's handwritten digits (no download), "
                                           "width 0.25 and torch's initialisation unless given.")
@click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS))
@click.option("--width", type=float, default=None, help="Channel multiplier (default 1, or 0.25 with --demo).")
@click.option("--lrn", metavar="|".join(LRN_CONVENTIONS), default=None)
@click.option("--init", type=click.Choice(["paper", "torch"]), default=None,
              help="Weight initialisation (default paper, or torch with --demo).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Default 90, or 3 with --demo.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default 128, or 32 with --demo.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--lr-factor", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="Multiply the learning rate by this when the validation error stops improving.")
@click.option("--patience", type=click.IntRange(min=0), default=0, show_default=True,
              help="Epochs without improvement before that.")
@click.option("--pca", "pca_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Colour PCA from `tvm-alexnet pca`: enables the paper's colour augmentation.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data loading processes.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also checkpoint every N steps (0: at the end of each epoch only).")
@click.option("--seed", type=int, default=0, show_default=True)
@target_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoint (last.pt), metrics.jsonl, training.png and final weights (default runs/alexnet, "
                   "or a new runs/demo-<time> with --demo).")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt with the same next batch.")
@click.option("--towers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Under torchrun with 2 processes: 2 runs the paper's towers, one per process (else the "
                   "processes are data-parallel).")
@click.option("--dist-timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Under torchrun: seconds a rank waits for the others before it gives up with an error.")
@tuning_log_option
def train_cmd(data, demo, variant, width, lrn, init, epochs, batch_size, lr, momentum, weight_decay, lr_factor,
              patience, pca_file, workers, checkpoint_every, seed, target, out, resume, towers, dist_timeout,
              tuning_log):
    """Train with the paper's recipe: every layer's forward and backward compiled by TVM.

    SGD (momentum 0.9, weight decay 5e-4, batch 128), learning rate 0.01
    divided by 10 when the validation error stops improving, random 227x227
    crops of 256x256 images with flips (and, with --pca, colour noise).
    Interrupt it and run it again with --resume: it continues from the last
    checkpoint with the same next batch.

    Launched by `torchrun --nproc-per-node M [--nnodes N ...] -m tvm_alexnet
    train ...` the processes train data-parallel (the batch split between
    them, gradients averaged), or with --towers 2 as the paper's two towers.
    """
    from .data import ColourPCA
    from .parallel import close, from_environment
    from .train import CHECKPOINT, Recipe, load_checkpoint, train

    width = width if width is not None else (0.25 if demo else 1.0)
    out = out or (Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S") if demo else Path("runs/alexnet"))
    recipe = Recipe(batch_size=batch_size or (32 if demo else 128), lr=lr, momentum=momentum,
                    weight_decay=weight_decay, lr_factor=lr_factor, patience=patience,
                    epochs=epochs or (3 if demo else 90), seed=seed, workers=workers,
                    checkpoint_every=checkpoint_every)
    parallel = from_environment(towers, dist_timeout)
    if recipe.batch_size % parallel.data_shards:
        raise click.BadParameter(f"{recipe.batch_size} does not split over {parallel.data_shards} processes",
                                 param_hint="'--batch-size'")
    train_set, val_set, classes = _data_sets(data, demo, variant)
    pca = ColourPCA.load(pca_file) if pca_file else None
    torch.manual_seed(seed)
    model = AlexNet(variant, len(classes), width, lrn)
    model.reset_parameters(init or ("torch" if demo else "paper"))
    if (out / CHECKPOINT).exists():  # before compiling: a checkpoint that cannot be resumed fails at once
        if not resume:
            raise click.UsageError(f"{out / CHECKPOINT} exists: add --resume to continue it, or choose another --out")
        load_checkpoint(out / CHECKPOINT, model)
    if parallel.main:
        notes.print(f"{variant} width {width}: {model.spec.num_params:,} parameters, {len(classes)} classes, "
                    f"{len(train_set)} training and {len(val_set)} validation images"
                    + (f"; {parallel.world} processes, {parallel.mode} parallel" if parallel.world > 1 else ""))
    local = model
    if parallel.mode == "towers":
        from .towers import DistributedTowerAlexNet

        local = DistributedTowerAlexNet(model.spec)
        local.load_single_state_dict(model.state_dict())  # the same initial weights as one process
    shard = recipe.batch_size // parallel.data_shards
    log = None
    with notes.status(f"compiling forward and backward kernels for {target}, batch {shard} ..."):
        if parallel.mode == "towers":  # a log holds the whole network's kernels; a tower's are half as wide
            local.compile(target, batch=shard)
        else:
            log = _tuning_log(tuning_log, model.spec, shard, build.parse_target(target))
            local.compile(target, batch=shard, tuning_log=log)
    if log and parallel.main:
        notes.print(f"{log}: {len(local.compiled.manifest.tuned)} of {len(model.spec.compiled_kernels())} kernels "
                    f"tuned at batch {shard}, the rest on the default schedules")
    history = train(local, train_set, val_set, recipe, out, resume=resume, pca=pca, log=notes.print,
                    parallel=parallel)
    if parallel.mode == "towers":
        model.load_state_dict(local.single_state_dict())
    close(parallel)
    if not parallel.main:
        return
    model.save(out / "weights.safetensors")
    last = history[-1]
    results.print(f"epoch {last['epoch']}: validation top-1 error {100 * last['val_top1_error']:.1f}%, "
                  f"top-5 {100 * last['val_top5_error']:.1f}% (chance {100 * (1 - 1 / len(classes)):.0f}%); "
                  f"{last['images_per_s']:.1f} images/s; wrote {out}/weights.safetensors, metrics.jsonl, "
                  "training.png")


@main.command("eval")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), required=True,
              help="A checkpoint (its preprocessing, e.g. Caffe's BGR for converted BVLC weights, is applied).")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Validation images: DATA/<class>/*.jpg (class folders sorted, or ImageNet WordNet ids for "
                   "1000 classes), or a flat folder with --labels or ILSVRC2012_val_*.JPEG names.")
@click.option("--labels", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="With a flat --data folder: '<image> <label>' lines (Caffe's val.txt), the label a class "
                   "number or a WordNet id.")
@click.option("--demo", is_flag=True, help="The demo digits' validation split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True)
@target_option
@tuning_log_option
def eval_cmd(weights, data, labels, demo, batch_size, workers, target, tuning_log):
    """Top-1 and top-5 error: centre crop and the paper's ten crops (corners,
    centre and their flips, softmax averaged)."""
    from . import data as d
    from .train import evaluate

    model = AlexNet.load(weights)
    transform = d.FullImage(model.preprocessing)
    if demo:
        dataset = d.Digits(False, transform)
    elif data is not None:
        dataset = _validation_set(data, labels, transform, model.spec.num_classes)
    else:
        raise click.UsageError("give --data DIR or --demo")
    _compile_any_batch(model, target, tuning_log)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    table = Table(title=f"{weights}: {len(dataset)} images")
    for col in ("crops", "top-1 error", "top-5 error", "images/s"):
        table.add_column(col, justify="left" if col == "crops" else "right")
    for name, ten in (("centre", False), ("10-crop", True)):
        r = evaluate(model, loader, ten_crop=ten, progress=True)
        table.add_row(name, f"{100 * r['top1_error']:.2f}%", f"{100 * r['top5_error']:.2f}%",
                      f"{r['images_per_s']:.1f}")
    results.print(table)


def _validation_set(data: Path, labels: Path | None, transform, num_classes: int):
    """Class folders, a label file, or ILSVRC2012 validation file names (labelled by their known classes)."""
    from . import data as d
    from . import imagenet

    index = imagenet.wordnet_index() if num_classes == imagenet.CLASSES else None
    if labels is not None:
        dataset = d.ImageList(data, labels, transform, index)
    elif any(p.is_dir() for p in data.iterdir()):
        folders = {p.name for p in data.iterdir() if p.is_dir()}
        dataset = d.ImageFolder(data, transform, index if index and folders <= index.keys() else None)
    else:
        files = image_files([data])
        samples = [(f, imagenet.val_label(f)) for f in files]
        unknown = [f for f, label in samples if label is None]
        if unknown:
            raise click.BadParameter(f"{unknown[0]} is not an ILSVRC2012 validation image name and no --labels "
                                     "file was given", param_hint="'--data'")
        dataset = d.LabelledImages(samples, transform)
    largest = max(label for _, label in dataset.samples)
    if largest >= num_classes:
        raise click.BadParameter(f"{data}: label {largest} is out of range for a network with {num_classes} "
                                 "classes", param_hint="'--data'")
    return dataset


@main.command("convert")
@click.argument("source", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The safetensors checkpoint to write (default: SOURCE with the suffix .safetensors).")
@click.option("--from", "fmt", type=click.Choice(["bvlc", "torchvision"]), default=None,
              help="SOURCE's format (default: from its suffix, .npy bvlc, .pth/.pt torchvision).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def convert_cmd(source, output, fmt, force):
    """Convert pretrained weights into a tvm-alexnet checkpoint.

    bvlc_alexnet.npy (BVLC's Caffe AlexNet, as in Kratzert's TensorFlow
    tutorial; unpickled safely, numpy arrays only) becomes the paper variant
    with Caffe's LRN and BGR, mean-subtracted input; torchvision's alexnet
    state dict (.pth, read with weights_only) the torchvision variant. The
    checkpoint records variant, LRN and preprocessing, so `run --weights`
    and `eval --weights` need nothing else.
    """
    from .convert import convert

    output = output or source.with_suffix(".safetensors")
    if output.exists() and not force:
        raise click.BadParameter(f"{output} exists (pass --force to replace it)", param_hint="'--output'")
    model = convert(source, fmt)
    model.save(output)
    net = model.spec
    results.print(f"{source} -> {output}: {net.variant} (width {net.width:g}, {net.num_classes} classes, "
                  f"LRN {net.lrn or 'none'}), {net.num_params:,} parameters, input "
                  f"{model.preprocessing.channels} {'x'.join(map(str, net.input_shape))}")


@main.command("pca")
@click.option("--data", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="An ImageFolder tree; its train/ folder is used.")
@click.option("--demo", is_flag=True)
@click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS))
@click.option("--images", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Training images sampled for the covariance.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("pca.json"),
              show_default=True)
def pca_cmd(data, demo, variant, images, output):
    """Eigenvectors and eigenvalues of the training set's RGB covariance, for
    the paper's colour augmentation (`train --pca`)."""
    from .data import colour_pca

    train_set, _, _ = _data_sets(data, demo, variant)
    pca = colour_pca(train_set, images)
    pca.save(output)
    results.print(f"eigenvalues {', '.join(f'{v:.3g}' for v in pca.eigvals)}; wrote {output}")


if __name__ == "__main__":
    main()
