"""Per convolution of a log, at each batch size: the default schedule's
measured speed, and the best record found in the default schedule's own
space and in MetaSchedule's own space (GFLOP/s), as a Markdown table.

    python scripts/log_conv_spaces.py [--tuning-log tvm_alexnet/tuning_logs/llvm-znver3] [--batch 1 --batch 32]

It reads the log only (GFLOP/s as the tuner measured them, on the machine
the log was tuned on) and times nothing; --out also writes the table.
"""

import click
import harness


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--tuning-log", type=click.Path(exists=True, file_okay=False),
              default="tvm_alexnet/tuning_logs/llvm-znver3", show_default=True)
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 32), show_default=True)
@click.option("--target", default=None, help="The records' target  [default: the log's first CPU target]")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the table here too.")
def main(tuning_log, batches, target, out):
    from tvm_alexnet import spec, tuning
    from tvm_alexnet.target import parse_target, same_target, target_dirname

    database = tuning.read_log(tuning_log)
    times = tuning.default_times(tuning_log)
    if target is None:
        cpus = [t for t in tuning.log_targets(database) if t.kind.name == "llvm"]
        if not cpus:
            raise click.UsageError(f"{tuning_log} holds no CPU records; name a --target")
        tvm_target = cpus[0]
    else:
        tvm_target = parse_target(target)
    rows = []
    for batch in batches:
        for kernel in spec.network("paper").kernels():
            if kernel.op != "conv2d":
                continue
            mod = tuning.task_module(kernel, batch)
            records = [r for r in database.get_top_k(database.commit_workload(mod), 1 << 30)
                       if same_target(r.target, tvm_target)]

            def gflops(seconds, flops=kernel.flops * batch):
                return f"{flops / seconds / 1e9:.1f}" if seconds else "-"

            own = [tuning.mean_seconds(r) for r in records if tuning.in_default_space(r)]
            stock = [tuning.mean_seconds(r) for r in records if not tuning.in_default_space(r)]
            rows.append([kernel.name, batch, gflops(tuning.default_seconds(times, kernel, batch, tvm_target)),
                         gflops(min(own, default=None)), gflops(min(stock, default=None))])
    harness.write_log(out, [
        f"{tuning_log}, records for {target_dirname(tvm_target)}; GFLOP/s as the tuner measured them.",
        harness.markdown_table(["kernel", "batch", "default", "best in the default's space",
                                "best in MetaSchedule's space"], rows)])


if __name__ == "__main__":
    main()
