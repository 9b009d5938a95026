"""Measuring on other machines: devices registered with TVM's RPC tracker.

A tracker (`python -m tvm.exec.rpc_tracker`) keeps a queue of devices per
key; each device runs `python -m tvm.exec.rpc_server --tracker HOST:PORT
--key KEY`. Candidates are built here and measured there, each in a session
of its own (upload, random inputs, time_evaluator), as many at a time as
devices are registered under the key; the tracker hands each session a free
one.

Failures are per candidate: a device that drops out fails the candidates it
was running (MetaSchedule records them as failed runs) and the rest go to
the devices left. Only a tracker gone, or no device left under the key,
ends a run: RemoteError, one line naming both.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import select
import socket
import struct
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner import (
    PyRunner,
    RunnerFuture,
    RunnerInput,
    RunnerResult,
)

from ..errors import UserError
from .workers import QuietRunner, dies_with

# Connecting, uploading and loading a candidate, and random-filling its
# arguments, on top of the run's own timeout (the device ends a session
# past its timeout by itself).
SESSION_OVERHEAD = 5.0


class RemoteError(UserError):
    """A tracker that cannot be reached, or no device (left) under the key."""


@dataclass(frozen=True)
class RemoteDevices:
    """The devices registered under `key` with the RPC tracker at `host`:`port`.

    `connect_timeout` bounds every exchange with the tracker (an address
    where no tracker answers fails within it); `queue_timeout` is how long a
    measurement waits for a free device while devices are registered (no
    device left ends the wait at once)."""

    host: str
    port: int
    key: str
    connect_timeout: float = 5.0
    queue_timeout: float = 600.0

    @classmethod
    def parse(cls, address: str, key: str) -> RemoteDevices:
        """HOST:PORT and a device key, as `--rpc` and `--device-key` give them."""
        host, sep, port = address.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RemoteError(f"--rpc {address!r}: expected the tracker's HOST:PORT, e.g. 127.0.0.1:9190")
        if not key or not key.strip() or any(c.isspace() for c in key) or ":" in key:
            raise RemoteError(f"--device-key {key!r}: expected the key the devices registered under "
                              "(one word, no colon)")
        return cls(host.strip("[]"), int(port), key)

    def __str__(self) -> str:
        return f"key {self.key!r} at the RPC tracker {self.host}:{self.port}"

    # -- the tracker --------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        from tvm.rpc import base

        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as e:
            raise RemoteError(f"cannot reach the RPC tracker at {self.host}:{self.port} "
                              f"({e.strerror or e})") from None
        try:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
        except (OSError, RuntimeError) as e:
            sock.close()
            raise RemoteError(f"{self.host}:{self.port} does not answer as an RPC tracker ({e})") from None
        if magic != base.RPC_TRACKER_MAGIC:
            sock.close()
            raise RemoteError(f"{self.host}:{self.port} is not an RPC tracker")
        return sock

    def summary(self) -> dict:
        """The tracker's summary: {"queue_info": {key: {"free", "pending"}}, "server_info": [...]}."""
        from tvm.rpc import base

        sock = self._connect()
        try:
            base.sendjson(sock, [base.TrackerCode.SUMMARY])
            value = base.recvjson(sock)
        except (OSError, RuntimeError) as e:
            raise RemoteError(f"the RPC tracker at {self.host}:{self.port} stopped answering ({e})") from None
        finally:
            sock.close()
        return value[1]

    def servers(self) -> list[tuple[str, int]]:
        """The devices registered under the key (host, port), busy or free."""
        return [tuple(s["addr"]) for s in self.summary()["server_info"] if s["key"] == f"server:{self.key}"]

    def no_device(self, left: bool = True) -> RemoteError:
        hint = (f" (python -m tvm.exec.query_rpc_tracker --host {self.host} --port {self.port} lists what "
                "is registered)")
        return RemoteError(f"no device {'left ' if left else ''}under {self}" + ("" if left else hint))

    def check(self, target: tvm.target.Target) -> int:
        """Before a run: the tracker answers, devices are registered under the
        key, and one of them has the target's kind of device. Returns how
        many are registered."""
        count = len(self.servers())
        if count == 0:
            raise self.no_device(left=False)
        session, device = self.session(session_timeout=60)
        kind = device_type(target)
        try:
            exists = session.device(kind, 0).exist
        except Exception as e:  # TVM raises its own error types through RPC
            raise RemoteError(f"{device[0]}:{device[1]} ({self}): {str(e).strip().splitlines()[-1]}") from None
        if not exists:
            raise RemoteError(f"the device at {device[0]}:{device[1]} ({self}) has no {kind} device")
        return count

    def session(self, session_timeout: float):
        """A session on a free device, and the device's (host, port): waits in
        the tracker's queue while devices are registered under the key, at
        most `queue_timeout`; RemoteError where none is left. The device ends
        the session after `session_timeout` seconds (0: never)."""
        from tvm import rpc
        from tvm.rpc import base

        deadline = time.monotonic() + self.queue_timeout
        last = None
        for _ in range(3):  # a device that dropped out between the tracker handing it out and the connect
            sock = self._connect()
            try:
                base.sendjson(sock, [base.TrackerCode.REQUEST, self.key, "", 1])
                while not select.select([sock], [], [], 2.0)[0]:
                    if not self.servers():
                        raise self.no_device()
                    if time.monotonic() > deadline:
                        raise RemoteError(f"no device under {self} was free within {self.queue_timeout:.0f} s")
                value = base.recvjson(sock)
            except (OSError, RuntimeError) as e:
                raise RemoteError(f"the RPC tracker at {self.host}:{self.port} stopped answering ({e})") from None
            finally:
                sock.close()  # a request left in the queue is dropped when the tracker finds this closed
            if value[0] != base.TrackerCode.SUCCESS:
                raise RemoteError(f"the RPC tracker at {self.host}:{self.port} refused a request: {value}")
            url, port, matchkey = value[1]
            try:
                return rpc.connect(url, port, matchkey, session_timeout), (url, port)
            except Exception as e:  # TVM raises its own error types
                last = e
        raise RemoteError(f"no session with a device under {self}: {str(last).strip().splitlines()[-1]}")


