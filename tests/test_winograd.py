"""Winograd convolution (ops/winograd.py) against the float64 convolution.

The relative L2 error ||out - ref|| / ||ref|| of float32 Winograd grows
with the tile: measured on conv3-5's shapes (batch 2, normal inputs,
weights of std 1/sqrt(fan-in), bias of std 0.1, after ReLU): F(2,3)
4-5e-7, F(3,3) 1.6-1.8e-6, F(4,3) 1.8-2.1e-6, F(5,3) 4.3-4.9e-6, F(6,3)
5.5-6.2e-6; torch's float32 direct convolution 2.2e-7. On conv2's (5x5,
27x27 maps, 48 input channels per group): F(2,5) 1.2e-6, F(3,5) 2.7e-6,
F(4,5) 3.1e-6. The bound asserted is winograd.ERROR_BOUND[m, r], a few
times those.
"""

import numpy as np
import pytest
import reference as ref
import torch

from tvm_alexnet.ops import cpu_winograd, winograd
from tvm_alexnet.runtime import kernel_ready
from tvm_alexnet.target import parse_target, vector_unit

TARGET = parse_target("llvm")
UNIT = vector_unit(TARGET)
BATCH = 2

# (in channels, out channels, groups) of the paper's conv3-5 (13x13 maps), and at width 0.25.
SHAPES = {"conv3": (256, 384, 1), "conv4": (384, 384, 2), "conv5": (384, 256, 2),
          "conv3-w0.25": (64, 96, 1), "conv4-w0.25": (96, 96, 2), "conv5-w0.25": (96, 64, 2)}
CONV2 = (96, 256, 2)  # the paper's conv2: 5x5 on 27x27 maps


