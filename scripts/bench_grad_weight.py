"""Channel blocks of the convolutions' weight gradients (training's kernels):
each paper convolution's dW at a batch size under the default schedule with
several output-channel blocks, timed side by side in one process: the
default before 2026-11-26 ("old": up to 32 channels), the default now
(`cpu_schedules.conv2d_grad_weight_block`: up to 16) and any `--block`s given.

    python scripts/bench_grad_weight.py --batch 32 --batch 128

Each kernel is timed with TVM's time_evaluator (calls lasting >= 50 ms per
repeat), the blocks in turns for `--rounds` rounds; the fastest round is
reported, in ms and GFLOP/s, with the ratio to the old block.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import click  # noqa: E402
import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tvm import s_tir  # noqa: E402

from tvm_alexnet import build, cpu_schedules, graph, spec  # noqa: E402


def old_block(kernel: spec.Kernel) -> int:
    k = kernel.output[-1]
    per_group = kernel.output[0] // kernel.attrs["groups"]
    return next(b for b in [8 * m for m in range(max(1, min(4, 12 // k)), 0, -1)] + [4, 2] if per_group % b == 0)


def scheduled(kernel: spec.Kernel, batch: int, block: int) -> tvm.IRModule:
    func = graph.kernel_func(kernel, batch).with_attr("global_symbol", "main")
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    cpu_schedules.conv2d_grad_weight(sch, kernel, batch, block)
    return sch.mod


@click.command()
@click.option("--batch", "batches", type=int, multiple=True, default=(32,), show_default=True)
@click.option("--block", "extra", type=int, multiple=True, help="Also time this many output channels per task.")
@click.option("--rounds", type=int, default=3, show_default=True)
def main(batches, extra, rounds):
    target = build.parse_target("llvm")
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    print("| kernel | batch | block | ms | GFLOP/s | vs old |")
    print("|---|---:|---:|---:|---:|---:|")
    for batch in batches:
        for kernel in spec.network("paper").backward_kernels():
            if kernel.op != "conv2d_grad_weight":
                continue
            per_group = kernel.output[0] // kernel.attrs["groups"]
            old, default = old_block(kernel), cpu_schedules.conv2d_grad_weight_block(kernel)
            blocks = [b for b in dict.fromkeys([old, default, *extra]) if per_group % b == 0]
            timers = {b: tvm.compile(scheduled(kernel, batch, b), target=target).mod.time_evaluator(
                "main", device, number=1, repeat=3, min_repeat_ms=50) for b in blocks}
            args = [tvm.runtime.tensor(rng.standard_normal((batch, *s)).astype("float32"), device)
                    for s in kernel.inputs]
            out = tvm.runtime.tensor(np.zeros(kernel.output, "float32"), device)
            best = {b: float("inf") for b in blocks}
            for _ in range(rounds):
                for b, timer in timers.items():
                    best[b] = min(best[b], min(timer(*args, out).results))
            flops = kernel.flops * batch
            for b in blocks:
                what = ", ".join(name for name, block in (("old", old), ("default", default)) if block == b)
                print(f"| {kernel.name} | {batch} | {b}{f' ({what})' if what else ''} | {best[b] * 1e3:.1f} "
                      f"| {flops / best[b] / 1e9:.1f} | {best[old] / best[b]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
