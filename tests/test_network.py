"""The whole network against the float64 formulas, per variant and batch size."""

import pytest
import reference as ref
import torch
from helpers import params_of

from tvm_alexnet import AlexNet
from tvm_alexnet.errors import UserError


@pytest.mark.parametrize("variant", ["paper", "torchvision", "ungrouped"])
@pytest.mark.parametrize("batch", [1, 2, 7])
def test_network_matches_float64(compiled, rng, variant, batch):
    model = compiled(variant)
    x = rng.standard_normal((batch, *model.spec.input_shape))
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
    expected = ref.forward(model.spec, params_of(model), x)
    assert out.shape == (batch, 1000)
    assert ref.rel_error(out.numpy(), expected) < 1e-5


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_torch_reference_path_matches_float64(compiled, rng, variant):
    model = compiled(variant)
    x = rng.standard_normal((2, *model.spec.input_shape))
    with torch.no_grad():
        out = model.double().reference_forward(torch.from_numpy(x))  # the fixture's model is this test's own copy
    assert ref.rel_error(out.numpy(), ref.forward(model.spec, params_of(model), x)) < 1e-10


@pytest.mark.parametrize("variant, layer", [("paper", "conv1"), ("paper", "conv2"), ("paper", "fc6"),
                                            ("paper", "fc7"), ("torchvision", "conv5"), ("torchvision", "fc7")])
def test_features_match_float64(compiled, rng, variant, layer):
    """A layer's activations, as the next layer takes them (conv: after the
    ReLU, LRN and pools; fc6, fc7: after the ReLU, without dropout even
    while training), through the compiled kernels and in torch ops."""
    model = compiled(variant, width=0.25, num_classes=10).train()
    x = rng.standard_normal((2, *model.spec.input_shape))
    expected = ref.forward(model.spec, params_of(model), x, until=layer)
    with torch.no_grad():
        out = model.features(torch.from_numpy(x).float(), layer)
        reference = model.decompile().features(torch.from_numpy(x).float(), layer)
    assert out.shape == expected.shape
    assert ref.rel_error(out.numpy(), expected) < 1e-5
    assert ref.rel_error(reference.numpy(), expected) < 1e-5


def test_features_have_gradients_and_name_their_layers(compiled):
    model = compiled("paper", activation="tanh", width=0.25, num_classes=10)
    x = torch.randn(2, *model.spec.input_shape, requires_grad=True)
    model.features(x, "fc7").square().sum().backward()
    assert x.grad is not None and model.fc7.weight.grad is not None and model.fc8.weight.grad is None
    with pytest.raises(UserError, match="no layer 'fc9' in variant 'paper'; choose one of conv1, .*, fc8"):
        AlexNet("paper", width=0.25, num_classes=10).features(torch.randn(1, 3, 227, 227), "fc9")


def test_small_width_and_classes(compiled, rng):
    model = compiled("paper", width=0.25, num_classes=10)
    x = rng.standard_normal((3, *model.spec.input_shape))
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
        probs = model.predict(torch.from_numpy(x).float())
    expected = ref.forward(model.spec, params_of(model), x)
    assert ref.rel_error(out.numpy(), expected) < 1e-5
    assert ref.rel_error(probs.numpy(), ref.softmax(expected)) < 1e-5


def test_training_mode_applies_dropout_kernels(compiled, rng):
    model = compiled("paper", width=0.25, num_classes=10)
    x = rng.standard_normal((4, *model.spec.input_shape))
    torch.manual_seed(123)
    model.train()  # the fixture's model is this test's own copy
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
    # The same masks, drawn in the same order from the same seed.
    torch.manual_seed(123)
    net, p = model.spec, params_of(model)
    h = x
    for c in net.convs:
        h = ref.activation(ref.conv2d(h, p[f"{c.name}.weight"], p[f"{c.name}.bias"], c.stride, c.padding, c.groups),
                           c.activation)
        if c.lrn:
            h = ref.lrn(h, 5, 1e-4, 0.75, 2.0, net.lrn_groups)
        if c.pool:
            h = ref.max_pool(h)
    h = h.reshape(len(x), -1)
    for d in net.dense:
        h = ref.activation(ref.dense(h, p[f"{d.name}.weight"], p[f"{d.name}.bias"]), d.activation)
        if d.dropout:
            mask = torch.empty(h.shape).bernoulli_(1 - d.dropout).div_(1 - d.dropout)
            h = h * mask.double().numpy()
            assert 0 < (mask == 0).float().mean() < 1
    assert ref.rel_error(out.numpy(), h) < 1e-5
    assert ref.rel_error(out.numpy(), ref.forward(net, p, x)) > 1e-2  # dropout did something
