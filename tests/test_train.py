"""Training: the demo learns, an interrupted run resumes with the same next batch, bad checkpoints."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tvm_alexnet import AlexNet
from tvm_alexnet.augment import Augmented, ColourPCA, colour_pca
from tvm_alexnet.cli import main
from tvm_alexnet.data import (
    Digits,
    FullImage,
    InputError,
    ten_crops,
)
from tvm_alexnet.parallel import Parallel
from tvm_alexnet.preprocessing import PREPROCESSING
from tvm_alexnet.train import CHECKPOINT, _load_states, load_checkpoint

# A quick run: 192 digits, 6 batches of 32 per epoch, width 0.125.
RUN = Path(__file__).parent / "scripts" / "train_digits.py"


def run(out, *extra, **kwargs):
    return subprocess.Popen([sys.executable, str(RUN), str(out), *map(str, extra)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


@pytest.mark.slow
def test_demo_learns_and_evaluates(tmp_path):
    result = CliRunner().invoke(main, ["train", "--demo", "--epochs", "1", "--workers", "0", "--out",
                                       str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for name in ("last.pt", "metrics.jsonl", "training.png", "weights.safetensors"):
        assert (tmp_path / name).stat().st_size > 0, name
    state = load_checkpoint(tmp_path / CHECKPOINT, AlexNet.load(tmp_path / "weights.safetensors"))
    (epoch,) = json.loads(state["history"])  # one epoch of metrics
    assert epoch["val_top1_error"] < 0.7  # chance is 0.9
    assert epoch["val_loss"] < 2.2  # log(10) = 2.30 at chance
    result = CliRunner().invoke(main, ["eval", "--weights", str(tmp_path / "weights.safetensors"), "--demo",
                                       "--workers", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "centre" in result.stdout and "10-crop" in result.stdout


@pytest.mark.slow
def test_resume_after_kill_continues_with_the_same_batches(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run(whole).wait(timeout=600) == 0
    proc = run(killed, 0.5, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / CHECKPOINT).exists():
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    model = AlexNet("paper", 10, 0.125)
    state = load_checkpoint(killed / CHECKPOINT, model)
    assert (state["epoch"], state["step"]) < (2, 0), "killed after it finished"
    resumed = run(killed)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err.decode()[-2000:]
    a = AlexNet.load(whole / "weights.safetensors").state_dict()
    b = AlexNet.load(killed / "weights.safetensors").state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_corrupt_or_foreign_checkpoint_is_one_error_and_kept(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint at all")
    args = ["train", "--demo", "--epochs", "1", "--width", "0.125", "--workers", "0", "--resume", "--out",
            str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "last.pt: not a tvm-alexnet training checkpoint" in error and result.stderr.endswith(error + "\n")
    assert (tmp_path / CHECKPOINT).read_bytes() == b"not a checkpoint at all"
    other = AlexNet("paper", 10, 0.25)
    torch.save(dict(model=other.state_dict(), optimizer={}, scheduler={}, rng=torch.get_rng_state(), epoch=1,
                    step=0, history="[]", network=dataclasses.asdict(other.spec), recipe={}),
               tmp_path / CHECKPOINT)
    before = (tmp_path / CHECKPOINT).read_bytes()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "another network" in result.stderr
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    result = CliRunner().invoke(main, args[:-3] + ["--out", str(tmp_path)])  # no --resume
    assert result.exit_code == 2 and "--resume" in result.stderr


def test_augmentation_is_the_papers_and_deterministic():
    prep = PREPROCESSING["paper"]
    digits = Digits(True, FullImage(prep))
    pca = colour_pca(digits, images=50)
    assert sorted(pca.eigvals) == list(pca.eigvals) and pca.eigvals[-1] > 0
    augmented = Augmented(digits, 227, seed=3, pca=pca)
    x, label = augmented[5]
    assert x.shape == (3, 227, 227) and label == digits[5][1]
    assert torch.equal(x, augmented[5][0])  # (seed, epoch, index) decide the randomness
    augmented.epoch = 1
    assert not torch.equal(x, augmented[5][0])
    crops = ten_crops(digits[5][0][None], 227)
    assert len(crops) == 10 and torch.equal(crops[5], crops[0].flip(-1))


def test_pca_file_round_trip_and_errors(tmp_path):
    pca = ColourPCA((1.0, 2.0, 3.0), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    pca.save(tmp_path / "pca.json")
    assert ColourPCA.load(tmp_path / "pca.json") == pca
    (tmp_path / "bad.json").write_text('{"eigvals": [1, 2]}')
    with pytest.raises(InputError, match=r"bad\.json: not a colour PCA file \('eigvecs'\)"):
        ColourPCA.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text('{"eigvals": [1, 2], "eigvecs": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}')
    with pytest.raises(InputError, match=r"bad\.json: not a colour PCA file \(expected 3 eigenvalues and a 3x3"):
        ColourPCA.load(tmp_path / "bad.json")


def test_image_folder_converts_and_skips_bad_images(tmp_path):
    import numpy as np
    from PIL import Image

    from tvm_alexnet.data import ImageFolder

    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "cat" / "a.png")
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(tmp_path / "cat" / "b.png")  # grey
    (tmp_path / "dog" / "c.jpg").write_bytes(b"not an image")
    Image.fromarray(rng.integers(0, 255, (30, 30, 4), dtype=np.uint8)).save(tmp_path / "dog" / "d.png")  # RGBA
    dataset = ImageFolder(tmp_path, FullImage(PREPROCESSING["paper"]))
    assert dataset.classes == ["cat", "dog"] and len(dataset) == 4
    assert dataset[1][0].shape == (3, 256, 256) and dataset[1][1] == 0  # grey, converted
    with pytest.warns(UserWarning, match="c.jpg: not a readable image"):
        assert dataset[2] is None  # the unreadable one: skipped, never replaced by another
    assert dataset[3][0].shape == (3, 256, 256) and dataset[3][1] == 1  # RGBA, converted


def test_resuming_an_unfused_optimizer_state_keeps_sgd_fused():
    model = AlexNet("paper", 10, 0.125)
    unfused = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # as checkpoints saved before fused SGD
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    unfused.step()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
    _load_states(model, optimizer, {"model": model.state_dict(), "optimizer": unfused.state_dict()}, Parallel())
    assert all(group["fused"] for group in optimizer.param_groups)
    p = next(model.parameters())
    assert torch.equal(optimizer.state[p]["momentum_buffer"], unfused.state[p]["momentum_buffer"])


def test_checkpoint_network_records_from_before_pool_and_activation_options_still_match():
    import dataclasses

    from tvm_alexnet.spec import network
    from tvm_alexnet.train import _upgraded

    record = dataclasses.asdict(network("paper", width=0.25, num_classes=10))
    older = {k: v for k, v in record.items() if k != "pool"}  # as last.pt files wrote it before
    older["convs"] = tuple({k: v for k, v in c.items() if k != "activation"} for c in record["convs"])
    older["dense"] = tuple(dict({k: v for k, v in d.items() if k != "activation"}, relu=d["activation"] == "relu")
                           for d in record["dense"])
    assert _upgraded(older) == record
    tanh = dataclasses.asdict(network("paper", width=0.25, num_classes=10, activation="tanh"))
    assert _upgraded(older) != tanh
