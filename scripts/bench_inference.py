"""Inference throughput: TVM vs torch eager vs torch.compile, side by side.

    python scripts/bench_inference.py --variant paper --batch 1 --batch 32

Every engine runs the same weights on the same input in this one process,
interleaved round by round, so that machine noise hits all of them alike.
Prints a Markdown table (images/s, median over rounds, and the ratio to eager).
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import tvm  # noqa: E402

from tvm_alexnet import AlexNet  # noqa: E402


def seconds_per_call(fn, x, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable; default 1 and 32)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per engine and batch")
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--tuning-log", help="compile TVM with this log, for each batch size (else untuned, any batch)")
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    batches = args.batch or [1, 32]
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)

    eager = AlexNet(args.variant).eval()
    compiled_tvm = AlexNet(args.variant).eval()
    compiled_tvm.load_state_dict(eager.state_dict())
    engines = {"torch eager": eager.reference_forward, "TVM": compiled_tvm}
    if not args.no_torch_compile:
        engines["torch.compile"] = torch.compile(eager.reference_forward)

    rows, tvm_build = [], 0.0
    with torch.no_grad():
        for batch in batches:
            start = time.perf_counter()
            if args.tuning_log:
                compiled_tvm.compile(args.target, batch=batch, tuning_log=args.tuning_log)
                print(f"batch {batch}: tuned kernels {', '.join(compiled_tvm.compiled.manifest.tuned) or 'none'}")
            elif compiled_tvm.compiled is None:
                compiled_tvm.compile(args.target)
            tvm_build += time.perf_counter() - start
            x = torch.randn(batch, *eager.spec.input_shape)
            warm = {}
            for name, fn in engines.items():  # warm-up (and torch.compile's compile)
                start = time.perf_counter()
                fn(x)
                warm[name] = time.perf_counter() - start
            times = {name: [] for name in engines}
            for _ in range(args.rounds):
                for name, fn in engines.items():
                    times[name] += seconds_per_call(fn, x, 1)
            eager_ips = batch / statistics.median(times["torch eager"])
            for name in engines:
                ips = batch / statistics.median(times[name])
                rows.append(dict(engine=name, batch=batch, images_per_s=round(ips, 2),
                                 ms_per_batch=round(statistics.median(times[name]) * 1e3, 1),
                                 vs_eager=round(ips / eager_ips, 3), first_call_s=round(warm[name], 2)))
                print(f"batch {batch:>3}  {name:<14} {ips:8.2f} img/s  ({ips / eager_ips:.2f}x eager)", flush=True)

    print()
    print(f"{args.variant}, float32, {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} threads, torch {torch.__version__}, TVM {tvm.__version__} "
          f"(TVM build {tvm_build:.1f} s, target {args.target}, tuning log {args.tuning_log or 'none'})")
    print()
    print("| batch | engine | images/s | ms/batch | vs eager |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['engine']} | {r['images_per_s']} | {r['ms_per_batch']} | {r['vs_eager']}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(variant=args.variant, target=args.target, torch=torch.__version__,
                           tvm=tvm.__version__, rows=rows), f, indent=2)


if __name__ == "__main__":
    main()
