"""The default schedules against the log: their measured times (the log's
defaults.json), and which of a kernel's best record and its default a build
takes, so that a log never makes a kernel slower than no log.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from ..spec import Kernel
from ..target import target_dirname
from .logfile import DEFAULTS, default_times, write_json
from .records import best_record, mean_seconds
from .search import default_schedule, task_module
from .workers import import_intrinsics, measure_and_record


def trace_digest(trace) -> str:
    return hashlib.sha256(str(trace).encode()).hexdigest()[:16]


def default_key(kernel: Kernel, batch: int, target: tvm.target.Target, sch) -> str:
    """The kernel's entry in defaults.json: its computation and its default
    schedule, so that a change to either is a new entry."""
    return f"{target_dirname(target)}/{tvm_ffi.structural_hash(task_module(kernel, batch))}/{trace_digest(sch.trace)}"


def default_entry(times: dict, kernel: Kernel, batch: int, target: tvm.target.Target) -> dict | None:
    """The kernel's entry in defaults.json: its default schedule's `seconds`
    and, once `settle`d, which of it and the best record was faster."""
    if not times or "cpu" not in target.keys:
        return None
    sch = default_schedule(kernel, batch, target)
    return times.get(default_key(kernel, batch, target, sch)) if sch is not None else None


def default_seconds(times: dict, kernel: Kernel, batch: int, target: tvm.target.Target) -> float | None:
    entry = default_entry(times, kernel, batch, target)
    return entry["seconds"] if entry else None


def _measured_on(times: dict | None, target: tvm.target.Target) -> bool:
    prefix = f"{target_dirname(target)}/"
    return "cpu" in target.keys and any(key.startswith(prefix) for key in times or {})


def _record_wins(record, entry: dict) -> bool:
    settled = entry.get("settled")
    if settled and settled["record"] == trace_digest(record.trace):
        return settled["record_wins"]
    return mean_seconds(record) < entry["seconds"]


def tuned_kernel(database: ms.database.Database, kernel: Kernel, batch: int,
                 target: tvm.target.Target, defaults: dict | None = None) -> tvm.tirx.PrimFunc | None:
    """The kernel scheduled by its best record for this batch and target, or
    None where the log has none, where its best is no faster than the
    default schedule (`defaults`, from default_times: their side-by-side
    timing by `settle` where there is one, else their recorded times), where
    the default changed since the log timed the defaults on this CPU kind
    (`tune --kernel` times it again), or where its record no longer applies
    (a warning then says which)."""
    from tvm.s_tir import Schedule

    mod = task_module(kernel, batch)
    record = best_record(database, mod, target)
    if record is None:
        return None
    default = default_entry(defaults or {}, kernel, batch, target)
    if default is None and _measured_on(defaults, target):
        # The log timed its defaults on this CPU kind but not this one: the
        # default schedule changed since, and the record may be the slower.
        return None
    if default is not None and not _record_wins(record, default):
        return None
    for attempt in range(2):
        try:
            sch = Schedule(mod)
            record.trace.apply_to_schedule(sch, remove_postproc=False)
            return sch.mod["main"]
        except Exception as e:  # a trace from another TVM, or one that needs tensor intrinsics
            if attempt == 0:
                import_intrinsics(target.kind.name)
                continue
            warnings.warn(f"{kernel.name}: tuning record does not apply ({str(e).splitlines()[-1]}); "
                          "using the default schedule")
    return None


def record_default(log_dir: Path, kernel: Kernel, batch: int, target: tvm.target.Target,
                   builder, runner) -> float | None:
    """Measure the kernel's default CPU schedule like a tuning candidate and
    note its best time so far in the log (defaults.json): a record slower
    than it is then never used. Every run measures again and keeps the
    fastest, as one measurement on a shared machine can come out slow.
    Returns the time noted."""
    sch = default_schedule(kernel, batch, target)
    if sch is None:
        return None
    ((_, seconds),) = measure_and_record(None, task_module(kernel, batch), target, [sch], builder, runner)
    if seconds is None:
        raise RuntimeError(f"{kernel.name}: the default schedule failed to build or run")
    times = default_times(log_dir)
    key = default_key(kernel, batch, target, sch)
    seconds = min(seconds, times.get(key, {}).get("seconds", math.inf))
    times[key] = dict(times.get(key, {}), kernel=kernel.name, batch=batch, seconds=seconds)
    write_json(log_dir / DEFAULTS, times)
    return seconds


def settle(log_dir: Path, database: ms.database.Database, kernel: Kernel, batch: int, target: tvm.target.Target,
           builder, runner, rounds: int = 5) -> bool | None:
    """Time the kernel's best record and its default schedule side by side
    (in turn, `rounds` times) and note in defaults.json which was faster,
    for builds to follow: a record's one measurement against the default's
    fastest of many would let a lucky default keep better records unused.
    Returns whether the record won; None where the kernel lacks either or
    one fails to run."""
    from tvm.s_tir import Schedule

    mod = task_module(kernel, batch)
    record, default = best_record(database, mod, target), default_schedule(kernel, batch, target)
    if record is None or default is None:
        return None
    tuned = Schedule(mod)
    try:
        record.trace.apply_to_schedule(tuned, remove_postproc=False)
    except Exception:  # a record that no longer applies: builds warn and take the default
        return None
    (_, ours), (_, theirs) = measure_and_record(None, mod, target, [tuned, default], builder, runner, rounds)
    if ours is None or theirs is None:
        return None
    times = default_times(log_dir)
    entry = times.setdefault(default_key(kernel, batch, target, default),
                             dict(kernel=kernel.name, batch=batch, seconds=theirs))
    entry["settled"] = dict(record=trace_digest(record.trace), record_wins=ours < theirs)
    write_json(log_dir / DEFAULTS, times)
    return ours < theirs
