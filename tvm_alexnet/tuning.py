"""MetaSchedule tuning of every kernel, into resumable logs in MetaSchedule's own format.

A log is a folder (one per target under tuning_logs/) holding MetaSchedule's
`database_workload.json` and `database_tuning_record.json`, readable by stock
TVM, plus `log.json`: which machines, TVM versions and dates it came from.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import tvm
import tvm_ffi
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
from tvm.s_tir.meta_schedule.database import PyDatabase
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput

from . import cpu_schedules, cuda, graph
from .errors import UserError
from .files import write_atomic
from .spec import Kernel, Network
from .target import cpu_name, same_target, target_dirname  # noqa: F401

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
PENDING = ".repaired"  # a repair's new file, before it is moved into place
PROVENANCE = "log.json"
# Measured times of the default schedules. They are kept beside MetaSchedule's
# files, not in them: a later measurement replaces an earlier one (one taken on
# a loaded machine), and MetaSchedule's records can only be appended.
DEFAULTS = "defaults.json"
FAILED = 1e10  # MetaSchedule's run time for a candidate that failed


class LogError(UserError):
    """A tuning log that cannot be read."""


def task_module(kernel: Kernel, batch: int) -> tvm.IRModule:
    """The kernel as MetaSchedule sees it: a module with one `main`."""
    return tvm.IRModule({"main": graph.kernel_func(kernel, batch).with_attr("global_symbol", "main")})


def tunable(kernel: Kernel) -> bool:
    # Elementwise kernels and small sums take microseconds: not worth a trial.
    # Max-pool's gradient: MetaSchedule inlines the window max and the first
    # max into the sums, an expression it takes minutes to simplify for each
    # candidate (2 trials at width 0.25: 9.5 min), and the default schedule
    # has no parameters to search.
    return kernel.op not in ("dropout", "softmax", "relu_grad", "bias_grad", "avg_pool_grad", "max_pool_grad")


# -- the log on disk -----------------------------------------------------------------------------


def repair(log_dir: Path) -> int:
    """Drop what a killed writer left half-written (a truncated last line, a
    record whose workload line is missing) and merge repeated workload lines,
    rewriting atomically. Returns the number of lines dropped; a file that is
    not a MetaSchedule log at all is an error naming the file and line.

    Repeated workloads matter: JSONDatabase numbers a new workload by how
    many distinct ones it holds, not by its line, so after a repeated line
    every new record points at the wrong workload (and fails to read back)."""
    finish_repair(log_dir)
    dropped = 0
    workloads = _read_lines(log_dir / WORKLOADS)
    records = _read_lines(log_dir / RECORDS)
    good_workloads = []
    for i, (line, value) in enumerate(workloads):
        if value is None and i == len(workloads) - 1:
            dropped += 1  # the tail of an interrupted append
            continue
        if not (isinstance(value, list) and len(value) == 2):
            raise LogError(f"{log_dir / WORKLOADS}: line {i + 1} is not a MetaSchedule workload")
        good_workloads.append(line)
    first, renumber = {}, []
    for line in good_workloads:
        renumber.append(first.setdefault(line, len(first)))
    dropped += len(good_workloads) - len(first)
    good_records = []
    for i, (line, value) in enumerate(records):
        if value is None and i == len(records) - 1:
            dropped += 1
            continue
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
                and isinstance(value[1], list) and len(value[1]) == 4):
            raise LogError(f"{log_dir / RECORDS}: line {i + 1} is not a MetaSchedule tuning record")
        if value[0] >= len(good_workloads):
            dropped += 1  # its workload was the truncated line
            continue
        good_records.append(re.sub(r"^\[\s*\d+", f"[{renumber[value[0]]}", line, count=1))
    if dropped:
        _write_lines(log_dir / (RECORDS + PENDING), good_records)
        _write_lines(log_dir / (WORKLOADS + PENDING), list(first))
        finish_repair(log_dir)
    return dropped


def finish_repair(log_dir: Path) -> None:
    """Move a repair's two files into place: the records, then the workloads.
    The renumbered records fit only the merged workloads, and two moves are
    not one atomic step, so a repair a kill interrupted is finished here (or,
    killed before its workloads were written, undone)."""
    records, workloads = log_dir / (RECORDS + PENDING), log_dir / (WORKLOADS + PENDING)
    if workloads.exists():
        if records.exists():
            os.replace(records, log_dir / RECORDS)
        os.replace(workloads, log_dir / WORKLOADS)
    elif records.exists():
        records.unlink()


def _read_lines(path: Path) -> list[tuple[str, object]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            out.append((line, None))
    return out


def _write_lines(path: Path, lines: list[str]) -> None:
    write_atomic(path, "".join(line + "\n" for line in lines))


def open_log(log_dir: str | os.PathLike) -> ms.database.JSONDatabase:
    """A log to tune into (created where missing): a record a killed writer
    left half-written is dropped first; any other bad line is an error, as
    appending to a log that is not what it seems could lose its records."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    repair(log_dir)
    try:
        return ms.database.JSONDatabase(str(log_dir / WORKLOADS), str(log_dir / RECORDS), allow_missing=True)
    except Exception as e:  # TVM reports parse errors as its own error types
        raise LogError(f"{log_dir}: not a readable MetaSchedule log ({str(e).splitlines()[-1]})") from None


