"""What the convolution tiles buy: each paper convolution at a batch size
scheduled several ways, timed side by side in one process: the default tile
before 2026-11-26 ("old": one AVX2 vector of output channels x up to 14
pixels), today's default (`cpu_schedules.conv2d_tile`), any `--tile`s given,
and the best record of a tuning log (the tile search of `tune`), marked
where a build does not use it as the log holds it slower than the default.

    python scripts/bench_conv_tiles.py [--tuning-log tuning_logs/llvm-znver3] [--batch 1 --batch 32]
    python scripts/bench_conv_tiles.py --any-batch --tile 16x5 --tile 8x9   # as built without a log
    python scripts/bench_conv_tiles.py --any-batch --gradients --batch 32   # the input gradients of training

With `--any-batch` the kernels are built for a symbolic batch size (the
build without a log, which training and untuned batch sizes run on) and no
record is timed. Each kernel is timed with TVM's time_evaluator (calls
lasting >= 50 ms per repeat), the schedules in turns for `--rounds` rounds;
the fastest round is reported, in GFLOP/s, with the ratio to the old tile.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import click  # noqa: E402
import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tvm import s_tir  # noqa: E402

from tvm_alexnet import build, cpu_schedules, graph, spec, tuning  # noqa: E402


def old_tile(kernel: spec.Kernel) -> tuple[int, int]:
    channels, _, width = kernel.output
    per_group = channels // kernel.attrs["groups"]
    return (next(b for b in (8, 4, 2, 1) if per_group % b == 0),
            next((r for r in range(14, 3, -1) if width % r == 0), 1))


def scheduled(kernel: spec.Kernel, batch: int | None, tile) -> tvm.IRModule:
    func = graph.kernel_func(kernel, batch).with_attr("global_symbol", "main")
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    cpu_schedules.conv2d(sch, kernel, batch, tile)
    return sch.mod


def parse_tile(ctx, param, values) -> list[tuple[int, int]]:
    try:
        return [tuple(int(n) for n in v.split("x", 1)) for v in values]
    except ValueError:
        raise click.BadParameter("give a tile as CHANNELSxPIXELS, e.g. 16x5") from None


@click.command()
@click.option("--tuning-log", default="tuning_logs/llvm-znver3", show_default=True)
@click.option("--batch", "batches", type=int, multiple=True, default=(1, 32), show_default=True)
@click.option("--tile", "tiles", multiple=True, callback=parse_tile, help="Also time this tile, e.g. 16x5.")
@click.option("--any-batch", is_flag=True, help="Build for a symbolic batch size; no tuned records.")
@click.option("--gradients", is_flag=True, help="The convolutions' input gradients instead (training's kernels).")
@click.option("--rounds", type=int, default=5, show_default=True)
def main(tuning_log, batches, tiles, any_batch, gradients, rounds):
    target = build.parse_target("llvm")
    database = tuning.read_log(tuning_log)
    defaults = tuning.default_times(tuning_log)
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    print("| kernel | batch | schedule | tile | GFLOP/s | vs old |")
    print("|---|---:|---|---|---:|---:|")
    for batch in batches:
        built_for = None if any_batch else batch
        net = spec.network("paper")
        for kernel in net.backward_kernels() if gradients else net.kernels():
            if kernel.op != ("conv2d_grad_input" if gradients else "conv2d"):
                continue
            schedules = {("old", old_tile(kernel)): scheduled(kernel, built_for, old_tile(kernel)),
                         ("default", cpu_schedules.conv2d_tile(kernel)): scheduled(kernel, built_for, None)}
            schedules.update({("given", tile): scheduled(kernel, built_for, tile) for tile in tiles})
            record = None if any_batch else tuning.best_record(database, tuning.task_module(kernel, batch), target)
            if record is not None:
                space = "tile search" if tuning.in_default_space(record) else "MetaSchedule"
                if tuning.tuned_kernel(database, kernel, batch, target, defaults) is None:
                    space += " (unused: slower than the default)"
                func = tuning.tuned_kernel(database, kernel, batch, target)  # the best record, used or not
                schedules["tuned", space] = tvm.IRModule({"main": func})
            shapes = [(batch, *kernel.inputs[0]), *kernel.params, (batch, *kernel.output)]
            args = [tvm.runtime.tensor(rng.standard_normal(shape).astype("float32"), device) for shape in shapes]
            timers = {name: tvm.compile(m, target).jit().time_evaluator("main", device, number=1, repeat=3,
                                                                         min_repeat_ms=50)
                      for name, m in schedules.items()}
            best = dict.fromkeys(timers, np.inf)
            for _ in range(rounds):
                for name, timer in timers.items():
                    best[name] = min(best[name], min(timer(*args).results))
            old = best["old", old_tile(kernel)]
            for (name, tile), seconds in best.items():
                print(f"| {kernel.name} | {batch} | {name} | {tile} | {kernel.flops * batch / seconds / 1e9:.1f} "
                      f"| {old / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
