"""Compile a network for a target and cache the build on disk.

A build is one shared library holding the Relax VM functions (`forward` and
one per layer) and every kernel as a destination-passing function, plus a
manifest.json describing the kernels and the library (see artifact.py).
Builds are cached under a key of the network spec, batch, target, TVM
version and this package's kernel sources.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import tvm
from tvm import relax

from . import artifact, cuda, gpu_build, graph, tuning
from .artifact import LIBRARY, MANIFEST, ArtifactError, Manifest, cache_dir  # noqa: F401
from .ops import default_schedule, op_of, transforms_weights, winograd
from .spec import Network
from .target import (  # noqa: F401
    TargetError,
    device_for,
    host_cpu,
    is_gpu,
    num_cores,
    parse_target,
    vector_unit,
)

PACKAGE_DIR = Path(__file__).parent
# The files whose contents decide what a build contains.
_KERNEL_SOURCES = ["spec.py", "graph.py", "build.py", "artifact.py", "target.py", "gpu_build.py",
                   *sorted(f"ops/{p.name}" for p in (PACKAGE_DIR / "ops").glob("*.py"))]


def schedule(mod: tvm.IRModule, net: Network, batch: int | None, target: tvm.target.Target,
             tuning_log: str | os.PathLike | None = None) -> tuple[tvm.IRModule, list[str]]:
    """Give every kernel a schedule for the target: the best record of the
    tuning log where it has one for this kernel, batch and target, else the
    default: the op's (ops.registry), on GPU dlight's rules where an op has
    none. On CPU a convolution computed by Winograd (winograd.applies) takes
    no record: the log's are of the direct convolution, which it outruns.
    Returns the module and the names of the tuned kernels."""
    tuned = []
    if tuning_log is not None and batch is not None:
        database = tuning.read_log(tuning_log, best_only=True)
        defaults = tuning.default_times(tuning_log)
        for kernel in net.compiled_kernels():
            if not is_gpu(target) and winograd.applies(kernel, batch):
                continue
            func = tuning.tuned_kernel(database, kernel, batch, target, defaults)
            if func is not None:
                mod[kernel.name] = func.with_attr("global_symbol", kernel.name)
                tuned.append(kernel.name)
    if not is_gpu(target):
        unit = vector_unit(target)
        for kernel in net.compiled_kernels():
            if kernel.name not in tuned:
                mod[kernel.name] = default_schedule(mod[kernel.name], kernel, batch, unit)
    else:  # the default CUDA schedules, dlight's rules where they have none
        mod = gpu_build.schedule_module(mod, net.compiled_kernels(), batch, target, skip=tuned)
    return mod, tuned


def static_batch_pays(net: Network, batch: int, target: tvm.target.Target) -> bool:
    """Whether inference on a build for exactly `batch` images runs faster
    kernels than on the any-batch build: on CPU, where `forward` takes
    weights transformed (transformed_weights)."""
    return not is_gpu(target) and any(transforms_weights(k, batch) for k in net.compiled_kernels())


def transformed_weights(net: Network, batch: int | None, target: tvm.target.Target
                        ) -> dict[str, graph.Transformed]:
    """The kernels whose weights `forward` takes transformed, once per weight
    version (ops.transforms_weights): on CPU at a static batch, the Winograd
    convolutions (their weight transform, run per call, would cost as much
    as the convolution at batch 1) and, below 4 images, the direct
    convolutions and dense layers on packed weights. Not for the towers,
    which have no `forward`."""
    if batch is None or net.towers > 1 or not static_batch_pays(net, batch, target):
        return {}
    unit = vector_unit(target)
    return {k.name: graph.Transformed(*op_of(k).transformed_funcs(k, batch, unit))
            for k in net.compiled_kernels() if transforms_weights(k, batch)}


def _relax_pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    # The stock pipelines would fuse our kernels and rename them; ours are
    # already what we want, so only lower the graph to VM code, lifting the
    # weight transforms of `forward` into forward_transform_params.
    backend = relax.backend.cuda if target.kind.name == "cuda" else relax.backend.cpu_generic
    return tvm.transform.Sequential(
        [relax.transform.LiftTransformParams(), relax.transform.LegalizeOps()]  # LegalizeOps: the flatten before fc6
        + backend.pipeline.dataflow_lower_passes(target)
        + backend.pipeline.finalize_passes(target)
    )


def compile_module(net: Network, batch: int | None, target: tvm.target.Target,
                   tuning_log: str | os.PathLike | None = None,
                   transformed: dict[str, graph.Transformed] | None = None) -> tuple[tvm.runtime.Executable, list[str]]:
    """The network's executable and its tuned kernels. `forward` takes the
    weights of the kernels in `transformed` (see transformed_weights)
    transformed by forward_transform_params; without it, all as they are,
    as a caller that cannot pass forward_transform_params's tuple (RPC) needs."""
    mod, tuned = schedule(graph.build_module(net, batch, transformed), net, batch, target, tuning_log)
    tir_pipeline = gpu_build.TIR_PIPELINE if target.kind.name == "cuda" else "default"
    return tvm.compile(mod, target, relax_pipeline=_relax_pipeline(target), tir_pipeline=tir_pipeline), tuned


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


