"""What the commands share: the two consoles, the options several commands
take, and their parsers (targets are parsed here, once, into TVM targets)."""

from __future__ import annotations

from pathlib import Path

import click
import tvm
from rich.console import Console
from rich.table import Table

from ..model import AlexNet
from ..spec import ACTIVATIONS, LRN_CONVENTIONS, NO_LRN, POOLING, VARIANTS, network
from ..target import host_cpu, parse_target

results = Console(highlight=False, soft_wrap=True)
notes = Console(stderr=True, highlight=False, soft_wrap=True)  # progress and remarks


def network_options(f):
    """--variant, --num-classes, --width, --lrn, --pool, --activation."""
    options = [
        click.option("--variant", default="paper", show_default=True, metavar="|".join(VARIANTS),
                     help="Network variant: the paper's two-tower net, the single-tower net of tutorials, "
                          "the paper's one-GPU comparison net (half the kernels in conv1-conv4), "
                          "or torchvision's AlexNet."),
        click.option("--num-classes", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Outputs of fc8."),
        click.option("--width", type=float, default=1.0, show_default=True,
                     help="Multiplier on every channel count and hidden unit count (for quick runs)."),
        click.option("--lrn", metavar="|".join([*LRN_CONVENTIONS, NO_LRN]), default=None,
                     help="LRN convention (default: the variant's own; paper: k=2, alpha not divided by n), "
                          "or none: no LRN layers (the paper's ablation)."),
        click.option("--pool", metavar="|".join(POOLING), default=None,
                     help="Max-pooling: overlapping (3x3, stride 2: the paper's and the default) or "
                          "non-overlapping (2x2, stride 2: the paper's ablation)."),
        click.option("--activation", metavar="|".join(ACTIVATIONS), default=None,
                     help="Nonlinearity of every conv and hidden dense layer: relu (the default) or tanh "
                          "(the paper's Figure 1 comparison)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


class TargetType(click.ParamType):
    """A target spelled as `tvm-alexnet --help` says, parsed and checked before any command runs."""

    name = "target"

    def convert(self, value, param, ctx) -> tvm.target.Target:
        return parse_target(value)


target_option = click.option("--target", type=TargetType(), default="llvm", show_default=True,
                             help="Where the kernels run (see `tvm-alexnet --help`).")


def rpc_options(f):
    """--rpc HOST:PORT and --device-key KEY: measure on the devices registered with an RPC tracker."""
    options = [
        click.option("--rpc", metavar="HOST:PORT", default=None,
                     help="Measure on the devices registered with this RPC tracker (python -m tvm.exec.rpc_tracker) "
                          "instead of here; --target then describes them."),
        click.option("--device-key", metavar="KEY", default=None,
                     help="With --rpc: the key the devices registered under (rpc_server --key)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def remote_devices(rpc: str | None, device_key: str | None):
    """The RemoteDevices that --rpc and --device-key name, or None without --rpc."""
    from ..tuning import RemoteDevices, RemoteError

    if rpc is None:
        if device_key is not None:
            raise click.UsageError("--device-key needs --rpc HOST:PORT (the tracker the devices registered with)")
        return None
    if device_key is None:
        raise click.UsageError("--rpc needs --device-key KEY (the key the devices registered under)")
    try:
        return RemoteDevices.parse(rpc, device_key)
    except RemoteError as e:
        raise click.BadParameter(str(e).split(": ", 1)[1], param_hint="'--rpc'" if "--rpc" in str(e)
                                 else "'--device-key'") from None


def target_text(target: tvm.target.Target, *, name_host: bool = False) -> str:
    """The short spelling of a target for messages: llvm (this CPU, unless
    `name_host`: for files read on other machines), llvm:skylake, cuda:sm_90."""
    if target.kind.name == "cuda":
        return f"cuda:{target.attrs['arch']}"
    cpu = str(target.attrs.get("mcpu", ""))
    return "llvm" if cpu == host_cpu() and not name_host else f"llvm:{cpu}"


def batch_or_any(ctx, param, value: str) -> int | None:
    """--batch N, or 'any' for a symbolic batch dimension (None)."""
    if value == "any":
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"expected a positive integer or 'any', got {value!r}")
    return int(value)


def _tuning_log_folder(ctx, param, value: str) -> str:
    if value not in ("auto", "none") and not Path(value).is_dir():
        raise click.BadParameter(f"{value}: no such tuning log folder (or 'auto', 'none')")
    return value


tuning_log_option = click.option(
    "--tuning-log", default="auto", show_default=True, callback=_tuning_log_folder,
    help="A tuning log folder, 'auto' (the repository's log for the target, where it was tuned for this network "
         "and batch size) or 'none' (default schedules).")


def load_model(weights: str | None, variant: str, num_classes: int, width: float, lrn: str | None,
               pool: str | None = None, activation: str | None = None) -> AlexNet:
    """The network loaded from `weights` (whose recorded network wins over
    the options), or with random weights."""
    network(variant, num_classes, width, lrn, pool, activation)  # a bad option fails before any file is read
    if weights:
        return AlexNet.load(weights, variant=variant, num_classes=num_classes, width=width, lrn=lrn, pool=pool,
                            activation=activation)
    return AlexNet(variant, num_classes, width, lrn, pool, activation)


def table(title: str, columns, rows) -> Table:
    """A rich table: the first column (and `schedule`, `kernels`) left-aligned, numbers right."""
    result = Table(title=title)
    for i, col in enumerate(columns):
        result.add_column(col, justify="left" if i == 0 or col in ("schedule", "kernels") else "right")
    for row in rows:
        result.add_row(*row)
    return result
