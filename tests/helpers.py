"""What several test modules share: random weights, the float64 torch loss with
recorded decisions, invoking the command line, a GPU's target, copies of a
compiled model, whether the host runs an ISA's code. Test modules import from here (`from helpers import ...`), never
from conftest.py or from one another; reference.py is the numpy float64 oracle.
"""

import copy
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torch import nn

from tvm_alexnet import AlexNet
from tvm_alexnet.autograd import LayerKernels
from tvm_alexnet.spec import LRN_CONVENTIONS

# --- the host CPU -------------------------------------------------------------------------------

# The instruction set an LLVM CPU's build needs, by the /proc/cpuinfo flag that says a host has it.
ISA_FLAGS = {"znver3": "avx2", "sapphirerapids": "avx512f"}


def skip_unless_host_runs(cpu: str) -> None:
    """Skip a test that runs code built for LLVM CPU `cpu` on a host without its vectors."""
    flag = ISA_FLAGS[cpu]
    with open("/proc/cpuinfo") as f:
        if not any(flag in line.split() for line in f if line.startswith("flags")):
            pytest.skip(f"this CPU cannot run {cpu}'s code (no {flag})")


# --- weights ------------------------------------------------------------------------------------


def randomize(model: AlexNet, seed: int) -> AlexNet:
    """He-scaled random weights and biases, so activations stay near 1
    through every layer and errors are measured on meaningful numbers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def params_of(model: AlexNet) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}


def sharing_compiled(model: AlexNet) -> AlexNet:
    """A copy of `model` with its own parameters, buffers and flags that
    runs the same compiled libraries (which are never copied: a loaded TVM
    module and the per-thread VMs cannot be).

    copy.deepcopy with the CompiledNetwork objects pinned in its memo: every
    reference to one (model.compiled, fixed_batches, the per-layer autograd
    bridges) is kept as is, everything else is copied."""
    pinned = [model.compiled, *model.fixed_batches.values()]
    return copy.deepcopy(model, {id(c): c for c in pinned if c is not None})


class TorchvisionAlexNet(nn.Module):
    """torchvision.models.alexnet, rebuilt so the tests need no torchvision."""

    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# --- gradients against float64 torch ------------------------------------------------------------


@contextmanager
def decisions_recorded():
    """Records the ReLU and max-pool decisions of every compiled layer run
    inside: {compiled network: {kernel name: ReLU mask or pool argmax}}.

    The float64 reference takes these decisions from the run it checks. Where
    a ReLU's input or a pool window's two largest values lie within float32
    rounding of each other, float32 and float64 may decide differently, and
    a whole element's gradient then goes elsewhere: 1e-3 to 2e-2 relative at
    conv1.weight in ~7% of random draws at width 0.25 (measured; one failed CI).
    """
    recorded = {}
    forward = LayerKernels.forward

    def recording(self, *args):
        x, saved = forward(self, *args)
        decisions = recorded.setdefault(self.compiled, {})
        for k, tensors in zip(self.kernels, saved):
            if k.attrs.get("activation") == "relu":
                decisions[k.name] = (tensors[1] > 0).cpu()  # saved: the input and the ReLU's output
            elif k.op == "max_pool":  # the first maximum, as the gradient kernel takes it
                decisions[k.name] = F.max_pool2d(tensors[0], k.attrs["size"], k.attrs["stride"],
                                                 return_indices=True)[1].cpu()
        return x, saved

    LayerKernels.forward = recording
    try:
        yield recorded
    finally:
        LayerKernels.forward = forward


def reference_loss(model: AlexNet, params: dict, x: torch.Tensor, labels: torch.Tensor, decisions: dict,
                   masks=None):
    """The network in float64 torch ops with the given parameters (and
    dropout masks), its ReLUs and max-pools deciding as `decisions` say
    (tanh decides nothing). `x` may require a gradient: the input's."""

    def activate(y, kernel, activation):
        if activation == "relu":
            return y * decisions[kernel]
        return torch.tanh(y) if activation == "tanh" else y

    def max_pool(y, kernel):
        argmax = decisions[kernel]
        return y.flatten(2).gather(2, argmax.flatten(2)).view(argmax.shape)

    net = model.spec
    for c in net.convs:
        x = activate(F.conv2d(x, params[f"{c.name}.weight"], params[f"{c.name}.bias"], c.stride, c.padding, 1,
                              c.groups), f"{c.name}_conv", c.activation)
        if c.lrn:
            p = LRN_CONVENTIONS[net.lrn]
            x = torch.cat([F.local_response_norm(part, p.size, alpha=p.alpha * p.size, beta=p.beta, k=p.k)
                           for part in x.chunk(net.lrn_groups, 1)], 1)
        if c.pool:
            x = max_pool(x, f"{c.name}_pool")
    if net.avgpool is not None:
        x = F.adaptive_avg_pool2d(x, net.avgpool)
    x = x.flatten(1)
    for d in net.dense:
        x = activate(F.linear(x, params[f"{d.name}.weight"], params[f"{d.name}.bias"]), f"{d.name}_dense",
                     d.activation)
        if masks is not None and d.dropout:
            x = x * masks[d.name]
    return F.cross_entropy(x, labels)


def float64_params(model):
    return {k: v.detach().double().requires_grad_() for k, v in model.state_dict().items()}


def rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


# --- the command line ---------------------------------------------------------------------------


def invoke(*args):
    from tvm_alexnet.cli import main

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


# --- GPUs ---------------------------------------------------------------------------------------


def gpu_target() -> str:
    major, minor = torch.cuda.get_device_capability()
    return f"cuda:sm_{major}{minor}"