def read_log(log_dir: str | os.PathLike, best_only: bool = False) -> ms.database.MemoryDatabase:
    """A log to read, in memory; the files are left as they are (but for
    finishing a repair a kill interrupted). A workload or record that cannot
    be read is skipped with a warning naming the file and line, so its
    kernels fall back to the default schedule. With
    `best_only`, only the fastest successful record of each workload and
    target that reads (what best_record gives, and all builds use): reading
    a record replays its trace, ~10 ms each, 18 s for the shipped log."""
    log_dir = Path(log_dir)
    finish_repair(log_dir)
    if not (log_dir / WORKLOADS).exists():
        raise LogError(f"{log_dir}: no tuning log here ({WORKLOADS} missing)")
    database = ms.database.MemoryDatabase()

    def skip(path, i, what, e):
        reason = str(e).strip().splitlines()[-1][:120]
        warnings.warn(f"{path}: line {i + 1} is not a MetaSchedule {what} ({reason}); skipped")

    workloads = []
    for i, (_, value) in enumerate(_read_lines(log_dir / WORKLOADS)):
        workload = None
        try:
            if value is None:
                raise ValueError("not JSON")
            workload = database.commit_workload(ms.database.Workload.from_json(value).mod)
        except Exception as e:  # TVM raises its own error types for malformed JSON objects
            skip(log_dir / WORKLOADS, i, "workload", e)
        workloads.append(workload)

    def commit(i, value) -> bool:
        try:
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
                raise ValueError("expected [workload index, record]")
            if not 0 <= value[0] < len(workloads) or workloads[value[0]] is None:
                raise ValueError(f"workload {value[0]} is missing")
            database.commit_tuning_record(ms.database.TuningRecord.from_json(value[1], workloads[value[0]]))
            return True
        except Exception as e:
            skip(log_dir / RECORDS, i, "tuning record", e)
            return False

    lines = [(i, value) for i, (_, value) in enumerate(_read_lines(log_dir / RECORDS))]
    for group in _fastest_first(lines) if best_only else [[line] for line in lines]:
        for i, value in group:
            if commit(i, value) and best_only:
                break
    return database


def _fastest_first(lines: list[tuple[int, object]]) -> list[list[tuple[int, object]]]:
    """The successful records of each workload and target (as same_target
    tells them apart), fastest first, from their JSON alone; then each line
    not in a record's shape in a group of its own, for read_log to warn about."""
    groups, malformed, targets = {}, [], {}
    for i, value in lines:
        try:
            workload, (_, run_secs, target, _) = value
            seconds = [float(s) for s in run_secs]
            text = json.dumps(target, sort_keys=True)
            if text not in targets:
                targets[text] = target_dirname(tvm.target.Target(target))
        except Exception:  # read_log names what is wrong with it
            malformed.append([(i, value)])
            continue
        if seconds and max(seconds) < FAILED:
            groups.setdefault((workload, targets[text]), []).append((sum(seconds) / len(seconds), i, value))
    return [[(i, value) for _, i, value in sorted(group, key=lambda g: g[:2])]
            for group in groups.values()] + malformed


def record_count(log_dir: str | os.PathLike) -> int:
    return len(_read_lines(Path(log_dir) / RECORDS))


