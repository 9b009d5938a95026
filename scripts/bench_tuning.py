"""Where MetaSchedule's time goes: building vs measuring, stock builder vs ours.

    python scripts/bench_tuning.py --kernel conv3_conv --batch 32 --trials 16
    python scripts/bench_tuning.py --kernel conv3_conv --batch 32 --trials 128 --builder pool
    python scripts/bench_tuning.py --kernel conv5_conv --batch 1 --trials 2 --width 0.25 --builder pool \\
        --out /tmp/smoke.txt                                               # a quick try

Tunes one kernel of the paper network from an empty log with MetaSchedule's
stock LocalBuilder and with tvm_alexnet's PoolBuilder, each in a new process
of its own (in turn, for --rounds rounds), and reports for each: wall time
(the tuning proper, after TuneContext set-up), time inside the builder,
candidates that built, and the best GFLOP/s found (medians over rounds).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import click
import harness

BUILDERS = {"stock": "stock LocalBuilder", "pool": "PoolBuilder (tvm-alexnet)"}


def _timed_builder(inner):
    """`inner` with the time spent in it and its failures counted."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import PyBuilder

    @derived_object
    class TimedBuilder(PyBuilder):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.seconds, self.built, self.failed = inner, 0.0, 0, 0

        def build(self, build_inputs):
            start = time.perf_counter()
            results = self.inner.build(build_inputs)
            self.seconds += time.perf_counter() - start
            self.built += sum(r.error_msg is None for r in results)
            self.failed += sum(r.error_msg is not None for r in results)
            return results

    return TimedBuilder(inner)


def tune_kernel(builder: str, kernel: str, batch: int, width: float, trials: int, target: str) -> dict:
    """One tuning of `kernel` from an empty log with `builder` ("stock" or "pool")."""
    from tvm.s_tir import meta_schedule as ms

    from tvm_alexnet import spec, tuning
    from tvm_alexnet.target import parse_target

    k = next(k for k in spec.network("paper", width=width).kernels() if k.name == kernel)
    tvm_target = parse_target(target)
    tuning.import_intrinsics(tvm_target.kind.name)  # as `tvm-alexnet tune` does, before any TuneContext
    cores = len(os.sched_getaffinity(0))
    inner = (ms.builder.LocalBuilder() if builder == "stock"  # each timed-out candidate costs its 30 s
             else tuning.PoolBuilder(workers=cores, target_kind=tvm_target.kind.name))
    timed = _timed_builder(inner)
    progress = [tuning.TaskProgress(k, k.flops * batch, trials)]
    context = ms.TuneContext(tuning.task_module(k, batch), target=tvm_target, space_generator="post-order-apply",
                             search_strategy="evolutionary", task_name=k.name, num_threads=cores)
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        ms.tune_tasks(
            tasks=[context], task_weights=[1.0], work_dir=work, max_trials_global=trials,
            num_trials_per_iter=min(64, trials), builder=timed,
            runner=ms.runner.LocalRunner(timeout_sec=10, evaluator_config=ms.runner.EvaluatorConfig(
                number=2, repeat=1, enable_cpu_cache_flush=False)),
            database=ms.database.MemoryDatabase(),
            measure_callbacks=ms.MeasureCallback.create("default")
            + [tuning.ProgressCallback(progress, lambda t, p: None)])
        wall = time.perf_counter() - start
    if builder == "pool":
        inner.close()
    return {"info": {"wall_s": wall, "building_s": timed.seconds, "built": timed.built,
                     "failed": timed.failed, "gflops": progress[0].gflops}}


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--kernel", default="conv3_conv", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@harness.width_option()
@click.option("--trials", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--target", default="llvm", show_default=True)
@click.option("--builder", "builders", type=click.Choice(list(BUILDERS)), multiple=True,
              default=tuple(BUILDERS), show_default=True, help="Which builders (repeatable).")
@harness.rounds_option(1)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the table here too  [default: bench-logs/tuning-builders-<LLVM cpu>.txt]")
def main(kernel, batch, width, trials, target, builders, rounds, out):
    from tvm_alexnet import spec

    names = [k.name for k in spec.network("paper", width=width).kernels()]
    if kernel not in names:
        raise click.BadParameter(f"no kernel {kernel!r}; kernels are {', '.join(names)}", param_hint="'--kernel'")
    info = harness.machine()
    out = out or harness.log_path(f"tuning-builders-{info['llvm_cpu']}")
    common = {"kernel": kernel, "batch": batch, "width": width, "trials": trials, "target": target}
    results = harness.run_isolated([harness.Engine(BUILDERS[b], tune_kernel, {**common, "builder": b})
                                    for b in builders], rounds)
    rows = []
    for name, result in results.items():
        if not result.rounds:
            rows.append([name, "failed", "-", "-", "-"])
            continue

        def median(key, result=result):
            return statistics.median(r["info"][key] for r in result.rounds)

        wall, building = median("wall_s"), median("building_s")
        built = median("built")
        rows.append([name, f"{wall:.0f}", f"{building:.0f} ({100 * building / wall:.0f}%)",
                     f"{built:g}/{built + median('failed'):g}", f"{median('gflops'):.1f}"])
    sections = [
        f"paper (width {width}) {kernel}, batch {batch}, {trials} trials from an empty log, {target}, in "
        f"MetaSchedule's own space; median of {harness.plural(rounds, 'round')}, each builder in its "
        "own process.",
        harness.markdown_table(["builder", "wall s", "building s", "built", "best GFLOP/s"], rows),
        harness.errors(results),
    ]
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
