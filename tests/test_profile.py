"""scripts/profile_step.py --inference: each kernel timed inside the forward pass and alone."""

import sys
from pathlib import Path

import pytest

from tvm_alexnet.spec import network

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import profile_step  # noqa: E402


@pytest.mark.slow
def test_forward_profile_times_each_kernel_inside_the_pass():
    p = profile_step.profile_forward("paper", 0.25, 4, 2, 2)
    layers = {k.name for k in network("paper", width=0.25).kernels() if k.op in ("conv2d", "dense")}
    assert layers <= set(p["in_step"]), f"kernels missing from the profile: {layers - set(p['in_step'])}"
    assert set(p["in_step"]) == set(p["alone"])
    inside = sum(p["in_step"].values())
    assert 0 < inside <= p["profiled"], f"kernels {inside:.4f} s inside a pass of {p['profiled']:.4f} s"
    assert all(t > 0 for t in p["alone"].values())
