"""scripts/gpu-checks.sh rehearse: the GPU checks' CPU-possible steps on llvm at width 0.25, so the
script that a lent GPU runs once has run here first (issue 20)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_rehearsal_writes_every_result(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out)}
    done = subprocess.run(["bash", "scripts/gpu-checks.sh", "rehearse"], cwd=ROOT, env=env, timeout=900,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = dict(line.split(" rc=") for line in (out / "steps.txt").read_text().splitlines())
    steps = {name: rest.split()[0] for name, rest in steps.items()}  # "RC seconds=S"
    expected = ["tune", "retarget", "rebuild", "measure-retargeted", "demo", "train", "eval", "run", "report",
                "towers", "logs"]
    assert list(steps) == expected and set(steps.values()) == {"0"}, steps
    for name in ["versions.txt", "demo.txt", "train.txt", "eval.txt", "run.txt", "report.txt", "towers.txt",
                 "tune.txt", "logs.txt", "transfer.txt", "run/weights.safetensors", "run/metrics.jsonl"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "torch.version.cuda" in (out / "versions.txt").read_text()
    assert list((out / "reports").glob("*.json")) and list((out / "tuning_logs").iterdir())
