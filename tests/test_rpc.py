"""Tuning and timing on devices registered with TVM's RPC tracker, on loopback
only: a tracker for the module and each test's RPC servers under a key of
their own (rpc_farm.py)."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error, invoke
from rpc_farm import Farm, Processes, answers, assert_no_workers_left, die_with_parent, free_port, left

from tvm_alexnet import build, tuning
from tvm_alexnet.spec import network
from tvm_alexnet.target import host_cpu

TINY = ["--variant", "paper", "--width", "0.25", "--num-classes", "10", "--batch", "2"]
KEY = "loopback"  # where no farm is running


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One tracker for the module (starting one imports TVM); each test's servers register under their own key."""
    tracker = Processes(tmp_path_factory.mktemp("tracker"))
    port = free_port()
    tracker.start("tracker", ["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                              "--port-end", str(port + 1)])
    devices = tuning.RemoteDevices("127.0.0.1", port, "none")
    tracker.wait(lambda: answers(devices), "the tracker to answer")
    try:
        yield tracker, port
    finally:
        tracker.stop()


@pytest.fixture
def farm(tmp_path, tracker, request):
    folder = tmp_path / "farm"
    folder.mkdir()
    farm = Farm(folder, *tracker, key=re.sub(r"\W", "-", request.node.name)[:60])
    try:
        yield farm
    finally:
        farm.stop()  # its servers; the tracker stays for the module's other tests


def records(log_dir: Path) -> list:
    path = log_dir / tuning.RECORDS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def tune_args(farm, log_dir, kernel="fc8_dense", trials=16):
    return ["tune", *TINY, "--kernel", kernel, "--trials", str(trials), "--trials-per-round", "8", "--seed", "1",
            "--log-dir", str(log_dir), "--rpc", f"127.0.0.1:{farm.port}", "--device-key", farm.key]


def start_tune(args, stderr: Path) -> subprocess.Popen:
    with open(stderr, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "tvm_alexnet", *args], stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, preexec_fn=die_with_parent)


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_none_left(groups: set[int], timeout: float = 10) -> None:
    """No process of these groups outlives them by more than `timeout` (workers die with their parent)."""
    deadline = time.monotonic() + timeout
    while left(groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left(groups), [p.cmdline() for p in left(groups)]


def wait_until(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the tuner exited before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


# -- the options and the tracker up front ---------------------------------------------------------


def test_a_tracker_that_is_not_there_fails_in_one_line_within_seconds(tmp_path):
    port = free_port()  # nothing listens there
    start = time.monotonic()
    result = invoke("tune", *TINY, "--kernel", "fc8_dense", "--trials", "8", "--log-dir", tmp_path / "log",
                    "--rpc", f"127.0.0.1:{port}", "--device-key", KEY)
    assert time.monotonic() - start < 5
    assert_one_line_error(result, f"127.0.0.1:{port}", "RPC tracker")
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--rpc", "127.0.0.1"], "--rpc"),
    (["--rpc", "127.0.0.1:9190"], "--device-key"),
    (["--device-key", KEY], "--rpc"),
    (["--rpc", "127.0.0.1:9190", "--device-key", "a b"], "--device-key"),
])
def test_rpc_options_are_checked_before_anything_runs(tmp_path, args, fragment):
    result = invoke("tune", *TINY, "--kernel", "fc8_dense", "--trials", "8", "--log-dir", tmp_path / "log", *args)
    assert_one_line_error(result, fragment)


def test_no_device_under_the_key_is_one_line_naming_tracker_and_key(farm, tmp_path):
    result = invoke(*tune_args(farm, tmp_path / "log"))
    assert_one_line_error(result, "no device", repr(farm.key), f"127.0.0.1:{farm.port}")
    assert not records(tmp_path / "log")


# -- tuning through the tracker ---------------------------------------------------------------


@pytest.mark.slow
def test_tune_measures_on_every_server_records_for_the_target_and_re_targets_there(farm, tmp_path):
    servers = farm.add_servers(2)
    log_dir = tmp_path / "log"
    result = invoke(*tune_args(farm, log_dir))
    assert result.exit_code == 0, result.output
    assert_no_workers_left(farm)  # the build and measuring workers went with the run
    database = tuning.read_log(log_dir)
    lines = database.get_all_tuning_records()
    assert 16 <= len(lines) < 16 + 8
    target = build.parse_target("llvm")
    assert all(tuning.same_target(r.target, target) for r in lines)
    assert sum(tuning.succeeded(r) for r in lines) >= 8
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "fc8_dense")
    assert tuning.default_seconds(tuning.default_times(log_dir), kernel, 2, target) > 0  # measured there too
    # Both servers measured candidates: their logs, and the run's own count.
    assert all(farm.served(name) >= 3 for name in servers), [farm.served(name) for name in servers]
    counts = re.search(r"measured on 2 devices: (.*)", result.stderr)
    assert counts, result.stderr
    # The search's candidates that built, the default schedule, the final settle.
    assert sum(int(n) for n in re.findall(r"\((\d+) candidates\)", counts.group(1))) > 16

    # tune --from, re-targeting that log to another CPU model, measures the re-targeted records there too.
    served = sum(farm.served(name) for name in servers)
    cpu = "haswell" if host_cpu() != "haswell" else "skylake"  # AVX2: runs wherever the tests run
    other = build.parse_target(f"llvm:{cpu}")
    result = invoke("tune", *TINY, "--kernel", "fc8_dense", "--trials", "0", "--from", log_dir, "--top-k", "4",
                    "--target", f"llvm:{cpu}", "--log-dir", tmp_path / "moved", "--rpc", f"127.0.0.1:{farm.port}",
                    "--device-key", farm.key)
    assert result.exit_code == 0, result.output
    moved = tuning.read_log(tmp_path / "moved").get_all_tuning_records()
    assert 1 <= len(moved) <= 4 and all(tuning.same_target(r.target, other) for r in moved)
    assert sum(farm.served(name) for name in servers) >= served + len(moved) + 1  # and the default


