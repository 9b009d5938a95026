"""The paper's two towers: partition from the spec, two device contexts in one
process, one tower per process over gloo, against the float64 single-device
grouped model with the same weights."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers import (
    decisions_recorded,
    float64_params,
    gpu_target,
    randomize,
    reference_loss,
    rel,
)

from tvm_alexnet import AlexNet
from tvm_alexnet.errors import UserError
from tvm_alexnet.spec import network
from tvm_alexnet.towers import (
    DistributedTowerAlexNet,
    TowerAlexNet,
    exchanged_floats,
    exchanges,
    join,
    split,
    tower_network,
)

SMALL = dict(width=0.25, num_classes=10)


def test_tower_partition_from_the_spec():
    net = network("paper")
    tower = tower_network(net)
    assert [(c.in_channels, c.out_channels, c.groups) for c in tower.convs] == \
        [(3, 48, 1), (48, 128, 1), (256, 192, 1), (192, 192, 1), (192, 128, 1)]
    assert [(d.in_features, d.out_features) for d in tower.dense] == [(9216, 2048), (4096, 2048), (4096, 500)]
    assert exchanges(net) == ["conv3", "fc6", "fc7", "fc8"]
    assert exchanged_floats(net) == {"conv3": 128 * 13 * 13, "fc6": 128 * 6 * 6, "fc7": 2048, "fc8": 2048,
                                     "logits": 500}
    assert 2 * tower.flops() == net.flops()  # the towers split the work exactly
    assert 2 * tower.num_params == net.num_params
    with pytest.raises(UserError, match="no 2 towers"):
        tower_network(network("torchvision"))


def test_split_and_join_are_exact():
    state = randomize(AlexNet("paper", **SMALL), seed=3).state_dict()
    parts = split(state)
    tower = tower_network(network("paper", **SMALL))
    assert {k: tuple(v.shape) for k, v in parts[0].items()} == tower.params()
    assert all(torch.equal(state[k], v) for k, v in join(parts).items())


@pytest.fixture
def single():
    """The single-device model the towers are checked against: each test its own (cheap: not compiled)."""
    return randomize(AlexNet("paper", **SMALL), seed=7).eval()


def check_against_float64(single, x, labels, logits, loss, grads, decisions: list[dict], image_grad=None,
                          masks=None):
    """`decisions`: each tower's ReLU and pool decisions (see decisions_recorded),
    joined as the single model's channels and features are: tower A's first;
    `masks` likewise (each tower's dropout masks). `image_grad`: x's gradient, where x required one."""
    params = float64_params(single)
    joined = {name: torch.cat([d[name] for d in decisions], 1) for name in decisions[0]}
    if masks is not None:
        masks = {name: torch.cat([m[name] for m in masks], 1).double() for name in masks[0]}
    image = x.detach().double().requires_grad_()
    expected = reference_loss(single, params, image, labels, joined, masks)
    *expected_grads, expected_image = torch.autograd.grad(expected, [*params.values(), image])
    assert abs(loss - expected.item()) / expected.item() < 1e-5
    for (name, _), g in zip(single.named_parameters(), expected_grads):
        assert rel(grads[name], g) < 1e-4, f"{name}: relative error {rel(grads[name], g):.2e}"
    if image_grad is not None:
        assert rel(image_grad, expected_image) < 1e-4, f"image: relative error {rel(image_grad, expected_image):.2e}"


def test_two_device_contexts_in_one_process(single):
    towers = TowerAlexNet.from_model(single, ("cpu", "cpu")).compile("llvm")
    assert isinstance(towers, TowerAlexNet) and not towers.training
    assert all(torch.equal(single.state_dict()[k], v) for k, v in towers.single_state_dict().items())
    x, labels = torch.randn(3, *single.spec.input_shape), torch.randint(0, 10, (3,))
    with decisions_recorded() as recorded:
        logits = towers(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = join([{n: p.grad for n, p in t.named_parameters()} for t in towers.towers])
    check_against_float64(single, x, labels, logits, loss.item(), grads, [recorded[c] for c in towers.compiled])
    with torch.no_grad():
        assert torch.allclose(towers(x), logits, rtol=0, atol=0)  # inference takes the same path
    towers.train()
    torch.manual_seed(0)
    trained = towers(x)
    assert not torch.allclose(trained, logits)  # dropout is on while training


@pytest.mark.parametrize("mode, switches", [("eval", {}), ("train", {}),
                                           ("train", dict(lrn="none", pool="non-overlapping", activation="tanh"))],
                         ids=["eval", "train", "train-ablations"])
def test_towers_pass_the_image_its_gradient(single, mode, switches):
    """conv1's input gradient kernel runs in each tower; the image's gradient
    is their sum. The paper's ablations split into towers too."""
    if switches:
        single = randomize(AlexNet("paper", **SMALL, **switches), seed=7).eval()
    towers = TowerAlexNet.from_model(single, ("cpu", "cpu")).compile("llvm").train(mode == "train")
    x = torch.randn(2, *single.spec.input_shape).requires_grad_()
    labels = torch.randint(0, 10, (2,))
    torch.manual_seed(5)
    with decisions_recorded() as recorded:
        logits = towers(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    assert x.grad is not None
    masks = None
    if mode == "train":  # drawn again in the towers' order: fc6 of each tower, then fc7 of each
        torch.manual_seed(5)
        masks = [{}, {}]
        for d in towers.tower_spec.dense:
            for m in masks:
                if d.dropout:
                    m[d.name] = torch.empty(2, d.out_features).bernoulli_(1 - d.dropout).div_(1 - d.dropout)
    grads = join([{n: p.grad for n, p in t.named_parameters()} for t in towers.towers])
    check_against_float64(single, x, labels, logits, loss.item(), grads, [recorded[c] for c in towers.compiled],
                          x.grad, masks)


@pytest.mark.gpu
def test_two_towers_on_one_gpu_each_on_its_stream(single):
    towers = TowerAlexNet.from_model(single, ("cuda:0", "cuda:0")).compile(gpu_target())
    assert all(s is not None for s in towers._streams) and towers._streams[0] != towers._streams[1]
    x, labels = torch.randn(5, *single.spec.input_shape), torch.randint(0, 10, (5,))
    with decisions_recorded() as recorded:
        logits = towers(x)
    loss = F.cross_entropy(logits, labels.cuda())
    loss.backward()
    grads = join([{n: p.grad.cpu() for n, p in t.named_parameters()} for t in towers.towers])
    check_against_float64(single, x, labels, logits.cpu(), loss.item(), grads, [recorded[c] for c in towers.compiled])


def _tower_rank(rank: int, store: str, state: dict, x, labels, result: str):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model = DistributedTowerAlexNet(network("paper", **SMALL))
    model.load_single_state_dict(state)
    model.compile("llvm").eval()
    with decisions_recorded() as recorded:
        logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = join([dict(s) for s in _gather_grads(model)])
    torch.save(recorded[model.compiled], f"{result}.decisions{rank}")
    if rank == 0:
        torch.save(dict(logits=logits.detach(), loss=loss.item(), grads=grads), result)
    dist.destroy_process_group()


def _gather_grads(model):
    from tvm_alexnet.towers import gather_states

    return gather_states({n: p.grad for n, p in model.tower.named_parameters()})


def test_one_tower_per_process_over_gloo(single, tmp_path):
    x, labels = torch.randn(2, *single.spec.input_shape), torch.randint(0, 10, (2,))
    mp.spawn(_tower_rank, args=(str(tmp_path / "store"), single.state_dict(), x, labels, str(tmp_path / "out.pt")),
             nprocs=2)
    out = torch.load(tmp_path / "out.pt")
    assert out["logits"].shape == (2, 10)
    decisions = [torch.load(tmp_path / f"out.pt.decisions{rank}") for rank in (0, 1)]
    check_against_float64(single, x, labels, out["logits"], out["loss"], out["grads"], decisions)
    assert math.isfinite(out["loss"])