def device_type(target: tvm.target.Target) -> str:
    return "cpu" if target.kind.name == "llvm" else target.kind.name


# -- a candidate, measured in a worker process -------------------------------------------------


def _start_worker(parent: int) -> None:
    dies_with(parent)()


def _measure(devices: RemoteDevices, artifact_path: str, device: str, args_info: tuple,
             evaluator: ms.runner.EvaluatorConfig, session_timeout: float):
    """(seconds per run or None, error or None, the device's (host, port) or
    None): MetaSchedule's RPC measurement of one built candidate. Raises
    RemoteError where no device is left."""
    from tvm.s_tir.meta_schedule.runner.utils import (
        alloc_argument_common,
        run_evaluator_common,
    )

    session, where = devices.session(session_timeout)
    remote_path = os.path.basename(artifact_path)
    try:
        dev = session.device("cpu" if device == "llvm" else device, 0)
        session.upload(artifact_path, remote_path)
        module = session.load_module(remote_path)
        fill = session.get_function("tvm.contrib.random.random_fill_for_measure")
        args = alloc_argument_common(fill, dev, args_info, 1)
        costs = run_evaluator_common(module, dev, evaluator, args)
        return [float(c) for c in costs], None, where
    except Exception as e:  # a candidate that fails to load or run, or a device that drops out
        message = "\n".join(line for line in str(e).strip().splitlines() if line.strip())
        return None, message or type(e).__name__, where
    finally:
        try:
            for path in (remote_path, remote_path + ".so"):
                session.remove(path)
        except Exception:  # the device is gone: nothing left to clean
            pass
        del session


