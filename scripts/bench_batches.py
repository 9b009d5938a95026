"""Does a tuning log serve every batch size? Images/s at batch sizes the log
was not tuned for, against the nearest size it was tuned for.

    python scripts/bench_batches.py --tuning-log tuning_logs/llvm-znver3 --batch 1 --batch 2 ... --batch 128

One model compiled for any batch size with the log (AlexNet.compile(target,
tuning_log=LOG): the log's batch sizes run on their tuned builds, other
sizes in chunks of those, the rest on the any-batch build with the default
schedules) and one compiled without the log, each batch size timed right
beside the nearest tuned build, round by round in this one process. Prints
a Markdown table of images/s (the fastest round) and the any-batch model's
images/s as a fraction of the nearest tuned build's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from tvm_alexnet import AlexNet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--tuning-log", required=True)
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (the fastest reported)")
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
    nearest = {b: min(tuned, key=lambda t: (abs(t - b), -t)) for b in batches}
    inputs = {b: torch.randn(b, *with_log.spec.input_shape) for b in set(batches) | set(tuned)}
    # Per batch size, its nearest tuned build is timed right beside it: the
    # machine's load drifts by 10-20% over a minute, as much as is measured.
    engines = {"with log": lambda b: with_log(inputs[b]), "no log": lambda b: without_log(inputs[b]),
               "nearest tuned": lambda b: tuned[nearest[b]].forward(inputs[nearest[b]], params)}
    times = {(name, b): [] for b in batches for name in engines}
    with torch.no_grad():
        for (name, b) in times:  # warm-up
            engines[name](b)
        for r in range(args.rounds):
            for (name, b), seconds in times.items():
                start = time.perf_counter()
                engines[name](b)
                seconds.append(time.perf_counter() - start)
            print(f"round {r + 1}/{args.rounds} done", flush=True)

    def ips(name: str, b: int) -> float:
        images = nearest[b] if name == "nearest tuned" else b
        return images / min(times[name, b])  # load on a shared machine only ever slows a run down

    print(f"\n{args.variant}, {args.target}, tuning log {args.tuning_log} (tuned at batch "
          f"{', '.join(map(str, sorted(tuned)))}), fastest of {args.rounds} rounds\n")
    print("| batch | any batch, with log img/s | no log img/s | nearest tuned | its img/s | with log / nearest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b in batches:
        ratio = ips("with log", b) / ips("nearest tuned", b)
        print(f"| {b} | {ips('with log', b):.1f} | {ips('no log', b):.1f} | {nearest[b]} | "
              f"{ips('nearest tuned', b):.1f} | {ratio:.2f} |")

if __name__ == "__main__":
    main()