def record_provenance(log_dir: Path, target: tvm.target.Target | None, note: str) -> None:
    """Append who made this log, where and when, to log.json."""
    _write_provenance(log_dir, provenance(log_dir) + [dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), machine=platform.node(),
        cpu=cpu_name(), target=None if target is None else json.loads(str(target)), tvm=tvm.__version__,
        note=note)])


def _write_provenance(log_dir: Path, entries: list[dict]) -> None:
    _write_json(log_dir / PROVENANCE, entries)


def _write_json(path: Path, value) -> None:
    write_atomic(path, json.dumps(value, indent=2))


def best_record(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target):
    """The fastest successful record of `mod` tuned for `target` (the
    database itself ignores targets), or None."""
    if not database.has_workload(mod):
        return None
    workload = database.commit_workload(mod)
    for record in database.get_top_k(workload, 1 << 30):
        run_secs = [float(s) for s in record.run_secs or []]
        if run_secs and max(run_secs) < FAILED and same_target(record.target, target):
            return record
    return None


def mean_seconds(result) -> float:
    """Mean run time of a tuning record or runner result."""
    return sum(float(s) for s in result.run_secs) / len(result.run_secs)


def tuned_kernel(database: ms.database.Database, kernel: Kernel, batch: int,
                 target: tvm.target.Target, defaults: dict | None = None) -> tvm.tirx.PrimFunc | None:
    """The kernel scheduled by its best record for this batch and target, or
    None where the log has none, where its best is no faster than the
    default schedule (`defaults`, from default_times: their side-by-side
    timing by `settle` where there is one, else their recorded times), or
    where its record no longer applies (a warning then says which)."""
    from tvm.s_tir import Schedule

    mod = task_module(kernel, batch)
    record = best_record(database, mod, target)
    if record is None:
        return None
    default = default_entry(defaults or {}, kernel, batch, target)
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


def log_batches(log_dir: str | os.PathLike, net: Network) -> list[int]:
    """The batch sizes at which the log holds workloads of the network's
    kernels (read from the workload file alone, which is quick; whether
    their records beat the defaults for a target shows when building)."""
    hashes, sizes = set(), set()
    for _, value in _read_lines(Path(log_dir) / WORKLOADS):
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


def provenance(log_dir: str | os.PathLike) -> list[dict]:
    path = Path(log_dir) / PROVENANCE
    try:
        return json.loads(path.read_text()) if path.exists() else []
    except json.JSONDecodeError as e:
        raise LogError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def merge(sources: list[str | os.PathLike], log_dir: str | os.PathLike) -> int:
    """Add the records of `sources` to the log in `log_dir` (created where
    missing), each distinct (kernel, schedule, target) once, and their
    provenance. Returns the number of records added."""
    log_dir = Path(log_dir)
    database = open_log(log_dir)

    def key(record):
        return tvm_ffi.structural_hash(record.workload.mod), str(record.trace), target_dirname(record.target)

    seen = {key(r) for r in database.get_all_tuning_records()}
    added = 0
    history = provenance(log_dir)
    for source in sources:
        for record in read_log(source).get_all_tuning_records():
            if key(record) in seen:
                continue
            seen.add(key(record))
            workload = database.commit_workload(record.workload.mod)
            database.commit_tuning_record(ms.database.TuningRecord(
                record.trace, workload, record.run_secs, record.target, record.args_info))
            added += 1
        history += [entry for entry in provenance(source) if entry not in history]
        times = default_times(log_dir)
        times.update({k: v for k, v in default_times(source).items() if k not in times})
        _write_json(log_dir / DEFAULTS, times)
    _write_provenance(log_dir, history)
    record_provenance(log_dir, None, f"merged {added} records from {', '.join(map(str, sources))}")
    return added


