"""LRN's gradient (training's kernel): the default schedule before
2026-11-26 ("old": one parallel pass over the batch per stage) against the
default now (`cpu_schedules.lrn_grad`: an image at a time), side by side in
one process, for a symbolic batch as training builds it.

    python scripts/bench_lrn_grad.py --batch 1 --batch 32 --batch 128

Each kernel is timed with TVM's time_evaluator (calls lasting >= 50 ms per
repeat), the two in turns for `--rounds` rounds; the fastest round is
reported, with the old schedule's time over the new one's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import click  # noqa: E402
import numpy as np  # noqa: E402
import tvm  # noqa: E402
from tvm import s_tir  # noqa: E402

from tvm_alexnet import build, cpu_schedules, graph, spec  # noqa: E402


def old_lrn_grad(sch: s_tir.Schedule, kernel: spec.Kernel, batch: int | None) -> None:
    blocks = cpu_schedules._blocks(sch)
    sch.compute_inline(blocks["lrn_square"])
    sch.compute_inline(blocks["lrn_scale"])
    for name in ("lrn_sum", "lrn_back"):
        cpu_schedules._rows(sch, blocks[name], reduction=True)
    for name in ("lrn_power", "lrn_t", "lrn_grad"):
        cpu_schedules._rows(sch, blocks[name])


def compiled(kernel: spec.Kernel, rule) -> tvm.runtime.Module:
    func = graph.kernel_func(kernel, None).with_attr("global_symbol", "main")
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    rule(sch, kernel, None)
    return tvm.compile(sch.mod, target=build.parse_target("llvm")).mod


@click.command()
@click.option("--batch", "batches", type=int, multiple=True, default=(32,), show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True)
def main(batches, rounds):
    device = tvm.cpu()
    rng = np.random.default_rng(0)
    kernels = [k for k in spec.network("paper").backward_kernels() if k.op == "lrn_grad"]
    modules = {k.name: {"old": compiled(k, old_lrn_grad), "new": compiled(k, cpu_schedules.lrn_grad)}
               for k in kernels}
    print("| kernel | batch | old ms | new ms | old / new |")
    print("|---|---:|---:|---:|---:|")
    for batch in batches:
        for kernel in kernels:
            args = [tvm.runtime.tensor(rng.standard_normal((batch, *s)).astype("float32"), device)
                    for s in kernel.inputs]
            outs = {name: tvm.runtime.tensor(np.zeros((batch, *kernel.output), "float32"), device)
                    for name in ("old", "new")}
            for name, module in modules[kernel.name].items():
                module["main"](*args, outs[name])
            np.testing.assert_allclose(outs["new"].numpy(), outs["old"].numpy(), rtol=1e-5, atol=1e-6)
            timers = {name: module.time_evaluator("main", device, number=1, repeat=3, min_repeat_ms=50)
                      for name, module in modules[kernel.name].items()}
            best = {name: float("inf") for name in timers}
            for _ in range(rounds):
                for name, timer in timers.items():
                    best[name] = min(best[name], min(timer(*args, outs[name]).results))
            print(f"| {kernel.name} | {batch} | {best['old'] * 1e3:.2f} | {best['new'] * 1e3:.2f} "
                  f"| {best['old'] / best['new']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
