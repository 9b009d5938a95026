"""Kernel reports: torch's side computes what each kernel computes, the JSON
follows the schema and the spec's FLOPs, outputs and comparisons render."""

import copy
import json

import numpy as np
import pytest
from helpers import assert_one_line_error, invoke
from PIL import Image

from tvm_alexnet import report as rp
from tvm_alexnet import report_files
from tvm_alexnet.ops import op_of
from tvm_alexnet.spec import network

SMALL = ["--width", "0.25", "--num-classes", "10"]


@pytest.mark.parametrize("variant, switches", [("paper", {}), ("torchvision", {}),
                                              ("onegpu", dict(lrn="none", pool="non-overlapping", activation="tanh"))],
                         ids=["paper", "torchvision", "onegpu-ablations"])
def test_torch_equivalents_compute_what_the_kernels_compute(compiled, variant, switches):
    """Each kernel against its torch equivalent run in float64 on the same inputs."""
    import torch

    model = compiled(variant, width=0.25, num_classes=10, **switches)
    for k in model.spec.compiled_kernels():
        args = rp.kernel_args(model, k, 3, torch.device("cpu"))
        out = model.compiled.kernel(k.name)(*args).numpy()
        ref = op_of(k).torch(k, [a.double() for a in args])().numpy()
        assert out.shape == ref.shape, k.name
        assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5, k.name


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(report dict, --out folder) of a quick run: width 0.25, batch 2."""
    out = tmp_path_factory.mktemp("reports")
    result = invoke("report", *SMALL, "--batch", 2, "--repeat", 2, "--min-repeat-ms", 1, "--no-torch-compile",
                    "--tuning-log", "none", "--json", "--out", out)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_report_follows_schema_and_spec(report):
    data, _ = report
    report_files.validate(data, "report")
    net = network("paper", 10, 0.25)
    kernels = net.compiled_kernels()
    assert [r["name"] for r in data["kernels"]] == [k.name for k in kernels]
    for row, k in zip(data["kernels"], kernels):
        assert row["flops"] == k.flops * 2, k.name
        assert row["gflops"] == pytest.approx(row["flops"] / row["ms"] / 1e6), k.name
        assert row["speedup_vs_torch"] == pytest.approx(row["torch_ms"] / row["ms"]), k.name
    assert data["network"]["gflop_per_image"] == pytest.approx(net.flops() / 1e9)
    forward = [r["ms"] for r in data["kernels"]
               if r["direction"] == "forward" and r["op"] not in ("dropout", "softmax")]
    overhead = data["overhead"]
    assert overhead["forward_kernels_ms"] == pytest.approx(sum(forward))
    assert overhead["network_ms"] == data["network_rows"][0]["ms"]
    assert overhead["overhead_ms"] == pytest.approx(overhead["network_ms"] - overhead["forward_kernels_ms"])
    assert [r["engine"] for r in data["network_rows"]] == ["TVM", "torch eager"]


def test_report_files(report):
    data, out = report
    stem = report_files.basename(data)
    assert json.loads((out / f"{stem}.json").read_text()) == data
    markdown = (out / f"{stem}.md").read_text()
    assert "| kernel | output | MFLOP |" in markdown and "| conv2_conv_grad_weight |" in markdown
    for plot in ("breakdown", "roofline"):
        with Image.open(out / f"{stem}-{plot}.png") as img:
            assert img.size[0] > 400 and img.size[1] > 300


def test_compare(report, tmp_path):
    data, out = report
    faster = copy.deepcopy(data)
    for row in faster["kernels"] + faster["network_rows"]:
        row["ms"] /= 2
    (tmp_path / "b.json").write_text(json.dumps(faster))
    result = invoke("report", "--compare", out / f"{report_files.basename(data)}.json", tmp_path / "b.json", "--markdown")
    assert result.exit_code == 0, result.output
    assert "| conv1_conv |" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| conv")]
    assert rows and all(line.rstrip(" |").endswith("2.00x") for line in rows)


def test_malformed_report(report, tmp_path):
    data, _ = report
    broken = copy.deepcopy(data)
    del broken["kernels"][3]["ms"]
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "junk.json").write_text("{not json")
    assert_one_line_error(invoke("report", "--compare", tmp_path / "broken.json", tmp_path / "broken.json"),
                          "broken.json", "kernels/3", "'ms' is a required property")
    assert_one_line_error(invoke("report", "--compare", tmp_path / "junk.json", tmp_path / "broken.json"),
                          "junk.json", "not JSON")


def test_torch_side_runs_in_its_own_process():
    """Torch's timings and the peaks come from a spawned process with this one's torch threads."""
    import os

    import torch

    from tvm_alexnet import AlexNet

    model = AlexNet("paper", width=0.25, num_classes=10).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # not what a fresh process would take by itself
    try:
        side = rp.time_torch_side(model, 1, "cpu", repeat=1, min_repeat_ms=0, torch_compile=False)
        assert side["threads"] == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    assert side["pid"] != os.getpid()
    kernels = [k.name for k in model.spec.compiled_kernels()]
    assert sorted(side["times"]) == sorted([("torch", name) for name in kernels] + [("torch eager", "network")])
    assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in side["times"].values())
    assert side["peak"]["sgemm_gflops"] > 0 and side["peak"]["bandwidth_gbs"] > 0
