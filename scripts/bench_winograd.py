"""Winograd convolution (tvm_alexnet/ops/winograd.py) against oneDNN and
TVM's direct convolution on conv3-5 of the paper network (3x3, stride 1,
13x13 maps), forward with bias and ReLU, float32.

    python scripts/bench_winograd.py                          # batch 32 and 1, F(4,3) and F(5,3), 5 rounds
    python scripts/bench_winograd.py --batch 1 --m 2 --m 4 --rounds 1 --out /tmp/w.txt

Engines, each in a new process of its own, in turn, for --rounds rounds:
oneDNN (torch F.conv2d + ReLU, torch.set_num_threads(cores)), TVM direct
(the network's conv kernels with the direct default schedule at that static
batch, as a build would run them without Winograd) and TVM Winograd per m: the kernel taking transformed
weights U (in a product, cached per weight version), the kernel that
transforms the weights itself ("+U"), and the weight transform alone.
TVM kernels are timed by time_evaluator, torch calls by the same rule: each
of --repeat values the mean of calls lasting --min-repeat-ms. Reported: the
median over rounds of each round's median, the rounds' range in brackets;
GFLOP/s count the direct convolution's FLOPs (2 N Cout H W Cin/groups 9),
so that every engine's are comparable.
"""

from __future__ import annotations

import click
import harness

CONVS = ("conv3", "conv4", "conv5")


def _shapes(variant: str, width: float) -> dict:
    """conv name -> (in channels, out channels, size, groups, direct FLOPs per image) of the 3x3 stride-1 convs."""
    from tvm_alexnet import spec

    net = spec.network(variant, width=width)
    out = {}
    for k in net.kernels():
        if k.op == "conv2d" and k.layer in CONVS:
            out[k.layer] = (k.inputs[0][0], k.output[0], k.inputs[0][-1], k.attrs["groups"], k.flops)
    return out


