"""Transfer-tuning: the speed a re-targeted log reaches against a full tuning, and the time each takes.

    python scripts/bench_transfer.py --source llvm:skylake --target llvm --batch 1 --trials 250 \
        --kernel conv1_conv --kernel conv2_conv --kernel conv3_conv --kernel conv4_conv --kernel conv5_conv

Three logs of the paper network, in --work (start from an empty one for timings):
  source/    a full tuning for --source (`tune --target SOURCE`)
  full/      a full tuning for --target with the same budget
  transfer/  the source log re-targeted to --target (`tune --from source/ --trials 0 --top-k K`)
Prints per kernel the best time of the default schedule, the full tuning and
the transfer, and in all: the transfer's speed as a fraction of the full
tuning's, its share of the full tuning's speed-up over the default
schedules (the measure of Gibson & Cano's Transfer-Tuning, PACT 2022) and
its tuning time as a fraction of the full tuning's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from tvm_alexnet import build, spec, tuning  # noqa: E402


def default_seconds(log_dir: Path, kernel, batch: int, target) -> float | None:
    return tuning.default_seconds(tuning.default_times(log_dir), kernel, batch, target)


def best_seconds(log_dir: Path, kernel, batch: int, target) -> float:
    """What a build with the log gets: its best record, or the default schedule where that is faster."""
    record = tuning.best_record(tuning.read_log(log_dir), tuning.task_module(kernel, batch), target)
    default = default_seconds(log_dir, kernel, batch, target)
    return min(tuning.mean_seconds(record) if record else math.inf, default or math.inf)


def ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.3f}" if seconds is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="llvm:skylake")
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--trials", type=int, default=250, help="budget of each full tuning")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--trials-per-round", type=int, default=32)
    parser.add_argument("--kernel", dest="kernels", action="append", default=None)
    parser.add_argument("--work", type=Path, default=Path("transfer-work"))
    args = parser.parse_args()
    net = spec.network("paper")
    kernels = [k for k in net.kernels() if tuning.tunable(k) and (not args.kernels or k.name in args.kernels)]
    source, target = build.parse_target(args.source), build.parse_target(args.target)
    names = [k.name for k in kernels]
    wall = {}
    for name, tvm_target, extra in (("source", source, {}), ("full", target, {}),
                                    ("transfer", target, {"source": args.work / "source", "top_k": args.top_k})):
        log_dir = args.work / name
        if name == "transfer":  # re-targeting is quick: always redo it, for its time
            shutil.rmtree(log_dir, ignore_errors=True)
        start = time.perf_counter()
        tuning.tune(net, args.batch, tvm_target, log_dir, 0 if name == "transfer" else args.trials,
                    kernels=names, trials_per_round=args.trials_per_round, **extra,
                    report=lambda task, progress: print(f"  {name}: {task.kernel.name} {task.done} trials, "
                                                        f"{task.gflops:.1f} GFLOP/s", flush=True))
        wall[name] = time.perf_counter() - start
        print(f"{name}: {wall[name] / 60:.1f} min", flush=True)

    print(f"\npaper, batch {args.batch}, {args.source} -> {args.target}, {args.trials} trials per full tuning, "
          f"top {args.top_k} re-targeted\n")
    print("| kernel | default ms | full tuning ms | transfer ms | transfer / full speed |")
    print("|---|---:|---:|---:|---:|")
    rows = [(k.name, default_seconds(args.work / "full", k, args.batch, target),
             best_seconds(args.work / "full", k, args.batch, target),
             best_seconds(args.work / "transfer", k, args.batch, target)) for k in kernels]
    # GPU targets note no default times (their default, dlight, is not measured): "-" and no speed-up share
    defaults = [d for _, d, _, _ in rows]
    default = sum(defaults) if None not in defaults else None
    full, transfer = sum(r[2] for r in rows), sum(r[3] for r in rows)
    for name, d, f, t in [*rows, ("all", default, full, transfer)]:
        print(f"| {name} | {ms(d)} | {ms(f)} | {ms(t)} | {f / t:.2f} |")
    if default is None:
        share = "no default times to compare with"
    elif default > full:
        share = (f"{100 * (default / transfer - 1) / (default / full - 1):.0f}% of its speed-up "
                 "over the default schedules")
    else:
        share = "the full tuning found nothing faster than the default schedules"
    print(f"\ntransfer reaches {100 * full / transfer:.0f}% of the full tuning's speed ({share}) in "
          f"{100 * wall['transfer'] / wall['full']:.0f}% of its time "
          f"({wall['transfer'] / 60:.1f} vs {wall['full'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
