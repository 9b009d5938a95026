import os
import secrets
import tempfile
import zlib

import numpy as np
import pytest
import torch
from torch import nn

# A fresh build cache per test session, so every run compiles what it tests.
os.environ["TVM_ALEXNET_CACHE"] = tempfile.mkdtemp(prefix="tvm-alexnet-test-cache-")

from tvm_alexnet import AlexNet  # noqa: E402

# Fresh random inputs every run; the summary names the seed, and TEST_SEED=<seed> draws them again.
TEST_SEED = int(os.environ.get("TEST_SEED") or secrets.randbelow(2**32))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"random inputs from TEST_SEED={TEST_SEED}")


@pytest.fixture(autouse=True)
def test_seed(request) -> int:
    """Each test's own seed, so a failure repeats whether the test runs alone or in the suite."""
    seed = TEST_SEED ^ zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    return seed


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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


_compiled = {}


@pytest.fixture(scope="session")
def compiled():
    """compiled(variant, **kwargs): a randomised AlexNet compiled for this
    CPU with a symbolic batch, built once per session."""

    def get(variant: str, **kwargs) -> AlexNet:
        key = (variant, tuple(sorted(kwargs.items())))
        if key not in _compiled:
            model = randomize(AlexNet(variant, **kwargs), seed=len(_compiled)).eval()
            _compiled[key] = model.compile("llvm")
        return _compiled[key]

    return get


@pytest.fixture
def rng(test_seed):
    return np.random.default_rng(test_seed)