def prune(log_dir: str | os.PathLike, net: Network) -> tuple[int, int]:
    """Drop the records of every workload that is no kernel of `net` at the
    batch size it holds: left by a kernel whose computation changed since it
    was tuned, or by another variant (whose records go too). The workload
    lines stay: records name them by line number, and dropping lines would
    renumber every record after them. Returns (records dropped, workloads
    pruned); a workload that does not read is left to read_log's warning."""
    log_dir = Path(log_dir)
    repair(log_dir)
    kernels = net.kernels() + net.compiled_kernels()  # inference and training forms
    hashes = {}  # batch -> the kernels' workload hashes at that batch

    def known(mod: tvm.IRModule) -> bool:
        shape = mod["main"].params[0].shape
        if not (shape and isinstance(shape[0], tvm.tirx.IntImm)):
            return False
        batch = int(shape[0])
        if batch not in hashes:
            hashes[batch] = {tvm_ffi.structural_hash(task_module(k, batch)) for k in kernels}
        return tvm_ffi.structural_hash(mod) in hashes[batch]

    stale = set()
    for i, (_, value) in enumerate(_read_lines(log_dir / WORKLOADS)):
        try:
            mod = ms.database.Workload.from_json(value).mod
        except Exception:  # TVM raises its own error types for malformed JSON objects
            continue
        if not known(mod):
            stale.add(i)
    lines = _read_lines(log_dir / RECORDS)
    kept = [line for line, value in lines if value[0] not in stale]
    if len(kept) < len(lines):
        _write_lines(log_dir / RECORDS, kept)
        record_provenance(log_dir, None, f"pruned {len(lines) - len(kept)} records of workloads no kernel of "
                                         f"{net.variant} (width {net.width:g}, {net.num_classes} classes) has")
    pruned = {value[0] for _, value in lines} & stale
    return len(lines) - len(kept), len(pruned)


def trials_done(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target) -> int:
    if not database.has_workload(mod):
        return 0
    workload = database.commit_workload(mod)
    # Not get_top_k: it leaves out the candidates that failed to build or run,
    # and those spent the budget too.
    return sum(r.workload.same_as(workload) and same_target(r.target, target)
               for r in database.get_all_tuning_records())


# -- measuring -----------------------------------------------------------------------------------


def import_intrinsics(target_kind: str) -> None:
    """Register the tensor intrinsics MetaSchedule may use for this kind of
    target, and only those (see _intrinsics_package_only)."""
    _intrinsics_package_only()
    importlib.import_module(f"tvm.s_tir.tensor_intrin.{'cuda' if target_kind == 'cuda' else 'x86'}")


def _intrinsics_package_only() -> None:
    """`import tvm.s_tir.tensor_intrin`, which MetaSchedule does in every
    TuneContext and builder, parses every intrinsic of every backend: ~80 s
    on this 2-core machine, 53 s of it CUDA's. Registering the package
    without running its __init__ makes that import a no-op. Building a
    scheduled module needs no intrinsic by name (tensorized blocks hold their
    code), so the build workers stop here: checked on sm_90 tensor-core
    candidates, which built (or failed) the same either way."""
    name = "tvm.s_tir.tensor_intrin"
    if name not in sys.modules:
        import tvm.s_tir

        package = importlib.util.module_from_spec(importlib.util.find_spec(name))
        sys.modules[name] = package
        tvm.s_tir.tensor_intrin = package


def _build_one(mod: tvm.IRModule, target: tvm.target.Target) -> str:
    built = default_build(mod, target, None)
    if target.kind.name == "cuda":
        cuda.check_source(cuda.source(built), target)
    return default_export(built)


