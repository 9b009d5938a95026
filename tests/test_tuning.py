"""Tuning a tiny variant end to end: records, kill -9 and resume, applying the log, bad logs."""

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import reference as ref
import torch
import tvm_ffi
from click.testing import CliRunner
from helpers import params_of, randomize

from tvm_alexnet import AlexNet, build, tuning
from tvm_alexnet.cli import main
from tvm_alexnet.spec import network

TINY = ["--width", "0.25", "--num-classes", "10", "--batch", "2"]
TUNE = ["tune", *TINY, "--kernel", "conv3_conv", "--trials", "8", "--trials-per-kernel", "8",
        "--trials-per-round", "4", "--seed", "1"]


def copy_log(log_dir, to, default_seconds=None):
    """A copy of the log; with `default_seconds`, every default schedule time
    set to it (and the side-by-side verdicts, which would overrule it, dropped)."""
    to.mkdir(parents=True, exist_ok=True)
    for name in (tuning.WORKLOADS, tuning.RECORDS):
        (to / name).write_bytes((log_dir / name).read_bytes())
    times = json.loads((log_dir / tuning.DEFAULTS).read_text())
    if default_seconds is not None:
        times = {k: dict(kernel=v["kernel"], batch=v["batch"], seconds=default_seconds) for k, v in times.items()}
    (to / tuning.DEFAULTS).write_text(json.dumps(times))
    return to


