"""MetaSchedule's workers, as tuning on a small machine needs them: builders
that live as long as the tuner, a runner that measures without builds
running beside it, a log that takes only records it can read back.

Every worker process dies with the tuner, even a tuner killed with SIGKILL
(which runs no cleanup): each asks the kernel for SIGKILL when its parent
dies (Linux's PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
from tvm.s_tir.meta_schedule.database import PyDatabase
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerFuture, RunnerInput

from .. import cuda
from .logfile import RECORDS, WORKLOADS
from .records import mean_seconds, succeeded


def import_intrinsics(target_kind: str) -> None:
    """Register the tensor intrinsics MetaSchedule may use for this kind of
    target, and only those (see _intrinsics_package_only)."""
    _intrinsics_package_only()
    importlib.import_module(f"tvm.s_tir.tensor_intrin.{'cuda' if target_kind == 'cuda' else 'x86'}")


def _intrinsics_package_only() -> None:
    """`import tvm.s_tir.tensor_intrin`, which MetaSchedule does in every
    TuneContext and builder, parses every intrinsic of every backend, most of
    them CUDA's, which takes a minute on a small machine. Registering the
    package without running its __init__ makes that import a no-op. Building
    a scheduled module needs no intrinsic by name (tensorized blocks hold
    their code), so the build workers stop here."""
    name = "tvm.s_tir.tensor_intrin"
    if name not in sys.modules:
        import tvm.s_tir

        package = importlib.util.module_from_spec(importlib.util.find_spec(name))
        sys.modules[name] = package
        tvm.s_tir.tensor_intrin = package


def dies_with(parent: int):
    """A worker initializer: SIGKILL this process when `parent` dies, and
    exit now if it has already. A nested function, so that cloudpickle sends
    it by value and TVM's popen workers need not import this package."""

    def die_with_parent() -> None:
        import ctypes
        import os
        import signal
        import sys

        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it died before the line above
            os._exit(1)

    return die_with_parent


def _start_build_worker(parent: int) -> None:
    dies_with(parent)()
    _intrinsics_package_only()


def _build_one(mod: tvm.IRModule, target: tvm.target.Target) -> str:
    built = default_build(mod, target, None)
    if target.kind.name == "cuda":
        cuda.check_source(cuda.source(built), target)
    return default_export(built)


@derived_object
class PoolBuilder(PyBuilder):
    """Builds candidates in worker processes that live as long as the tuner.

    The stock LocalBuilder starts a fresh pool for every batch, and its
    workers spend longer importing tensor intrinsics than its timeout on a
    small machine, so most candidates "fail to build". These workers start
    once and import none (see _intrinsics_package_only). Use it from one
    thread: a worker dies with the thread that started it."""

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
                                             initializer=_start_build_worker, initargs=(os.getpid(),))
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
            timeout_sec=timeout, initializer=dies_with(os.getpid()),
            evaluator_config=ms.runner.EvaluatorConfig(number=2, repeat=1, enable_cpu_cache_flush=False))
        self.seconds = 0.0

    def can_measure(self, target: tvm.target.Target) -> bool:
        """Whether this machine has the target's device (a CUDA target on a machine without a GPU is only built)."""
        return target.kind.name != "cuda" or tvm.cuda(0).exist

    def close(self) -> None:
        pass  # LocalRunner's workers live for one batch

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


def measure_and_record(database: ms.database.Database | None, mod: tvm.IRModule, target: tvm.target.Target,
                       schedules: list, builder, runner, rounds: int = 1) -> list[tuple[bool, float | None]]:
    """Build and measure schedules of `mod` like tuning candidates (all of
    them in turn, `rounds` times; each one's fastest round counts) and
    commit those that run as records for `target`. Returns for each whether
    it built and its mean seconds (None where it failed). Where the runner
    cannot measure the target (a GPU target on a machine without one), they
    are only built: nothing is recorded. Without a database they are only
    measured."""
    args_info = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    built = builder.build([BuilderInput(sch.mod, target) for sch in schedules])
    ok = [(sch, b) for sch, b in zip(schedules, built) if b.error_msg is None]
    if not runner.can_measure(target):
        return [(b.error_msg is None, None) for b in built]
    device = "cpu" if target.kind.name == "llvm" else target.kind.name
    fastest = {}  # id(schedule) -> its fastest run
    for _ in range(rounds):
        ran = runner.run([RunnerInput(b.artifact_path, device, args_info) for _, b in ok])
        for (sch, _), future in zip(ok, ran):
            result = future.result()
            if result.error_msg is not None or not succeeded(result):
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