@derived_object
class PoolBuilder(PyBuilder):
    """Builds candidates in worker processes that live as long as the tuner.

    The stock LocalBuilder starts a fresh pool for every batch, and each of its
    workers spends over a minute importing tensor intrinsics on a small
    machine, so with its 30 s timeout most candidates "fail to build". These
    workers start once and import none (see _intrinsics_package_only)."""

    def __init__(self, workers: int, target_kind: str, timeout: float | None = None):
        super().__init__()
        # nvcc takes tens of seconds per candidate on a small machine; LLVM past a minute is stuck.
        timeout = timeout or (300.0 if target_kind == "cuda" else 60.0)
        self.workers, self.timeout = workers, timeout
        self.seconds = 0.0
        self._pool = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_intrinsics_package_only)
        return self._pool

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        # One candidate per worker at a time, so that each build's time runs
        # from its start; a build past the timeout gets its pool killed (LLVM
        # can take hours on some candidates, holding a core) and the other
        # builds then running start again in a fresh pool.
        start = time.perf_counter()
        results: list[BuilderResult | None] = [None] * len(build_inputs)
        queue, running = list(range(len(build_inputs))), {}
        while queue or running:
            pool = self._start()
            while queue and len(running) < self.workers:
                i = queue.pop(0)
                item = build_inputs[i]
                running[pool.submit(_build_one, item.mod, item.target)] = (i, time.perf_counter())
            oldest = min(started for _, started in running.values())
            done, _ = wait(running, timeout=max(0.0, oldest + self.timeout - time.perf_counter()),
                           return_when=FIRST_COMPLETED)
            for future in done:
                i, _ = running.pop(future)
                results[i] = self._result(future)
            if not done:
                for i, started in running.values():
                    if time.perf_counter() - started >= self.timeout:
                        results[i] = BuilderResult(None, f"PoolBuilder: no build after {self.timeout:.0f} s")
                    else:
                        queue.insert(0, i)
                running.clear()
                self.close()
        self.seconds += time.perf_counter() - start
        return results

    def _result(self, future) -> BuilderResult:
        try:
            return BuilderResult(future.result(), None)
        except BrokenProcessPool:  # a candidate crashed its worker: the pool is gone
            self._pool = None
            return BuilderResult(None, "PoolBuilder: the build worker crashed")
        except Exception as e:  # a candidate that fails to build is a result, not a crash
            return BuilderResult(None, f"PoolBuilder: {type(e).__name__}: {e}")

    def close(self) -> None:
        """Stop the workers now, a build stuck in LLVM included (shutdown alone would wait for it)."""
        if self._pool is not None:
            for process in list(self._pool._processes.values()):  # Python < 3.14 has no public way
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


@derived_object
class QuietRunner(PyRunner):
    """MetaSchedule's LocalRunner, but `run` returns only once the candidates
    are measured. The task scheduler builds the next task's candidates while
    the last ones run; on a machine of a few cores those builds steal the
    measured kernels' cores and spoil the measurements."""

    def __init__(self, timeout: float = 10.0):
        super().__init__()
        self.inner = ms.runner.LocalRunner(
            timeout_sec=timeout,
            evaluator_config=ms.runner.EvaluatorConfig(number=2, repeat=1, enable_cpu_cache_flush=False))
        self.seconds = 0.0

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        start = time.perf_counter()
        results = [future.result() for future in self.inner.run(runner_inputs)]
        self.seconds += time.perf_counter() - start
        return [RunnerFuture(lambda: True, lambda r=r: r) for r in results]


@derived_object
class ReadableRecords(PyDatabase):
    """A tuning log that takes only records its JSON can give back.

    MetaSchedule 0.27 writes some traces in a form its own reader rejects,
    and one such line makes JSONDatabase refuse the whole log. Each record is
    written to a scratch log and read back before it is committed; the others
    are kept in memory (the search can still build on them) and counted in
    `rejected`. (Not through TuningRecord.as_json/from_json in Python: those
    fail on layout transforms that the files hold well.)"""

    def __init__(self, log: ms.database.Database):
        super().__init__()
        self.log, self.unreadable = log, ms.database.MemoryDatabase()
        self.rejected = 0
        self._scratch = tempfile.TemporaryDirectory(prefix="tvm-alexnet-record-")

    def _reads_back(self, record) -> bool:
        scratch = Path(self._scratch.name)
        paths = {"path_workload": str(scratch / WORKLOADS), "path_tuning_record": str(scratch / RECORDS)}
        (scratch / RECORDS).unlink(missing_ok=True)
        writer = ms.database.JSONDatabase(**paths)
        writer.commit_tuning_record(ms.database.TuningRecord(
            record.trace, writer.commit_workload(record.workload.mod), record.run_secs, record.target,
            record.args_info))
        try:
            ms.database.JSONDatabase(**paths)
        except Exception:  # TVM raises its own error types for an unreadable trace
            return False
        return True

    def has_workload(self, mod: tvm.IRModule) -> bool:
        return self.log.has_workload(mod)

    def commit_workload(self, mod: tvm.IRModule):
        return self.log.commit_workload(mod)

    def commit_tuning_record(self, record) -> None:
        if not self._reads_back(record):
            self.rejected += 1
            self.unreadable.commit_workload(record.workload.mod)
            self.unreadable.commit_tuning_record(record)
            return
        self.log.commit_tuning_record(record)

    def get_top_k(self, workload, top_k: int) -> list:
        both = list(self.log.get_top_k(workload, top_k))
        if self.unreadable.has_workload(workload.mod):
            both += self.unreadable.get_top_k(self.unreadable.commit_workload(workload.mod), top_k)
        return sorted(both, key=mean_seconds)[:top_k]

    def get_all_tuning_records(self) -> list:
        return list(self.log.get_all_tuning_records()) + list(self.unreadable.get_all_tuning_records())

    def __len__(self) -> int:
        return len(self.log) + len(self.unreadable)


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


