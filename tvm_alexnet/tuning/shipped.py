"""The tuning logs shipped inside the package (tvm_alexnet/tuning_logs/, one
folder per target: llvm-znver3, cuda-sm_90), and which log a build takes."""

from __future__ import annotations

from pathlib import Path

import tvm

from ..spec import Network
from ..target import cpu_name, host_cpu, target_dirname
from .logfile import WORKLOADS, LogError
from .records import log_batches

SHIPPED_LOGS = Path(__file__).resolve().parent.parent / "tuning_logs"


def shipped_targets() -> list[str]:
    """The targets the package ships a log for, by folder name."""
    if not SHIPPED_LOGS.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_LOGS.iterdir() if (p / WORKLOADS).exists())


def _machine(target: tvm.target.Target) -> str:
    if target.kind.name == "cuda":
        return f"GPU arch {target.attrs['arch']}"
    cpu = str(target.attrs.get("mcpu", "generic"))
    return f"CPU {cpu} (this machine's {cpu_name()})" if cpu == host_cpu() else f"CPU {cpu}"


def _network(net: Network) -> str:
    if net.width == 1 and net.num_classes == 1000:
        return net.variant
    return f"{net.variant} (width {net.width:g}, {net.num_classes} classes)"


def resolve_log(option: str, net: Network, batch: int | None,
                target: tvm.target.Target) -> tuple[Path | None, str]:
    """What --tuning-log names: a log folder, "none" (default schedules), or
    "auto": the shipped log for the target's CPU model or GPU arch, where it
    holds kernels of `net` at `batch` (at any batch size, for batch None).
    Returns the folder (None: default schedules) and one line saying which
    log was taken for which CPU or GPU, or why none was."""
    if option == "none":
        return None, "tuning log: none, default schedules"
    if option != "auto":
        path = Path(option)
        if not path.is_dir():
            raise LogError(f"{option}: no such tuning log folder (or 'auto', 'none')")
        return path, f"tuning log: {path}"
    name, machine = target_dirname(target), _machine(target)
    path = SHIPPED_LOGS / name
    if not (path / WORKLOADS).exists():
        shipped = ", ".join(shipped_targets()) or "no target"
        return None, f"tuning log auto: no shipped log for {machine}, only for {shipped}; default schedules"
    batches = log_batches(path, net)
    sizes = ", ".join(map(str, batches))
    if not batches:
        return None, (f"tuning log auto: the shipped {name} log holds no kernel of {_network(net)}; "
                      "default schedules")
    if batch is not None and batch not in batches:
        return None, (f"tuning log auto: the shipped {name} log holds {_network(net)} at batch {sizes}, "
                      f"not {batch}; default schedules")
    return path, f"tuning log auto: {path}, for {machine}, tuned at batch {sizes}"
