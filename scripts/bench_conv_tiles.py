"""What the convolution tiles buy: each paper convolution at a batch size
scheduled three ways, timed side by side in one process: the default tile
before 2026-11-26 (one AVX2 vector of output channels x up to 14 pixels),
today's default (two vectors x 5 pixels, `cpu_schedules.conv2d_tile`), and
the best record of a tuning log (the tile search of `tune`), marked where a
build does not use it as the log holds it slower than the default.

    python scripts/bench_conv_tiles.py [--tuning-log tuning_logs/llvm-znver3] [--batch 1 --batch 32]

Each kernel is timed with TVM's time_evaluator (calls lasting >= 50 ms per
repeat), the three schedules in turns for `--rounds` rounds; the fastest
round is reported, in GFLOP/s, with ratios to the old tile.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import click  # noqa: E402
import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tvm import s_tir  # noqa: E402

from tvm_alexnet import build, cpu_schedules, spec, tuning  # noqa: E402


def old_tile(kernel: spec.Kernel) -> tuple[int, int]:
    channels, _, width = kernel.output
    per_group = channels // kernel.attrs["groups"]
    return (next(b for b in (8, 4, 2, 1) if per_group % b == 0),
            next((r for r in range(14, 3, -1) if width % r == 0), 1))


def scheduled(kernel: spec.Kernel, batch: int, tile) -> tvm.IRModule:
    sch = s_tir.Schedule(tuning.task_module(kernel, batch))
    cpu_schedules.conv2d(sch, kernel, batch, tile)
    return sch.mod


@click.command()
@click.option("--tuning-log", default="tuning_logs/llvm-znver3", show_default=True)
@click.option("--batch", "batches", type=int, multiple=True, default=(1, 32), show_default=True)
@click.option("--rounds", type=int, default=5, show_default=True)
def main(tuning_log, batches, rounds):
    target = build.parse_target("llvm")
    database = tuning.read_log(tuning_log)
    defaults = tuning.default_times(tuning_log)
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    print("| kernel | batch | old tile | GFLOP/s | default tile | GFLOP/s | tuned record | GFLOP/s "
          "| default / old | tuned / old |")
    print("|---|---:|---|---:|---|---:|---|---:|---:|---:|")
    for batch in batches:
        for kernel in spec.network("paper").kernels():
            if kernel.op != "conv2d":
                continue
            mod = tuning.task_module(kernel, batch)
            record = tuning.best_record(database, mod, target)
            tuned = tuning.tuned_kernel(database, kernel, batch, target)  # the best record, whatever the default's time
            used = tuning.tuned_kernel(database, kernel, batch, target, defaults) is not None
            schedules = {"old": scheduled(kernel, batch, old_tile(kernel)),
                         "default": scheduled(kernel, batch, None)}
            if tuned is not None:
                schedules["tuned"] = tvm.IRModule({"main": tuned})
            shapes = [(batch, *kernel.inputs[0]), *kernel.params, (batch, *kernel.output)]
            args = [tvm.runtime.tensor(rng.standard_normal(shape).astype("float32"), device) for shape in shapes]
            timers = {name: tvm.compile(m, target).jit().time_evaluator("main", device, number=1, repeat=3,
                                                                         min_repeat_ms=50)
                      for name, m in schedules.items()}
            best = dict.fromkeys(timers, np.inf)
            for _ in range(rounds):
                for name, timer in timers.items():
                    best[name] = min(best[name], min(timer(*args).results))
            gflops = {name: kernel.flops * batch / s / 1e9 for name, s in best.items()}
            gflops.setdefault("tuned", float("nan"))
            # A record from the default's space repacks the weights; MetaSchedule's own never does.
            space = "-" if record is None else "MetaSchedule"
            if record is not None and "transform_layout" in str(record.trace):
                space = "tile search"
            if record is not None and not used:
                space += " (unused: slower than the default)"
            print(f"| {kernel.name} | {batch} | {old_tile(kernel)} | {gflops['old']:.1f} "
                  f"| {cpu_schedules.conv2d_tile(kernel)} | {gflops['default']:.1f} | {space} | {gflops['tuned']:.1f} "
                  f"| {gflops['default'] / gflops['old']:.2f} | {gflops['tuned'] / gflops['old']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
