"""The paper's two towers: a training step (forward, loss, backward, SGD) of
one process running both towers (two threads on CPU, two streams on one
GPU), of two tower processes with half the cores each (gloo, CPU only), and
of the one-tower network as a reference; plus the activations the towers
exchange per image.

    python scripts/bench_towers.py --batch 32 --rounds 3
    python scripts/bench_towers.py --batch 128 --target cuda:sm_90   # both towers on cuda:0, a stream each
    python scripts/bench_towers.py --width 0.25 --batch 2 --rounds 1 --repeat 1 --out /tmp/smoke.txt

Every configuration starts from the same weights (one seed) and takes the
same batch, each in a new process of its own, the configurations in turn
for --rounds rounds; a round times --repeat steps after --warmup. Reported:
the median over rounds of each round's median, the rounds' range in
brackets.
"""

from __future__ import annotations

import os
import socket
import tempfile

import click
import harness

CORES = len(os.sched_getaffinity(0))
HALF = max(1, CORES // 2)
PER_TOWER = f"{HALF} thread{'s' if HALF > 1 else ''} each"


def _setup(width: float, batch: int, device: str):
    import torch

    from tvm_alexnet import AlexNet

    torch.manual_seed(0)
    model = AlexNet("paper", width=width).train()
    generator = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, *model.spec.input_shape, generator=generator)
    labels = torch.randint(0, model.spec.num_classes, (batch,), generator=generator)
    return model, x.to(device), labels.to(device)


def _timed_steps(model, x, labels, repeat: int, warmup: int) -> list[float]:
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    return harness.time_calls(step, repeat, warmup, sync=torch.cuda.synchronize if x.is_cuda else None)


def single(target: str, width: float, batch: int, repeat: int, warmup: int) -> dict:
    """The one-tower network."""
    device = "cuda:0" if target.startswith("cuda") else "cpu"
    model, x, labels = _setup(width, batch, device)
    model.to(device).compile(target, batch=batch)
    return {"times": {"step": _timed_steps(model, x, labels, repeat, warmup)}}


def in_process(target: str, width: float, batch: int, repeat: int, warmup: int) -> dict:
    """Both towers in this process: a thread each on CPU (half the TVM threads each), a stream each on GPU."""
    from tvm_alexnet.towers import TowerAlexNet

    device = "cuda:0" if target.startswith("cuda") else "cpu"
    model, x, labels = _setup(width, batch, device)
    towers = TowerAlexNet.from_model(model, (device, device)).compile(target, batch=batch).train()
    return {"times": {"step": _timed_steps(towers, x, labels, repeat, warmup)}}


def _tower_process(rank: int, port: int, width: float, batch: int, repeat: int, warmup: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from tvm_alexnet.towers import DistributedTowerAlexNet

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(HALF)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, x, labels = _setup(width, batch, "cpu")
    towers = DistributedTowerAlexNet(model.spec)
    towers.load_single_state_dict(model.state_dict())
    towers.compile("llvm", batch=batch).train()
    times = _timed_steps(towers, x, labels, repeat, warmup)
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def two_processes(width: float, batch: int, repeat: int, warmup: int) -> dict:
    """A tower per process, half the cores each, exchanging through gloo."""
    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.pt")
        mp.spawn(_tower_process, args=(port, width, batch, repeat, warmup, out), nprocs=2)
        return {"times": {"step": torch.load(out)}}


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@harness.width_option()
@harness.rounds_option(3)
@harness.repeat_option(2)
@harness.warmup_option(1)
@click.option("--target", default="llvm", show_default=True,
              help="llvm, or a CUDA target (cuda:sm_90): both towers then on cuda:0.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the tables here too  [default: bench-logs/towers-<target>.txt]")
def main(batch, width, rounds, repeat, warmup, target, out):
    from tvm_alexnet.spec import network
    from tvm_alexnet.target import parse_target, target_dirname
    from tvm_alexnet.towers import exchanged_floats

    gpu = target.startswith("cuda")
    info = harness.machine()
    out = out or harness.log_path(f"towers-{target_dirname(parse_target(target))}")
    common = {"width": width, "batch": batch, "repeat": repeat, "warmup": warmup}
    in_process_name = "two towers on cuda:0, a stream each" if gpu else \
        f"one process, two tower threads ({PER_TOWER})"
    engines = [harness.Engine(in_process_name, in_process, {**common, "target": target})]
    if not gpu:
        engines.append(harness.Engine(f"two tower processes, gloo ({PER_TOWER})",
                                      two_processes, common, threads=HALF))  # the children inherit it
    engines.append(harness.Engine(f"one network, not split ({'cuda:0' if gpu else f'{CORES} threads'})", single,
                                  {**common, "target": target}))
    results = harness.run_isolated(engines, rounds)

    rows = []
    for name, result in results.items():
        s = result.stats("step")
        rows.append([name, s.ms(1), s.rate(batch)] if s else [name, "failed", "-"])
    floats = exchanged_floats(network("paper", width=width))
    sent = sum(floats.values())
    inner = sent - floats["logits"]
    exchange_rows = [[layer, n, f"{4 * n / 1024:.1f}"] for layer, n in floats.items()]
    exchange_rows.append(["all", sent, f"{4 * sent / 1024:.1f}"])
    sections = [
        harness.gpu_line() if gpu else "",
        f"paper AlexNet (width {width}), batch {batch}, training step (SGD with momentum and weight decay); "
        f"{harness.how_timed(rounds, repeat, warmup, 'step', 'configuration')}.",
        harness.markdown_table(["configuration", "ms/step", "images/s"], rows),
        harness.errors(results),
        "Activations each tower sends per image, forward (float32):",
        harness.markdown_table(["before", "floats", "KiB"], exchange_rows),
        f"Backward, each exchange's gradient is summed over both towers (an all-reduce of {2 * inner} floats "
        f"per image, {4 * 2 * inner / 1024:.1f} KiB; a ring all-reduce between two ranks moves that much "
        "per rank); the logits' gradient needs no exchange.",
    ]
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
