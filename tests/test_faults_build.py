"""Faults around builds and tuning (issue 19): a truncated cached library, a
cache that cannot be written, tuning workers left behind by a killed tuner,
log lines that do not read counted as records; and the shipped tuning logs,
found inside the package wherever it is installed."""

import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import reference as ref
import torch
from click.testing import CliRunner
from helpers import params_of, randomize

from tvm_alexnet import AlexNet, artifact, build, tuning
from tvm_alexnet.cli import main
from tvm_alexnet.errors import UserError
from tvm_alexnet.runtime import CompiledNetwork
from tvm_alexnet.spec import network
from tvm_alexnet.target import parse_target

TINY = {"width": 0.25, "num_classes": 10}


@pytest.mark.slow
def test_a_truncated_cached_library_is_built_again_never_loaded_or_published(tmp_path, monkeypatch, test_seed):
    monkeypatch.setenv("TVM_ALEXNET_CACHE", str(tmp_path / "cache"))
    model = randomize(AlexNet("paper", **TINY), seed=test_seed).eval()
    llvm = parse_target("llvm")
    cached = build.build(model.spec, llvm, batch=1)
    library = cached / artifact.LIBRARY
    with open(library, "r+b") as f:  # what a full disk or a killed copy leaves
        f.truncate(library.stat().st_size // 2)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"alexnet\.so: .*truncated.*building it again"):
        assert build.build(model.spec, llvm, batch=1, out_dir=out) == out  # nothing is loaded here
    assert artifact.check(cached).files == artifact.check(out).files  # rebuilt in place, then published
    model.compile("llvm", batch=1, out_dir=out)
    x = np.random.default_rng(test_seed).standard_normal((1, *model.spec.input_shape))
    with torch.no_grad():
        logits = model(torch.from_numpy(x).float())
    assert ref.rel_error(logits.numpy(), ref.forward(model.spec, params_of(model), x)) < 1e-5
    # A build folder of the user's, truncated afterwards: an error naming the file, not SIGBUS.
    # (A copy: the library this process has loaded must stay whole while it is mapped.)
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    with open(damaged / artifact.LIBRARY, "r+b") as f:
        f.truncate(4096)
    with pytest.raises(UserError, match=r"alexnet\.so: 4096 bytes"):
        CompiledNetwork(damaged)


def test_an_unwritable_cache_gives_way_to_a_temporary_one_before_compiling(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TVM_ALEXNET_CACHE", str(blocker))  # a file: no folder can be made in it
    compile_module = build.compile_module

    class Compiling(Exception):
        pass

    def stop(*args, **kwargs):
        raise Compiling

    net, llvm = network("paper", **TINY), parse_target("llvm")
    monkeypatch.setattr(build, "compile_module", stop)
    # The compile stops as it starts: the warning came before it.
    with pytest.warns(UserWarning, match="cannot be written"), pytest.raises(Compiling):
        build.build(net, llvm, batch=1)
    monkeypatch.setattr(build, "compile_module", compile_module)
    with pytest.warns(UserWarning, match="cannot be written"):
        directory = build.build(net, llvm, batch=1)
    assert not directory.is_relative_to(blocker) and artifact.check(directory).batch == 1
    with pytest.warns(UserWarning, match="cannot be written"):
        assert build.build(net, llvm, batch=1) == directory  # the temporary cache serves the process


def test_concurrent_requests_for_one_build_compile_it_once(tmp_path, monkeypatch):
    """torchrun's ranks ask for the same build at once: one compiles, the others
    wait and load it, and none sees the cache entry half replaced."""
    monkeypatch.setenv("TVM_ALEXNET_CACHE", str(tmp_path / "cache"))
    compiled = []

    def fake_compile(staging, net, batch, target, tuning_log):
        compiled.append(staging)
        time.sleep(0.3)  # long enough for the other request to arrive while this one compiles
        (staging / artifact.LIBRARY).write_bytes(np.random.default_rng().bytes(4096))
        manifest = artifact.Manifest(variant=net.variant, width=net.width, num_classes=net.num_classes,
                                     lrn=net.lrn, batch=batch, target={}, tvm_version="", build_seconds=0.0,
                                     kernels=[], functions=[])
        manifest.files = {artifact.LIBRARY: artifact.describe(staging / artifact.LIBRARY)}
        manifest.save(staging / artifact.MANIFEST)

    monkeypatch.setattr(build, "_compile_into", fake_compile)
    net, llvm = network("paper", **TINY), parse_target("llvm")
    with ThreadPoolExecutor(3) as pool:
        directories = list(pool.map(lambda _: build.build(net, llvm, batch=1), range(3)))
    assert len(compiled) == 1 and len(set(directories)) == 1
    assert artifact.check(directories[0]).batch == 1


def _tree(psutil, pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_workers_die_with_a_tuner_killed_by_sigkill(tmp_path):
    psutil = pytest.importorskip("psutil")
    log_dir, stderr = tmp_path / "log", tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        tuner = subprocess.Popen(
            [sys.executable, "-m", "tvm_alexnet", "tune", "--width", "0.25", "--num-classes", "10", "--batch", "2",
             "--kernel", "fc8_dense", "--trials", "16", "--trials-per-round", "8", "--log-dir", str(log_dir)],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    workers = []
    try:
        # The default schedule is built and measured before the search: once its
        # time is noted, the build worker and the runner's worker are running.
        deadline = time.monotonic() + 300
        while not (log_dir / tuning.DEFAULTS).exists():
            assert tuner.poll() is None, f"the tuner exited by itself:\n{stderr.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no default schedule time noted in 300 s"
            time.sleep(0.2)
        workers = _tree(psutil, tuner.pid)
        commands = [" ".join(p.cmdline()) for p in workers]
        assert any("multiprocessing" in c for c in commands), commands  # PoolBuilder's
        assert any("popen_worker" in c for c in commands), commands  # the runner's
        tuner.kill()
        tuner.wait()
        _, alive = psutil.wait_procs(workers, timeout=20)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"left running: {[' '.join(p.cmdline()) for p in alive]}"
    finally:
        for process in workers:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        if tuner.poll() is None:
            tuner.kill()
            tuner.wait()


def test_logs_counts_only_the_records_that_read(tmp_path):
    from tvm.s_tir import meta_schedule as ms

    kernel = next(k for k in network("paper", **TINY).kernels() if k.name == "fc8_dense")
    mod, llvm = tuning.task_module(kernel, 2), parse_target("llvm")
    database = tuning.open_log(tmp_path)
    database.commit_tuning_record(ms.database.TuningRecord(
        tuning.default_schedule(kernel, 2, llvm).trace, database.commit_workload(mod), [1e-3], llvm,
        ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    (good,) = (tmp_path / tuning.RECORDS).read_text().splitlines()
    with open(tmp_path / tuning.RECORDS, "a") as f:
        f.write('{"not": "a record"}\n')
        f.write("[0, [1, 2, 3, 4]]\n")  # a record's shape, nothing a record holds
        f.write(json.dumps([7, json.loads(good)[1]]) + "\n")  # a record of a workload the log lacks
        f.write('[0, [["half a reco\n')  # not JSON
    assert tuning.record_count(tmp_path) == 1
    result = CliRunner().invoke(main, ["logs", str(tmp_path), "--width", "0.25", "--num-classes", "10",
                                       "--batch", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert re.findall(r"(\d+) records", result.stdout) == ["1"], result.stdout


def test_the_shipped_log_is_found_in_the_package_and_named():
    paper = network("paper")
    log, message = tuning.resolve_log("auto", paper, 1, parse_target("llvm:znver3"))
    assert log == tuning.SHIPPED_LOGS / "llvm-znver3" and log.is_relative_to(Path(tuning.__file__).parent.parent)
    assert "znver3" in message and "batch 1, 32" in message
    for batch, target, why in ((4, "llvm:znver3", "not 4"), (1, "llvm:skylake", "no shipped log for CPU skylake")):
        log, message = tuning.resolve_log("auto", paper, batch, parse_target(target))
        assert log is None and why in message and "default schedules" in message
