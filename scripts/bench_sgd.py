"""The optimizer in a TVM training step: torch's foreach SGD vs its fused SGD, side by side.

    python scripts/bench_sgd.py --batch 32 --rounds 8

One compiled model trains with two optimizers in turn, round by round (each
with its own momentum; the paper's momentum and weight decay), so both see
the same machine. Prints the median milliseconds of the whole step and of its
parts: forward, loss and backward, optimizer step.
"""

from __future__ import annotations

import os

os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tvm_alexnet import AlexNet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    model = AlexNet("paper").train().compile("llvm", batch=args.batch)
    optimizers = {name: torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4,
                                        **{kind: True})
                  for name, kind in (("foreach", "foreach"), ("fused", "fused"))}
    times = {name: {"forward": [], "loss+backward": [], "optimizer": [], "step": []} for name in optimizers}
    for round_ in range(args.rounds + 1):  # the first round warms up
        x = torch.randn(args.batch, *model.spec.input_shape)
        labels = torch.randint(0, model.spec.num_classes, (args.batch,))
        for name, optimizer in optimizers.items():
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            t1 = time.perf_counter()
            F.cross_entropy(out, labels).backward()
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            if round_:
                for part, seconds in zip(times[name], (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    times[name][part].append(seconds)
    print(f"paper, batch {args.batch}, TVM, {len(os.sched_getaffinity(0))} threads, torch {torch.__version__}, "
          f"median of {args.rounds} rounds (ms)\n")
    print("| SGD | forward | loss+backward | optimizer | step |")
    print("|---|---:|---:|---:|---:|")
    for name, parts in times.items():
        print(f"| {name} | " + " | ".join(f"{statistics.median(v) * 1e3:.1f}" for v in parts.values()) + " |")


if __name__ == "__main__":
    main()
