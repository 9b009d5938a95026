"""Targets: parsed once at the entry (CLI, Python API), passed down typed.

A target names where kernels run: `llvm` (this CPU), `llvm:znver3` (another
CPU model), `cuda:sm_90`, or a JSON dict such as {"kind": "cuda", "arch":
"sm_80"}. Both spellings go through the same checks.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import tvm

from .errors import UserError


class TargetError(UserError):
    """A target that cannot be parsed or built for."""


X86 = "x86_64-unknown-linux-gnu"

# Per-block limits common to every NVIDIA GPU since sm_50 (TVM's nvidia/* tags use the same).
CUDA_LIMITS = {"max_num_threads": 1024, "max_threads_per_block": 1024, "thread_warp_size": 32,
               "max_shared_memory_per_block": 49152, "registers_per_block": 65536}


@cache
def host_cpu() -> str:
    """LLVM's name for this machine's CPU model (znver3, sapphirerapids, ...)."""
    return tvm.target.codegen.llvm_get_system_cpu()


def num_cores() -> int:
    return len(os.sched_getaffinity(0))


@cache
def cpu_name() -> str:
    """The CPU's marketing name, as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _check_cpu(text: str, cpu) -> None:
    if not isinstance(cpu, str):
        raise TargetError(f"target {text!r}: mcpu must be an LLVM CPU name such as znver3, got {cpu!r}")
    if cpu != host_cpu() and not tvm.target.codegen.llvm_is_valid_cpu(cpu, X86):
        raise TargetError(f"target {text!r}: unknown CPU model {cpu!r} for LLVM")


def _check_arch(text: str, arch) -> None:
    if not isinstance(arch, str) or not re.fullmatch(r"sm_\d+a?", arch):
        raise TargetError(f"target {text!r}: expected a CUDA arch such as sm_90, got {arch!r}")


def parse_target(text: str | tvm.target.Target) -> tvm.target.Target:
    """The TVM target `text` names (a Target, parsed already, as it is); a
    TargetError naming what is wrong otherwise."""
    if isinstance(text, tvm.target.Target):
        return text
    text = text.strip()
    if text.startswith("{"):
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise TargetError(f"target {text!r} is not valid JSON: {e.msg} at column {e.colno}") from None
        if not isinstance(config, dict) or "kind" not in config:
            raise TargetError(f"target {text!r} must be a JSON object with a \"kind\"")
        if config["kind"] not in ("llvm", "cuda"):
            raise TargetError(f"target {text!r}: kind {config['kind']!r} is not supported (llvm or cuda)")
        if config["kind"] == "llvm":
            config.setdefault("mcpu", host_cpu())
            _check_cpu(text, config["mcpu"])
            config.setdefault("num-cores", num_cores())
        else:
            _check_arch(text, config.get("arch"))
    else:
        kind, _, arg = text.partition(":")
        if kind == "llvm":
            cpu = arg or host_cpu()
            _check_cpu(text, cpu)
            config = {"kind": "llvm", "mcpu": cpu, "num-cores": num_cores()}
        elif kind == "cuda":
            _check_arch(text, arg)
            config = {"kind": "cuda", "arch": arg}
        else:
            raise TargetError(f"target {text!r}: expected llvm, llvm:CPU, cuda:sm_XX or a JSON object")
    if config["kind"] == "cuda":
        config.setdefault("host", {"kind": "llvm", "mcpu": host_cpu()})
        for key, value in CUDA_LIMITS.items():  # MetaSchedule's GPU rules need them
            config.setdefault(key, value)
    try:
        return tvm.target.Target(config)
    except Exception as e:  # TVM raises its own error types for bad configs
        raise TargetError(f"target {text!r} is not valid: {str(e).splitlines()[-1]}") from None


def is_gpu(target: tvm.target.Target) -> bool:
    return "gpu" in target.keys


def device_for(target: tvm.target.Target) -> tvm.runtime.Device:
    return tvm.cuda(0) if target.kind.name == "cuda" else tvm.cpu(0)


@dataclass(frozen=True)
class VectorUnit:
    """What a CPU schedule sizes its register tiles and blocks by."""

    isa: str  # "AVX-512" or "AVX2"
    lanes: int  # float32 lanes of a vector register
    registers: int  # vector registers
    l1_bytes: int  # L1 data cache per core
    l2_bytes: int  # per core
    cores: int = 1  # the target's num-cores: how many tasks keep every core busy


# The smallest caches of each kind's cores: Skylake-X's 32 KB L1d and 1 MB L2, Zen 3's 32 KB and 512 KB.
AVX512 = VectorUnit("AVX-512", lanes=16, registers=32, l1_bytes=32 << 10, l2_bytes=1 << 20)
AVX2 = VectorUnit("AVX2", lanes=8, registers=16, l1_bytes=32 << 10, l2_bytes=512 << 10)


def vector_unit(target: tvm.target.Target) -> VectorUnit:
    """The vector unit of an llvm target's CPU model, from LLVM's features for its -mcpu."""
    with target:
        unit = AVX512 if tvm.target.codegen.target_has_features("avx512f", target) else AVX2
    return replace(unit, cores=int(target.attrs.get("num-cores", 1)))


def target_dirname(target: tvm.target.Target) -> str:
    """tuning_logs/ folder name: llvm-znver3, cuda-sm_90."""
    if target.kind.name == "cuda":
        return f"cuda-{target.attrs['arch']}"
    return f"{target.kind.name}-{target.attrs.get('mcpu', 'generic')}"


def same_target(a: tvm.target.Target, b: tvm.target.Target) -> bool:
    """Whether a record for target `a` was tuned for `b`'s machine (llvm mcpu, cuda arch)."""
    keys = ("arch",) if a.kind.name == "cuda" else ("mcpu",)
    return a.kind.name == b.kind.name and all(str(a.attrs.get(k)) == str(b.attrs.get(k)) for k in keys)
