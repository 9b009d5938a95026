"""Every kernel against the float64 formula, on random inputs."""

import pytest
import reference as ref
import torch

from tvm_alexnet import AlexNet
from tvm_alexnet.spec import LRN_CONVENTIONS

BATCH = 2


def _inputs(kernel, rng, scale=1.0):
    return [rng.standard_normal((BATCH, *s)) * scale for s in kernel.inputs]


def _expected(model, kernel, inputs):
    x = inputs[0]
    p = {name: t.detach().double().numpy() for name, t in model.state_dict().items()}
    w, b = p.get(f"{kernel.layer}.weight"), p.get(f"{kernel.layer}.bias")
    a = kernel.attrs
    if kernel.op == "conv2d":
        return ref.activation(ref.conv2d(x, w, b, a["stride"], a["padding"], a["groups"]), a["activation"])
    if kernel.op == "lrn":
        return ref.lrn(x, a["size"], a["alpha"], a["beta"], a["k"], a["groups"])
    if kernel.op == "max_pool":
        return ref.max_pool(x, a["size"], a["stride"])
    if kernel.op == "avg_pool":
        return ref.adaptive_avg_pool(x, a["output_size"])
    if kernel.op == "dense":
        return ref.activation(ref.dense(x, w, b), a["activation"])
    if kernel.op == "dropout":
        return x * inputs[1]
    if kernel.op == "softmax":
        return ref.softmax(x)
    raise AssertionError(kernel.op)


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_every_kernel(compiled, rng, variant):
    check_every_kernel(compiled(variant), rng)


@pytest.mark.parametrize("config", [dict(activation="tanh"), dict(variant="onegpu", pool="non-overlapping"),
                                    dict(lrn="none")], ids=["tanh", "onegpu-non-overlapping", "lrn-none"])
def test_every_kernel_of_ablations(compiled, rng, config):
    """The paper's ablations at a quarter width: tanh's conv and dense
    kernels, 2x2 stride-2 pools, the one-GPU net's layers, no LRN."""
    check_every_kernel(compiled(**{"variant": "paper", **config}, width=0.25, num_classes=10), rng)


def check_every_kernel(model, rng):
    for kernel in model.spec.kernels(training=True):
        # LRN only normalises noticeably when alpha * sum(a^2) is near k.
        inputs = _inputs(kernel, rng, scale=50.0 if kernel.op == "lrn" else 1.0)
        if kernel.op == "dropout":
            inputs[1] = (rng.random(inputs[1].shape) < 0.5) * 2.0
        params = [getattr(model, kernel.layer).weight, getattr(model, kernel.layer).bias] if kernel.params else []
        out = model.compiled.kernel(kernel.name)(*[torch.from_numpy(i).float() for i in inputs], *params)
        assert tuple(out.shape) == (BATCH, *kernel.output), kernel.name
        err = ref.rel_error(out.numpy(), _expected(model, kernel, inputs))
        assert err < 1e-5, f"{kernel.name}: relative error {err:.2e}"


@pytest.mark.parametrize("convention", ["caffe", "paper"])
def test_lrn_conventions(compiled, rng, convention):
    model = compiled("paper", width=0.25, num_classes=10, lrn=convention)
    q = LRN_CONVENTIONS[convention]
    x = rng.standard_normal((BATCH, 24, 55, 55)) * 50
    out = model.compiled.kernel("conv1_lrn")(torch.from_numpy(x).float())
    # Written out once more in each convention's own terms.
    alpha, k = (1e-4 / 5, 1.0) if convention == "caffe" else (1e-4, 2.0)
    assert (q.alpha, q.k) == pytest.approx((alpha, k))
    groups = 2 if convention == "paper" else 1  # the paper's windows stay within each tower's 12 maps
    assert ref.rel_error(out.numpy(), ref.lrn(x, 5, alpha, 0.75, k, groups)) < 1e-5


def test_torch_convention_is_torch_local_response_norm(rng):
    q = LRN_CONVENTIONS["torch"]
    x = rng.standard_normal((BATCH, 24, 9, 9)) * 50
    expected = torch.nn.LocalResponseNorm(5)(torch.from_numpy(x)).numpy()  # alpha=1e-4 divided by 5, k=1
    assert ref.rel_error(ref.lrn(x, q.size, q.alpha, q.beta, q.k), expected) < 1e-12


@pytest.mark.parametrize("isa_cpu", ["znver3", "sapphirerapids"])
@pytest.mark.parametrize("batch", [1, 3])
def test_kernels_on_weights_transformed_ahead(rng, test_seed, isa_cpu, batch):
    """What forward of a CPU build at a static batch runs where it takes
    weights transformed once per weight version (graph.Transformed): the
    transform by one kernel, the layer on its output by another. conv1 and
    conv2 direct on packed weights, conv3 by Winograd, fc6-8 on packed
    weights; ReLU, tanh and no activation (fc8); both ISAs' tiles."""
    import tvm
    from helpers import randomize, skip_unless_host_runs

    from tvm_alexnet.ops import op_of, transforms_weights, winograd
    from tvm_alexnet.runtime import kernel_ready
    from tvm_alexnet.spec import network
    from tvm_alexnet.target import parse_target, vector_unit

    skip_unless_host_runs(isa_cpu)
    target = parse_target(f"llvm:{isa_cpu}")
    names = {"relu": ("conv1_conv", "conv2_conv", "conv3_conv", "fc6_dense", "fc8_dense"), "tanh": ("fc6_dense",)}
    for activation, wanted in names.items():
        model = randomize(AlexNet("paper", width=0.25, num_classes=10, activation=activation), test_seed)
        for kernel in (k for k in model.spec.kernels() if k.name in wanted):
            assert transforms_weights(kernel, batch)
            transform, compute, shape = op_of(kernel).transformed_funcs(kernel, batch, vector_unit(target))
            x = rng.standard_normal((batch, *kernel.inputs[0]))
            layer = getattr(model, kernel.layer)
            transformed, out = kernel_ready(torch.empty(shape)), kernel_ready(torch.empty(batch, *kernel.output))
            tvm.compile(tvm.IRModule({"main": transform}), target=target)["main"](layer.weight.detach(), transformed)
            tvm.compile(tvm.IRModule({"main": compute}), target=target)["main"](
                torch.from_numpy(x).float(), transformed, layer.bias.detach(), out)
            by_winograd = winograd.applies(kernel, batch, weights_transformed=True)
            bound = winograd.error_bound(kernel, batch) if by_winograd else 1e-5
            err = ref.rel_error(out.numpy(), _expected(model, kernel, [x]))
            assert err < bound, f"{kernel.name} ({activation}): relative error {err:.2e}"