def search_space(kernel: Kernel, batch: int, target: tvm.target.Target) -> dict:
    """What the search draws candidates from, and how (TuneContext's
    arguments). For a CPU op whose default schedule has parameters, those
    parameters (measured: after 64 trials per convolution, MetaSchedule's
    own candidates ran at 30-86% of the default schedules' speed; 32 trials
    in the defaults' own space find up to 1.2x), each round drawn afresh
    from them: records in the log from MetaSchedule's own space would
    otherwise seed the population, and the search spends its trials mutating
    those. Otherwise MetaSchedule's own space and search."""
    space = cpu_schedules.SPACES.get(kernel.op)
    if space is None or "cpu" not in target.keys:
        return {"space_generator": "post-order-apply", "search_strategy": "evolutionary"}
    return {"space_generator": ms.space_generator.ScheduleFn(lambda sch: space(sch, kernel, batch)),
            "search_strategy": ms.search_strategy.EvolutionarySearch(population_size=256, init_measured_ratio=0.0)}


def in_default_space(record) -> bool:
    """Whether a record came from a default schedule's space (search_space):
    those repack the weights with a layout transform, which MetaSchedule's
    own CPU candidates never do."""
    return "transform_layout" in str(record.trace)


def default_schedule(kernel: Kernel, batch: int):
    """The task of the kernel with its default CPU schedule applied (None for ops without one)."""
    from tvm.s_tir import Schedule

    rule = cpu_schedules.SCHEDULES.get(kernel.op)
    if rule is None:
        return None
    sch = Schedule(task_module(kernel, batch))
    rule(sch, kernel, batch)
    return sch


def _has_record(database: ms.database.Database, mod: tvm.IRModule, target: tvm.target.Target, trace) -> bool:
    if not database.has_workload(mod):
        return False
    text = str(trace)
    records = database.get_top_k(database.commit_workload(mod), 1 << 30)
    return any(str(r.trace) == text and same_target(r.target, target) for r in records)


def measure_and_record(database: ms.database.Database | None, mod: tvm.IRModule, target: tvm.target.Target,
                       schedules: list, builder, runner, rounds: int = 1) -> list[tuple[bool, float | None]]:
    """Build and measure schedules of `mod` like tuning candidates (all of
    them in turn, `rounds` times; each one's fastest round counts) and
    commit those that run as records for `target`. Returns for each whether
    it built and its mean seconds (None where it failed). For a GPU target
    on a machine without one, they are only built: nothing is recorded.
    Without a database they are only measured."""
    args_info = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    built = builder.build([BuilderInput(sch.mod, target) for sch in schedules])
    ok = [(sch, b) for sch, b in zip(schedules, built) if b.error_msg is None]
    if target.kind.name == "cuda" and not tvm.cuda(0).exist:
        return [(b.error_msg is None, None) for b in built]
    device = "cpu" if target.kind.name == "llvm" else target.kind.name
    fastest = {}  # id(schedule) -> its fastest run
    for _ in range(rounds):
        ran = runner.run([RunnerInput(b.artifact_path, device, args_info) for _, b in ok])
        for (sch, _), future in zip(ok, ran):
            result = future.result()
            if result.error_msg is not None or not result.run_secs or max(map(float, result.run_secs)) >= FAILED:
                continue
            if id(sch) not in fastest or mean_seconds(result) < mean_seconds(fastest[id(sch)]):
                fastest[id(sch)] = result
    if database is not None:
        for sch, _ in ok:
            if id(sch) in fastest:
                database.commit_tuning_record(ms.database.TuningRecord(
                    sch.trace, database.commit_workload(mod), fastest[id(sch)].run_secs, target, args_info))
    return [(b.error_msg is None, mean_seconds(fastest[id(sch)]) if id(sch) in fastest else None)
            for sch, b in zip(schedules, built)]


