"""Transfer-tuning: the speed a re-targeted log reaches against a full tuning, and the time each takes.

    python scripts/bench_transfer.py --source llvm:skylake --target llvm --batch 1 --trials 250 \\
        --kernel conv1_conv --kernel conv2_conv --kernel conv3_conv --kernel conv4_conv --kernel conv5_conv
    python scripts/bench_transfer.py --width 0.25 --trials 2 --trials-per-round 2 --kernel conv5_conv \\
        --work /tmp/transfer-smoke --out /tmp/smoke.txt                    # a quick try

Three logs of the paper network, in --work (start from an empty one for timings):
  source/    a full tuning for --source (`tune --target SOURCE`)
  full/      a full tuning for --target with the same budget
  transfer/  the source log re-targeted to --target (`tune --from source/ --trials 0 --top-k K`)
each tuning in a new process of its own. Reports per kernel the best time
of the default schedule, the full tuning and the transfer, and in all: the
transfer's speed as a fraction of the full tuning's, its share of the full
tuning's speed-up over the default schedules (the measure of Gibson &
Cano's Transfer-Tuning, PACT 2022) and its tuning time as a fraction of the
full tuning's.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

import click
import harness


def tune_log(name: str, width: float, batch: int, target: str, log_dir: str, trials: int, kernels: list[str],
             trials_per_round: int, source: str | None, top_k: int) -> dict:
    """One tuning into `log_dir` (re-targeting `source`'s records first, if given); its wall time."""
    from tvm_alexnet import spec, tuning
    from tvm_alexnet.target import parse_target

    options = tuning.TuneOptions(batch, parse_target(target), Path(log_dir), trials, kernels=kernels,
                                 trials_per_round=trials_per_round, top_k=top_k,
                                 source=Path(source) if source else None)
    start = time.perf_counter()
    tuning.tune(spec.network("paper", width=width), options,
                report=lambda task, progress: print(f"  {name}: {task.kernel.name} {task.done} trials, "
                                                    f"{task.gflops:.1f} GFLOP/s", flush=True))
    return {"info": {"wall_s": time.perf_counter() - start}}


def _default_seconds(log_dir: Path, kernel, batch: int, target) -> float | None:
    from tvm_alexnet import tuning

    return tuning.default_seconds(tuning.default_times(log_dir), kernel, batch, target)


def _best_seconds(log_dir: Path, kernel, batch: int, target) -> float:
    """What a build with the log gets: its best record, or the default schedule where that is faster."""
    from tvm_alexnet import tuning

    record = tuning.best_record(tuning.read_log(log_dir), tuning.task_module(kernel, batch), target)
    default = _default_seconds(log_dir, kernel, batch, target)
    return min(tuning.mean_seconds(record) if record else math.inf, default or math.inf)


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.3f}" if seconds is not None else "-"


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--source", default="llvm:skylake", show_default=True, help="The target the source log is tuned for.")
@click.option("--target", default="llvm", show_default=True, help="The target to re-target to.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@harness.width_option()
@click.option("--trials", type=click.IntRange(min=1), default=250, show_default=True,
              help="Budget of each full tuning.")
@click.option("--top-k", type=click.IntRange(min=1), default=8, show_default=True,
              help="Records re-targeted per kernel.")
@click.option("--trials-per-round", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--kernel", "kernels", multiple=True, help="Only these kernels (repeatable; default: every tunable one).")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("transfer-work"),
              show_default=True, help="Where the three logs go (kept: a rerun continues the full tunings).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the table here too  [default: bench-logs/transfer-<source>-to-<target>-b<batch>.txt]")
def main(source, target, batch, width, trials, top_k, trials_per_round, kernels, work, out):
    from tvm_alexnet import spec, tuning
    from tvm_alexnet.target import parse_target, target_dirname

    net = spec.network("paper", width=width)
    chosen = [k for k in net.kernels() if tuning.tunable(k) and (not kernels or k.name in kernels)]
    if not chosen:
        raise click.BadParameter(f"no tunable kernel among {', '.join(kernels)}", param_hint="'--kernel'")
    source_target, tvm_target = parse_target(source), parse_target(target)
    info = harness.machine()
    out = out or harness.log_path(f"transfer-{target_dirname(source_target)}-to-{target_dirname(tvm_target)}-b{batch}")
    names = [k.name for k in chosen]
    shutil.rmtree(work / "transfer", ignore_errors=True)  # re-targeting is quick: always redo it, for its time
    common = {"width": width, "batch": batch, "kernels": names, "trials_per_round": trials_per_round,
              "top_k": top_k}
    engines = [
        harness.Engine("source", tune_log, {**common, "name": "source", "target": source,
                                            "log_dir": str(work / "source"), "trials": trials, "source": None}),
        harness.Engine("full", tune_log, {**common, "name": "full", "target": target,
                                          "log_dir": str(work / "full"), "trials": trials, "source": None}),
        harness.Engine("transfer", tune_log, {**common, "name": "transfer", "target": target,
                                              "log_dir": str(work / "transfer"), "trials": 0,
                                              "source": str(work / "source")}),
    ]
    wall = {}
    for engine in engines:  # in this order: the transfer needs the source log
        start = time.perf_counter()
        try:
            wall[engine.name] = harness.run_worker(engine)["info"]["wall_s"]
        except harness.WorkerError as e:
            raise click.ClickException(str(e)) from None
        print(f"{engine.name}: {(time.perf_counter() - start) / 60:.1f} min", file=sys.stderr, flush=True)

    rows = [(k.name, _default_seconds(work / "full", k, batch, tvm_target),
             _best_seconds(work / "full", k, batch, tvm_target),
             _best_seconds(work / "transfer", k, batch, tvm_target)) for k in chosen]
    # GPU targets note no default times (their default, dlight, is not measured): "-" and no speed-up share
    defaults = [d for _, d, _, _ in rows]
    default = sum(defaults) if None not in defaults else None
    full, transfer = sum(r[2] for r in rows), sum(r[3] for r in rows)
    table = [[name, _ms(d), _ms(f), _ms(t), f"{f / t:.2f}"] for name, d, f, t in
             [*rows, ("all", default, full, transfer)]]
    if default is None:
        share = "no default times to compare with"
    elif default > full:
        share = (f"{100 * (default / transfer - 1) / (default / full - 1):.0f}% of its speed-up "
                 "over the default schedules")
    else:
        share = "the full tuning found nothing faster than the default schedules"
    sections = [
        f"paper (width {width}), batch {batch}, {source} -> {target}, {trials} trials per full tuning, top {top_k} "
        f"re-targeted; logs in {work}; each tuning in its own process. Times as the tuner measured them.",
        harness.markdown_table(["kernel", "default ms", "full tuning ms", "transfer ms", "transfer / full speed"],
                               table),
        f"transfer reaches {100 * full / transfer:.0f}% of the full tuning's speed ({share}) in "
        f"{100 * wall['transfer'] / wall['full']:.0f}% of its time "
        f"({wall['transfer'] / 60:.1f} vs {wall['full'] / 60:.1f} min)",
    ]
    harness.write_log(out, sections, info)


if __name__ == "__main__":
    main()
