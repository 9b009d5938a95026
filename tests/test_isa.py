"""Default CPU schedules sized for the target's vector unit: AVX2 builds use
ymm registers, AVX-512 builds zmm, and both compute what float64 does."""

import pytest
import torch
import torch.nn.functional as F
import tvm
from helpers import skip_unless_host_runs

from tvm_alexnet import graph, spec
from tvm_alexnet.ops import cpu_conv, default_schedule, winograd
from tvm_alexnet.target import parse_target, vector_unit

TARGETS = {"llvm:znver3": "AVX2", "llvm:sapphirerapids": "AVX-512"}


def _build(target_text: str, kernel, batch):
    target = parse_target(target_text)
    func = default_schedule(graph.kernel_func(kernel, batch), kernel, batch, vector_unit(target))
    return tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=target).mod


def _kernel(net, name):
    return next(k for k in net.compiled_kernels() if k.name == name)


@pytest.mark.parametrize("target_text", TARGETS)
def test_build_uses_the_isa_vectors(target_text):
    isa = TARGETS[target_text]
    assert vector_unit(parse_target(target_text)).isa == isa
    asm = _build(target_text, _kernel(spec.network("paper"), "conv3_conv"), None).inspect_source("asm")
    zmm, ymm = asm.count("%zmm"), asm.count("%ymm")
    if isa == "AVX-512":
        assert zmm > 100, f"{target_text}: {zmm} zmm uses"
    else:
        assert zmm == 0 and ymm > 100, f"{target_text}: {zmm} zmm, {ymm} ymm uses"


DIRECT = [(name, 0.5, 4) for name in ("conv2_conv", "conv3_conv", "conv4_conv_grad_input", "conv2_conv_grad_weight",
                                        "conv3_conv_grad_weight", "fc7_dense", "fc6_dense_grad_input",
                                        "fc8_dense_grad_input", "fc6_dense_grad_weight")]
# Per-image tasks of the weight gradient start at a static batch of IMAGE_TASKS_MIN_BATCH; on AVX2 two vectors of
# output channels take 6 of conv1's 11 kernel columns at a time, the second chunk masked
DIRECT += [("conv1_conv_grad_weight", 0.5, cpu_conv.IMAGE_TASKS_MIN_BATCH)]
# A block of dy past half of AVX2's L2 (not AVX-512's): the weight gradient's tasks that share x's block run in turn
DIRECT += [("conv3_conv_grad_weight", 0.5, 32)]
# A batch of whole vectors on both ISAs: the images fill the dense layer's vectors
DIRECT += [("fc6_dense", 0.5, 16), ("fc8_dense", 0.5, 16), ("fc6_dense_grad_input", 0.5, 16),
           ("fc7_dense_grad_input", 0.5, 16)]
# Winograd at full width (48 input channels per tower: 3 AVX-512 vectors, 6 AVX2 ones): F(3,5), its weight gradient F(5,3)
WINOGRAD = [(name, 1.0, winograd.MIN_BATCH) for name in ("conv2_conv", "conv2_conv_grad_input", "conv2_conv_grad_weight")]


@pytest.mark.parametrize("target_text", TARGETS)
@pytest.mark.parametrize("name, width, batch", DIRECT + WINOGRAD)
def test_isa_build_matches_float64(target_text, name, width, batch):
    skip_unless_host_runs(target_text.removeprefix("llvm:"))
    net = spec.network("paper", width=width, num_classes=10)
    kernel = _kernel(net, name)
    by_winograd = winograd.applies(kernel, batch)
    assert by_winograd == ((name, width, batch) in WINOGRAD)
    inputs = [torch.randn(batch, *s) for s in kernel.inputs]
    params = [torch.randn(*s) * 0.05 for s in kernel.params]
    out = torch.empty(batch, *kernel.output) if kernel.batch_output else torch.empty(kernel.output)
    _build(target_text, kernel, batch)["main"](*inputs, *params, out)
    x, *p = [t.double() for t in inputs + params]
    a = kernel.attrs
    if kernel.op == "conv2d":
        expected = F.conv2d(x, p[0], p[1], a["stride"], a["padding"], groups=a["groups"]).relu()
    elif kernel.op == "conv2d_grad_input":
        expected = torch.nn.grad.conv2d_input((batch, *kernel.output), p[0], x, a["stride"], a["padding"],
                                              groups=a["groups"])
    elif kernel.op == "conv2d_grad_weight":
        expected = torch.nn.grad.conv2d_weight(p[0], kernel.output, x, a["stride"], a["padding"], groups=a["groups"])
    elif kernel.op == "dense_grad_input":
        expected = x @ p[0]
    elif kernel.op == "dense_grad_weight":
        expected = x.T @ p[0]
    else:
        expected = F.linear(x, p[0], p[1])
        expected = expected.relu() if kernel.attrs["activation"] else expected
    err = ((out.double() - expected).norm() / expected.norm()).item()
    bound = winograd.error_bound(kernel, batch) if by_winograd else 1e-5
    assert err < bound, f"{name} on {target_text}: relative error {err:.2e}"
