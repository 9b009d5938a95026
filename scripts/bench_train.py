"""One training step (forward, loss, backward, SGD): TVM vs torch eager, side by side.

    python scripts/bench_train.py --batch 32 --rounds 3
    python scripts/bench_train.py --batch 32 --tuning-log tuning_logs/llvm-znver3   # + TVM with the log

Both models start from the same weights and take the same batches in this
one process, interleaved round by round (train mode, dropout on, torch's
fused SGD as `train` uses, with the paper's momentum and weight decay).
With --tuning-log a third model runs TVM with the log's records for the
batch size (forward and backward kernels; the rest on default schedules).
Prints the median seconds per step of each and, for TVM, each layer's forward
and backward kernel time (kernels timed alone on random inputs of the step's
shapes).
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


class Eager(torch.nn.Module):
    def __init__(self, model: AlexNet):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.reference_forward(x)


def step(model, optimizer, x, labels) -> None:
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), labels).backward()
    optimizer.step()


def kernel_seconds(model: AlexNet, batch: int) -> dict[str, list[float]]:
    """Per layer: [forward seconds, backward seconds], kernels timed alone."""
    per_layer = {layer.name: [0.0, 0.0] for layer in model.spec.layers}
    compiled = model.compiled
    backward = {k.name for k in model.spec.backward_kernels()}
    for k in model.spec.compiled_kernels():
        if k.op == "softmax":
            continue
        inputs = [torch.randn(batch, *s) for s in k.inputs]
        layer = getattr(model, k.layer)
        params = [layer.weight.detach(), layer.bias.detach()][:len(k.params)]
        seconds = statistics.median(compiled.time_kernel(k.name, inputs + params, number=1, repeat=3))
        per_layer[k.layer][k.name in backward or k.op == "dropout"] += seconds
        if k.op == "dropout":  # the same kernel runs in both directions
            per_layer[k.layer][0] += seconds
    return per_layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="paper")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tuning-log", default=None, help="also time TVM with this log's records")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    tvm_model = AlexNet(args.variant).train()
    eager_model = AlexNet(args.variant).train()
    eager_model.load_state_dict(tvm_model.state_dict())
    start = time.perf_counter()
    tvm_model.compile("llvm", batch=args.batch)
    engines = {"torch eager": Eager(eager_model), "TVM": tvm_model}
    if args.tuning_log:
        tuned_model = AlexNet(args.variant).train()
        tuned_model.load_state_dict(tvm_model.state_dict())
        tuned = tuned_model.compile("llvm", batch=args.batch, tuning_log=args.tuning_log).compiled.manifest.tuned
        engines["TVM, tuned"] = tuned_model
    print(f"{args.variant}, batch {args.batch}, float32, {len(os.sched_getaffinity(0))} threads, "
          f"torch {torch.__version__} (TVM builds {time.perf_counter() - start:.1f} s)"
          + (f"; {args.tuning_log}: {len(tuned)} kernels tuned: {', '.join(tuned)}" if args.tuning_log else "")
          + "\n")
    optimizers = {name: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
                  for name, m in engines.items()}  # as tvm_alexnet.train's
    times = {name: [] for name in engines}
    for round_ in range(args.rounds + 1):  # the first round warms up
        x = torch.randn(args.batch, *tvm_model.spec.input_shape)
        labels = torch.randint(0, tvm_model.spec.num_classes, (args.batch,))
        for name, model in engines.items():
            begin = time.perf_counter()
            step(model, optimizers[name], x, labels)
            if round_:
                times[name].append(time.perf_counter() - begin)
    eager = statistics.median(times["torch eager"])
    print("| engine | s/step | images/s | vs eager |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        t = statistics.median(t)
        print(f"| {name} | {t:.3f} | {args.batch / t:.1f} | {eager / t:.2f}x |")

    compiled = [name for name in engines if name != "torch eager"]
    print("\n| layer | " + " | ".join(f"{name} forward ms | {name} backward ms" for name in compiled) + " |")
    print("|---|" + "---:|---:|" * len(compiled))
    per_layer = [kernel_seconds(engines[name], args.batch) for name in compiled]
    for layer in per_layer[0]:
        print(f"| {layer} | " + " | ".join(f"{t[layer][0] * 1e3:.1f} | {t[layer][1] * 1e3:.1f}" for t in per_layer)
              + " |")
    totals = [f"{sum(v[i] for v in t.values()) * 1e3:.1f}" for t in per_layer for i in (0, 1)]
    print("| all | " + " | ".join(totals) + " |")


if __name__ == "__main__":
    main()