def onednn(variant: str, width: float, batches: list[int], repeat: int, min_repeat_ms: float) -> dict:
    import torch
    import torch.nn.functional as F

    from tvm_alexnet.runtime import keep_freed_memory

    keep_freed_memory()  # as the TVM processes do: outputs reuse memory, not fresh pages each call
    times, info = {}, {}
    torch.manual_seed(0)
    with torch.no_grad():
        for name, (cin, cout, size, groups, _) in _shapes(variant, width).items():
            w, b = torch.randn(cout, cin // groups, 3, 3) / (9 * cin / groups) ** 0.5, torch.randn(cout)
            for batch in batches:
                x = torch.randn(batch, cin, size, size)
                fn = lambda: torch.relu_(F.conv2d(x, w, b, padding=1, groups=groups))  # noqa: E731
                times[f"{name}@{batch}"] = harness.time_calls(fn, repeat, warmup=2, min_repeat_ms=min_repeat_ms)
    info["mkldnn"] = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    info["threads"] = torch.get_num_threads()
    return {"times": times, "info": info}


def tvm_direct(variant: str, width: float, batches: list[int], repeat: int, min_repeat_ms: float) -> dict:
    """The network's conv kernels with the direct default schedule at each
    static batch (a build itself computes them by Winograd from batch 8)."""
    import torch
    import tvm
    from tvm import s_tir

    from tvm_alexnet import AlexNet, graph, report
    from tvm_alexnet.ops import cpu_conv
    from tvm_alexnet.runtime import kernel_ready, keep_freed_memory
    from tvm_alexnet.target import parse_target, vector_unit

    keep_freed_memory()  # as the compiled network does
    target = parse_target("llvm")
    unit = vector_unit(target)
    times = {}
    torch.manual_seed(0)
    model = AlexNet(variant, width=width).eval()
    for batch in batches:
        for k in model.spec.kernels():
            if k.op == "conv2d" and k.layer in CONVS:
                sch = s_tir.Schedule(graph.kernel_func(k, batch))
                cpu_conv.conv2d(sch, k, batch, unit)
                lib = tvm.compile(sch.mod, target=target).mod
                args = [kernel_ready(a) for a in report.kernel_args(model, k, batch, torch.device("cpu"))]
                out = kernel_ready(torch.empty(batch, *k.output))
                evaluator = lib.time_evaluator(k.name, tvm.cpu(0), number=1, repeat=repeat,
                                               min_repeat_ms=int(min_repeat_ms))
                times[f"{k.layer}@{batch}"] = list(evaluator(*args, out).results)
    return {"times": times}


def tvm_winograd(variant: str, width: float, batches: list[int], m: int, repeat: int, min_repeat_ms: float) -> dict:
    import torch
    import tvm

    from tvm_alexnet.ops import cpu_winograd, winograd
    from tvm_alexnet.runtime import kernel_ready, keep_freed_memory
    from tvm_alexnet.target import parse_target, vector_unit

    keep_freed_memory()  # as the compiled network does
    target = parse_target("llvm")
    unit = vector_unit(target)
    times, info = {}, {}
    torch.manual_seed(0)
    for name, (cin, cout, size, groups, _) in _shapes(variant, width).items():
        w = kernel_ready(torch.randn(cout, cin // groups, 3, 3) / (9 * cin / groups) ** 0.5)
        b = kernel_ready(torch.randn(cout))
        for batch in batches:
            plan = winograd.plan(batch, cin, cout, size, groups, m, unit)
            info[f"{name}@{batch}"] = (f"{plan.rows}x{plan.block} tile, "
                                       + (f"{plan.chunks} chunks of {plan.images} images" if plan.chunks > 1
                                          else "whole batch"))
            x = kernel_ready(torch.randn(batch, cin, size, size))
            out = kernel_ready(torch.empty(batch, cout, size, size))
            u = kernel_ready(torch.empty(plan.u_shape))
            transform = cpu_winograd.build_weight_transform(plan, target, unit)
            conv = cpu_winograd.build(plan, target, unit)
            fused = cpu_winograd.build(plan, target, unit, transform_weights=True)

            def timer(mod):
                return mod.time_evaluator("main", tvm.cpu(0), number=1, repeat=repeat, min_repeat_ms=int(min_repeat_ms))

            transform(w, u)
            times[f"{name}@{batch}"] = list(timer(conv)(x, u, b, out).results)
            times[f"{name}+U@{batch}"] = list(timer(fused)(x, w, b, out).results)
            times[f"{name}:U@{batch}"] = list(timer(transform)(w, u).results)
    return {"times": times, "info": info}


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(32, 1), show_default=True)
@click.option("--m", "ms", type=click.IntRange(2, 6), multiple=True, default=(4, 5), show_default=True,
              help="Output tile size of F(m x m, 3 x 3); repeat for several.")
@harness.width_option()
@harness.variant_option()
@harness.rounds_option(5)
@harness.repeat_option(10)
@click.option("--min-repeat-ms", type=float, default=50, show_default=True,
              help="Each timed value is the mean of calls lasting this long.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the table here too  [default: bench-logs/winograd-<LLVM cpu>.txt]")
def main(batches, ms, width, variant, rounds, repeat, min_repeat_ms, out):
    batches = sorted(set(batches), reverse=True)
    ms = sorted(set(ms))
    info = harness.machine()
    out = out or harness.log_path(f"winograd-{info['llvm_cpu']}")
    common = {"variant": variant, "width": width, "batches": batches, "repeat": repeat,
              "min_repeat_ms": min_repeat_ms}
    engines = [harness.Engine("oneDNN", onednn, common), harness.Engine("TVM direct", tvm_direct, common)]
    engines += [harness.Engine(f"Winograd F({m},3)", tvm_winograd, {**common, "m": m}) for m in ms]
    results = harness.run_isolated(engines, rounds)
    shapes = _shapes(variant, width)
    rows = []
    for batch in batches:
        for name in CONVS:
            key, gflop = f"{name}@{batch}", shapes[name][4] * batch / 1e9
            base = results["oneDNN"].stats(key)
            lines = [("oneDNN", results["oneDNN"], key), ("TVM direct", results["TVM direct"], key)]
            for m in ms:
                r = results[f"Winograd F({m},3)"]
                lines += [(f"Winograd F({m},3)", r, key), (f"Winograd F({m},3) +U", r, f"{name}+U@{batch}"),
                          (f"F({m},3) weight transform alone", r, f"{name}:U@{batch}")]
            for engine, result, k in lines:
                s = result.stats(k)
                if s is None:
                    rows.append([name, batch, engine, "-", "-", "-"])
                    continue
                alone = k.split("@")[0].endswith(":U")
                rows.append([name, batch, engine, s.ms(2), "" if alone else f"{gflop / s.median:.0f}",
                             "" if alone or base is None else f"{base.median / s.median:.2f}x"])
    tiles = "; ".join(f"F({m},3) {k}: {v}" for m in ms
                      for k, v in results[f"Winograd F({m},3)"].info.items())
    sections = [
        f"{variant} (width {width}) conv3-5 (3x3, stride 1, 13x13, bias + ReLU), float32; median of "
        f"{harness.plural(rounds, 'round')} (each the median of {harness.plural(repeat, 'value')}, a value the "
        f"mean of calls lasting {min_repeat_ms:g} ms), the rounds' range in brackets; every engine in its own "
        "process, in turn. GFLOP/s: the direct convolution's FLOPs over the time. vs oneDNN: oneDNN's time / "
        "the engine's (above 1x, faster than oneDNN). +U: the kernel transforms the weights too (otherwise they "
        "come transformed, as a product would cache them per weight version).",
        harness.markdown_table(["kernel", "batch", "engine", "ms", "GFLOP/s", "vs oneDNN"], rows, left=3),
        f"oneDNN: {'enabled' if results['oneDNN'].info.get('mkldnn') else 'disabled or missing'}, "
        f"{results['oneDNN'].info.get('threads')} threads. TVM direct: default schedules (no tuning log). "
        f"Winograd register tiles and chunks: {tiles}.",
    ]
    sections.append(harness.errors(results))
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
