"""Where MetaSchedule's time goes: building vs measuring, stock builder vs ours.

    python scripts/bench_tuning.py --kernel conv3_conv --batch 32 --trials 16
    python scripts/bench_tuning.py --kernel conv3_conv --batch 32 --trials 128 --builders pool

Tunes one kernel of the paper network from an empty log with MetaSchedule's
stock LocalBuilder and with tvm_alexnet's PoolBuilder, and prints for each:
wall time (the tuning proper, after TuneContext set-up), time inside the
builder, candidates that built, and the best GFLOP/s found.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from tvm.ir.utils import derived_object  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402
from tvm.s_tir.meta_schedule.builder import PyBuilder  # noqa: E402

from tvm_alexnet import build, spec, tuning  # noqa: E402


@derived_object
class TimedBuilder(PyBuilder):
    """Any builder, with the time spent in it and the failures counted."""

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


def run(kernel, batch, target, trials, builder, name):
    progress = [tuning.TaskProgress(kernel, kernel.flops * batch, trials)]
    timed = TimedBuilder(builder)
    context = ms.TuneContext(tuning.task_module(kernel, batch), target=target, space_generator="post-order-apply",
                             search_strategy="evolutionary", task_name=kernel.name,
                             num_threads=len(os.sched_getaffinity(0)))
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        ms.tune_tasks(
            tasks=[context],
            task_weights=[1.0], work_dir=work, max_trials_global=trials, num_trials_per_iter=min(64, trials),
            builder=timed,
            runner=ms.runner.LocalRunner(timeout_sec=10, evaluator_config=ms.runner.EvaluatorConfig(
                number=2, repeat=1, enable_cpu_cache_flush=False)),
            database=ms.database.MemoryDatabase(),
            measure_callbacks=ms.MeasureCallback.create("default")
            + [tuning.ProgressCallback(progress, lambda t, p: None)])
        wall = time.perf_counter() - start
    print(f"| {name} | {wall:.0f} | {timed.seconds:.0f} ({100 * timed.seconds / wall:.0f}%) | "
          f"{timed.built}/{timed.built + timed.failed} | {progress[0].gflops:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", default="conv3_conv")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--builders", default="stock,pool", help="which to run: stock, pool or both")
    args = parser.parse_args()
    net = spec.network("paper")
    kernel = next(k for k in net.kernels() if k.name == args.kernel)
    target = build.parse_target(args.target)
    tuning.import_intrinsics(target.kind.name)  # as `tvm-alexnet tune` does, before any TuneContext
    print(f"{args.kernel}, batch {args.batch}, {args.trials} trials, {args.target}")
    print("| builder | wall s | building s | built | best GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    if "stock" in args.builders:  # each timed-out candidate costs its 30 s: keep --trials small
        run(kernel, args.batch, target, args.trials, ms.builder.LocalBuilder(), "stock LocalBuilder")
    if "pool" in args.builders:
        pool = tuning.PoolBuilder(workers=len(os.sched_getaffinity(0)), target_kind=target.kind.name)
        run(kernel, args.batch, target, args.trials, pool, "PoolBuilder")
        pool.close()


if __name__ == "__main__":
    main()