def build(net: Network, target: tvm.target.Target, batch: int | None = None, out_dir: Path | None = None,
          tuning_log: str | os.PathLike | None = None, use_cache: bool = True) -> Path:
    """Compile `net` for `target` into a directory holding the library and
    its manifest; return the directory. Kernels with a record in
    `tuning_log` for this batch and target get its schedule. With `out_dir`
    unset the build goes to (or comes from) the cache.

    A cache entry whose files do not match its manifest (a truncated
    library) is built again, with a warning; a bad library is never
    returned or copied to `out_dir`. Where the cache cannot be written (a
    read-only folder, TVM_ALEXNET_CACHE naming a file), the build goes to a
    temporary cache for this process instead, with a warning, found before
    compiling."""
    name = f"{net.variant}-{build_key(net, batch, target, tuning_log)}"
    cached = cache_dir() / name
    if use_cache and _usable(cached):
        return cached if out_dir is None else _publish(cached, Path(out_dir))
    try:
        lock = _lock_file(cached.parent, name)
    except OSError as e:
        fallback = _temporary_cache()
        warnings.warn(f"build cache {cached.parent} cannot be written ({e.strerror or e}); "
                      f"building into {fallback}, for this process only")
        cached = fallback / name
        lock = _lock_file(fallback, name)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # processes asking for the same build (torchrun's ranks) compile it once
        if not (use_cache and _usable(cached)):
            staging = _staging(cached.parent)
            try:
                _compile_into(staging, net, batch, target, tuning_log)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            _replace_dir(staging, cached)
    finally:
        os.close(lock)
    return cached if out_dir is None else _publish(cached, Path(out_dir))


def _compile_into(staging: Path, net: Network, batch: int | None, target: tvm.target.Target,
                  tuning_log: str | os.PathLike | None) -> None:
    start = time.perf_counter()
    transformed = transformed_weights(net, batch, target)
    executable, tuned = compile_module(net, batch, target, tuning_log, transformed)
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
        functions=[layer.name for layer in net.layers] + ["forward"]
        + (["forward_transform_params"] if transformed else []),
        tuning_log=None if tuning_log is None else str(tuning_log), tuned=tuned,
        transformed_weights={name: list(t.shape) for name, t in transformed.items()},
    )
    executable.export_library(str(staging / LIBRARY))
    manifest.files = {LIBRARY: artifact.describe(staging / LIBRARY)}
    manifest.save(staging / MANIFEST)


def _usable(entry: Path) -> bool:
    """Whether a cache entry is there and its files match its manifest
    (one that does not is built again, with a warning)."""
    if not (entry / MANIFEST).exists():
        return False
    try:
        artifact.check(entry)
    except ArtifactError as e:
        warnings.warn(f"{e}; building it again")
        return False
    return True


def _lock_file(root: Path, name: str) -> int:
    """An open descriptor of the lock file that guards the build `name` in `root`."""
    return os.open(_ensure(root) / f".{name}.lock", os.O_RDONLY | os.O_CREAT, 0o644)


def _staging(root: Path) -> Path:
    """A fresh folder in the cache `root` to build into."""
    return Path(tempfile.mkdtemp(prefix=".build-", dir=_ensure(root)))


_fallback_cache: Path | None = None


def _temporary_cache() -> Path:
    """This process's cache where the usual one cannot be written, removed when it exits."""
    global _fallback_cache
    if _fallback_cache is None:
        _fallback_cache = Path(tempfile.mkdtemp(prefix="tvm-alexnet-cache-"))
        atexit.register(shutil.rmtree, _fallback_cache, True)
    return _fallback_cache


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
    """Copy a build into a user's directory, each file checked against the
    manifest and then replaced atomically, nothing else in the directory touched."""
    manifest = artifact.check(src)
    _ensure(out_dir)
    for name in (LIBRARY, MANIFEST):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=out_dir)
        os.close(fd)
        try:
            shutil.copy2(src / name, tmp)
            if name in manifest.files:
                artifact.check_file(Path(tmp), manifest.files[name])
            os.replace(tmp, out_dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return out_dir
