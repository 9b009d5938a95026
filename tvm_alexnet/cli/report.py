"""report, demo: time every kernel against torch; compile, check and time a network at a glance."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import torch

from .. import build, placement, report_files
from .. import report as rp
from ..model import AlexNet
from ..spec import network
from ..tuning import resolve_log
from .common import (
    network_options,
    notes,
    remote_devices,
    results,
    rpc_options,
    table,
    target_option,
    target_text,
    tuning_log_option,
)


@click.command("report")
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
@rpc_options
def report_cmd(variant, num_classes, width, lrn, pool, activation, batches, target, tuning_log, repeat,
               min_repeat_ms, backward, torch_compile, as_json, as_markdown, plot, out, compare, rpc, device_key):
    """Time every kernel against torch and the machine's peaks.

    For each kernel (forward and backward): shape, FLOPs, bytes moved,
    median time and spread, GFLOP/s, arithmetic intensity, percent of the
    measured SGEMM and copy bandwidth, tuned or default schedule, and the
    same operation through torch on the same device (oneDNN on CPU, cuDNN on
    GPU). Then the whole network: TVM against torch eager and torch.compile.

    With --rpc HOST:PORT --device-key KEY the network is compiled here for
    --target and every kernel, and the whole network, timed on a device
    registered under KEY with that RPC tracker; torch and the peaks are not
    measured there ("-").
    """
    remote = remote_devices(rpc, device_key)
    if as_json and as_markdown:
        raise click.UsageError("give --json or --markdown, not both")
    if compare:
        _print_comparison(*(report_files.load(path) for path in compare), compare, as_markdown)
        return
    batches = batches or (1,)
    if as_json and len(batches) > 1:
        raise click.UsageError("--json prints one report: give one --batch (or use --out)")
    net = network(variant, num_classes, width, lrn, pool, activation)
    model = AlexNet(variant, num_classes, width, lrn, pool, activation).eval()
    if remote is not None:
        remote.check(target)  # an error in one line, before anything is compiled
    for batch in batches:
        log, message = resolve_log(tuning_log, net, batch, target)
        notes.print(message)
        with notes.status(f"compiling for {target_text(target)} ...") as status:
            if remote is not None:
                report = rp.measure_remote(model, batch, target, remote, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                           backward=backward, tuning_log=log,
                                           progress=lambda step: status.update(f"batch {batch}: {step}"))
            else:
                model.compile(target, batch=batch if log or build.static_batch_pays(net, batch, target) else None,
                              tuning_log=log)
                placement.move(model, placement.model_device(model))
                report = rp.measure(model, batch, target, repeat=repeat, min_repeat_ms=min_repeat_ms,
                                    backward=backward, torch_compile=torch_compile, tuning_log=log,
                                    progress=lambda step: status.update(f"batch {batch}: {step}"))
        written = report_files.write(report, out) if out is not None else []
        if plot is not None and plot != out:
            written += report_files.plot(report, plot)
        if as_json:
            click.echo(json.dumps(report, indent=1))
        elif as_markdown:
            click.echo(report_files.markdown(report))
        else:
            _print_report(report)
        if written:
            notes.print(f"wrote {', '.join(map(str, written))}")


def _print_report(report: dict) -> None:
    results.print(report_files.title(report))
    for line in report_files.summary(report):
        results.print(f"  {line}")
    results.print(table("whole network", report_files.NETWORK_COLUMNS, report_files.network_table(report)))
    results.print(table("kernels", report_files.KERNEL_COLUMNS, report_files.kernel_table(report)),
                  width=max(results.width, 150))  # too wide to squeeze into 80 columns


def _print_comparison(a: dict, b: dict, paths, as_markdown: bool) -> None:
    kernels, engines = report_files.compare(a, b)
    header = [f"A = {paths[0]}: {report_files.title(a)}", f"B = {paths[1]}: {report_files.title(b)}"]
    engine_columns = ("engine", "A ms", "B ms", "B vs A")
    if as_markdown:
        click.echo("\n\n".join(["\n".join(f"- {h}" for h in header), report_files.markdown_table(engine_columns, engines),
                                report_files.markdown_table(report_files.COMPARE_COLUMNS, kernels)]))
        return
    for h in header:
        results.print(h)
    results.print(table("whole network (B vs A: A's time / B's, above 1x B is faster)", engine_columns, engines))
    results.print(table("kernels", report_files.COMPARE_COLUMNS, kernels))


@click.command("demo")
@network_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@target_option
@tuning_log_option
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed runs per layer (median reported).")
def demo_cmd(variant, num_classes, width, lrn, pool, activation, batch, target, tuning_log, repeat):
    """Compile a network, check it against torch, time its layers.

    Builds every kernel with TVM (cached after the first run), with the
    shipped tuning log where it covers the network and batch, runs a batch
    of random images through the compiled network and through the plain torch
    reference with the same random weights, prints the relative error and
    each layer's time. No GPU and no download needed.
    """
    torch.manual_seed(0)
    model = AlexNet(variant, num_classes, width, lrn, pool, activation).eval()
    net = model.spec
    results.print(f"[bold]{variant}[/] AlexNet: {net.num_params:,} parameters, "
                  f"{net.flops() / 1e9:.2f} GFLOP per image, input {'x'.join(map(str, net.input_shape))}")
    log, message = resolve_log(tuning_log, net, batch, target)
    notes.print(message)
    start = time.perf_counter()
    with notes.status(f"compiling {len(net.compiled_kernels())} kernels for {target_text(target)} ..."):
        model.compile(target, batch=batch if log or build.static_batch_pays(net, batch, target) else None,
                      tuning_log=log)
    tuned = model.compiled.manifest.tuned
    results.print(f"compiled for {target_text(target)} in {time.perf_counter() - start:.1f} s "
                  f"(kernels cached in {build.cache_dir()}); "
                  + (f"{len(tuned)} kernels scheduled from {log}, the rest by default" if log
                     else "default schedules (no tuning log for this target and batch)"))
    device = placement.model_device(model)
    placement.move(model, device)
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
    layers = rp.time_layers(model, x, repeat)
    rows = [[r["layer"], " ".join(r["kernels"]), "x".join(map(str, r["output"])), f"{r['seconds'] * 1e3:.1f}",
             f"{r['flops'] / r['seconds'] / 1e9:.1f}"] for r in layers]
    total = sum(r["seconds"] for r in layers)
    rows.append(["total", "", "", f"{total * 1e3:.1f}", f"{net.flops() * batch / total / 1e9:.1f}"])
    results.print(table(f"per-layer time, batch {batch} (median of {repeat})",
                        ("layer", "kernels", "output", "ms", "GFLOP/s"), rows))
    if error > 1e-4:
        raise click.ClickException(f"compiled network disagrees with torch: relative error {error:.2e}")