def _default_key(kernel: Kernel, batch: int, target: tvm.target.Target, sch) -> str:
    # The kernel's computation and its default schedule: a change to either is a new entry.
    return f"{target_dirname(target)}/{tvm_ffi.structural_hash(task_module(kernel, batch))}/{_trace_digest(sch.trace)}"


def default_times(log_dir: str | os.PathLike) -> dict[str, dict]:
    """The log's measured default-schedule times, by key (see _default_key)."""
    path = Path(log_dir) / DEFAULTS
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (json.JSONDecodeError, OSError) as e:
        warnings.warn(f"{path}: not readable ({e}); default schedule times ignored")
        return {}


def default_entry(times: dict, kernel: Kernel, batch: int, target: tvm.target.Target) -> dict | None:
    """The kernel's entry in defaults.json: its default schedule's `seconds`
    and, once `settle`d, which of it and the best record was faster."""
    if not times or "cpu" not in target.keys:
        return None
    sch = default_schedule(kernel, batch)
    return times.get(_default_key(kernel, batch, target, sch)) if sch is not None else None


def default_seconds(times: dict, kernel: Kernel, batch: int, target: tvm.target.Target) -> float | None:
    entry = default_entry(times, kernel, batch, target)
    return entry["seconds"] if entry else None


def _trace_digest(trace) -> str:
    return hashlib.sha256(str(trace).encode()).hexdigest()[:16]


def _record_wins(record, entry: dict) -> bool:
    settled = entry.get("settled")
    if settled and settled["record"] == _trace_digest(record.trace):
        return settled["record_wins"]
    return mean_seconds(record) < entry["seconds"]


def record_default(log_dir: Path, kernel: Kernel, batch: int, target: tvm.target.Target,
                   builder, runner) -> float | None:
    """Measure the kernel's default CPU schedule like a tuning candidate and
    note its best time so far in the log (defaults.json): a record slower
    than it is then never used, so a log never makes a kernel slower than no
    log. Every run measures again and keeps the fastest, as one measurement
    on a shared machine can come out two to three times slow. Returns the
    time noted."""
    sch = default_schedule(kernel, batch)
    if sch is None:
        return None
    ((_, seconds),) = measure_and_record(None, task_module(kernel, batch), target, [sch], builder, runner)
    if seconds is None:
        raise RuntimeError(f"{kernel.name}: the default schedule failed to build or run")
    times = default_times(log_dir)
    key = _default_key(kernel, batch, target, sch)
    seconds = min(seconds, times.get(key, {}).get("seconds", math.inf))
    times[key] = dict(times.get(key, {}), kernel=kernel.name, batch=batch, seconds=seconds)
    _write_json(log_dir / DEFAULTS, times)
    return seconds


def settle(log_dir: Path, database: ms.database.Database, kernel: Kernel, batch: int, target: tvm.target.Target,
           builder, runner, rounds: int = 5) -> bool | None:
    """Time the kernel's best record and its default schedule side by side
    (in turn, `rounds` times) and note in defaults.json which was faster,
    for builds to follow. Without this a record's one measurement met the
    default's fastest of many, and on a shared machine a lucky default kept
    better records unused (1.1-1.3x at batch 1). Returns whether the record
    won; None where the kernel lacks either or one fails to run."""
    from tvm.s_tir import Schedule

    mod = task_module(kernel, batch)
    record, default = best_record(database, mod, target), default_schedule(kernel, batch)
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
    entry = times.setdefault(_default_key(kernel, batch, target, default),
                             dict(kernel=kernel.name, batch=batch, seconds=theirs))
    entry["settled"] = dict(record=_trace_digest(record.trace), record_wins=ours < theirs)
    _write_json(log_dir / DEFAULTS, times)
    return ours < theirs


def retarget(source: ms.database.Database, database: ms.database.Database, kernel: Kernel, batch: int,
             target: tvm.target.Target, top_k: int, builder, runner) -> "Retargeted":
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
        if (same_target(record.target, target) or text in seen or not record.run_secs
                or max(float(t) for t in record.run_secs) >= FAILED):
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
        if all(p.apply(sch) for p in context.space_generator.postprocs) and not _has_record(
                database, mod, target, sch.trace):
            schedules.append(sch)
    measured = measure_and_record(database, mod, target, schedules, builder, runner)
    seconds = [t for _, t in measured if t is not None]
    return Retargeted(kernel.name, len(records), len(schedules), sum(b for b, _ in measured), len(seconds),
                      min(seconds, default=None))


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


