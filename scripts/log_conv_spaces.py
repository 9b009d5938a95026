"""Per convolution of a log, at each batch size: the default schedule's
measured speed, and the best record found in the default schedule's own
space and in MetaSchedule's own space (GFLOP/s), as a Markdown table.

    python scripts/log_conv_spaces.py [--tuning-log tuning_logs/llvm-znver3] [--batch 1 --batch 32]
"""

import click

from tvm_alexnet import build, spec, tuning


@click.command()
@click.option("--tuning-log", default="tuning_logs/llvm-znver3", show_default=True)
@click.option("--batch", "batches", type=int, multiple=True, default=(1, 32), show_default=True)
@click.option("--target", default="llvm", show_default=True)
def main(tuning_log, batches, target):
    database = tuning.read_log(tuning_log)
    times = tuning.default_times(tuning_log)
    target = build.parse_target(target)
    print("| kernel | batch | default | best in the default's space | best in MetaSchedule's space |")
    print("|---|---:|---:|---:|---:|")
    for batch in batches:
        for kernel in spec.network("paper").kernels():
            if kernel.op != "conv2d":
                continue
            mod = tuning.task_module(kernel, batch)
            records = [r for r in database.get_top_k(database.commit_workload(mod), 1 << 30)
                       if tuning.same_target(r.target, target)]

            def gflops(seconds):
                return f"{kernel.flops * batch / seconds / 1e9:.1f}" if seconds else "-"

            own = [tuning.mean_seconds(r) for r in records if tuning.in_default_space(r)]
            stock = [tuning.mean_seconds(r) for r in records if not tuning.in_default_space(r)]
            print(f"| {kernel.name} | {batch} | {gflops(tuning.default_seconds(times, kernel, batch, target))} "
                  f"| {gflops(min(own, default=None))} | {gflops(min(stock, default=None))} |")


if __name__ == "__main__":
    main()
