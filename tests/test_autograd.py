"""loss.backward() through the compiled layers: gradients and an SGD step against float64 torch."""

from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from conftest import randomize

from tvm_alexnet import AlexNet
from tvm_alexnet.autograd import LayerKernels
from tvm_alexnet.spec import LRN_CONVENTIONS, POOL_SIZE, POOL_STRIDE

SMALL = dict(width=0.25, num_classes=10)


@contextmanager
def decisions_recorded():
    """Records the ReLU and max-pool decisions of every compiled layer run
    inside: {compiled network: {kernel name: ReLU mask or pool argmax}}.

    The float64 reference takes these decisions from the run it checks. Where
    a ReLU's input or a pool window's two largest values lie within float32
    rounding of each other, float32 and float64 may decide differently, and
    a whole element's gradient then goes elsewhere: 1e-3 to 2e-2 relative at
    conv1.weight in ~7% of random draws at width 0.25 (measured; one failed CI).
    """
    recorded = {}
    forward = LayerKernels.forward

    def recording(self, *args):
        x, saved = forward(self, *args)
        decisions = recorded.setdefault(self.compiled, {})
        for k, tensors in zip(self.kernels, saved):
            if k.attrs.get("relu"):
                decisions[k.name] = (tensors[1] > 0).cpu()  # saved: the input and the ReLU's output
            elif k.op == "max_pool":  # the first maximum, as the gradient kernel takes it
                decisions[k.name] = F.max_pool2d(tensors[0], POOL_SIZE, POOL_STRIDE, return_indices=True)[1].cpu()
        return x, saved

    LayerKernels.forward = recording
    try:
        yield recorded
    finally:
        LayerKernels.forward = forward


def reference_loss(model: AlexNet, params: dict, x: torch.Tensor, labels: torch.Tensor, decisions: dict,
                   masks=None):
    """The network in float64 torch ops with the given parameters (and
    dropout masks), its ReLUs and max-pools deciding as `decisions` say."""

    def relu(y, kernel):
        return y * decisions[kernel]

    def max_pool(y, kernel):
        argmax = decisions[kernel]
        return y.flatten(2).gather(2, argmax.flatten(2)).view(argmax.shape)

    net = model.spec
    for c in net.convs:
        x = relu(F.conv2d(x, params[f"{c.name}.weight"], params[f"{c.name}.bias"], c.stride, c.padding, 1, c.groups),
                 f"{c.name}_conv")
        if c.lrn:
            p = LRN_CONVENTIONS[net.lrn]
            x = torch.cat([F.local_response_norm(part, p.size, alpha=p.alpha * p.size, beta=p.beta, k=p.k)
                           for part in x.chunk(net.lrn_groups, 1)], 1)
        if c.pool:
            x = max_pool(x, f"{c.name}_pool")
    if net.avgpool is not None:
        x = F.adaptive_avg_pool2d(x, net.avgpool)
    x = x.flatten(1)
    for d in net.dense:
        x = F.linear(x, params[f"{d.name}.weight"], params[f"{d.name}.bias"])
        if d.relu:
            x = relu(x, f"{d.name}_dense")
        if masks is not None and d.dropout:
            x = x * masks[d.name]
    return F.cross_entropy(x, labels)


def float64_params(model):
    return {k: v.detach().double().requires_grad_() for k, v in model.state_dict().items()}


def rel(a, b):
    return ((a.double() - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def small_models():
    models = {}

    # He-scaled random weights: with the paper's N(0, 0.01^2) the early layers'
    # gradients nearly vanish by cancellation, and float32 torch itself is then
    # off float64 by up to 9% at conv1.
    def get(variant):
        if variant not in models:
            models[variant] = randomize(AlexNet(variant, **SMALL), seed=len(models)).compile("llvm")
        return models[variant]

    return get


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
def test_whole_network_gradients_match_float64(small_models, variant):
    model = small_models(variant).eval()  # no dropout: the reference has the same network
    x = torch.randn(3, *model.spec.input_shape)
    labels = torch.randint(0, 10, (3,))
    model.zero_grad()
    with decisions_recorded() as recorded:
        loss = F.cross_entropy(model(x), labels)
    loss.backward()
    params = float64_params(model)
    expected = reference_loss(model, params, x.double(), labels, recorded[model.compiled])
    grads = torch.autograd.grad(expected, list(params.values()))
    assert abs(loss.item() - expected.item()) / expected.item() < 1e-5
    for (name, p), g in zip(model.named_parameters(), grads):
        assert rel(p.grad, g) < 1e-4, f"{name}: relative error {rel(p.grad, g):.2e}"


def test_no_torch_gradient_inside_a_compiled_layer(small_models):
    model = small_models("paper").eval()
    out = model(torch.randn(2, *model.spec.input_shape))
    # The graph torch holds is the compiled layers chained (and fc6's flatten), no conv/linear of its own.
    seen, todo = set(), [out.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        todo += [f for f, _ in fn.next_functions]
    names = {type(fn).__name__ for fn in seen}
    assert "CompiledLayerBackward" in names
    assert not names & {"ConvolutionBackward0", "AddmmBackward0", "MmBackward0", "ReluBackward0"}


def test_dropout_masks_reach_forward_and_backward(small_models):
    model = small_models("paper").train()
    x = torch.randn(4, *model.spec.input_shape)
    labels = torch.randint(0, 10, (4,))
    torch.manual_seed(7)
    model.zero_grad()
    with decisions_recorded() as recorded:
        loss = F.cross_entropy(model(x), labels)
    loss.backward()
    torch.manual_seed(7)  # the same masks, drawn in the model's order: fc6, then fc7
    masks = {}
    for d in model.spec.dense:
        if d.dropout:
            masks[d.name] = torch.empty(4, d.out_features).bernoulli_(1 - d.dropout).div_(1 - d.dropout).double()
    params = float64_params(model)
    expected = reference_loss(model, params, x.double(), labels, recorded[model.compiled], masks)
    grads = torch.autograd.grad(expected, list(params.values()))
    for (name, p), g in zip(model.named_parameters(), grads):  # a wrong or missing mask is an O(1) error
        assert rel(p.grad, g) < 1e-4, f"{name}: relative error {rel(p.grad, g):.2e}"
    assert 0.3 < (masks["fc6"] == 0).double().mean() < 0.7


def test_one_sgd_step_equals_float64(small_models):
    model = small_models("paper").eval()
    params = float64_params(model)
    before = {k: v.detach().clone() for k, v in params.items()}
    x = torch.randn(4, *model.spec.input_shape)
    labels = torch.randint(0, 10, (4,))

    def sgd_step(parameters, loss):
        optimizer = torch.optim.SGD(parameters, lr=0.01, momentum=0.9, weight_decay=5e-4)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with decisions_recorded() as recorded:
        sgd_step(model.parameters(), F.cross_entropy(model(x), labels))
    sgd_step(params.values(), reference_loss(model, params, x.double(), labels, recorded[model.compiled]))
    for name, p in model.state_dict().items():  # the updates, not the weights, which hardly move in one step
        update, expected = p.double() - before[name], params[name].detach() - before[name]
        assert expected.norm() > 0 and rel(update, expected) < 1e-4, f"{name}: {rel(update, expected):.2e}"
