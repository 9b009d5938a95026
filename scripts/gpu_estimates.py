"""Roofline estimates of every kernel of a training step on a GPU, and the
static checks of the default CUDA schedules (tvm_alexnet.gpu_checks).

ESTIMATES, NOT MEASUREMENTS: a kernel's bound is the larger of its FLOPs at
the GPU's datasheet fp32 peak and its compulsory bytes (each input,
parameter and output touched once) at its datasheet memory bandwidth. Real
kernels reach a fraction of either peak; the bound says how far from the
hardware's limit a measured time is, and where (compute or memory).

    python scripts/gpu_estimates.py                        # both variants, batch 128, H200
    python scripts/gpu_estimates.py --variant torchvision --gpu TitanX
    python scripts/gpu_estimates.py --check cuda:sm_90     # + threads, registers, spills, smem per kernel (nvcc)

For scale, convnet-benchmarks (github.com/soumith/convnet-benchmarks)
published AlexNet (its "One weird trick" network, the torchvision variant
here without the adaptive pool: 64-192-384-256-256, no LRN, no groups),
batch 128, forward + backward on a GTX Titan X (Maxwell): cuDNN R4 fp32
81 ms, cuda-convnet2 177 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tvm_alexnet import gpu_checks
from tvm_alexnet.spec import VARIANTS, network
from tvm_alexnet.target import parse_target

CONVNET_BENCHMARKS = [("cuDNN R4, fp32", 81.0), ("cuda-convnet2", 177.0)]  # ms, Titan X, batch 128, fwd+bwd


def estimate_table(variant: str, width: float, batch: int, gpu: str) -> str:
    net = network(variant, width=width)
    rows = gpu_checks.estimates(net, batch, gpu)
    lines = [f"### {variant} (width {width}), batch {batch}, {gpu_checks.GPUS[gpu]['name']}", "",
             "Roofline lower bounds (estimates, not measurements).", "",
             "| kernel | pass | GFLOP | MB | bound | estimated us |", "|---|---|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['pass']} | {r['flops'] / 1e9:.2f} | {r['bytes'] / 1e6:.1f} | "
                     f"{r['bound']} | {r['seconds'] * 1e6:.1f} |")
    total = {p: sum(r["seconds"] for r in rows if r["pass"] == p) for p in ("forward", "backward")}
    flops = sum(r["flops"] for r in rows)
    lines += ["", (f"Estimated lower bound: forward {total['forward'] * 1e3:.2f} ms + backward "
                   f"{total['backward'] * 1e3:.2f} ms = **{sum(total.values()) * 1e3:.2f} ms** per training step "
                   f"({flops / 1e9:.0f} GFLOP)."), ""]
    if gpu != "TitanX":
        titan = sum(r["seconds"] for r in gpu_checks.estimates(net, batch, "TitanX"))
        lines.append(f"The same bound on a GTX Titan X (Maxwell): {titan * 1e3:.1f} ms"
                     + (" (a measurement under it did fewer FLOPs than the direct convolution counted here, "
                        "as FFT convolutions, which cuDNN R4 offers, do, or ran above the datasheet clock)."
                        if titan * 1e3 > min(ms for _, ms in CONVNET_BENCHMARKS) else "."))
    lines.append("convnet-benchmarks, AlexNet (the torchvision variant's layers), Titan X, batch 128, "
                 "forward + backward, measured: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in CONVNET_BENCHMARKS)
                 + ".")
    return "\n".join(lines) + "\n"


def check_table(variant: str, width: float, batch: int | None, target_text: str) -> str:
    target = parse_target(target_text)
    net = network(variant, width=width)
    lines = [(f"### Static checks: {variant} (width {width}), batch {batch if batch is not None else 'n'}, "
              f"{target_text}"), "",
             ("| kernel | scheduler | verify_gpu_code | function | threads/block | registers | spill st/ld (B) "
              "| stack (B) | smem (B) |"), "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for kernel in net.compiled_kernels():
        result = gpu_checks.static_check(kernel, batch, target)
        for name, f in sorted(result["functions"].items()):
            lines.append(f"| {kernel.name} | {result['scheduler']} | {'ok' if result['verified'] else 'FAILS'} | "
                         f"{name} | {f.get('threads')} | {f.get('registers')} | {f.get('spill_stores')}/"
                         f"{f.get('spill_loads')} | {f.get('stack')} | {f.get('smem')} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--variant", "variants", type=click.Choice(VARIANTS), multiple=True,
              help="Network variant (repeatable; default: paper and torchvision).")
@click.option("--width", type=float, default=1.0, show_default=True)
@click.option("--batch", type=int, default=128, show_default=True)
@click.option("--gpu", type=click.Choice(sorted(gpu_checks.GPUS)), default="H200", show_default=True,
              help="Whose datasheet peaks bound the estimates.")
@click.option("--check", "check_target", default=None,
              help="Also compile every kernel for this CUDA target (e.g. cuda:sm_90) with nvcc and print "
                   "threads, registers, spills and shared memory (needs nvcc; ~1-2 s a kernel).")
@click.option("--check-batch", default=None, help="Batch of the static checks (default: --batch; 'n': symbolic).")
def main(variants, width, batch, gpu, check_target, check_batch):
    """Print roofline estimates (Markdown) of every kernel at a batch size."""
    for variant in variants or ("paper", "torchvision"):
        click.echo(estimate_table(variant, width, batch, gpu))
        if check_target:
            cb = batch if check_batch is None else None if check_batch == "n" else int(check_batch)
            click.echo(check_table(variant, width, cb, check_target))


if __name__ == "__main__":
    main()
