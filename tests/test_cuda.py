"""CUDA: the builds compile here (nvcc, no GPU); running them needs a GPU (marked gpu)."""

import re

import pytest
import reference as ref
import torch
from click.testing import CliRunner
from helpers import gpu_target, params_of, randomize

from tvm_alexnet import AlexNet, build, cuda
from tvm_alexnet.cli import main
from tvm_alexnet.runtime import CompiledNetwork
from tvm_alexnet.spec import network


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_cuda_build_has_every_kernel(arch, monkeypatch):
    # build() schedules every kernel (ours, then dlight), has nvcc compile the
    # CUDA source for the arch, and writes the manifest; the source it checked
    # is kept here.
    checked = []
    check_source = cuda.check_source
    monkeypatch.setattr(cuda, "check_source", lambda code, target: checked.append(code) or check_source(code, target))
    net = network("paper")
    directory = build.build(net, build.parse_target(f"cuda:{arch}"), use_cache=False)
    manifest = build.Manifest.load(directory / build.MANIFEST)
    assert manifest.target["kind"] == "cuda" and manifest.target["arch"] == arch
    (source,) = checked
    launched = set(re.findall(r"__global__ void (?:__launch_bounds__\([\d, ]+\) )?(\w+?)_kernel(?:_\d+)?\(", source))
    assert launched == {k.name for k in net.compiled_kernels()}


def test_kernels_cli_prints_cuda_source():
    result = CliRunner().invoke(main, ["kernels", "--width", "0.25", "--target", "cuda:sm_90", "--source", "cuda",
                                       "--kernel", "conv2_lrn"], catch_exceptions=False)
    assert result.exit_code == 0
    assert 'extern "C" __global__' in result.stdout and "conv2_lrn_kernel" in result.stdout
    assert "conv1_conv_kernel" not in result.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_cuda_network_matches_float64(rng, variant):
    model = randomize(AlexNet(variant), seed=5).eval().cuda().compile(gpu_target())
    for batch in (1, 2, 7):
        x = rng.standard_normal((batch, *model.spec.input_shape))
        with torch.no_grad():
            out = model(torch.from_numpy(x).float().cuda()).cpu().numpy()
        assert ref.rel_error(out, ref.forward(model.spec, params_of(model), x)) < 1e-5


@pytest.mark.gpu
def test_cuda_kernels_run(rng):
    net = network("paper", width=0.25, num_classes=10)
    compiled = CompiledNetwork(build.build(net, build.parse_target(gpu_target())))
    x = rng.standard_normal((2, 24, 55, 55)) * 50
    out = compiled.kernel("conv1_lrn")(torch.from_numpy(x).float().cuda()).cpu().numpy()
    assert ref.rel_error(out, ref.lrn(x, 5, 1e-4, 0.75, 2.0, net.lrn_groups)) < 1e-5
