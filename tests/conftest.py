import os
import tempfile

import numpy as np
import pytest
import torch

# A fresh build cache per test session, so every run compiles what it tests.
os.environ["TVM_ALEXNET_CACHE"] = tempfile.mkdtemp(prefix="tvm-alexnet-test-cache-")

from tvm_alexnet import AlexNet  # noqa: E402


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
def rng():
    return np.random.default_rng()
