"""`tune`: MetaSchedule's search over a network's kernels, into a resumable
log; and `retarget`, which starts it from a log tuned for other targets."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from ..ops import winograd
from ..spec import Kernel, Network
from ..target import num_cores, same_target
from .defaults import default_seconds, record_default, settle, tuned_kernel
from .logfile import default_times, open_log, read_log, record_provenance
from .records import best_record, has_record, mean_seconds, succeeded, trials_done
from .remote import RemoteDevices, make_runner, run_error
from .search import search_space, task_module, tunable
from .workers import PoolBuilder, ReadableRecords, import_intrinsics, measure_and_record


@dataclass
class TuneOptions:
    """What `tune` searches: the kernels of a network at `batch` for
    `target`, `trials` candidates in all (at most `trials_per_kernel` each,
    counting what the log at `log_dir` holds already), `trials_per_round` at
    a time. `kernels` picks kernels by name (default: the forward kernels,
    and with `backward` the gradient kernels of training too). With
    `source`, a log tuned for other targets, its `top_k` best records per
    kernel are re-targeted first and the search starts from them. With
    `rpc`, candidates (and the default schedules) are built here and
    measured on the devices registered under its key with an RPC tracker;
    `target` then describes those devices."""

    batch: int
    target: tvm.target.Target
    log_dir: Path
    trials: int
    trials_per_kernel: int | None = None
    kernels: list[str] | None = None
    seed: int | None = None
    trials_per_round: int = 64
    source: Path | None = None
    top_k: int = 8
    backward: bool = False
    rpc: RemoteDevices | None = None


@dataclass
class TaskProgress:
    kernel: Kernel
    flops: float  # per call, at the tuned batch
    trials: int  # this kernel's cap, counting what the log held before
    done: int = 0  # trials in the log, before and during this run
    best_seconds: float = math.inf
    done_before: int = 0  # trials in the log when this run started
    used: str = "-"  # what builds take after this run: "record" or "default" (see settle)

    @property
    def budget(self) -> int:
        return max(0, self.trials - self.done)

    @property
    def gflops(self) -> float:
        return self.flops / self.best_seconds / 1e9 if self.best_seconds < math.inf else 0.0


@derived_object
class ProgressCallback(PyMeasureCallback):
    """Keeps per-kernel trials and best time, and reports them after every batch."""

    def __init__(self, progress: list[TaskProgress], report):
        super().__init__()
        self.progress, self.report = progress, report

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        task = self.progress[task_id]
        task.done += len(runner_results)
        for result in runner_results:
            if result.error_msg is None and result.run_secs:
                task.best_seconds = min(task.best_seconds, mean_seconds(result))
        self.report(task, self.progress)


@dataclass
class Retargeted:
    kernel: str
    candidates: int = 0  # the source's best records for other targets, at most top_k
    applied: int = 0  # that still apply and pass the new target's postprocessors
    built: int = 0
    recorded: int = 0  # measured here and recorded for the new target
    best_seconds: float | None = None


@dataclass
class TuneResult:
    progress: list[TaskProgress]
    wall_seconds: float
    build_seconds: float
    run_seconds: float
    skipped: list[str] = field(default_factory=list)  # kernels already at their budget
    unreadable: int = 0  # records MetaSchedule could not write readably, kept out of the log
    devices: dict[str, int] = field(default_factory=dict)  # with rpc: "host:port" -> candidates measured there


def retarget(source: ms.database.Database, database: ms.database.Database, kernel: Kernel, batch: int,
             target: tvm.target.Target, top_k: int, builder, runner) -> Retargeted:
    """Re-target the `top_k` best records of the kernel from a log tuned for
    other targets: apply each trace to the kernel afresh, run the new
    target's MetaSchedule postprocessors on it (which also verify GPU limits),
    build it for `target`, measure it here and record it."""
    from tvm.s_tir import Schedule

    mod = task_module(kernel, batch)
    if not source.has_workload(mod):
        return Retargeted(kernel.name)
    records, seen = [], set()
    for record in source.get_top_k(source.commit_workload(mod), 1 << 30):
        text = str(record.trace)
        if same_target(record.target, target) or text in seen or not succeeded(record):
            continue
        seen.add(text)
        records.append(record)
        if len(records) == top_k:
            break
    context = ms.TuneContext(mod, target=target, space_generator="post-order-apply", task_name=kernel.name)
    schedules = []
    for record in records:
        try:
            sch = Schedule(mod)
            record.trace.apply_to_schedule(sch, remove_postproc=True)
        except Exception:  # the trace does not apply to this TVM's kernel any more
            continue
        if all(p.apply(sch) for p in context.space_generator.postprocs) and not has_record(
                database, mod, target, sch.trace):
            schedules.append(sch)
    measured = measure_and_record(database, mod, target, schedules, builder, runner)
    seconds = [t for _, t in measured if t is not None]
    return Retargeted(kernel.name, len(records), len(schedules), sum(b for b, _ in measured), len(seconds),
                      min(seconds, default=None))


def _tasks(net: Network, options: TuneOptions, database, log_dir: Path) -> list[TaskProgress]:
    """A TaskProgress per kernel to tune, with what the log holds for it.
    Unless named, a convolution that CPU builds at this batch compute by
    Winograd is left out: they take no record of the direct one."""
    per_kernel = options.trials_per_kernel or options.trials
    forward = {k.name for k in net.kernels()}
    defaults = default_times(log_dir)
    by_winograd = "cpu" in options.target.keys and not options.kernels
    progress = []
    for kernel in net.kernels() + net.backward_kernels():
        wanted = kernel.name in options.kernels if options.kernels else (options.backward or kernel.name in forward)
        if not tunable(kernel) or not wanted or (by_winograd and winograd.applies(kernel, options.batch)):
            continue
        mod = task_module(kernel, options.batch)
        done = trials_done(database, mod, options.target)
        task = TaskProgress(kernel, kernel.flops * options.batch, per_kernel, done, done_before=done)
        record = best_record(database, mod, options.target)
        if record is not None:
            task.best_seconds = mean_seconds(record)
        default = default_seconds(defaults, kernel, options.batch, options.target)
        if default is not None:
            task.best_seconds = min(task.best_seconds, default)
        progress.append(task)
    return progress


def tune(net: Network, options: TuneOptions, report=lambda task, progress: None,
         on_retarget=lambda retargeted: None) -> TuneResult:
    """Tune the kernels of `net` with MetaSchedule as `options` say, the
    gradient task scheduler handing trials to the kernels where the time is.
    Records go to the log as they are measured, so an interrupted run loses
    at most one round and a rerun continues. `report(task, progress)` is
    called as trials are measured, `on_retarget` with each kernel's
    Retargeted. On a CPU the search starts from the default schedules, and
    the run ends by timing each kernel's best record against its default
    (`settle`); each task's `used` says which builds now take.

    With `options.rpc` the tracker and its devices are checked first
    (RemoteError, within seconds, where either is missing); a device that
    drops out fails only the candidates it was running, and RemoteError
    ends the run where none is left, the log keeping what was measured."""
    batch, target = options.batch, options.target
    log_dir = Path(options.log_dir)
    if options.rpc is not None:
        options.rpc.check(target)
    database = open_log(log_dir)
    import_intrinsics(target.kind.name)  # before any TuneContext imports them all
    progress = _tasks(net, options, database, log_dir)
    skipped = [t.kernel.name for t in progress if options.trials and t.budget == 0]
    builder = PoolBuilder(workers=num_cores(), target_kind=target.kind.name)
    runner = make_runner(options.rpc, retry_lost=True)  # the default schedules: not search candidates
    # Search candidates measured here share its worker (another would cost an
    # import of TVM); on devices, one that drops out under a candidate (which
    # may have crashed it) is not retried.
    search_runner = runner if options.rpc is None else make_runner(options.rpc)
    runners = [runner] if search_runner is runner else [runner, search_runner]
    searched_log = ReadableRecords(database)
    start = time.perf_counter()
    try:
        if options.source is not None and progress:
            record_provenance(log_dir, target, f"re-target {net.variant} width {net.width} batch {batch} "
                                               f"from {options.source}, top {options.top_k}")
            source_db = read_log(options.source)
            for task in progress:
                moved = retarget(source_db, database, task.kernel, batch, target, options.top_k, builder, runner)
                task.done += moved.recorded
                if moved.best_seconds is not None:
                    task.best_seconds = min(task.best_seconds, moved.best_seconds)
                on_retarget(moved)
        if "cpu" in target.keys:  # the search starts from the default schedules
            for task in progress:
                seconds = record_default(log_dir, task.kernel, batch, target, builder, runner)
                if seconds is not None:
                    task.best_seconds = min(task.best_seconds, seconds)
                    report(task, progress)
        searched = [t for t in progress if t.budget > 0]
        remaining = min(options.trials, sum(t.budget for t in searched))
        if remaining > 0:
            record_provenance(log_dir, target, f"tune {net.variant} width {net.width} batch {batch}, "
                                               f"{remaining} trials")
            seed = -1 if options.seed is None else options.seed
            contexts = [ms.TuneContext(task_module(t.kernel, batch), target=target,
                                       **search_space(t.kernel, batch, target), task_name=t.kernel.name,
                                       num_threads=num_cores(), rand_state=seed) for t in searched]
            most = max(t.budget for t in searched)
            ms.tune_tasks(
                tasks=contexts, task_weights=[1.0] * len(contexts), work_dir=str(log_dir / ".work"),
                max_trials_global=remaining, max_trials_per_task=most,
                num_trials_per_iter=min(options.trials_per_round, most), builder=builder, runner=search_runner,
                database=searched_log,
                measure_callbacks=ms.MeasureCallback.create("default") + [ProgressCallback(searched, report)],
                task_scheduler="gradient")
        if "cpu" in target.keys:
            for task in progress:
                settle(log_dir, database, task.kernel, batch, target, builder, runner)
        defaults = default_times(log_dir)
        for task in progress:
            used = tuned_kernel(database, task.kernel, batch, target, defaults) is not None
            task.used = "record" if used else "default"
    except Exception:
        lost = run_error(runners)  # no device left, which MetaSchedule hands back as a RuntimeError
        if lost is not None:
            raise lost from None
        raise
    finally:
        builder.close()
        for r in runners:
            r.close()
    devices = sum((getattr(r, "measured_on", Counter()) for r in runners), Counter())
    return TuneResult(progress, time.perf_counter() - start, builder.seconds, sum(r.seconds for r in runners), skipped,
                      searched_log.rejected, dict(sorted(devices.items())))

