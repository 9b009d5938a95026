"""The whole network against the float64 formulas, per variant and batch size."""

import pytest
import reference as ref
import torch
from helpers import params_of


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