@derived_object
class RemoteRunner(PyRunner):
    """Measures candidates on the devices under a key of an RPC tracker, as
    many at a time as devices are registered, and returns once all are
    measured (as QuietRunner does). A candidate fails on its own: a kernel
    that fails or runs past `timeout`, a device that drops out while it
    runs; with `retry_lost`, a candidate whose device dropped out is
    measured again on another (for the default schedules, which are not
    search candidates). RemoteError, kept in `error`, where no device is
    left; MetaSchedule hands it back as a RuntimeError."""

    def __init__(self, devices: RemoteDevices, timeout: float = 10.0, retry_lost: bool = False):
        super().__init__()
        self.devices, self.retry_lost = devices, retry_lost
        self.session_timeout = math.ceil(timeout + SESSION_OVERHEAD)
        self.evaluator = ms.runner.EvaluatorConfig(number=2, repeat=1, enable_cpu_cache_flush=False)
        self.seconds = 0.0
        self.error: RemoteError | None = None
        self.measured_on: Counter = Counter()  # "host:port" -> candidates measured there
        self._pool = None
        self._workers = 0

    def can_measure(self, target: tvm.target.Target) -> bool:
        return True  # the device was checked when the run started (RemoteDevices.check)

    def _start(self, workers: int) -> ProcessPoolExecutor:
        if self._pool is None or workers > self._workers:
            self.close()
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(os.getpid(),))
            self._workers = workers
        return self._pool

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        start = time.perf_counter()
        try:
            results = self._run(runner_inputs)
        except RemoteError as e:
            self.error = e
            self.close()
            raise
        finally:
            self.seconds += time.perf_counter() - start
        return [RunnerFuture(lambda: True, lambda r=r: r) for r in results]

    def _run(self, runner_inputs: list[RunnerInput]) -> list[RunnerResult]:
        if not runner_inputs:
            return []
        workers = len(self.devices.servers())
        if workers == 0:
            raise self.devices.no_device()
        limit = self.devices.queue_timeout + self.session_timeout + 30
        results: list[RunnerResult | None] = [None] * len(runner_inputs)
        retried: set[int] = set()
        queue, running = list(range(len(runner_inputs))), {}
        while queue or running:
            pool = self._start(workers)
            while queue and len(running) < workers:
                i = queue.pop(0)
                item = runner_inputs[i]
                running[pool.submit(_measure, self.devices, str(item.artifact_path), str(item.device_type),
                                    tuple(a.as_json() for a in item.args_info), self.evaluator,
                                    self.session_timeout)] = (i, time.perf_counter())
            oldest = min(started for _, started in running.values())
            done, _ = wait(running, timeout=max(0.0, oldest + limit - time.perf_counter()),
                           return_when=FIRST_COMPLETED)
            for future in done:
                i, _ = running.pop(future)
                try:
                    costs, error, where = future.result()
                except BrokenProcessPool:  # a worker died under this candidate: the pool is gone
                    self._pool = None
                    costs, error, where = None, "the measuring worker died", None
                if error is None:
                    self.measured_on[f"{where[0]}:{where[1]}"] += 1
                    results[i] = RunnerResult(costs, None)
                    continue
                lost = where is not None and self._dropped(tuple(where), error)
                if lost and self.retry_lost and i not in retried:
                    retried.add(i)
                    queue.insert(0, i)
                    continue
                device = f" on {where[0]}:{where[1]}" if where else ""
                cause = "the device dropped out: " if lost else ""
                results[i] = RunnerResult(None, f"RemoteRunner{device}: {cause}{error}")
            if not done:  # a session that neither ends nor fails: a device gone silent
                for i, started in running.values():
                    if time.perf_counter() - started >= limit:
                        results[i] = RunnerResult(None, f"RemoteRunner: no result after {limit:.0f} s")
                    else:
                        queue.insert(0, i)
                running.clear()
                self.close()
        return results

    def _dropped(self, where: tuple[str, int], error: str) -> bool:
        """Whether the device a candidate failed on is gone from the tracker.
        A session cut off by the device's end may reach us before the tracker
        hears of it: such a failure looks again after a moment."""
        if where not in self.devices.servers():
            return True
        if not any(word in error for word in ("kShutdown", "onnection", "reset", "roken pipe", "closed")):
            return False
        time.sleep(1.0)
        return where not in self.devices.servers()

    def close(self) -> None:
        """Stop the workers now, with the sessions they hold."""
        if self._pool is not None:
            for process in list(self._pool._processes.values()):  # Python < 3.14 has no public way
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# Seconds a candidate may take, linking and loading it included: a random
# convolution candidate at batch 32 can take seconds per call, and one that
# much slower than the default teaches the search nothing a timeout does not;
# 5 s still lets one be linked on a loaded machine.
MEASURE_TIMEOUT = 5.0


def make_runner(devices: RemoteDevices | None, timeout: float = MEASURE_TIMEOUT, retry_lost: bool = False):
    """Where candidates are measured: here (QuietRunner) or on the devices under an RPC tracker's key."""
    if devices is None:
        return QuietRunner(timeout=timeout)
    return RemoteRunner(devices, timeout=timeout, retry_lost=retry_lost)


def run_error(runners) -> RemoteError | None:
    """The RemoteError that ended a run inside MetaSchedule (which hands it back as a RuntimeError)."""
    return next((r.error for r in runners if getattr(r, "error", None) is not None), None)
