"""placement.py: the target decides the device, the process group's backend
and where every batch, model and momentum goes (issue 20). These run on a
CPU: the GPU is simulated by patching torch.cuda's queries, and the moves
are checked on the calls train and evaluate make (and on torch's `meta`
device, which any machine has)."""

import pytest
import torch
import torch.distributed as dist
from helpers import assert_one_line_error, invoke

from tvm_alexnet import parallel, placement
from tvm_alexnet.data import Digits, FullImage
from tvm_alexnet.evaluation import evaluate
from tvm_alexnet.model import AlexNet
from tvm_alexnet.preprocessing import PREPROCESSING
from tvm_alexnet.train import Recipe, train


@pytest.fixture
def gpus(monkeypatch):
    """A machine with `n` GPUs, as torch.cuda answers; set_device recorded."""
    chosen = []

    def have(n: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(torch.device(d)))
        return chosen

    return have


@pytest.fixture
def torchrun(monkeypatch):
    """torchrun's environment for this rank, and a process group that records its backend."""
    backends = []

    def launch(rank: int, world: int):
        for name, value in dict(WORLD_SIZE=world, RANK=rank, LOCAL_RANK=rank, LOCAL_WORLD_SIZE=world).items():
            monkeypatch.setenv(name, str(value))
        monkeypatch.setattr(dist, "is_initialized", lambda: False)
        monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: backends.append(backend))
        monkeypatch.setattr(dist, "get_rank", lambda *a: rank)
        return backends

    return launch


def test_backend_follows_the_target_not_the_machine(gpus, torchrun):
    gpus(2)
    backends = torchrun(0, 2)
    p = parallel.from_environment(1, 5, "llvm")  # a CPU run on a GPU machine: gloo, on the CPU
    assert backends == ["gloo"] and p.device == torch.device("cpu")
    assert placement.backend("llvm") == "gloo" and placement.backend("cuda:sm_90") == "nccl"
    parallel.from_environment(1, 5, "cuda:sm_90")
    assert backends == ["gloo", "nccl"]


def test_each_rank_gets_its_own_gpu(gpus, torchrun, monkeypatch):
    chosen = gpus(2)
    torchrun(1, 2)
    p = parallel.from_environment(1, 5, "cuda:sm_90")
    assert p.device == torch.device("cuda", 1) and chosen == [torch.device("cuda", 1)]
    assert placement.device_for("cuda:sm_90") == torch.device("cuda", 1)
    assert placement.device_for("llvm") == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert placement.device_for("cuda:sm_80") == torch.device("cuda", 0)


def test_two_nccl_ranks_on_one_gpu_are_refused(gpus, torchrun):
    gpus(1)
    backends = torchrun(0, 2)
    with pytest.raises(placement.PlacementError, match="NCCL cannot put two ranks on one GPU"):
        parallel.from_environment(2, 5, "cuda:sm_90")
    assert backends == []  # refused before joining the group
    parallel.from_environment(2, 5, "llvm")  # CPU ranks are not limited
    gpus(0)
    with pytest.raises(placement.PlacementError, match="needs a GPU"):
        placement.check_ranks("cuda:sm_90", 1)


def test_collectives_reduce_on_the_ranks_device(monkeypatch):
    seen = []
    monkeypatch.setattr(dist, "all_reduce", lambda t, **kw: seen.append(t.device))
    p = parallel.Parallel("data", 0, 2, torch.device("meta"))
    with pytest.raises(Exception):  # a meta tensor cannot be read back: only where it was reduced counts
        parallel.all_sum([1.0, 2.0], p)
    with pytest.raises(Exception):
        parallel.any_rank(True, p)
    assert seen == [torch.device("meta")] * 2


def test_cuda_train_without_a_gpu_fails_before_the_first_batch(gpus, tmp_path):
    gpus(0)
    result = invoke("train", "--demo", "--target", "cuda:sm_90", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(result, "a cuda target needs a GPU")


def test_to_device_moves_nested_batches():
    x, labels = torch.randn(2, 3), torch.tensor([1, 0])
    moved = placement.to_device((x, [labels, {"n": labels}], 7), "meta")
    assert moved[0].device.type == "meta" and moved[1][0].device.type == "meta"
    assert moved[1][1]["n"].device.type == "meta" and moved[2] == 7
    assert placement.to_device(x, "cpu") is x  # already there: no copy
    assert placement.pin_memory("cuda:0") and not placement.pin_memory("cpu")


def test_optimizer_state_moves_with_the_model():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    placement.move(model, "meta", optimizer)
    assert model.weight.device.type == "meta"
    assert {s["momentum_buffer"].device.type for s in optimizer.state.values()} == {"meta"}


def test_checkpoints_load_onto_any_device(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", map_location=placement.map_location("meta"))["w"].device.type == "meta"
    assert placement.map_location() == torch.device("cpu")


def _tiny():
    torch.manual_seed(0)
    model = AlexNet("paper", 10, 0.125)  # uncompiled: the torch reference
    model.reset_parameters("torch")
    return model


def _spy(monkeypatch):
    """Record every placement.to_device call (device, and the tensors it returned)."""
    calls, real = [], placement.to_device

    def spy(batch, device):
        moved = real(batch, device)
        if isinstance(batch, tuple):  # the whole batch, not the tensors it recurses into
            calls.append((torch.device(device), moved))
        return moved

    monkeypatch.setattr(placement, "to_device", spy)
    return calls


def test_train_and_evaluate_move_every_batch_to_the_models_device(monkeypatch, tmp_path):
    calls = _spy(monkeypatch)
    moves = []
    real_move = placement.move
    monkeypatch.setattr(placement, "move", lambda m, d, o=None: moves.append((torch.device(d), o)) or real_move(m, d, o))
    prep = FullImage(PREPROCESSING["paper"])
    train_set = torch.utils.data.Subset(Digits(True, prep), range(8))
    val_set = torch.utils.data.Subset(Digits(False, prep), range(4))
    model = _tiny()
    fed = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda x: fed.append(x) or forward(x))
    recipe = Recipe(batch_size=4, epochs=1, workers=0, checkpoint_every=1)
    train(model, train_set, val_set, recipe, tmp_path, progress=False, log=lambda *_: None)
    assert len(calls) == 2 + 1 and {d for d, _ in calls} == {placement.model_device(model)}
    assert fed[0] is calls[0][1][0] and fed[1] is calls[1][1][0]  # the step ran on what was moved
    assert moves and moves[0][0] == torch.device("cpu")
    # resumed: the loaded momenta are moved with the model
    moves.clear()
    train(model, train_set, val_set, Recipe(batch_size=4, epochs=2, workers=0), tmp_path, resume=True,
          progress=False, log=lambda *_: None)
    assert any(isinstance(o, torch.optim.Optimizer) for _, o in moves)
    calls.clear()
    batches = [(torch.randn(2, 3, 256, 256), torch.tensor([1, 2]))]
    evaluate(model, batches)
    assert len(calls) == 1 and calls[0][0] == placement.model_device(model)