def records(log_dir):
    lines = (log_dir / tuning.RECORDS).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def tune_killed_and_resumed(log_dir: Path) -> int:
    """Tunes into `log_dir` in a process killed with SIGKILL after its first
    round, then resumed by the same command; returns the first run's records."""
    stderr = log_dir.parent / "tune-stderr.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tvm_alexnet", *TUNE, "--log-dir", str(log_dir)],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (log_dir / tuning.RECORDS).exists() and len(records(log_dir)) >= 4:
            break
        time.sleep(1)
    assert proc.poll() is None, f"the tuner exited by itself:\n{stderr.read_text()[-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)  # the tuner and its build workers
    proc.wait()
    first = len(records(log_dir))
    assert 4 <= first < 8, f"the first run should be killed after one round, it recorded {first}"
    with open(log_dir / tuning.RECORDS, "a") as f:
        f.write('[0, [["half a reco')  # what a kill in the middle of a write leaves
    result = CliRunner().invoke(main, [*TUNE, "--log-dir", str(log_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return first


@pytest.fixture(scope="session")
def tuned_log(tmp_path_factory, worker_id):
    """(log folder, records of the killed first run), tuned once per session:
    minutes of tuning, so every test that uses it is marked slow, and none
    writes into it. pytest-xdist's workers share it, the first to ask tuning
    it under a lock in their common temporary folder."""
    if worker_id == "master":
        log_dir = tmp_path_factory.mktemp("log")
        return log_dir, tune_killed_and_resumed(log_dir)
    shared = tmp_path_factory.getbasetemp().parent
    log_dir, first = shared / "tuned-log", shared / "tuned-log-first-run.txt"
    with open(shared / "tuned-log.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not first.exists():
            shutil.rmtree(log_dir, ignore_errors=True)  # what a failed attempt left
            log_dir.mkdir()
            first.write_text(str(tune_killed_and_resumed(log_dir)))
    return log_dir, int(first.read_text())


@pytest.mark.slow
def test_resume_continues_to_the_budget(tuned_log):
    log_dir, first = tuned_log
    lines = records(log_dir)  # every line parses: the half line is gone
    # The budget counts what the first run recorded; MetaSchedule may overshoot
    # it by less than a round when a round yields fewer new candidates.
    assert 8 <= len(lines) < 8 + 4
    workloads = (log_dir / tuning.WORKLOADS).read_text().splitlines()
    assert all(0 <= r[0] < len(workloads) for r in lines)
    assert json.loads((log_dir / tuning.PROVENANCE).read_text())[-1]["tvm"]


@pytest.mark.slow
def test_failed_candidates_count_toward_the_budget(tuned_log, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    log_dir = copy_log(tuned_log[0], tmp_path / "log")
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    mod = tuning.task_module(kernel, 2)
    database = tuning.open_log(log_dir)
    best = database.get_top_k(database.commit_workload(mod), 1)[0]
    before = tuning.trials_done(database, mod, best.target)
    assert before == len(records(log_dir))  # the log holds conv3 alone
    database.commit_tuning_record(ms.database.TuningRecord(  # as MetaSchedule records a candidate that failed
        best.trace, best.workload, [1e10], best.target, best.args_info))
    assert tuning.trials_done(tuning.open_log(log_dir), mod, best.target) == before + 1


@pytest.mark.slow
def test_convolutions_are_searched_in_their_default_schedules_space(tuned_log):
    traces = [str(r.trace) for r in tuning.read_log(tuned_log[0]).get_all_tuning_records()]
    # The default's repacked weights and its tile, with the row length a sampled choice.
    assert traces and all("transform_layout" in t and "sample_categorical" in t for t in traces)
    assert len({tuple(re.findall(r"decision=(\d+)", t)) for t in traces}) > 1  # not one tile over and over


@pytest.mark.slow
def test_log_notes_the_default_schedule_time_once(tuned_log):
    log_dir, _ = tuned_log
    times = json.loads((log_dir / tuning.DEFAULTS).read_text())
    entries = [v for v in times.values() if v["kernel"] == "conv3_conv"]
    assert len(entries) == 1 and entries[0]["batch"] == 2 and entries[0]["seconds"] > 0  # one entry after resume


@pytest.mark.slow
def test_a_slow_default_measurement_is_corrected_by_the_next(tuned_log, tmp_path):
    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=100.0)  # as if measured on a loaded machine
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    builder = tuning.PoolBuilder(workers=1, target_kind="llvm")
    try:
        seconds = tuning.record_default(log_dir, kernel, 2, build.parse_target("llvm"), builder, tuning.QuietRunner())
    finally:
        builder.close()
    assert 0 < seconds < 1
    times = json.loads((log_dir / tuning.DEFAULTS).read_text())
    assert [v["seconds"] for v in times.values() if v["kernel"] == "conv3_conv"] == [seconds]


def test_a_build_past_the_timeout_fails_and_frees_its_worker():
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    candidate = BuilderInput(tuning.default_schedule(kernel, 2, build.parse_target("llvm")).mod, build.parse_target("llvm"))
    builder = tuning.PoolBuilder(workers=1, target_kind="llvm", timeout=0.001)  # less than a worker's start
    try:
        (result,) = builder.build([candidate])
        assert "no build after" in result.error_msg and builder._pool is None  # the worker was killed
        builder.timeout = 300
        (result,) = builder.build([candidate])
        assert result.error_msg is None and os.path.exists(result.artifact_path)
    finally:
        builder.close()


@pytest.mark.slow
def test_compile_with_log_matches_float64(tuned_log, tmp_path, rng):
    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=1e3)  # every record beats the default
    in_log = {v["kernel"] for v in json.loads((log_dir / tuning.DEFAULTS).read_text()).values()}
    assert in_log == {"conv3_conv"}
    model = randomize(AlexNet("paper", width=0.25, num_classes=10), seed=3).eval()
    model.compile("llvm", batch=2, tuning_log=log_dir)
    assert sorted(model.compiled.manifest.tuned) == sorted(in_log)  # the tuned schedules are what runs below
    x = rng.standard_normal((2, *model.spec.input_shape))
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
    assert ref.rel_error(out.numpy(), ref.forward(model.spec, params_of(model), x)) < 1e-5


@pytest.mark.slow
def test_any_batch_compile_runs_tuned_chunks(tuned_log, tmp_path, rng):
    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=1e3)  # every record beats the default
    model = randomize(AlexNet("paper", width=0.25, num_classes=10), seed=4).eval()
    model.compile("llvm", tuning_log=log_dir)
    assert model.compiled.manifest.batch is None
    assert list(model.fixed_batches) == [2] and model.fixed_batches[2].manifest.tuned == ["conv3_conv"]
    tuned, chunks = model.fixed_batches[2], []
    forward = tuned.forward
    tuned.forward = lambda x, params: chunks.append(len(x)) or forward(x, params)
    x = rng.standard_normal((5, *model.spec.input_shape))  # two tuned chunks of 2, one image on the any-batch build
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
    assert chunks == [2, 2]
    assert ref.rel_error(out.numpy(), ref.forward(model.spec, params_of(model), x)) < 1e-5


@pytest.mark.slow
def test_record_slower_than_the_default_is_not_used(tuned_log, tmp_path):
    log_dir, _ = tuned_log
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    llvm = build.parse_target("llvm")
    for seconds, used in ((1e-12, False), (1e3, True)):
        log = copy_log(log_dir, tmp_path / str(seconds), default_seconds=seconds)
        func = tuning.tuned_kernel(tuning.read_log(log), kernel, 2, llvm, tuning.default_times(log))
        assert (func is not None) == used


@pytest.mark.slow
def test_record_is_not_used_once_the_default_changed(tuned_log, tmp_path):
    log_dir, _ = tuned_log
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    llvm = build.parse_target("llvm")
    log = copy_log(log_dir, tmp_path / "log", default_seconds=1e3)  # every record beats the default's time
    assert tuning.tuned_kernel(tuning.read_log(log), kernel, 2, llvm, tuning.default_times(log)) is not None
    # The same times under another default schedule's digest: what a changed default leaves behind.
    times = json.loads((log / tuning.DEFAULTS).read_text())
    (log / tuning.DEFAULTS).write_text(json.dumps({k.rsplit("/", 1)[0] + "/" + "0" * 16: v for k, v in times.items()}))
    assert tuning.tuned_kernel(tuning.read_log(log), kernel, 2, llvm, tuning.default_times(log)) is None
    # Timed on another CPU kind only: this one's records are used as they are.
    (log / tuning.DEFAULTS).write_text(json.dumps({"llvm-skylake/" + k.split("/", 1)[1]: v for k, v in times.items()}))
    assert tuning.tuned_kernel(tuning.read_log(log), kernel, 2, llvm, tuning.default_times(log)) is not None


@pytest.mark.slow
def test_tune_ends_with_a_side_by_side_verdict_that_builds_follow(tuned_log, tmp_path):
    log_dir, _ = tuned_log
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    llvm = build.parse_target("llvm")
    times = json.loads((log_dir / tuning.DEFAULTS).read_text())
    (key, entry), = [(k, v) for k, v in times.items() if v["kernel"] == "conv3_conv"]
    best = tuning.best_record(tuning.read_log(log_dir), tuning.task_module(kernel, 2), llvm)
    assert entry["settled"]["record"] == tuning.trace_digest(best.trace)
    # The verdict overrules the recorded times, either way round.
    for seconds, record_wins in ((1e3, False), (1e-12, True)):
        log = copy_log(log_dir, tmp_path / str(seconds), default_seconds=seconds)
        verdict = dict(times[key], seconds=seconds, settled=dict(entry["settled"], record_wins=record_wins))
        (log / tuning.DEFAULTS).write_text(json.dumps({key: verdict}))
        func = tuning.tuned_kernel(tuning.read_log(log), kernel, 2, llvm, tuning.default_times(log))
        assert (func is not None) == record_wins


@pytest.mark.slow
def test_log_for_another_cpu_is_not_used(tuned_log):
    log_dir, _ = tuned_log
    net = network("paper", width=0.25, num_classes=10)
    database = tuning.read_log(log_dir)
    kernel = next(k for k in net.kernels() if k.name == "conv3_conv")
    assert tuning.tuned_kernel(database, kernel, 2, build.parse_target("llvm")) is not None
    assert tuning.tuned_kernel(database, kernel, 2, build.parse_target("llvm:skylake")) is None
    assert tuning.tuned_kernel(database, kernel, 4, build.parse_target("llvm")) is None  # other batch


@pytest.mark.slow
def test_cli_compile_reports_tuned_and_fallback(tuned_log, tmp_path):
    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=1e3)  # every record beats the default
    result = CliRunner().invoke(main, ["compile", *TINY, "--tuning-log", str(log_dir), "-o", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "tuned from" in result.stderr and "conv3_conv" in result.stderr.split("default schedule")[0]
    assert "conv1_conv" in result.stderr.split("default schedule")[1]


@pytest.mark.slow
def test_train_uses_the_log(tuned_log, tmp_path, rng):
    from PIL import Image

    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=1e3)  # every record beats the default
    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / "data" / split / label).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
                tmp_path / "data" / split / label / "x.png")
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--width", "0.25", "--batch-size",
                                       "2", "--epochs", "1", "--workers", "0", "--tuning-log", str(log_dir),
                                       "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    kernels = len(network("paper", 2, 0.25).compiled_kernels())
    assert f"{log_dir}: 1 of {kernels} kernels tuned at batch 2" in result.stderr  # conv3_conv
    assert (tmp_path / "run" / "weights.safetensors").exists()


