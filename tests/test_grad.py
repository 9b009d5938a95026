"""Every backward kernel against float64 torch autograd of its forward formula, on random inputs."""

import pytest
import torch
import torch.nn.functional as F

from tvm_alexnet.spec import network

BATCH = 2
SMALL = dict(width=0.25, num_classes=10)


def lrn(x, size, alpha, beta, k, groups):
    """The paper's LRN written out: window c - size//2 .. c + (size-1)//2 within c's group."""
    parts = []
    for part in x.chunk(groups, 1):
        squares = F.pad(part * part, (0, 0, 0, 0, size // 2, (size - 1) // 2))
        window = sum(squares[:, i:i + part.shape[1]] for i in range(size))
        parts.append(part / (k + alpha * window) ** beta)
    return torch.cat(parts, 1)


def forward_formula(kernel, x, w, b):
    """The forward kernel in float64 torch, without its activation (a kernel of its own backwards)."""
    a = kernel.attrs
    if kernel.op == "conv2d":
        return F.conv2d(x, w, b, a["stride"], a["padding"], 1, a["groups"])
    if kernel.op == "dense":
        return F.linear(x, w, b)
    if kernel.op == "lrn":
        return lrn(x, a["size"], a["alpha"], a["beta"], a["k"], a["groups"])
    if kernel.op == "max_pool":
        return F.max_pool2d(x, a["size"], a["stride"])
    if kernel.op == "avg_pool":
        return F.adaptive_avg_pool2d(x, a["output_size"])
    raise AssertionError(kernel.op)


def forward_of(net, name):
    forward = {k.name: k for k in net.kernels()}
    for activation in ("relu", "tanh"):
        if name.endswith(f"_{activation}_grad"):
            stem = name.removesuffix(f"_{activation}_grad")
            return forward.get(f"{stem}_conv") or forward[f"{stem}_dense"]
    if "_grad_" in name:
        return forward[name.rsplit("_grad_", 1)[0]]
    return forward[name.removesuffix("_grad")]


def case(model, kernel, gen):
    """The kernel's float32 arguments and its float64 expected output."""
    fk = forward_of(model.spec, kernel.name)
    scale = 50.0 if fk.op == "lrn" else 1.0  # so that LRN normalises noticeably
    x = (torch.randn(BATCH, *fk.inputs[0], generator=gen, dtype=torch.float64) * scale).requires_grad_()
    layer = getattr(model, fk.layer)
    w, b = ((layer.weight.detach().double().requires_grad_(), layer.bias.detach().double().requires_grad_())
            if fk.params else (None, None))
    out = forward_formula(fk, x, w, b)
    dy = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    if kernel.op == "relu_grad":
        y = out.relu()
        return [dy, y], [], dy * (y > 0)
    if kernel.op == "tanh_grad":
        y = out.tanh()  # the tanh's output (float32 when given to the kernel)
        return [dy, y], [], dy * (1 - y.float().double() ** 2)
    grads = dict(zip(("x", "w", "b"), torch.autograd.grad(out, [t for t in (x, w, b) if t is not None], dy)))
    if kernel.op == "bias_grad":
        return [dy], [], grads["b"]
    if kernel.op.endswith("_grad_weight"):
        return [dy, x.detach()], [], grads["w"]
    if kernel.op.endswith("_grad_input"):
        return [dy], [layer.weight], grads["x"]
    if kernel.op == "avg_pool_grad":
        return [dy], [], grads["x"]
    return [dy, x.detach()], [], grads["x"]  # lrn_grad, max_pool_grad


@pytest.mark.parametrize("variant,name", [(v, k.name) for v in ("paper", "torchvision", "ungrouped")
                                          for k in network(v, **SMALL).backward_kernels()])
def test_backward_kernel(compiled, test_seed, variant, name):
    check_backward_kernel(compiled(variant, **SMALL), name, test_seed)


# The paper's ablations: the gradient kernels they add or change (tanh's,
# the non-overlapping pools', the one-GPU net's narrower layers; LRN off only removes kernels).
ABLATIONS = {"tanh": dict(variant="paper", activation="tanh"),
             "non-overlapping": dict(variant="paper", pool="non-overlapping"),
             "onegpu": dict(variant="onegpu")}
CHANGED = {"tanh": ("tanh_grad",), "non-overlapping": ("max_pool_grad",),
           "onegpu": ("conv2d_grad_input", "conv2d_grad_weight", "lrn_grad")}


@pytest.mark.parametrize("ablation,name", [(a, k.name) for a, config in ABLATIONS.items()
                                           for k in network(**config, **SMALL).backward_kernels()
                                           if k.op in CHANGED[a]])
def test_backward_kernel_of_ablation(compiled, test_seed, ablation, name):
    check_backward_kernel(compiled(**ABLATIONS[ablation], **SMALL), name, test_seed)


def test_lrn_grad_across_all_channels(compiled, test_seed):
    """Caffe's (and torch's) LRN: windows across the towers, k=1, alpha/n."""
    model = compiled("paper", lrn="caffe", **SMALL)
    for kernel in model.spec.backward_kernels():
        if kernel.op == "lrn_grad":
            assert kernel.attrs["groups"] == 1 and kernel.attrs["k"] == 1
            check_backward_kernel(model, kernel.name, test_seed)


def check_backward_kernel(model, name, test_seed):
    kernel = next(k for k in model.spec.backward_kernels() if k.name == name)
    gen = torch.Generator().manual_seed(test_seed)
    inputs, params, expected = case(model, kernel, gen)
    out = model.compiled.kernel(name)(*[t.float() for t in inputs], *[p.detach() for p in params])
    assert tuple(out.shape) == tuple(expected.shape)
    err = ((out.double() - expected).norm() / expected.norm()).item()
    assert err < 1e-5, f"{name}: relative error {err:.2e}"


def test_max_pool_grad_ties_go_to_the_first_maximum(compiled, test_seed):
    """After a ReLU many windows hold equal maxima (zeros); each window's
    gradient goes to its first maximum in row-major order, as torch's."""
    model = compiled("paper", **SMALL)
    kernel = next(k for k in model.spec.backward_kernels() if k.op == "max_pool_grad")
    gen = torch.Generator().manual_seed(test_seed)
    x = torch.randint(-6, 2, (BATCH, *kernel.inputs[1]), generator=gen).double().relu().requires_grad_()
    out = F.max_pool2d(x, kernel.attrs["size"], kernel.attrs["stride"])
    dy = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (expected,) = torch.autograd.grad(out, x, dy)
    assert (out == 0).float().mean() > 0.1, "the input should have windows of tied zeros"
    got = model.compiled.kernel(kernel.name)(dy.float(), x.detach().float())
    err = ((got.double() - expected).norm() / expected.norm()).item()
    assert err < 1e-6, f"{kernel.name}: relative error {err:.2e}"