def _slow_candidates(n: int):
    """n runner inputs of one unscheduled conv3 build: about a second per measurement."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from tvm_alexnet.tuning.workers import _build_one, _intrinsics_package_only

    _intrinsics_package_only()  # as the build workers do: importing them all takes a minute
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    mod = tuning.task_module(kernel, 32)
    artifact = _build_one(mod, build.parse_target("llvm"))
    args_info = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
    return [RunnerInput(artifact, "cpu", args_info) for _ in range(n)]


def _run_and_kill(farm, runner, inputs, victims: list[str]):
    """Run `inputs` on `runner` in a thread, killing the `victims` as soon as each is running a candidate."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["results"] = [f.result() for f in runner.run(inputs)]
        except Exception as e:  # what MetaSchedule would see
            outcome["error"] = e

    thread = threading.Thread(target=run)
    before = {name: farm.served(name) for name in victims}
    thread.start()
    try:
        for name in victims:
            deadline = time.monotonic() + 120
            while farm.served(name) == before[name] and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.05)
            time.sleep(0.2)  # into the measurement
            farm.kill(name)
        thread.join(300)
    finally:
        runner.close()
    assert not thread.is_alive()
    return outcome


@pytest.mark.slow
def test_a_server_dropping_out_fails_only_the_candidates_it_was_running(farm):
    kept, dropped = farm.add_servers(2)
    inputs = _slow_candidates(6)
    runner = tuning.RemoteRunner(farm.devices, timeout=30)
    outcome = _run_and_kill(farm, runner, inputs, [dropped])
    results = outcome["results"]
    failed = [r.error_msg for r in results if r.error_msg is not None]
    assert 1 <= len(failed) <= 2 and all("dropped out" in e for e in failed), failed
    assert len(results) - len(failed) >= 4 and all(r.run_secs for r in results if r.error_msg is None)
    port = farm.devices.servers()[0][1]
    assert runner.measured_on[f"127.0.0.1:{port}"] >= 4  # the rest ran on the server left
    assert farm.served(kept) >= 4
    assert_no_workers_left(farm)


