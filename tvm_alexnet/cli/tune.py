"""tune, logs: search schedules with MetaSchedule, show and merge tuning logs."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from .. import tuning
from ..spec import network
from ..target import target_dirname
from .common import (
    network_options,
    notes,
    remote_devices,
    results,
    rpc_options,
    target_option,
    target_text,
)


@click.command("tune")
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
@rpc_options
def tune_cmd(variant, num_classes, width, lrn, pool, activation, batch, target, trials, trials_per_kernel, only,
             log_dir, trials_per_round, seed, source, top_k, backward, rpc, device_key):
    """Tune every kernel with MetaSchedule and record the results.

    The gradient task scheduler hands trials to the kernels that take the
    most time. Records are appended as they are measured: interrupt it (Ctrl-C,
    or kill) and run the same command again to continue. Dropout, softmax and
    the elementwise gradients are not tuned (microseconds), nor max-pool's
    gradient (see tuning.tunable), nor, unless --kernel names them, the
    convolutions a CPU build computes by Winograd at this batch (they take no
    record). On a CPU the search starts from the default schedules, which are
    recorded first.

    With --from, the best records of a log tuned for another target are
    applied afresh, checked by the new target's postprocessors, built for it,
    measured here and recorded, before the search continues from them.

    With --rpc HOST:PORT --device-key KEY, candidates are built here and
    measured on every device registered under KEY with that RPC tracker,
    as many at a time as there are devices (the default schedules and the
    final side-by-side timing too); --target describes those devices. A
    device that drops out fails only the candidates it was running.
    """
    remote = remote_devices(rpc, device_key)
    net = network(variant, num_classes, width, lrn, pool, activation)
    names = [k.name for k in net.kernels() + net.backward_kernels() if tuning.tunable(k)]
    for name in only:
        if name not in names:
            raise click.BadParameter(f"no tunable kernel {name!r}; kernels are {', '.join(names)}",
                                     param_hint="'--kernel'")
    log_dir = log_dir or Path("tuning_logs") / target_dirname(target)
    options = tuning.TuneOptions(batch=batch, target=target, log_dir=log_dir, trials=trials,
                                 trials_per_kernel=trials_per_kernel, kernels=list(only) or None, seed=seed,
                                 trials_per_round=trials_per_round, source=source, top_k=top_k, backward=backward,
                                 rpc=remote)
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

    if remote is not None:
        remote.check(target)  # an error in one line, before anything else is printed
    where = f", measured on the devices under {remote}" if remote else ""
    notes.print(f"tuning {variant} batch {batch} for {target_text(target)} into {log_dir} ({trials} trials{where})")
    try:
        result = tuning.tune(net, options, report=report, on_retarget=retargeted)
    except (KeyboardInterrupt, RuntimeError) as e:
        if not isinstance(e, KeyboardInterrupt) and "KeyboardInterrupt" not in str(e):
            raise  # MetaSchedule's C++ loop hands a Ctrl-C back as a RuntimeError
        raise click.ClickException(f"interrupted; what was measured is in {log_dir}: run the same command "
                                   "to continue") from None
    table = Table(title=f"{variant} batch {batch}, {target_text(target)}: best schedules in {log_dir}")
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
    if result.devices:
        notes.print(f"measured on {len(result.devices)} devices: "
                    + ", ".join(f"{where} ({n} candidates)" for where, n in result.devices.items()))


@click.command("logs")
@click.argument("log_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@network_options
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 32), show_default=True,
              help="Batch sizes to report coverage for (repeatable).")
@click.option("--merge-into", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Add every record of the LOG_DIRS (each distinct one once) to this log, and show it.")
@click.option("--prune", is_flag=True,
              help="Drop the records of workloads that no kernel of this network has (left by kernels changed "
                   "since they were tuned, or by other variants: their records go too).")
def logs_cmd(log_dirs, variant, num_classes, width, lrn, pool, activation, batches, merge_into, prune):
    """Show a tuning log: where it came from, its targets, and for each kernel
    of a variant the best GFLOP/s recorded per target and batch size. With
    --merge-into, merge several logs (from other machines or targets) first;
    with --prune, drop what no kernel of the variant can use."""
    net = network(variant, num_classes, width, lrn, pool, activation)
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
        table.add_column(f"{target_dirname(t)} b{b}", justify="right")
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
