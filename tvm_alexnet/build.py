"""Compile a network for a target, cache the library on disk, load it back.

A build is one shared library holding the Relax VM functions (`forward` and
one per layer) and every kernel as a destination-passing function, plus a
manifest.json describing the kernels. Builds are cached under a key of the
network spec, batch, target, TVM version and this package's kernel sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tvm
from tvm import relax

from . import cpu_schedules, cuda, graph, tuning
from .errors import UserError
from .spec import Network
from .target import TargetError, device_for, host_cpu, is_gpu, num_cores, parse_target  # noqa: F401

PACKAGE_DIR = Path(__file__).parent
# The files whose contents decide what a build contains.
_KERNEL_SOURCES = ["spec.py", "graph.py", "build.py", "target.py", "cpu_schedules.py",
                   *sorted(f"ops/{p.name}" for p in (PACKAGE_DIR / "ops").glob("*.py"))]


def schedule(mod: tvm.IRModule, net: Network, batch: int | None, target: tvm.target.Target,
             tuning_log: str | os.PathLike | None = None) -> tuple[tvm.IRModule, list[str]]:
    """Give every kernel a schedule for the target: the best record of the
    tuning log where it has one for this kernel, batch and target, else the
    default: cpu_schedules on CPU, dlight on GPU. Returns the module and the
    names of the tuned kernels."""
    tuned = []
    if tuning_log is not None and batch is not None:
        database = tuning.read_log(tuning_log, best_only=True)
        defaults = tuning.default_times(tuning_log)
        for kernel in net.compiled_kernels():
            func = tuning.tuned_kernel(database, kernel, batch, target, defaults)
            if func is not None:
                mod[kernel.name] = func.with_attr("global_symbol", kernel.name)
                tuned.append(kernel.name)
    if not is_gpu(target):
        for kernel in net.compiled_kernels():
            if kernel.name not in tuned:
                mod[kernel.name] = cpu_schedules.default_schedule(mod[kernel.name], kernel, batch)
    else:
        from tvm.s_tir import dlight as dl

        class GeneralReduction(dl.gpu.GeneralReduction):
            # It takes kernels it then fails to bind (lrn_grad's padded
            # windows); those go on to the next rule.
            def apply(self, func, target, tunable):
                try:
                    return super().apply(func, target, tunable)
                except tvm.s_tir.schedule.ScheduleError:
                    return None

        with target:  # dlight leaves kernels that already have a schedule alone
            mod = dl.ApplyDefaultSchedule(
                dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), GeneralReduction(), dl.gpu.Fallback()
            )(mod)
    return mod, tuned


def _relax_pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    # The stock pipelines would fuse our kernels and rename them; ours are
    # already what we want, so only lower the graph to VM code.
    backend = relax.backend.cuda if target.kind.name == "cuda" else relax.backend.cpu_generic
    return tvm.transform.Sequential(
        [relax.transform.LegalizeOps()]  # the flatten before fc6
        + backend.pipeline.dataflow_lower_passes(target)
        + backend.pipeline.finalize_passes(target)
    )


def compile_module(net: Network, batch: int | None, target: tvm.target.Target,
                   tuning_log: str | os.PathLike | None = None) -> tuple[tvm.runtime.Executable, list[str]]:
    mod, tuned = schedule(graph.build_module(net, batch), net, batch, target, tuning_log)
    return tvm.compile(mod, target, relax_pipeline=_relax_pipeline(target)), tuned


@dataclass
class Manifest:
    variant: str
    width: float
    num_classes: int
    lrn: str | None
    batch: int | None
    target: dict
    tvm_version: str
    build_seconds: float
    kernels: list[dict]
    functions: list[str]
    tuning_log: str | None = None
    tuned: list[str] = field(default_factory=list)  # kernels scheduled from the log; the rest use defaults

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        return cls(**json.loads(path.read_text()))


def cache_dir() -> Path:
    return Path(os.environ.get("TVM_ALEXNET_CACHE", Path.home() / ".cache" / "tvm-alexnet"))


def build_key(net: Network, batch: int | None, target: tvm.target.Target,
              tuning_log: str | os.PathLike | None = None) -> str:
    h = hashlib.sha256()
    for part in (repr(net), repr(batch), str(target), tvm.__version__):
        h.update(part.encode())
    sources = [PACKAGE_DIR / name for name in _KERNEL_SOURCES]
    if tuning_log is not None:
        sources += [Path(tuning_log) / name for name in (tuning.WORKLOADS, tuning.RECORDS, tuning.DEFAULTS)]
    for path in sources:
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()[:16]


LIBRARY = "alexnet.so"
MANIFEST = "manifest.json"


def build(net: Network, target: tvm.target.Target, batch: int | None = None, out_dir: Path | None = None,
          tuning_log: str | os.PathLike | None = None, use_cache: bool = True) -> Path:
    """Compile `net` for `target` into a directory holding the library and
    its manifest; return the directory. Kernels with a record in
    `tuning_log` for this batch and target get its schedule. With `out_dir`
    unset the build goes to (or comes from) the cache."""
    cached = cache_dir() / f"{net.variant}-{build_key(net, batch, target, tuning_log)}"
    if use_cache and (cached / MANIFEST).exists():
        if out_dir is None:
            return cached
        return _publish(cached, Path(out_dir))
    start = time.perf_counter()
    executable, tuned = compile_module(net, batch, target, tuning_log)
    if target.kind.name == "cuda":
        cuda.check_source(cuda.source(executable.mod), target)
    n = "n" if batch is None else batch
    manifest = Manifest(
        variant=net.variant, width=net.width, num_classes=net.num_classes, lrn=net.lrn, batch=batch,
        target=json.loads(str(target)), tvm_version=tvm.__version__,
        build_seconds=round(time.perf_counter() - start, 2),
        kernels=[dict(name=k.name, layer=k.layer, op=k.op, inputs=[[n, *s] for s in k.inputs],
                      params=[list(s) for s in k.params], output=[n, *k.output] if k.batch_output else list(k.output),
                      batch_output=k.batch_output, flops_per_image=k.flops) for k in net.compiled_kernels()],
        functions=[layer.name for layer in net.layers] + ["forward"],
        tuning_log=None if tuning_log is None else str(tuning_log), tuned=tuned,
    )
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=_ensure(cached.parent)))
    executable.export_library(str(staging / LIBRARY))
    manifest.save(staging / MANIFEST)
    _replace_dir(staging, cached)
    return cached if out_dir is None else _publish(cached, Path(out_dir))


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _replace_dir(staging: Path, final: Path) -> None:
    """Move a finished directory into place so readers never see half of it."""
    if final.exists():
        old = final.with_name(final.name + f".old-{os.getpid()}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


def _publish(src: Path, out_dir: Path) -> Path:
    """Copy a build into a user's directory, each file replaced atomically
    and nothing else in the directory touched."""
    _ensure(out_dir)
    for name in (LIBRARY, MANIFEST):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=out_dir)
        os.close(fd)
        shutil.copy2(src / name, tmp)
        os.replace(tmp, out_dir / name)
    return out_dir