@pytest.mark.slow
def test_with_no_server_left_the_runner_ends_with_tracker_and_key(farm):
    servers = farm.add_servers(2)
    runner = tuning.RemoteRunner(farm.devices, timeout=30)
    outcome = _run_and_kill(farm, runner, _slow_candidates(6), servers)
    assert "error" in outcome, outcome
    assert isinstance(runner.error, tuning.RemoteError)
    assert str(runner.error) == f"no device left under key {farm.key!r} at the RPC tracker 127.0.0.1:{farm.port}"
    assert not runner._pool  # its workers are stopped
    assert_no_workers_left(farm)


@pytest.mark.slow
def test_tune_goes_on_when_a_server_drops_out_and_ends_in_one_line_when_none_is_left(farm, tmp_path):
    kept, dropped = farm.add_servers(2)
    log_dir = tmp_path / "log"
    proc = start_tune(tune_args(farm, log_dir, trials=64), tmp_path / "tune.txt")
    try:
        wait_until(lambda: farm.served(dropped) >= 3, proc, 300, "measurement on the second server")
        farm.kill(dropped)
        served, recorded = farm.served(kept), len(records(log_dir))
        # The round under way when it dropped, then a whole round on the server left.
        wait_until(lambda: len(records(log_dir)) >= recorded + 16, proc, 300, "a round on the server left")
        assert farm.served(kept) >= served + 8
        farm.kill(kept)
        assert proc.wait(120) == 1
        assert_none_left({proc.pid})  # the tuner's workers went with it
    finally:
        stop(proc)
    err = (tmp_path / "tune.txt").read_text().strip().splitlines()
    assert err[-1] == f"error: no device left under key {farm.key!r} at the RPC tracker 127.0.0.1:{farm.port}", err[-5:]
    assert not any(line.startswith("error") for line in err[:-1])
    kept_records = tuning.read_log(log_dir).get_all_tuning_records()  # every line reads
    assert recorded + 16 <= len(kept_records) < 64


# -- report on a remote device ----------------------------------------------------------------


def test_report_with_a_tracker_that_is_not_there_fails_in_one_line(tmp_path):
    port = free_port()
    result = invoke("report", *TINY, "--tuning-log", "none", "--rpc", f"127.0.0.1:{port}", "--device-key", KEY)
    assert_one_line_error(result, f"127.0.0.1:{port}", "RPC tracker")


@pytest.mark.slow
def test_report_times_every_kernel_on_the_remote_device(farm):
    from tvm_alexnet import report_files

    (server,) = farm.add_servers(1)
    result = invoke("report", *TINY, "--tuning-log", "none", "--repeat", "2", "--min-repeat-ms", "0", "--json",
                    "--rpc", f"127.0.0.1:{farm.port}", "--device-key", farm.key)
    assert result.exit_code == 0, result.output
    report = report_files.validate(json.loads(result.stdout), "stdout")
    net = network("paper", width=0.25, num_classes=10)
    assert [r["name"] for r in report["kernels"]] == [k.name for k in net.compiled_kernels()]
    assert all(r["ms"] > 0 and r["torch_ms"] is None and r["speedup_vs_torch"] is None for r in report["kernels"])
    assert [r["engine"] for r in report["network_rows"]] == ["TVM"] and report["peak"] is None
    remote = report["machine"]["remote"]
    assert remote["tracker"] == f"127.0.0.1:{farm.port}" and remote["key"] == farm.key
    assert tuple(remote["device"].rsplit(":", 1)) == tuple(map(str, farm.devices.servers()[0]))
    assert farm.served(server) == 2  # the network's library and the kernels'
    rendered = report_files.markdown(report)  # the tables show what was not measured as "-"
    assert "not measured" in rendered and "| - |" in rendered
