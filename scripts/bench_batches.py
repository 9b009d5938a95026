"""Does a tuning log serve every batch size? Images/s at batch sizes the log
was not tuned for, against the nearest size it was tuned for.

    python scripts/bench_batches.py --tuning-log auto --batch 1 --batch 2 ... --batch 128
    python scripts/bench_batches.py --tuning-log tvm_alexnet/tuning_logs/llvm-znver3 --target llvm:znver3 \\
        --batch 2 --rounds 1 --repeat 1 --out /tmp/smoke.txt        # another CPU's log, for a quick try

Three engines, each in a new process of its own, in turn, for --rounds
rounds: the model compiled for any batch size with the log
(AlexNet.compile(target, tuning_log=LOG): the log's batch sizes run on
their tuned builds, other sizes in chunks of those, the rest on the
any-batch build with the default schedules), the model compiled without
the log, and the log's tuned builds alone at their own batch sizes (the
nearest to each --batch). Reported: images/s, the median over rounds of each
round's median, the rounds' range in brackets, and the any-batch model's
images/s with the log as a fraction of the nearest tuned build's.
"""

from __future__ import annotations

import click
import harness

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 24, 32, 40, 48, 64, 96, 128)


def _model(variant: str, width: float, target: str, tuning_log: str | None):
    import torch

    from tvm_alexnet import AlexNet

    torch.manual_seed(0)
    return AlexNet(variant, width=width).eval().compile(target, tuning_log=tuning_log)


def _input(model, batch: int):
    import torch

    return torch.randn(batch, *model.spec.input_shape, generator=torch.Generator().manual_seed(batch))


def any_batch(variant: str, width: float, target: str, tuning_log: str | None, batches: list[int],
              repeat: int, warmup: int) -> dict:
    """Seconds per inference call at each batch size, of the model compiled for any batch size."""
    import torch

    model = _model(variant, width, target, tuning_log)
    times = {}
    with torch.no_grad():
        for batch in batches:
            x = _input(model, batch)
            times[f"b{batch}"] = harness.time_calls(lambda x=x: model(x), repeat, warmup)
    return {"times": times, "info": {"fixed_batches": sorted(model.fixed_batches)}}


def tuned_builds(variant: str, width: float, target: str, tuning_log: str, sizes: list[int],
                 repeat: int, warmup: int) -> dict:
    """Seconds per inference call of each of the log's tuned builds at its own batch size."""
    import torch

    model = _model(variant, width, target, tuning_log)
    params = list(model.parameters())
    times = {}
    with torch.no_grad():
        for size in sizes:
            if size in model.fixed_batches:
                x = _input(model, size)
                times[f"b{size}"] = harness.time_calls(lambda b=model.fixed_batches[size], x=x: b.forward(x, params),
                                                       repeat, warmup)
    return {"times": times, "info": {"fixed_batches": sorted(model.fixed_batches)}}


@click.command(help=__doc__.split("\n\n")[0])
@harness.tuning_log_option("auto")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=DEFAULT_BATCHES,
              show_default=True, help="Batch sizes (repeatable).")
@harness.variant_option()
@harness.width_option()
@click.option("--target", default="llvm", show_default=True)
@harness.rounds_option(3)
@harness.repeat_option(5)
@harness.warmup_option(1)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the table here too  [default: bench-logs/batches-<LLVM cpu>.txt]")
def main(tuning_log, batches, variant, width, target, rounds, repeat, warmup, out):
    from tvm_alexnet import spec, tuning

    batches = sorted(set(batches))
    log, line = harness.resolve_tuning_log(tuning_log, variant, width, None, target)
    tuned = tuning.log_batches(log, spec.network(variant, width=width)) if log else []
    if not tuned:
        raise click.UsageError(f"{line}: no batch size of {variant} (width {width}) is tuned in it")
    nearest = {b: min(tuned, key=lambda t: (abs(t - b), -t)) for b in batches}
    info = harness.machine()
    out = out or harness.log_path(f"batches-{info['llvm_cpu']}")
    common = {"variant": variant, "width": width, "target": target, "repeat": repeat, "warmup": warmup}
    results = harness.run_isolated([
        harness.Engine("with log", any_batch, {**common, "tuning_log": log, "batches": batches}),
        harness.Engine("no log", any_batch, {**common, "tuning_log": None, "batches": batches}),
        harness.Engine("nearest tuned", tuned_builds, {**common, "tuning_log": log,
                                                        "sizes": sorted(set(nearest.values()))}),
    ], rounds)

    def ips(name: str, batch: int) -> str:
        s = results[name].stats(f"b{batch}")
        return s.rate(batch) if s else "-"

    rows = []
    for b in batches:
        with_log, near = results["with log"].stats(f"b{b}"), results["nearest tuned"].stats(f"b{nearest[b]}")
        ratio = f"{(b / with_log.median) / (nearest[b] / near.median):.2f}" if with_log and near else "-"
        rows.append([b, ips("with log", b), ips("no log", b), nearest[b], ips("nearest tuned", nearest[b]), ratio])
    built = results["with log"].info.get("fixed_batches") or results["nearest tuned"].info.get("fixed_batches", [])
    sections = [
        f"{variant} (width {width}), {target}, {line}; builds with tuned kernels at batch "
        f"{', '.join(map(str, built)) or 'none'}. Images/s: {harness.how_timed(rounds, repeat, warmup)}.",
        harness.markdown_table(["batch", "any batch, with log img/s", "no log img/s", "nearest tuned", "its img/s",
                                "with log / nearest"], rows),
        harness.errors(results),
    ]
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
