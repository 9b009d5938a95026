"""Each convolution of the network (conv1-5, forward, ReLU fused) as TVM
builds it against torch's F.conv2d on the CPU (oneDNN), in GFLOP/s and in %
of this machine's SGEMM peak (torch's 2048x2048 matmul).

    python scripts/bench_convs.py                      # paper net, batch 1 and 32, 3 rounds
    python scripts/bench_convs.py --width 0.25 --batch 1 --rounds 1 --repeat 2 --out /tmp/smoke.txt

TVM's kernels, torch's convolutions and the SGEMM peak are measured each in
a new process of its own, in turn, for --rounds rounds. TVM builds for each
batch size as inference at that size runs (`compile("llvm", batch=N,
tuning_log=...)`: the log's schedule where it beats the default) and its
kernels, as `forward` runs them, are timed by TVM's time_evaluator; torch's by the same rule (each
of --repeat values the mean of calls lasting --min-repeat-ms), on random
inputs and the model's weights. Reported: the median over rounds of each
round's median, the rounds' range in brackets.
"""

from __future__ import annotations

import click
import harness


SGEMM = 2048
DISPATCH = ("aten::conv2d", "aten::convolution", "aten::_convolution")  # not the implementation


def _implementation(ops: list[str]) -> str:
    """What torch's profiler saw run a convolution, in brief."""
    if "aten::mkldnn_convolution" in ops:
        return "oneDNN"
    if any("slow_conv2d" in op or "thnn_conv2d" in op for op in ops):
        return "im2col+GEMM (not oneDNN)"
    return ", ".join(ops) or "?"


def _convs(net):
    return [k for k in net.kernels() if k.op == "conv2d"]


def tvm_convs(variant: str, width: float, batches: list[int], repeat: int, min_repeat_ms: float,
              tuning_log: str) -> dict:
    """Seconds per call of each convolution kernel of TVM's build for each batch size."""
    import torch

    from tvm_alexnet import AlexNet, report

    times, info = {}, {}
    for batch in batches:
        torch.manual_seed(0)
        log, _ = harness.resolve_tuning_log(tuning_log, variant, width, batch)
        model = AlexNet(variant, width=width).eval().compile("llvm", batch=batch, tuning_log=log)
        manifest = model.compiled.manifest  # forward runs a transformed kernel's default schedule
        info[f"b{batch}"] = {"tuning_log": log, "tuned": [k for k in manifest.tuned if k.endswith("_conv")
                                                          and k not in manifest.transformed_weights]}
        for k in _convs(model.spec):
            args = report.kernel_args(model, k, batch, torch.device("cpu"))
            times[f"{k.name}@{batch}"] = model.compiled.time_kernel(k.name, args, number=1, repeat=repeat,
                                                                    min_repeat_ms=min_repeat_ms, as_in_forward=True)
    return {"times": times, "info": info}


def torch_convs(variant: str, width: float, batches: list[int], repeat: int, min_repeat_ms: float) -> dict:
    """Seconds per call of F.conv2d (+ ReLU) for each convolution, and the aten
    implementation it ran (mkldnn_convolution is oneDNN)."""
    import torch
    from torch.profiler import profile

    from tvm_alexnet import AlexNet, report
    from tvm_alexnet.ops import op_of
    from tvm_alexnet.runtime import keep_freed_memory

    keep_freed_memory()  # as TVM's process does: outputs reuse memory, not fresh pages each call
    torch.manual_seed(0)
    model = AlexNet(variant, width=width).eval()
    times, info = {}, {}
    with torch.no_grad():
        for batch in batches:
            for k in _convs(model.spec):
                fn = op_of(k).torch(k, report.kernel_args(model, k, batch, torch.device("cpu")))
                times[f"{k.name}@{batch}"] = harness.time_calls(fn, repeat, warmup=2, min_repeat_ms=min_repeat_ms)
                with profile() as prof:
                    fn()
                info[f"{k.name}@{batch}"] = [e.key for e in prof.key_averages()
                                             if "conv" in e.key and e.key not in DISPATCH]
    info["mkldnn"] = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    return {"times": times, "info": info}


