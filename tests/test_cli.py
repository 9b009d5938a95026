"""The command line, in process: results, and one-line errors for bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tvm_alexnet.cli import main

SMALL = ["--width", "0.25", "--num-classes", "10"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def random_image(path, size=(300, 240), mode="RGB"):
    rng = np.random.default_rng(torch.randint(2**62, ()).item())  # torch's generator: conftest seeds it per test
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


def test_compile_writes_library_and_manifest(tmp_path):
    result = invoke("compile", *SMALL, "--target", "llvm", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (tmp_path / "out" / "alexnet.so").stat().st_size > 0
    assert manifest["variant"] == "paper" and manifest["batch"] is None
    names = [k["name"] for k in manifest["kernels"]]
    assert names[:3] == ["conv1_conv", "conv1_lrn", "conv1_pool"] and "fc8_dense" in names
    assert "conv2_lrn" in result.stdout


def test_kernels_lists_and_prints_tvmscript():
    result = invoke("kernels", "--variant", "paper")
    assert result.exit_code == 0
    assert "conv2_conv" in result.stdout and "96x27x27" in result.stdout and "447.9" in result.stdout
    result = invoke("kernels", *SMALL, "--source", "tvmscript", "--kernel", "conv1_lrn")
    assert result.exit_code == 0
    assert "def conv1_lrn(" in result.stdout and "T.sqrt" in result.stdout  # beta = 3/4 as square roots


def test_run_images_prints_top_classes(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        random_image(folder / f"{i}.png", size=(300 + 10 * i, 240))
    result = invoke("run", folder, *SMALL, "--top", "3")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(folder))]
    assert len(lines) == 3 and all(line.count("class ") == 3 for line in lines)
    assert "images/s" in result.stderr


def test_run_random_logits():
    result = invoke("run", *SMALL, "--random", "2", "--logits")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line.split(": ", 1)[1]) for line in result.stdout.splitlines() if line.startswith("random")]
    assert len(rows) == 2 and all(len(r) == 10 for r in rows)


def test_run_with_imagenet_names(tmp_path):
    result = invoke("run", "--width", "0.25", "--random", "1", "--top", "1")
    assert result.exit_code == 0, result.output
    assert "class" not in result.stdout.split(":", 1)[1]  # an ImageNet name, not a bare index


def test_demo_small():
    result = invoke("demo", *SMALL, "--batch", "2", "--repeat", "1")
    assert result.exit_code == 0, result.output
    assert "relative error" in result.stdout and "conv5" in result.stdout and "total" in result.stdout


def test_wrong_image_size(tmp_path):
    path = random_image(tmp_path / "small.png", size=(100, 80))
    assert_one_line_error(invoke("run", path, *SMALL, "--no-resize"), "small.png", "100x80", "227x227")


def test_wrong_channel_count(tmp_path):
    path = random_image(tmp_path / "gray.png", mode="L")
    assert_one_line_error(invoke("run", path, *SMALL), "gray.png", "1 channel", "expected 3")
    path = random_image(tmp_path / "rgba.png", mode="RGBA")
    assert_one_line_error(invoke("run", path, *SMALL), "rgba.png", "4 channels")


def test_unreadable_image(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg at all")
    assert_one_line_error(invoke("run", path, *SMALL), "broken.jpg", "not a readable image")


def test_missing_input(tmp_path):
    assert_one_line_error(invoke("run", tmp_path / "nope.png", *SMALL), "nope.png", "no such file")


def test_unknown_variant():
    assert_one_line_error(invoke("demo", "--variant", "vgg16"), "unknown variant 'vgg16'")


@pytest.mark.parametrize("target, fragment", [
    ('{"kind": "cuda", ', "not valid JSON"),
    ("tpu", "expected llvm"),
    ("cuda:90", "expected cuda:sm_XX"),
    ('{"arch": "sm_90"}', 'must be a JSON object with a "kind"'),
])
def test_malformed_target(tmp_path, target, fragment):
    assert_one_line_error(invoke("compile", *SMALL, "--target", target, "-o", tmp_path), fragment)


def test_bad_weights(tmp_path):
    import torch

    from tvm_alexnet import AlexNet

    state = AlexNet("paper", width=0.25, num_classes=10).state_dict()
    state["conv3.weight"] = state["conv3.weight"][:, :10]
    torch.save(state, tmp_path / "bad.pt")
    assert_one_line_error(invoke("run", "--weights", tmp_path / "bad.pt", *SMALL),
                          "conv3.weight", "(96, 10, 3, 3)", "(96, 64, 3, 3)")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert_one_line_error(invoke("run", "--weights", tmp_path / "junk.pt"), "junk.pt", "not a readable")


def test_bad_batch(tmp_path):
    assert_one_line_error(invoke("compile", *SMALL, "--batch", "zero", "-o", tmp_path), "--batch", "'zero'")


def test_missing_tuning_log(tmp_path):
    assert_one_line_error(invoke("run", "--random", "1", *SMALL, "--tuning-log", tmp_path / "nope"),
                          "--tuning-log", "nope: no such tuning log folder")


def test_kernels_time():
    result = invoke("kernels", *SMALL, "--time", "--batch", "2")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "conv" in line or "fc" in line or "softmax" in line]
    assert len(rows) == 16 + 35  # every kernel, dropout and the backward ones included
    assert all(float(row.split("│")[3]) > 0 for row in rows if row.count("│") >= 4)
