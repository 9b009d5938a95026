"""Questions to a tuning log: a kernel's best record for a target, the trials
spent on it, the batch sizes and targets the log holds.

MetaSchedule's databases ignore targets (apache/tvm issue 15549), so every
query here filters records by target itself (target.same_target).
"""

from __future__ import annotations

import os
from pathlib import Path

import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from ..spec import Network
from ..target import same_target, target_dirname
from .logfile import FAILED, WORKLOADS, read_lines
from .search import task_module, tunable


def mean_seconds(result) -> float:
    """Mean run time of a tuning record or runner result."""
    return sum(float(s) for s in result.run_secs) / len(result.run_secs)


def succeeded(result) -> bool:
    """Whether a tuning record or runner result holds a successful run."""
    run_secs = [float(s) for s in result.run_secs or []]
    return bool(run_secs) and max(run_secs) < FAILED


def best_record(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target):
    """The fastest successful record of `mod` tuned for `target`, or None."""
    if not database.has_workload(mod):
        return None
    workload = database.commit_workload(mod)
    for record in database.get_top_k(workload, 1 << 30):
        if succeeded(record) and same_target(record.target, target):
            return record
    return None


def trials_done(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target) -> int:
    """The candidates of `mod` measured for `target`, those that failed included."""
    if not database.has_workload(mod):
        return 0
    workload = database.commit_workload(mod)
    # Not get_top_k: it leaves out the candidates that failed to build or run,
    # and those spent the budget too.
    return sum(r.workload.same_as(workload) and same_target(r.target, target)
               for r in database.get_all_tuning_records())


def has_record(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target, trace) -> bool:
    """Whether the log holds this schedule of `mod` for `target` already."""
    if not database.has_workload(mod):
        return False
    text = str(trace)
    records = database.get_top_k(database.commit_workload(mod), 1 << 30)
    return any(str(r.trace) == text and same_target(r.target, target) for r in records)


def log_batches(log_dir: str | os.PathLike, net: Network) -> list[int]:
    """The batch sizes at which the log holds workloads of the network's
    kernels (read from the workload file alone, which is quick; whether
    their records beat the defaults for a target shows when building)."""
    hashes, sizes = set(), set()
    for _, value in read_lines(Path(log_dir) / WORKLOADS):
        try:
            mod = ms.database.Workload.from_json(value).mod
        except Exception:  # read_log warns about these where they matter
            continue
        hashes.add(tvm_ffi.structural_hash(mod))
        shape = mod["main"].params[0].shape
        if shape and isinstance(shape[0], tvm.tirx.IntImm):
            sizes.add(int(shape[0]))
    kernels = [k for k in net.kernels() if tunable(k)]
    return sorted(b for b in sizes if any(tvm_ffi.structural_hash(task_module(k, b)) in hashes for k in kernels))


def log_targets(database: ms.database.Database) -> list[tvm.target.Target]:
    """The distinct targets (by llvm mcpu / cuda arch) the log's records were tuned for."""
    targets = {}
    for record in database.get_all_tuning_records():
        targets.setdefault(target_dirname(record.target), record.target)
    return [targets[k] for k in sorted(targets)]

