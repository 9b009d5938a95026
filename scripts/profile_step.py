"""Where a TVM training step's time goes: its kernels, torch's ops (loss,
optimizer, gradient bookkeeping) and the rest (Python, autograd's engine),
and each kernel inside the step against the same kernel timed alone; with
--inference, the same for a forward pass of the inference build.

    python scripts/profile_step.py                       # paper net, batch 32
    python scripts/profile_step.py --inference --batch 1
    python scripts/profile_step.py --width 0.25 --batch 4 --steps 2 --out /tmp/profile.txt

One process: the step (forward, cross entropy, backward, torch's fused SGD,
as bench_engines.py times it) is timed --steps times without the profiler,
then profiled under torch.profiler (every TVM kernel call is a named
record_function, runtime.CompiledNetwork.kernel), then every kernel is timed
alone by TVM's time_evaluator on inputs of its shapes. A kernel slower in
the step than alone lost time to the step around it (torch's threads still
spinning, caches emptied by other work). --inference times each call of
the Relax VM's forward (its instrument hook) instead of torch.profiler: the
kernels there run on weights transformed ahead, as report times them.
"""

from __future__ import annotations

import statistics
import time

import click
import harness


def _within_kernel(event, kernels: set[str]) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in kernels:
            return True
        parent = parent.cpu_parent
    return False


def profile(variant: str, width: float, batch: int, steps: int, repeat: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from tvm_alexnet import AlexNet, report

    torch.manual_seed(0)
    model = AlexNet(variant, width=width).train().compile("llvm", batch=batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, fused=True)
    x = torch.randn(batch, *model.spec.input_shape)
    labels = torch.randint(0, model.spec.num_classes, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    wall = harness.time_calls(step, steps, warmup=2)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        profiled = (time.perf_counter() - start) / steps
    kernels = set(model.compiled.kernels)
    in_step, torch_ops = {}, {}
    for event in prof.events():
        if event.name in kernels:
            in_step[event.name] = in_step.get(event.name, 0.0) + event.cpu_time_total / 1e6 / steps
        elif not _within_kernel(event, kernels):
            torch_ops[event.name] = torch_ops.get(event.name, 0.0) + event.self_cpu_time_total / 1e6 / steps
    alone = {}
    for k in model.spec.compiled_kernels():
        if k.name in in_step:
            args = report.kernel_args(model, k, batch, torch.device("cpu"))
            alone[k.name] = statistics.median(model.compiled.time_kernel(k.name, args, number=1, repeat=repeat))
    return {"wall": wall, "profiled": profiled, "in_step": in_step, "torch_ops": torch_ops, "alone": alone}


def profile_forward(variant: str, width: float, batch: int, calls: int, repeat: int) -> dict:
    import torch

    from tvm_alexnet import AlexNet, report

    torch.manual_seed(0)
    model = AlexNet(variant, width=width).eval().compile("llvm", batches=(batch,))
    compiled = model.fixed_batches[batch]
    x = torch.randn(batch, *model.spec.input_shape)
    with torch.no_grad():
        wall = harness.time_calls(lambda: model(x), calls, warmup=2)
        in_forward, started = {}, {}

        def instrument(func, name, before, *_):
            now = time.perf_counter()
            if before:
                started[name] = now
            else:  # a kernel on transformed weights is named <kernel>_transformed
                kernel = name.removesuffix("_transformed")
                in_forward[kernel] = in_forward.get(kernel, 0.0) + (now - started[name]) / calls

        compiled.vm.set_instrument(instrument)
        start = time.perf_counter()
        for _ in range(calls):
            model(x)
        profiled = (time.perf_counter() - start) / calls
    device = torch.device("cpu")
    alone = {k.name: statistics.median(compiled.time_kernel(k.name, report.kernel_args(model, k, batch, device),
                                                            number=1, repeat=repeat, as_in_forward=True))
             for k in model.spec.compiled_kernels() if k.name in in_forward}
    vm_ops = sum(v for name, v in in_forward.items() if name not in alone)
    in_forward = {name: v for name, v in in_forward.items() if name in alone}
    return {"wall": wall, "profiled": profiled, "in_step": in_forward, "torch_ops": {"the VM's own calls": vm_ops},
            "alone": alone}


@click.command(help=__doc__.split("\n\n")[0])
@harness.variant_option()
@harness.width_option()
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Steps (or forward passes) timed and profiled.")
@click.option("--inference", is_flag=True, help="Profile a forward pass of the inference build instead.")
@harness.repeat_option(5)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the tables here too  [default: bench-logs/step-profile-<LLVM cpu>.txt, "
                   "forward-profile-<LLVM cpu>.txt with --inference]")
def main(variant, width, batch, steps, inference, repeat, out):
    info = harness.machine()
    out = out or harness.log_path(f"{'forward' if inference else 'step'}-profile-{info['llvm_cpu']}")
    p = (profile_forward if inference else profile)(variant, width, batch, steps, repeat)
    work, under, step, steps_word = (
        ("forward pass of the inference build", "the VM's instrument hook", "forward pass", "forward passes")
        if inference else ("training step (forward, cross entropy, backward, fused SGD)", "torch.profiler",
                           "step", "steps"))
    step_ms, profiled_ms = statistics.median(p["wall"]) * 1e3, p["profiled"] * 1e3
    kernels_ms, alone_ms = sum(p["in_step"].values()) * 1e3, sum(p["alone"].values()) * 1e3
    ops = sorted(p["torch_ops"].items(), key=lambda kv: -kv[1])
    ops_ms = sum(v for _, v in ops) * 1e3

    def part(name: str, ms: float) -> list[str]:
        return [name, f"{ms:.1f}", f"{100 * ms / profiled_ms:.1f}%"]

    parts = [part("TVM kernels (with their output allocation)", kernels_ms)]
    if inference:
        parts += [part(name, v * 1e3) for name, v in ops]
        parts += [part("the rest (Python, the VM between calls)", profiled_ms - kernels_ms - ops_ms)]
    else:
        parts += [part(f"torch: {name}", v * 1e3) for name, v in ops[:8]]
        parts += [part("torch: the other ops", ops_ms - sum(v for _, v in ops[:8]) * 1e3),
                  part("the rest (Python, autograd's engine, the profiler)", profiled_ms - kernels_ms - ops_ms)]
    slowest = sorted(p["alone"], key=lambda n: p["alone"][n] - p["in_step"][n])[:10]
    rows = [[n, f"{p['in_step'][n] * 1e3:.2f}", f"{p['alone'][n] * 1e3:.2f}", f"{p['in_step'][n] / p['alone'][n]:.2f}x"]
            for n in slowest]
    sections = [
        f"{variant} (width {width}), batch {batch}, float32, {work}: median of {steps} {steps_word} {step_ms:.1f} ms "
        f"({harness.Stats.of(p['wall']).ms()}) without the profiler, {profiled_ms:.1f} ms under {under}, "
        f"whose {step} the parts below divide.",
        harness.markdown_table(["part", f"ms per {step}", f"% of {step}"], parts),
        f"The {step}'s kernels in it: {kernels_ms:.1f} ms; each timed alone (median of {repeat}): {alone_ms:.1f} ms "
        f"(in the {step} / alone: {kernels_ms / alone_ms:.2f}x). The ten that lost most in the {step}:",
        harness.markdown_table(["kernel", f"in the {step}, ms", "alone, ms", "in / alone"], rows),
    ]
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