@pytest.mark.slow
def test_corrupt_log_names_file_and_line_and_falls_back(tuned_log, tmp_path):
    bad = copy_log(tuned_log[0], tmp_path / "bad", default_seconds=1e3)
    good = (bad / tuning.RECORDS).read_text()
    (bad / tuning.RECORDS).write_text('{"not": "a record"}\n[0, [1, 2, 3, 4]]\n' + good)
    result = CliRunner().invoke(main, ["compile", *TINY, "--tuning-log", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 2 and all(tuning.RECORDS in line for line in warned)
    assert "line 1 " in warned[0] and "line 2 " in warned[1]
    assert "tuned from" in result.stderr and "conv3_conv" in result.stderr.split("default schedule")[0]
    assert (bad / tuning.RECORDS).read_text().endswith(good)  # reading never rewrites a log


@pytest.mark.slow
def test_builds_read_only_the_best_record_that_reads(tuned_log, tmp_path):
    log_dir = copy_log(tuned_log[0], tmp_path / "log")
    fastest = min(records(log_dir), key=lambda r: sum(r[1][1]) / len(r[1][1]))
    broken = [fastest[0], [[[["NoSuchInstruction", [], [], []]], []], [1e-9], *fastest[1][2:]]]
    with open(log_dir / tuning.RECORDS, "a") as f:  # faster than any, but its trace does not replay
        f.write(json.dumps(broken) + "\n")
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    task, target = tuning.task_module(kernel, 2), build.parse_target("llvm")
    with pytest.warns(UserWarning, match=f"line {len(records(log_dir))} is not a MetaSchedule tuning record"):
        best = tuning.read_log(log_dir, best_only=True)
    assert len(best.get_all_tuning_records()) == 1
    with pytest.warns(UserWarning):
        full = tuning.read_log(log_dir)
    assert len(full.get_all_tuning_records()) == len(records(log_dir)) - 1
    assert str(tuning.best_record(best, task, target).trace) == str(tuning.best_record(full, task, target).trace)
    assert tuning.best_record(best, task, target).run_secs[0].value == fastest[1][1][0]


def test_foreign_file_falls_back_to_defaults(tmp_path):
    (tmp_path / tuning.WORKLOADS).write_text('["abc", "def"]\n')
    (tmp_path / tuning.RECORDS).write_text('[0, [1, 2, 3, 4]]\n')
    result = CliRunner().invoke(main, ["compile", *TINY, "--tuning-log", str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 2 and tuning.WORKLOADS in warned[0] and tuning.RECORDS in warned[1]
    assert "tuned from" in result.stderr and "none" in result.stderr.split("default schedule")[0]


@pytest.mark.slow
def test_logs_shows_targets_and_coverage(tuned_log):
    log_dir, _ = tuned_log
    result = CliRunner().invoke(main, ["logs", str(log_dir), "--width", "0.25", "--num-classes", "10",
                                       "--batch", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "conv3_conv" in line)
    assert float(row.split("│")[2]) > 0
    assert "1/13" in result.stdout  # only conv3_conv of 13 tunable kernels
    assert "tune paper" in result.stderr  # provenance


@pytest.mark.slow
def test_schedules_export_readable_tvmscript(tuned_log, tmp_path):
    import tvm

    log_dir = copy_log(tuned_log[0], tmp_path / "log", default_seconds=1e3)  # every record beats the default
    out = tmp_path / "out"
    out.mkdir()
    (out / "conv4_conv.py").write_text("# from a log whose conv4 record has since lost to its default\n")
    (out / "notes.txt").write_text("not a schedule")
    result = CliRunner().invoke(main, ["schedules", "--tuning-log", str(log_dir), *TINY, "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["conv3_conv.py", "notes.txt"]
    text = (out / "conv3_conv.py").read_text()
    assert text.startswith("# conv3_conv (conv2d) of paper, batch 2") and "GFLOP/s" in text
    func = tvm.script.from_source(text)  # parses back
    assert func.attrs["global_symbol"] == "conv3_conv"


def test_schedules_export_defaults(tmp_path):
    import tvm

    result = CliRunner().invoke(main, ["schedules", "--width", "0.25", "-o", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "conv2_conv.py").exists() and (tmp_path / "fc6_dense.py").exists()
    func = tvm.script.from_source((tmp_path / "conv2_conv.py").read_text())
    loops = str(func)
    assert "T.parallel" in loops and "T.vectorized" in loops  # scheduled, not the naive loop nest


@pytest.mark.slow
def test_retarget_to_another_cpu_measures_and_records(tuned_log, tmp_path):
    log_dir, _ = tuned_log
    skylake = build.parse_target("llvm:skylake")
    result = CliRunner().invoke(main, [*TUNE, "--trials", "0", "--from", str(log_dir), "--top-k", "3",
                                       "--target", "llvm:skylake", "--log-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 records, 3 apply, 3 build, 3 measured and recorded" in result.stderr
    database = tuning.read_log(tmp_path)
    assert [tuning.target_dirname(t) for t in tuning.log_targets(database)] == ["llvm-skylake"]
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == "conv3_conv")
    assert tuning.tuned_kernel(database, kernel, 2, skylake) is not None
    assert "re-target paper" in json.loads((tmp_path / tuning.PROVENANCE).read_text())[0]["note"]


def sampled_cuda_log(log_dir, arch: str, kernel_name: str, count: int) -> None:
    """A log of MetaSchedule candidates sampled for a GPU, as a GPU tuning
    would record them but made without one (run times are placeholders)."""
    from tvm.s_tir import meta_schedule as ms

    tuning.import_intrinsics("cuda")
    target = build.parse_target(f"cuda:{arch}")
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).kernels() if k.name == kernel_name)
    mod = tuning.task_module(kernel, 2)
    context = ms.TuneContext(mod, target=target, space_generator="post-order-apply",
                             search_strategy="replay-trace", rand_state=1)
    context.pre_tuning(max_trials=count, num_trials_per_iter=count, design_spaces=context.generate_design_space())
    database = tuning.open_log(log_dir)
    for i, candidate in enumerate(context.generate_measure_candidates()):
        database.commit_tuning_record(ms.database.TuningRecord(
            candidate.sch.trace, database.commit_workload(mod), [1e-3 * (i + 1)], target, candidate.args_info))


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the re-targeted records are measured")
def test_retarget_sm80_to_sm90_builds_with_nvcc(tmp_path):
    sampled_cuda_log(tmp_path / "sm_80", "sm_80", "fc6_dense", 3)
    result = CliRunner().invoke(main, ["tune", *TINY, "--kernel", "fc6_dense", "--trials", "0", "--from",
                                       str(tmp_path / "sm_80"), "--target", "cuda:sm_90",
                                       "--log-dir", str(tmp_path / "sm_90")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # Each candidate's CUDA source went through nvcc for sm_90; with no GPU here none is measured.
    assert "3 records, 3 apply, 3 build, 0 measured and recorded" in result.stderr


@pytest.mark.slow
def test_logs_merge_keeps_each_record_once(tuned_log, tmp_path):
    log_dir, _ = tuned_log
    out = tmp_path / "merged"
    args = ["logs", str(log_dir), str(log_dir), "--width", "0.25", "--num-classes", "10", "--batch", "2",
            "--merge-into", str(out)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # A resumed tuner may measure a candidate twice: the merge keeps it once.
    distinct = {json.dumps(r) for r in records(log_dir)}
    traces = {json.dumps(r[1][0]) for r in records(log_dir)}
    assert len(records(out)) <= len(distinct) and {json.dumps(r[1][0]) for r in records(out)} == traces
    merged = len(records(out))
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert "merged 0 new records" in again.stderr and len(records(out)) == merged
    notes = [entry["note"] for entry in json.loads((out / tuning.PROVENANCE).read_text())]
    assert notes[0].startswith("tune paper") and notes[-1].startswith("merged 0 records")


@pytest.mark.slow
def test_logs_prune_drops_records_no_kernel_has(tuned_log, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    log_dir = copy_log(tuned_log[0], tmp_path / "log")
    database = tuning.open_log(log_dir)
    best = tuning.read_log(log_dir).get_all_tuning_records()[0]
    wider = next(k for k in network("paper", width=0.5, num_classes=10).kernels() if k.name == "conv3_conv")
    database.commit_tuning_record(ms.database.TuningRecord(  # as a kernel since changed left it
        best.trace, database.commit_workload(tuning.task_module(wider, 2)), [1e-3], best.target, best.args_info))
    before = records(log_dir)
    workloads = (log_dir / tuning.WORKLOADS).read_text()
    result = CliRunner().invoke(main, ["logs", str(log_dir), *TINY, "--prune"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "pruned 1 records of 1 workloads" in result.stderr
    assert records(log_dir) == before[:-1]  # the others kept, in order
    assert (log_dir / tuning.WORKLOADS).read_text() == workloads  # records name workloads by line
    assert "pruned 1 records" in json.loads((log_dir / tuning.PROVENANCE).read_text())[-1]["note"]
    again = CliRunner().invoke(main, ["logs", str(log_dir), *TINY, "--prune"], catch_exceptions=False)
    assert "pruned 0 records of 0 workloads" in again.stderr and records(log_dir) == before[:-1]


@pytest.mark.slow
def test_backward_kernels_are_tasks_too(tmp_path):
    result = CliRunner().invoke(main, ["tune", *TINY, "--kernel", "fc8_dense_grad_weight", "--trials", "2",
                                       "--trials-per-round", "2", "--log-dir", str(tmp_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    kernel = next(k for k in network("paper", width=0.25, num_classes=10).backward_kernels()
                  if k.name == "fc8_dense_grad_weight")
    times = tuning.default_times(tmp_path)
    assert tuning.default_seconds(times, kernel, 2, build.parse_target("llvm")) > 0
    shown = CliRunner().invoke(main, ["logs", str(tmp_path), *TINY], catch_exceptions=False)
    rows = [line for line in shown.stdout.splitlines() if "grad" in line]
    assert len(rows) == 1 and "fc8_dense_grad_weight" in rows[0] and float(rows[0].split("│")[2]) > 0, (
        shown.stdout + result.stderr)
    assert "0/13" in shown.stdout  # coverage counts the forward kernels
    forced = copy_log(tmp_path, tmp_path / "forced", default_seconds=1e3)  # the record beats the default
    exported = CliRunner().invoke(main, ["schedules", "--tuning-log", str(forced), *TINY, "-o", str(tmp_path / "sch")],
                                  catch_exceptions=False)
    assert exported.exit_code == 0 and [p.name for p in (tmp_path / "sch").iterdir()] == ["fc8_dense_grad_weight.py"]
    # MetaSchedule takes minutes per candidate of max-pool's gradient: it is left to its default.
    refused = CliRunner().invoke(main, ["tune", *TINY, "--kernel", "conv1_pool_grad", "--log-dir", str(tmp_path)])
    assert refused.exit_code != 0 and "no tunable kernel 'conv1_pool_grad'" in refused.output


@pytest.mark.slow
def test_a_record_whose_json_does_not_read_back_stays_out_of_the_log(tuned_log, tmp_path):
    from tvm.s_tir import meta_schedule as ms

    record = tuning.read_log(tuned_log[0]).get_all_tuning_records()[0]
    log = tuning.ReadableRecords(tuning.open_log(tmp_path / "log"))
    pool = tuning.task_module(next(k for k in network("paper", width=0.25, num_classes=10).kernels()
                                   if k.name == "conv1_pool"), 2)
    workload = log.commit_workload(pool)
    # A trace of another kernel: JSONDatabase writes it, then refuses the file it wrote.
    log.commit_tuning_record(ms.database.TuningRecord(
        record.trace, workload, record.run_secs, record.target, ms.arg_info.ArgInfo.from_prim_func(pool["main"])))
    assert log.rejected == 1 and records(tmp_path / "log") == []
    assert len(log.get_top_k(workload, 5)) == 1  # the search still sees it
    log.commit_workload(record.workload.mod)
    log.commit_tuning_record(record)
    assert log.rejected == 1 and len(records(tmp_path / "log")) == 1
    assert len(tuning.read_log(tmp_path / "log").get_all_tuning_records()) == 1


@pytest.mark.slow
def test_a_repeated_workload_line_is_merged_before_tuning_appends(tuned_log, tmp_path):
    """JSONDatabase numbers a new workload by its count of distinct ones: after a
    repeated line, every record appended would point at the wrong workload."""
    record = tuning.read_log(tuned_log[0]).get_all_tuning_records()[0]
    log_dir = tmp_path / "log"
    other = tuning.task_module(network("paper", width=0.25, num_classes=10).kernels()[1], 2)
    tuning.open_log(log_dir).commit_workload(other)
    line = (log_dir / tuning.WORKLOADS).read_text()
    (log_dir / tuning.WORKLOADS).write_text(line + line)  # the same workload twice
    log = tuning.open_log(log_dir)
    assert (log_dir / tuning.WORKLOADS).read_text() == line
    log.commit_workload(record.workload.mod)
    log.commit_tuning_record(record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unreadable line would warn
        read = tuning.read_log(log_dir).get_all_tuning_records()
    assert len(read) == 1 and str(read[0].trace) == str(record.trace)


@pytest.mark.slow
@pytest.mark.parametrize("killed_before", ["writing the workloads", "moving the records", "moving the workloads"])
def test_a_repair_killed_midway_is_finished_or_undone(tuned_log, tmp_path, monkeypatch, killed_before):
    """A repair renumbers the records and merges the workload lines: two new
    files, moved into place one after the other. Killed anywhere, the next
    read of the log finds each record's own workload."""
    record = tuning.read_log(tuned_log[0]).get_all_tuning_records()[0]
    log_dir = tmp_path / "log"
    log = tuning.open_log(log_dir)
    log.commit_workload(tuning.task_module(network("paper", width=0.25, num_classes=10).kernels()[1], 2))
    log.commit_workload(record.workload.mod)
    log.commit_tuning_record(record)
    first, second = (log_dir / tuning.WORKLOADS).read_text().splitlines(keepends=True)
    (log_dir / tuning.WORKLOADS).write_text(first + first + second)  # the other workload twice
    (log_dir / tuning.RECORDS).write_text(re.sub(r"^\[1,", "[2,", (log_dir / tuning.RECORDS).read_text()))
    destination = {"writing the workloads": tuning.WORKLOADS + tuning.PENDING,
                   "moving the records": tuning.RECORDS, "moving the workloads": tuning.WORKLOADS}[killed_before]
    replace = os.replace

    def killed(src, dst):
        if Path(dst) == log_dir / destination:
            raise KeyboardInterrupt  # stands in for the kill
        replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        tuning.repair(log_dir)
    monkeypatch.undo()
    assert (log_dir / (tuning.RECORDS + tuning.PENDING)).exists() != (killed_before == "moving the workloads")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (read,) = tuning.read_log(log_dir).get_all_tuning_records()
    assert tvm_ffi.structural_equal(read.workload.mod, record.workload.mod)
    assert str(read.trace) == str(record.trace)
    assert not list(log_dir.glob("*" + tuning.PENDING))
    tuning.open_log(log_dir)  # repairs what is left to repair
    assert (log_dir / tuning.WORKLOADS).read_text() == first + second
    assert json.loads((log_dir / tuning.RECORDS).read_text())[0] == 1


def test_tuning_leaves_out_what_builds_compute_by_winograd(tmp_path):
    """At a batch where CPU builds compute conv3-5 and their input gradients by
    Winograd, the direct convolution's records would go unused: no trials for
    them, unless named."""
    from tvm_alexnet.ops import winograd
    from tvm_alexnet.tuning.tuner import TuneOptions, _tasks

    net = network("paper", width=0.25, num_classes=10)
    database = tuning.open_log(tmp_path)

    def tasks(batch, **options):
        opts = TuneOptions(batch=batch, target=build.parse_target("llvm"), log_dir=tmp_path, trials=10, **options)
        return {t.kernel.name for t in _tasks(net, opts, database, tmp_path)}

    winograds = {f"conv{i}_conv{grad}" for i in (3, 4, 5) for grad in ("", "_grad_input")}
    small, large = tasks(2, backward=True), tasks(winograd.MIN_BATCH, backward=True)
    assert winograds <= small and small - large == winograds
    assert {"conv1_conv", "conv2_conv", "fc6_dense", "conv3_conv_grad_weight"} <= large
    assert tasks(winograd.MIN_BATCH, kernels=["conv3_conv"]) == {"conv3_conv"}
