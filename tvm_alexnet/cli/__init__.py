"""The `tvm-alexnet` command line: compile, tune, kernels, report, run, demo, train, eval, convert,
filters, mean, saliency, neighbours.

Each command parses its options, calls the library and prints; the group
ends every failure the same way (see _Group)."""

from __future__ import annotations

import os
import sys
import traceback
import warnings

import click

from ..errors import UserError
from . import build, infer, lab, report, train, tune

DEBUG_ENV = "TVM_ALEXNET_DEBUG"


def error_line(e: BaseException) -> str:
    """What went wrong, in one line naming the input where the error does."""
    if isinstance(e, click.ClickException):
        return e.format_message()
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror if e.filename is None else f"{e.filename}: {e.strerror}"
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first} (run with --debug for the traceback)"


class _Group(click.Group):
    """The one error handler: any failure prints `error: ...` as one line on
    stderr and exits non-zero (2 for bad usage, 130 for Ctrl-C); with --debug
    or TVM_ALEXNET_DEBUG=1 its traceback comes first."""

    debug = False

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        self.debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
        warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt) as e:
            self._fail(e, "interrupted", 130)
        except click.UsageError as e:
            self._fail(e, error_line(e), 2)
        except Exception as e:  # whatever else the library raises: one line too
            self._fail(e, error_line(e), e.exit_code if isinstance(e, click.ClickException) else 1)
        sys.exit(code or 0)

    def _fail(self, e: BaseException, message: str, code: int):
        if self.debug and not isinstance(e, click.UsageError):
            traceback.print_exception(e)
        click.echo(f"error: {message}", err=True)
        sys.exit(code)


def _debug(ctx, param, value: bool) -> None:
    if value:
        ctx.command.debug = True


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tvm-alexnet")
@click.option("--debug", is_flag=True, expose_value=False, callback=_debug,
              help=f"Show an error's traceback (as {DEBUG_ENV}=1 does).")
def main():
    """AlexNet (Krizhevsky et al., 2012) with every layer compiled by Apache TVM.

    Targets: `llvm` (this CPU), `llvm:CPU` (another CPU model, e.g.
    llvm:skylake), `cuda:sm_XX` (e.g. cuda:sm_90), or a JSON object such as
    '{"kind": "cuda", "arch": "sm_80"}'.
    """


for command in (build.compile_cmd, build.kernels_cmd, build.schedules_cmd, tune.tune_cmd, tune.logs_cmd,
                report.report_cmd, report.demo_cmd, infer.run_cmd, infer.eval_cmd, infer.convert_cmd,
                train.train_cmd, train.pca_cmd, lab.filters_cmd, lab.mean_cmd, lab.saliency_cmd,
                lab.neighbours_cmd):
    main.add_command(command)
