"""The paper's two towers on this CPU: a training step (forward, loss,
backward, SGD) of one process running both towers on two threads against
two tower processes with one thread each (gloo), and the one-tower network
as a reference; plus the activations the towers exchange per image.

    python scripts/bench_towers.py --batch 32 --rounds 3
    python scripts/bench_towers.py --batch 128 --target cuda:sm_90   # both towers on cuda:0, a stream each

Every configuration starts from the same weights and takes the same batch;
they run one after another in rounds (in-process towers, two processes,
single network), so that drifting machine load hits them alike. Prints a
Markdown table of the median seconds per step and images/s.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

CORES = len(os.sched_getaffinity(0))


def step(model, optimizer, x, labels) -> None:
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), labels).backward()
    optimizer.step()


def timed_steps(model, x, labels, steps: int) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step(model, optimizer, x, labels)  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(model, optimizer, x, labels)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def _tower_process(rank: int, port: int, state, x, labels, steps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, CORES // 2))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from tvm_alexnet.spec import network
    from tvm_alexnet.towers import DistributedTowerAlexNet

    model = DistributedTowerAlexNet(network("paper"))
    model.load_single_state_dict(state)
    model.compile("llvm", batch=len(x)).train()
    times = timed_steps(model, x, labels, steps)
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def two_processes(state, x, labels, steps: int) -> list[float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.pt")
        # One TVM thread per tower process: set before TVM starts in the children.
        os.environ["TVM_NUM_THREADS"] = str(max(1, CORES // 2))
        mp.spawn(_tower_process, args=(port, state, x, labels, steps, out), nprocs=2)
        os.environ["TVM_NUM_THREADS"] = str(CORES)
        return torch.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration and round")
    parser.add_argument("--target", default="llvm", help="llvm, or a CUDA target: both towers then on cuda:0")
    args = parser.parse_args()
    gpu = args.target.startswith("cuda")
    device = "cuda:0" if gpu else "cpu"
    os.environ.setdefault("TVM_NUM_THREADS", str(CORES))

    from tvm_alexnet import AlexNet
    from tvm_alexnet.towers import exchanged_floats

    torch.manual_seed(0)
    single = AlexNet("paper").train()
    state = {k: v.clone() for k, v in single.state_dict().items()}
    x = torch.randn(args.batch, *single.spec.input_shape, device=device)
    labels = torch.randint(0, 1000, (args.batch,), device=device)
    single.to(device).compile(args.target, batch=args.batch)
    towers = AlexNet("paper").train()
    towers.load_state_dict(state)
    towers = towers.compile(args.target, batch=args.batch, devices=(device, device))

    in_process = "two towers on cuda:0, a stream each" if gpu else "one process, two tower threads"
    times = {in_process: [], "one tower (no split)": []} | ({} if gpu else {"two tower processes (gloo)": []})
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", flush=True)
        towers.load_single_state_dict(state)
        times[in_process] += timed_steps(towers, x, labels, args.steps)
        if not gpu:
            times["two tower processes (gloo)"] += two_processes(state, x, labels, args.steps)
        single.load_state_dict(state)
        times["one tower (no split)"] += timed_steps(single, x, labels, args.steps)

    where = torch.cuda.get_device_name(0) if gpu else f"{CORES} cores"
    print(f"\npaper AlexNet, batch {args.batch}, training step, {where}, "
          f"median of {args.rounds * args.steps} steps\n")
    print("| configuration | s/step | images/s |\n|---|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {statistics.median(t):.3f} | {args.batch / statistics.median(t):.1f} |")
    floats = exchanged_floats(single.spec)
    sent = sum(floats.values())
    inner = sent - floats["logits"]
    print("\nActivations each tower sends per image, forward (float32):\n")
    print("| before | floats | KiB |\n|---|---:|---:|")
    for layer, n in floats.items():
        print(f"| {layer} | {n} | {4 * n / 1024:.1f} |")
    print(f"| all | {sent} | {4 * sent / 1024:.1f} |")
    print(f"\nBackward, each exchange's gradient is summed over both towers (an all-reduce of {2 * inner} floats "
          f"per image, {4 * 2 * inner / 1024:.1f} KiB; a ring all-reduce between two ranks moves that much "
          f"per rank); the logits' gradient needs no exchange.")


if __name__ == "__main__":
    main()
