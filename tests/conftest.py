import os
import secrets
import tempfile
import zlib

import numpy as np
import pytest
import torch

# A fresh build cache per test session, so every run compiles what it tests; pytest-xdist's
# workers inherit the session's cache and seed from the process that started them.
if "PYTEST_XDIST_WORKER" not in os.environ:
    os.environ["TVM_ALEXNET_CACHE"] = tempfile.mkdtemp(prefix="tvm-alexnet-test-cache-")

from helpers import randomize, sharing_compiled  # noqa: E402

from tvm_alexnet import AlexNet  # noqa: E402

# Fresh random inputs every run; the summary names the seed, and TEST_SEED=<seed> draws them again.
TEST_SEED = int(os.environ.get("TEST_SEED") or secrets.randbelow(2**32))
os.environ["TEST_SEED"] = str(TEST_SEED)


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


_compiled = {}


def weights_seed(key) -> int:
    """The seed of a compiled fixture's weights: its key's own (crc32 of its
    repr) mixed with TEST_SEED, so a test sees the same weights whether it
    runs alone or after others asked for other networks."""
    return TEST_SEED ^ zlib.crc32(repr(key).encode())


@pytest.fixture(scope="session")
def compiled():
    """compiled(variant, **kwargs): a randomised AlexNet in eval mode, compiled
    for this CPU with a symbolic batch. The build happens once per session;
    each call hands out a copy with its own parameters and flags that shares
    the compiled library (helpers.sharing_compiled), so a test may train,
    load weights into or cast its model without changing another test's."""

    def get(variant: str, **kwargs) -> AlexNet:
        key = (variant, tuple(sorted(kwargs.items())))
        if key not in _compiled:
            model = randomize(AlexNet(variant, **kwargs), seed=weights_seed(key)).eval()
            _compiled[key] = model.compile("llvm")
        return sharing_compiled(_compiled[key])

    return get


@pytest.fixture
def rng(test_seed):
    return np.random.default_rng(test_seed)
