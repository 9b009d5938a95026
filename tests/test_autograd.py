"""loss.backward() through the compiled layers: gradients and an SGD step against float64 torch."""

import pytest
import reference as ref
import torch
import torch.nn.functional as F
from helpers import decisions_recorded, float64_params, reference_loss, rel

SMALL = dict(width=0.25, num_classes=10)

# The compiled fixture's He-scaled random weights: with the paper's N(0, 0.01^2)
# the early layers' gradients nearly vanish by cancellation, and float32 torch
# itself is then off float64 by up to 9% at conv1.


def check_gradients(model, batch: int = 3):
    """loss.backward() through the compiled model against float64 torch:
    the loss, every parameter's gradient and the image's (which requires
    one), in the model's mode (training: the same dropout masks, drawn
    again from the same seed in the model's order, fc6 then fc7)."""
    x = torch.randn(batch, *model.spec.input_shape).requires_grad_()
    labels = torch.randint(0, model.spec.num_classes, (batch,))
    model.zero_grad()
    torch.manual_seed(7)
    with decisions_recorded() as recorded:
        loss = F.cross_entropy(model(x), labels)
    loss.backward()
    masks = None
    if model.training:
        torch.manual_seed(7)
        masks = {d.name: torch.empty(batch, d.out_features).bernoulli_(1 - d.dropout).div_(1 - d.dropout).double()
                 for d in model.spec.dense if d.dropout}
    params = float64_params(model)
    image = x.detach().double().requires_grad_()
    expected = reference_loss(model, params, image, labels, recorded[model.compiled], masks)
    *grads, image_grad = torch.autograd.grad(expected, [*params.values(), image])
    assert abs(loss.item() - expected.item()) / expected.item() < 1e-5
    for (name, p), g in zip(model.named_parameters(), grads):
        assert rel(p.grad, g) < 1e-4, f"{name}: relative error {rel(p.grad, g):.2e}"
    assert x.grad is not None, "no gradient reached the image"
    assert rel(x.grad, image_grad) < 1e-4, f"image: relative error {rel(x.grad, image_grad):.2e}"
    return masks


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_whole_network_gradients_match_float64(compiled, variant, mode):
    """The image's gradient too: conv1's input gradient is a compiled kernel (stride 4, 11x11, in phases)."""
    model = compiled(variant, **SMALL).train(mode == "train")
    masks = check_gradients(model)
    if mode == "train":
        assert 0.3 < (masks["fc6"] == 0).double().mean() < 0.7


# The paper's ablations, each alone and all at once, at a quarter width.
ABLATIONS = {
    "onegpu": dict(variant="onegpu"),
    "lrn-none": dict(lrn="none"),
    "non-overlapping": dict(pool="non-overlapping"),
    "tanh": dict(activation="tanh"),
    "onegpu-all": dict(variant="onegpu", lrn="none", pool="non-overlapping", activation="tanh"),
}


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_ablation_gradients_match_float64(compiled, ablation):
    model = compiled(**{"variant": "paper", **ABLATIONS[ablation]}, **SMALL).train()
    check_gradients(model)


def test_no_image_gradient_unless_asked(compiled):
    model = compiled("paper", **SMALL).eval()
    x = torch.randn(2, *model.spec.input_shape)
    model(x).sum().backward()
    assert x.grad is None and model.conv1.weight.grad is not None


def test_no_torch_gradient_inside_a_compiled_layer(compiled):
    model = compiled("paper", **SMALL).eval()
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


def test_one_sgd_step_equals_float64(compiled):
    model = compiled("paper", **SMALL).eval()
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


def test_freed_activations_are_reused_not_page_faulted(compiled):
    """A CPU build keeps glibc from unmapping freed blocks (runtime.keep_freed_memory):
    a 64 MB activation freed and drawn again is not page-faulted afresh
    (16384 pages each time otherwise)."""
    import resource

    compiled("paper", **SMALL)
    size = 64 << 20

    def faults_of_a_fresh_block() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.empty(size // 4)
        block.fill_(1.0)
        del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    for _ in range(12):  # the heap grows until aligned blocks fit in what was freed
        faults_of_a_fresh_block()
    assert all(faults_of_a_fresh_block() < size // 4096 // 20 for _ in range(3))


def test_kernel_outputs_reuse_their_memory_once_nothing_holds_it(compiled, rng):
    """runtime.OutputBuffers: a kernel's next output lands on its last
    output's memory only when no tensor, view or `.grad` holds that any more;
    a training step's gradients then reuse the same memory, correctly."""
    model = compiled("paper", **SMALL)
    call = model.compiled.kernel("fc8_dense")
    weight, bias = model.fc8.weight.detach(), model.fc8.bias.detach()

    def fc8(x):
        return call(torch.from_numpy(x).float(), weight, bias)

    def expected(x):
        return ref.dense(x, weight.double().numpy(), bias.double().numpy())

    x = rng.standard_normal((3, weight.shape[1]))
    first = fc8(x)
    kept = first.clone()
    second = fc8(x * 2)  # `first` is alive: fresh memory
    assert second.data_ptr() != first.data_ptr() and torch.equal(first, kept)
    view = second.view(-1)
    del second
    third = fc8(x)  # a view of `second` is alive: fresh memory again
    assert third.data_ptr() != view.data_ptr() and rel(view.view(3, -1).double(), torch.from_numpy(expected(x * 2))) < 1e-5
    address = third.data_ptr()
    del third
    interloper = torch.empty_like(kept)  # would take `third`'s memory had it gone back to the heap
    fourth = fc8(x * 3)  # nothing holds `third`: its memory again, computed afresh
    assert interloper.data_ptr() != address
    assert fourth.data_ptr() == address and rel(fourth.double(), torch.from_numpy(expected(x * 3))) < 1e-5

    model.train()
    images, labels = torch.randn(2, *model.spec.input_shape), torch.randint(0, 10, (2,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    grads = []
    for _ in range(2):
        torch.manual_seed(0)  # the same dropout masks
        optimizer.zero_grad()  # set_to_none: the last step's gradients are released
        F.cross_entropy(model(images), labels).backward()
        grads.append((model.fc6.weight.grad.data_ptr(), model.fc6.weight.grad.clone()))
    assert grads[0][0] == grads[1][0] and torch.equal(grads[0][1], grads[1][1])