def _case(rng, cin, cout, groups, batch=BATCH, size=13, r=3):
    x = rng.standard_normal((batch, cin, size, size))
    w = rng.standard_normal((cout, cin // groups, r, r)) / np.sqrt(r * r * cin / groups)
    b = rng.standard_normal(cout) * 0.1
    return x, w, b, ref.relu(ref.conv2d(x, w, b, 1, r // 2, groups))


def _f32(a):
    return kernel_ready(torch.from_numpy(np.asarray(a, np.float32)))


def _relative_error(out, expected):
    return np.linalg.norm(out.double().numpy() - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("m, name", [(4, "conv3"), (4, "conv4"), (4, "conv5"), (5, "conv4"),
                                     (2, "conv5-w0.25"), (4, "conv4-w0.25"), (6, "conv3-w0.25")])
def test_winograd_matches_float64(rng, m, name):
    """The kernel that transforms the weights itself, all in float32."""
    cin, cout, groups = SHAPES[name]
    x, w, b, expected = _case(rng, cin, cout, groups)
    plan = winograd.plan(BATCH, cin, cout, 13, groups, m, UNIT)
    f = cpu_winograd.build(plan, TARGET, UNIT, transform_weights=True)
    out = kernel_ready(torch.empty(BATCH, cout, 13, 13))
    f(_f32(x), _f32(w), _f32(b), out)
    error = _relative_error(out, expected)
    assert error < winograd.ERROR_BOUND[m, 3], f"F({m},3) {name}: relative error {error:.2e}"


@pytest.mark.parametrize("m", [2, 3, 4])
def test_5x5_winograd_matches_float64(rng, m):
    """F(m, 5) on conv2's shapes (padding 2, 27x27 maps: whole tiles for m = 3,
    a cropped last tile for 2 and 4), on weights transformed by their own kernel."""
    cin, cout, groups = CONV2
    x, w, b, expected = _case(rng, cin, cout, groups, size=27, r=5)
    error = _on_transformed_weights(winograd.plan(BATCH, cin, cout, 27, groups, m, UNIT, r=5), x, w, b, expected)
    assert error < winograd.ERROR_BOUND[m, 5], f"F({m},5): relative error {error:.2e}"


def _on_transformed_weights(plan, x, w, b, expected):
    """The relative error of the convolution on U from the weight transform's
    own kernel, U checked against float64 on the way."""
    u = kernel_ready(torch.empty(plan.u_shape))
    cpu_winograd.build_weight_transform(plan, TARGET, UNIT)(_f32(w), u)
    np.testing.assert_allclose(u.double().numpy(), winograd.weight_transform_numpy(w, plan), rtol=1e-5, atol=1e-5)
    out = kernel_ready(torch.empty(plan.batch, plan.out_channels, plan.size, plan.size))
    cpu_winograd.build(plan, TARGET, UNIT)(_f32(x), u, _f32(b), out)
    return _relative_error(out, expected)


def test_chunks_keep_their_products_within_the_cap():
    """conv2's F(3,5) at batch 32 makes 4 MB of products per image: chunks of 4, not 8; conv3-5's stay at 8."""
    from tvm_alexnet.spec import network

    chunks = {}
    for k in network("paper").compiled_kernels():
        if k.op == "conv2d" and winograd.applies(k, 32):
            p = winograd.kernel_plan(k, 32, UNIT)
            products = 4 * p.alpha ** 2 * p.images * -(-p.size // p.m) ** 2 * p.out_channels
            assert products <= winograd.PRODUCTS_MAX_BYTES, f"{k.name}: {products / 2**20:.1f} MiB per chunk"
            chunks[k.name] = p.images
    assert chunks == {"conv2_conv": 4, "conv3_conv": 8, "conv4_conv": 8, "conv5_conv": 8}


def test_weight_transform_kernel_and_chunks(rng):
    """The weight transform as its own kernel, its U fed to the conv kernel;
    a batch in chunks (6 images: 3 chunks of 2, each 18 tiles of F(5,3), 3
    register tiles of 6) gives the same as the float64 convolution."""
    cin, cout, groups = SHAPES["conv5-w0.25"]
    batch, m = 6, 5
    x, w, b, expected = _case(rng, cin, cout, groups, batch)
    plan = winograd.plan(batch, cin, cout, 13, groups, m, UNIT, chunk=2)
    assert plan.chunks == 3 and plan.p == plan.p_padded
    error = _on_transformed_weights(plan, x, w, b, expected)
    assert error < winograd.ERROR_BOUND[m, 3], f"F({m},3) chunked: relative error {error:.2e}"


def test_transform_matrices_compute_a_convolution():
    """A^T [(G g G^T) * (B^T d B)] A is the r x r correlation of a tile, in float64."""
    rng = np.random.default_rng(0)
    for m, r in [(2, 3), (3, 3), (4, 3), (5, 3), (6, 3), (2, 5), (3, 5), (4, 5)]:
        a, b, g = winograd.transform_matrices(m, r)
        d, k = rng.standard_normal((m + r - 1, m + r - 1)), rng.standard_normal((r, r))
        y = a.T @ ((g @ k @ g.T) * (b.T @ d @ b)) @ a
        direct = np.array([[np.sum(d[i:i + r, j:j + r] * k) for j in range(m)] for i in range(m)])
        np.testing.assert_allclose(y, direct, rtol=1e-8, atol=1e-8)


# -- in the network: builds for a static batch of MIN_BATCH or more ---------------------------------


def _scheduled_conv_stages(net, batch):
    from tvm_alexnet import build, graph

    mod, _ = build.schedule(graph.build_module(net, batch), net, batch, TARGET)
    return {k.name for k in net.compiled_kernels() if "winograd_m" in mod[k.name].script()}


def test_which_kernels_a_build_computes_by_winograd():
    from tvm_alexnet.spec import network

    net = network("paper", width=0.25, num_classes=10)
    convs = {f"conv{i}_conv" for i in (3, 4, 5)}
    assert _scheduled_conv_stages(net, winograd.MIN_BATCH) == convs | {f"{c}_grad_input" for c in convs}
    assert _scheduled_conv_stages(net, None) == set()  # any batch: direct
    assert _scheduled_conv_stages(net, winograd.MIN_BATCH - 1) == set()
    # width 0.125: conv4's and conv5's 24 channels per tower are not whole AVX-512 vectors
    narrow = network("paper", width=0.125, num_classes=10)
    assert _scheduled_conv_stages(narrow, winograd.MIN_BATCH) == {"conv3_conv", "conv3_conv_grad_input"}
    # at full width conv2's 48 input channels per tower are whole vectors too: F(3,5) for its 5x5
    paper = network("paper")
    by_winograd = {k.name for k in paper.compiled_kernels() if winograd.applies(k, winograd.MIN_BATCH)}
    assert by_winograd == {f"conv{i}_conv{grad}" for i in (2, 3, 4, 5) for grad in ("", "_grad_input")} | {
        "conv2_conv_grad_weight"}  # F(5,3) on 3x3 tiles of dy; conv3-5's direct weight gradients run faster
    conv2 = next(k for k in paper.kernels() if k.name == "conv2_conv")
    assert winograd.kernel_plan(conv2, 32, UNIT).m == 3 and winograd.kernel_plan(conv2, 32, UNIT).alpha == 7


def test_input_gradients_by_winograd_match_float64(rng):
    """conv3-5's input gradients as a build at a static batch of MIN_BATCH
    computes them: a Winograd convolution of dy with the flipped,
    channel-swapped weights, transformed in the kernel."""
    import tvm

    from tvm_alexnet import graph
    from tvm_alexnet.ops import default_schedule
    from tvm_alexnet.spec import network

    batch = winograd.MIN_BATCH
    kernels = [k for k in network("paper", width=0.25, num_classes=10).compiled_kernels()
               if k.op == "conv2d_grad_input" and winograd.applies(k, batch)]
    assert [k.layer for k in kernels] == ["conv5", "conv4", "conv3"]
    for k in kernels:
        func = default_schedule(graph.kernel_func(k, batch), k, batch, UNIT)
        assert "winograd_m" in func.script()
        dy = rng.standard_normal((batch, *k.inputs[0]))
        w = rng.standard_normal(k.params[0]) / np.sqrt(9 * k.params[0][1])
        out = kernel_ready(torch.empty(batch, *k.output))
        tvm.compile(tvm.IRModule({k.name: func}), target=TARGET)[k.name](_f32(dy), _f32(w), out)
        expected = torch.nn.grad.conv2d_input((batch, *k.output), torch.from_numpy(w), torch.from_numpy(dy),
                                              padding=1, groups=k.attrs["groups"]).numpy()
        error = _relative_error(out, expected)
        assert error < winograd.error_bound(k, batch), f"{k.name}: relative error {error:.2e}"


@pytest.mark.slow
def test_inference_at_a_static_batch_matches_float64_and_follows_the_weights(rng):
    """forward on weights transformed once (forward_transform_params), made
    again when a weight changes in place (torch's version counter)."""
    from helpers import params_of, randomize

    from tvm_alexnet import AlexNet

    batch = 2
    model = randomize(AlexNet("paper", width=0.25, num_classes=10), 11).eval()
    model.compile("llvm", batches=(batch,))
    assert list(model.fixed_batches) == [batch]
    fixed = model.fixed_batches[batch]
    assert "forward_transform_params" in fixed.manifest.functions
    # conv3-5 by Winograd; conv1, conv2 and the dense layers on packed weights
    assert sorted(fixed.manifest.transformed_weights) == [*(f"conv{i}_conv" for i in range(1, 6)),
                                                          "fc6_dense", "fc7_dense", "fc8_dense"]
    # what a report times for conv4: forward's kernel, on its weights transformed ahead
    from tvm_alexnet.report import kernel_args
    conv4 = next(k for k in model.spec.kernels() if k.name == "conv4_conv")
    times = fixed.time_kernel("conv4_conv", kernel_args(model, conv4, batch, torch.device("cpu")), number=1,
                              repeat=2, as_in_forward=True)
    assert len(times) == 2 and all(0 < t < 1 for t in times)
    x = rng.standard_normal((batch + 1, 3, 227, 227))  # a chunk of `batch` on its build, 1 on the any-batch one
    for _ in range(2):
        with torch.no_grad():
            out = model(torch.from_numpy(x).float()).double().numpy()
        expected = ref.forward(model.spec, params_of(model), x)
        assert ref.rel_error(out, expected) < 1e-4
        with torch.no_grad():
            model.conv4.weight.mul_(-0.5)


@pytest.mark.slow
def test_training_at_a_static_batch_matches_float64():
    """Winograd forward, the direct convolution's gradient kernels backward."""
    from helpers import randomize
    from test_autograd import check_gradients

    from tvm_alexnet import AlexNet

    model = randomize(AlexNet("paper", width=0.25, num_classes=10), 12).train()
    model.compile("llvm", batch=winograd.MIN_BATCH)
    check_gradients(model, batch=winograd.MIN_BATCH)
