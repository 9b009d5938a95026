"""Does a tuning log serve every batch size? Images/s at batch sizes the log
was not tuned for, against the nearest size it was tuned for.

    python scripts/bench_batches.py --tuning-log tuning_logs/llvm-znver3 --batch 1 --batch 2 ... --batch 128

One model compiled for any batch size with the log (AlexNet.compile(target,
tuning_log=LOG): the log's batch sizes run on their tuned builds, other
sizes in chunks of those, the rest on the any-batch build with the default
schedules), one compiled without the log, and the log's tuned builds
themselves, timed interleaved round by round in this one process. Prints a
Markdown table: images/s of each, and the any-batch model's images/s as a
fraction of the nearest tuned batch size's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from tvm_alexnet import AlexNet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--tuning-log", required=True)
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()
    batches = args.batch or [1, 2, 4, 8, 16, 24, 32, 40, 48, 64, 96, 128]
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)

    with_log = AlexNet(args.variant).eval().compile(args.target, tuning_log=args.tuning_log)
    without_log = AlexNet(args.variant).eval().compile(args.target)
    without_log.load_state_dict(with_log.state_dict())
    tuned = with_log.tuned_batches
    if not tuned:
        raise SystemExit(f"{args.tuning_log}: no kernel of {args.variant} is tuned at any batch size for {args.target}")
    params = list(with_log.parameters())
    engines = {"any batch, with log": with_log, "any batch, no log": without_log}
    engines |= {f"tuned b{b}": (lambda x, build=build: build.forward(x, params)) for b, build in tuned.items()}

    def runs(name: str, batch: int) -> bool:
        return not name.startswith("tuned") or name == f"tuned b{batch}"

    inputs = {b: torch.randn(b, *with_log.spec.input_shape) for b in set(batches) | set(tuned)}
    times = {(name, b): [] for b in inputs for name in engines if runs(name, b)}
    with torch.no_grad():
        for (name, b) in times:  # warm-up
            engines[name](inputs[b])
        for r in range(args.rounds):
            for (name, b), seconds in times.items():
                start = time.perf_counter()
                engines[name](inputs[b])
                seconds.append(time.perf_counter() - start)
            print(f"round {r + 1}/{args.rounds} done", flush=True)

    def ips(name: str, b: int) -> float:
        return b / statistics.median(times[name, b])

    print(f"\n{args.variant}, {args.target}, tuning log {args.tuning_log} (tuned at batch "
          f"{', '.join(map(str, sorted(tuned)))}), median of {args.rounds} rounds\n")
    print("| batch | any batch, with log img/s | no log img/s | nearest tuned | its img/s | with log / nearest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        nearest = min(tuned, key=lambda t: (abs(t - b), -t))
        ratio = ips("any batch, with log", b) / ips(f"tuned b{nearest}", nearest)
        print(f"| {b} | {ips('any batch, with log', b):.1f} | {ips('any batch, no log', b):.1f} | {nearest} | "
              f"{ips(f'tuned b{nearest}', nearest):.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
