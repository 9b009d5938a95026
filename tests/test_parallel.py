"""Training across processes (gloo): a data-parallel step equals one process's
step on the whole batch; data-parallel and tower runs through train(), a run
resumed with another world size, and a rank that dies."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from helpers import randomize

from tvm_alexnet import AlexNet
from tvm_alexnet.train import CHECKPOINT, load_checkpoint

# Every test starts processes that each compile and train: tens of seconds each.
pytestmark = pytest.mark.slow

SMALL = dict(width=0.25, num_classes=10)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def _ddp_rank(rank, store, state, x, labels, result):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model = AlexNet("paper", **SMALL).eval()  # no dropout: the ranks and the reference compute the same function
    model.load_state_dict(state)
    model.compile("llvm", batch=2)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = sgd(model)
    part = slice(2 * rank, 2 * rank + 2)
    F.cross_entropy(ddp(x[part]), labels[part]).backward()
    optimizer.step()
    torch.save(model.state_dict(), f"{result}.{rank}")
    dist.destroy_process_group()


def test_data_parallel_step_equals_one_process_step(compiled, tmp_path):
    single = compiled("paper", **SMALL).eval()  # this test's own copy: it loads weights and steps SGD on it
    state = randomize(AlexNet("paper", **SMALL), seed=11).state_dict()
    x, labels = torch.randn(4, *single.spec.input_shape), torch.randint(0, 10, (4,))
    mp.spawn(_ddp_rank, args=(str(tmp_path / "store"), state, x, labels, str(tmp_path / "after")), nprocs=2)
    ranks = [torch.load(tmp_path / f"after.{r}") for r in range(2)]
    single.load_state_dict(state)
    optimizer = sgd(single)
    single.zero_grad()
    F.cross_entropy(single(x), labels).backward()
    optimizer.step()
    for name, p in single.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        step, ddp_step = p - state[name], ranks[0][name] - state[name]
        assert (ddp_step - step).norm() / step.norm() < 1e-4, name


# train() under a launcher: 128 digits, batches of 32, width 0.125.
RUN = Path(__file__).parent / "scripts" / "train_parallel.py"


def launch(out, world, towers=1, epochs=1, pause=0.0):
    """`world` processes as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT), or one plain one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TVM_NUM_THREADS="1")
        if world == 1:
            env.pop("WORLD_SIZE")
        procs.append(subprocess.Popen([sys.executable, str(RUN), str(out), str(towers), str(epochs), str(pause)],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=300):
    errors = [p.communicate(timeout=timeout)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors


def test_data_parallel_run_resumes_in_one_process(tmp_path):
    finish(launch(tmp_path, world=2, epochs=1))
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and len(state["rng"]) == 2
    finish(launch(tmp_path, world=1, epochs=2))  # the second epoch in one process
    state = load_checkpoint(tmp_path / CHECKPOINT, AlexNet("paper", 10, 0.125))
    assert state["epoch"] == 2 and [h["epoch"] for h in __import__("json").loads(state["history"])] == [1, 2]


def test_tower_run_writes_single_device_checkpoints(tmp_path):
    finish(launch(tmp_path, world=2, towers=2, epochs=1))
    model = AlexNet("paper", 10, 0.125)
    state = load_checkpoint(tmp_path / CHECKPOINT, model)
    model.load_state_dict(state["model"])  # the joined towers in the single-device format
    momentum = {i: s["momentum_buffer"].shape for i, s in state["optimizer"]["state"].items()}
    assert [momentum[i] for i in sorted(momentum)] == [p.shape for p in model.parameters()]


def test_a_dead_rank_ends_the_others_with_an_error(tmp_path):
    procs = launch(tmp_path, world=2, epochs=3, pause=0.5)
    deadline = time.time() + 240
    while not (tmp_path / CHECKPOINT).exists() and time.time() < deadline:
        assert procs[0].poll() is None, procs[0].communicate()[1]
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    start = time.time()
    _, stderr = procs[0].communicate(timeout=120)
    assert procs[0].returncode != 0
    assert time.time() - start < 90
    assert "rank 0: a collective failed" in stderr, stderr
    state = load_checkpoint(tmp_path / CHECKPOINT, AlexNet("paper", 10, 0.125))  # intact
    assert state["step"] >= 1 or state["epoch"] >= 1