def tune(net: Network, batch: int, target: tvm.target.Target, log_dir: str | os.PathLike, trials: int,
         trials_per_kernel: int | None = None, report=lambda task, progress: None,
         kernels: list[str] | None = None, seed: int | None = None, trials_per_round: int = 64,
         source: str | os.PathLike | None = None, top_k: int = 8, on_retarget=lambda r: None,
         backward: bool = False) -> TuneResult:
    """Tune the kernels of `net` at `batch` for `target` with MetaSchedule,
    `trials` candidates in all (at most `trials_per_kernel` each, counting
    what the log already holds), the gradient task scheduler handing trials
    to the kernels where the time is. Records go to `log_dir` as they are
    measured, so an interrupted run loses at most one round
    (`trials_per_round` candidates) and a rerun continues. `backward` adds
    the gradient kernels of training (named in `kernels`, they are tuned
    without it). With `source`, a
    log tuned for other targets, its `top_k` best records per kernel are
    re-targeted first (see `retarget`) and the search starts from them. On
    a CPU the run ends by timing each kernel's best record against its
    default (`settle`); each task's `used` says which builds now take."""
    log_dir = Path(log_dir)
    database = open_log(log_dir)
    import_intrinsics(target.kind.name)  # before any TuneContext imports them all
    per_kernel = trials_per_kernel or trials
    forward = {k.name for k in net.kernels()}
    progress = []
    for kernel in net.kernels() + net.backward_kernels():
        wanted = kernel.name in kernels if kernels else (backward or kernel.name in forward)
        if not tunable(kernel) or not wanted:
            continue
        mod = task_module(kernel, batch)
        done = trials_done(database, mod, target)
        task = TaskProgress(kernel, kernel.flops * batch, per_kernel, done, done_before=done)
        record = best_record(database, mod, target)
        if record is not None:
            task.best_seconds = mean_seconds(record)
        default = default_seconds(default_times(log_dir), kernel, batch, target)
        if default is not None:
            task.best_seconds = min(task.best_seconds, default)
        progress.append(task)
    skipped = [t.kernel.name for t in progress if trials and t.budget == 0]
    builder = PoolBuilder(workers=_cores(), target_kind=target.kind.name)
    runner = QuietRunner()
    runners = [runner]
    searched_log = ReadableRecords(database)
    start = time.perf_counter()
    try:
        if source is not None and progress:
            record_provenance(log_dir, target, f"re-target {net.variant} width {net.width} batch {batch} "
                                               f"from {source}, top {top_k}")
            source_db = read_log(source)
            for task in progress:
                moved = retarget(source_db, database, task.kernel, batch, target, top_k, builder, runner)
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
        remaining = min(trials, sum(t.budget for t in searched))
        if remaining > 0:
            record_provenance(log_dir, target, f"tune {net.variant} width {net.width} batch {batch}, "
                                               f"{remaining} trials")
            contexts = [ms.TuneContext(task_module(t.kernel, batch), target=target,
                                       **search_space(t.kernel, batch, target), task_name=t.kernel.name,
                                       num_threads=_cores(), rand_state=-1 if seed is None else seed)
                        for t in searched]
            most = max(t.budget for t in searched)
            # A candidate many times slower than the best known schedule teaches
            # the search nothing that a timeout does not, and at batch 32 the
            # worst random candidates take seconds per call: cut them short.
            slowest = max((t.best_seconds for t in searched if t.best_seconds < math.inf), default=math.inf)
            search_runner = QuietRunner(timeout=min(10.0, max(2.0, 20 * slowest)))
            runners.append(search_runner)
            ms.tune_tasks(
                tasks=contexts, task_weights=[1.0] * len(contexts), work_dir=str(log_dir / ".work"),
                max_trials_global=remaining, max_trials_per_task=most,
                num_trials_per_iter=min(trials_per_round, most), builder=builder, runner=search_runner,
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
    finally:
        builder.close()
    return TuneResult(progress, time.perf_counter() - start, builder.seconds, sum(r.seconds for r in runners), skipped,
                      searched_log.rejected)


def _cores() -> int:
    return len(os.sched_getaffinity(0))
