"""A tracker and RPC servers on 127.0.0.1 for test_rpc: each in a process
group of its own, killed with its group when its test or module ends, and
with its parent through PR_SET_PDEATHSIG."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tvm_alexnet import tuning


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: a forked child only calls it


def die_with_parent() -> None:
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# Runs a module as __main__ (`python -c LAUNCH module args...`), it and the
# processes it starts (the tracker's and servers' popen workers) killed when
# their parent dies, for a test process killed too hard to tear its farm down.
LAUNCH = """
import ctypes, runpy, signal, subprocess, sys

prctl = ctypes.CDLL(None, use_errno=True).prctl

def die_with_parent():
    prctl(1, signal.SIGKILL)

class Popen(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("preexec_fn", die_with_parent)
        super().__init__(*args, **kwargs)

subprocess.Popen = Popen
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


class Processes:
    """Processes of the farm, each its own process group, its output in a log of its name."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> None:
        log = open(self.folder / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([sys.executable, "-c", LAUNCH, *args], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=die_with_parent)
        log.close()

    def wait(self, condition, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, f"waiting for {what}; exited: {dead}\n" + "\n".join(
                (self.folder / f"{name}.log").read_text()[-2000:] for name in dead)
            time.sleep(0.3)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the process and the sessions it is serving
        proc.wait()

    def groups(self) -> set[int]:
        return {p.pid for p in self.procs.values()}

    def stop(self) -> None:
        for name in self.procs:
            self.kill(name)
        deadline = time.monotonic() + 10
        while left(self.groups()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left(self.groups()), "processes of the farm left running"


class Farm(Processes):
    """RPC servers on 127.0.0.1 under a key of their own, registered with the module's tracker."""

    def __init__(self, folder: Path, tracker: Processes, port: int, key: str):
        super().__init__(folder)
        self.tracker, self.port, self.key = tracker, port, key
        self.devices = tuning.RemoteDevices("127.0.0.1", port, key)

    def add_servers(self, n: int) -> list[str]:
        names = []
        for _ in range(n):
            name, port = f"server{len(self.procs)}", free_port()
            self.start(name, ["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                              "--port-end", str(port + 1), "--tracker", f"127.0.0.1:{self.port}",
                              "--key", self.key])
            names.append(name)
        total = len(self.procs)
        self.wait(lambda: len(self.devices.servers()) == total, f"{total} servers to register")
        return names

    def served(self, name: str) -> int:
        """Modules the server loaded: one per candidate (or report) it measured."""
        return self.log(name).count("load_module")


def left(groups: set[int]) -> list[psutil.Process]:
    """Processes still alive (not zombies) in these process groups."""
    found = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) in groups and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


def assert_no_workers_left(farm) -> None:
    """No process that this test process started outlives the run, but the farm's and the tracker's (killed in
    their teardowns)."""
    deadline, farms = time.monotonic() + 10, farm.groups() | farm.tracker.groups()
    while True:
        workers = []
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if (p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) not in farms
                        and "resource_tracker" not in " ".join(p.cmdline())):  # multiprocessing's, for the process
                    workers.append(p)
        if not workers or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not workers, [p.cmdline() for p in workers]


def answers(devices) -> bool:
    try:
        devices.summary()
        return True
    except tuning.RemoteError:
        return False