def sgemm(repeat: int) -> dict:
    """Seconds per torch matmul of two SGEMM x SGEMM float32 matrices."""
    import torch

    a, b = torch.randn(SGEMM, SGEMM), torch.randn(SGEMM, SGEMM)
    return {"times": {"sgemm": harness.time_calls(lambda: a @ b, repeat, warmup=2, min_repeat_ms=200)}}


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 32), show_default=True)
@harness.width_option()
@harness.variant_option()
@harness.rounds_option(3)
@harness.repeat_option(10)
@click.option("--min-repeat-ms", type=float, default=50, show_default=True,
              help="Each timed value is the mean of calls lasting this long.")
@harness.tuning_log_option("auto")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the table here too  [default: bench-logs/convs-<LLVM cpu>.txt]")
def main(batches, width, variant, rounds, repeat, min_repeat_ms, tuning_log, out):
    from tvm_alexnet import spec

    batches = sorted(set(batches))
    info = harness.machine()
    out = out or harness.log_path(f"convs-{info['llvm_cpu']}")
    common = {"variant": variant, "width": width, "batches": batches, "repeat": repeat,
              "min_repeat_ms": min_repeat_ms}
    results = harness.run_isolated([
        harness.Engine("TVM", tvm_convs, {**common, "tuning_log": tuning_log}),
        harness.Engine("torch", torch_convs, common),
        harness.Engine("SGEMM", sgemm, {"repeat": repeat}),
    ], rounds)
    peak = results["SGEMM"].stats("sgemm")
    peak_gflops = 2 * SGEMM**3 / peak.median / 1e9 if peak else None
    rows = []
    for batch in batches:
        for k in _convs(spec.network(variant, width=width)):
            key, gflop = f"{k.name}@{batch}", k.flops * batch / 1e9
            tvm, torch_stats = results["TVM"].stats(key), results["torch"].stats(key)
            row = [k.name, batch, f"{gflop:.3f}"]
            for s in (tvm, torch_stats):
                row += [s.ms(2), f"{gflop / s.median:.1f}",
                        f"{100 * gflop / s.median / peak_gflops:.0f}%" if peak_gflops else "-"] if s else ["-"] * 3
            row.append(_implementation(results["torch"].info.get(key, [])))
            row.append(f"{torch_stats.median / tvm.median:.2f}x" if tvm and torch_stats else "-")
            rows.append(row)
    tuned = [f"batch {b}: {', '.join(v['tuned']) or 'none'}" for b, v in
             ((b, results["TVM"].info.get(f"b{b}", {"tuned": []})) for b in batches)]
    logs = {results["TVM"].info.get(f"b{b}", {}).get("tuning_log") for b in batches} - {None}
    sections = [
        f"{variant} (width {width}) convolutions, float32; median of {harness.plural(rounds, 'round')} "
        f"(each the median of {harness.plural(repeat, 'value')}, a value the mean of calls lasting "
        f"{min_repeat_ms:g} ms), the rounds' range in brackets; TVM, "
        "torch and the SGEMM peak each in its own process, in turn. GFLOP: the direct convolution's, "
        "also for TVM's Winograd kernels (the 3x3 convolutions of a static build, timed as `forward` runs them: "
        "on weights transformed once per weight version), whose rate can so exceed the peak. "
        "% peak: of the SGEMM peak. "
        "torch: F.conv2d and ReLU, which runs oneDNN (mkldnn) where torch's heuristics pick it; "
        "both processes keep freed memory for reuse (runtime.keep_freed_memory), as a TVM build does. "
        "TVM vs torch: torch's time / TVM's (above 1x, TVM is faster).",
        (f"SGEMM peak (torch {SGEMM}x{SGEMM} float32 matmul): {peak_gflops:.1f} GFLOP/s "
         f"({2 * SGEMM**3 / peak.high / 1e9:.1f}-{2 * SGEMM**3 / peak.low / 1e9:.1f})") if peak else
        f"SGEMM peak: {results['SGEMM'].error}",
        harness.markdown_table(["kernel", "batch", "GFLOP", "TVM ms", "TVM GFLOP/s", "% peak", "torch ms",
                                "torch GFLOP/s", "% peak", "torch ran", "TVM vs torch"], rows),
        f"TVM: tuning log {', '.join(sorted(logs)) or 'none'}; tuned convolutions {'; '.join(tuned)}. "
        f"torch: oneDNN {'enabled' if results['torch'].info.get('mkldnn') else 'disabled or missing'}.",
    ]
    sections.append(harness.errors(results))
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
