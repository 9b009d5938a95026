"""A NaN entering a compiled kernel comes out as torch's own ops let it out:
ReLU and max-pool pass it on, and ReLU's gradient passes the gradient on."""

import math

import torch
import torch.nn.functional as F


def test_nan_pixel_reaches_the_logits(compiled):
    model = compiled("paper", width=0.25, num_classes=10)
    x = torch.randn(2, *model.spec.input_shape)
    x[0, 1, 100, 100] = math.nan
    logits = model(x)
    assert torch.isnan(logits[0]).all(), "a NaN pixel vanished in the compiled network"
    assert torch.isfinite(logits[1]).all(), "a NaN in one image leaked into another"


def test_relu_and_pool_kernels_pass_nan_on(compiled):
    model = compiled("paper", width=0.25, num_classes=10)
    for kernel in model.spec.kernels():
        if kernel.op not in ("conv2d", "dense", "max_pool"):
            continue
        x = torch.randn(2, *kernel.inputs[0])
        x.view(2, -1)[0, x[0].numel() // 2] = math.nan
        params = [getattr(model, kernel.layer).weight, getattr(model, kernel.layer).bias] if kernel.params else []
        out = model.compiled.kernel(kernel.name)(x, *params)
        assert torch.isnan(out[0]).any(), f"{kernel.name} turned a NaN into numbers"
        assert torch.isfinite(out[1]).all(), kernel.name


def test_relu_gradient_treats_nan_as_torch_does(compiled):
    model = compiled("paper", width=0.25, num_classes=10)
    (features,) = next(k for k in model.spec.backward_kernels() if k.name == "fc7_relu_grad").output
    y = F.relu(torch.randn(2, features))
    y[0, :4] = math.nan
    dy = torch.randn(2, features)
    out = model.compiled.kernel("fc7_relu_grad")(dy, y)
    expected = torch.ops.aten.threshold_backward(dy, y, 0)
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    assert torch.equal(out.nan_to_num(), expected.nan_to_num())
