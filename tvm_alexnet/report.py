"""Kernel performance reports: every kernel of a compiled network timed
against torch doing the same operation on the same device, placed against
the machine's measured peaks (SGEMM through torch, a large copy), and the
whole network against torch eager and torch.compile.

A report is a JSON document (`report.schema.json`); report_files.py reads,
writes and renders it.
"""

from __future__ import annotations

import datetime
import math
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Callable

import torch

from .model import AlexNet
from .ops import op_of
from .report_files import FORMAT
from .runtime import keep_freed_memory
from .spec import NO_LRN, Kernel

BYTES_PER_FLOAT = 4


# -- timing --------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_torch(fn: Callable[[], object], device: torch.device, repeat: int, min_repeat_ms: float) -> list[float]:
    """Seconds per call of `fn`, one value per repeat; each repeat runs
    enough calls to last `min_repeat_ms` (as TVM's time_evaluator does)."""
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    number = max(1, math.ceil(min_repeat_ms / 1e3 / max(time.perf_counter() - start, 1e-9)))
    results = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        _sync(device)
        results.append((time.perf_counter() - start) / number)
    return results


def measure_peaks(device: torch.device, repeat: int = 5) -> dict:
    """The roofs: SGEMM GFLOP/s through torch (oneDNN/MKL on CPU, cuBLAS on
    GPU) and memory bandwidth of a large copy (bytes read + written)."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    sgemm = statistics.median(time_torch(lambda: a @ b, device, repeat, 200))
    words = 64 * 2**20  # 256 MiB, far beyond any cache
    src, dst = torch.randn(words, device=device), torch.empty(words, device=device)
    copy = statistics.median(time_torch(lambda: dst.copy_(src), device, repeat, 200))
    return {"sgemm_gflops": 2 * n**3 / sgemm / 1e9, "sgemm_size": n,
            "bandwidth_gbs": 2 * words * BYTES_PER_FLOAT / copy / 1e9, "copy_mib": words * BYTES_PER_FLOAT // 2**20}


# -- each kernel's arguments ----------------------------------------------------------------------


def kernel_args(model: AlexNet, k: Kernel, batch: int, device: torch.device) -> list[torch.Tensor]:
    """Random inputs (batched) and the model's parameters, as the kernel takes them."""
    inputs = op_of(k).random_inputs(k, batch, device)
    layer = getattr(model, k.layer, None)
    params = [layer.weight.detach(), layer.bias.detach()][:len(k.params)] if k.params else []
    return inputs + params


def inputs(model: AlexNet, kernels: list[Kernel], batch: int, device: torch.device):
    """({kernel name: kernel_args}, an input batch of the network), drawn
    from seed 0: the same in every process that calls it."""
    torch.manual_seed(0)
    args = {k.name: kernel_args(model, k, batch, device) for k in kernels}
    return args, torch.randn(batch, *model.spec.input_shape, device=device)


# -- the report -------------------------------------------------------------------------------


def moved_bytes(k: Kernel, batch: int) -> int:
    """Compulsory traffic: every input, parameter and output once."""
    batched = [*k.inputs, k.output] if k.batch_output else list(k.inputs)
    whole = [*k.params] if k.batch_output else [*k.params, k.output]
    return BYTES_PER_FLOAT * (batch * sum(math.prod(s) for s in batched) + sum(math.prod(s) for s in whole))


def measure(model: AlexNet, batch: int, target, *, repeat: int = 10, min_repeat_ms: float = 50,
            backward: bool = True, torch_compile: bool = True, tuning_log: str | None = None,
            progress: Callable[[str], None] = print) -> dict:
    """The report of `model`, compiled for `target` (a tvm Target), at
    `batch` (see report.schema.json).

    TVM is timed here (every kernel, then the whole network); torch and the
    machine's peaks in a fresh process (time_torch_side), since two engines
    in one process disturb each other: one's worker threads still spinning
    slowed the other's kernels by ~15% on 2 cores."""
    net, compiled = model.spec, model.compiled
    device = torch.device(compiled.device_type)
    kernels = net.compiled_kernels() if backward else net.kernels(training=True)
    args, x = inputs(model, kernels, batch, device)
    params = [p.detach() for p in model.parameters()]

    steps = len(kernels) + 3  # the network twice, each kernel, torch's side
    done = iter(range(1, steps + 1))

    def timed(name: str, fn) -> list[float]:
        progress(f"[{next(done)}/{steps}] {name}")
        with torch.no_grad():
            return fn()

    def network() -> list[float]:
        return compiled.time_function("forward", [x, *params], number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)

    # The whole network before and after its kernels, so that a drift of the
    # machine's load while the kernels are timed shows in its spread.
    times = {("TVM", "network"): timed("TVM network", network)}
    for k in kernels:
        times["TVM", k.name] = timed(f"TVM {k.name}", lambda: compiled.time_kernel(
            k.name, args[k.name], number=1, repeat=repeat, min_repeat_ms=min_repeat_ms, as_in_forward=True))
    times["TVM", "network"] += timed("TVM network", network)
    del args, x  # the other process draws its own
    engines = "eager, torch.compile" if torch_compile else "eager"
    progress(f"[{steps}/{steps}] torch: {len(kernels)} kernels, {engines} and the peaks in their own process ...")
    torch_side = time_torch_side(model, batch, compiled.device_type, backward=backward, repeat=repeat,
                                 min_repeat_ms=min_repeat_ms, torch_compile=torch_compile)
    times.update(torch_side["times"])

    return _assemble(net, batch, target, kernels, times, torch_side["peak"], compiled.manifest.tuned,
                     machine(device), tuning_log, repeat, min_repeat_ms, os.environ.get("TVM_NUM_THREADS"))


def time_torch_side(model: AlexNet, batch: int, device_type: str, *, backward: bool = True, repeat: int = 10,
                    min_repeat_ms: float = 50, torch_compile: bool = True) -> dict:
    """Torch's side of `model`'s report, timed in a fresh (spawned, so
    inheriting no TVM thread pool) process with this one's torch threads, on
    the same inputs (`inputs`), on CPU keeping freed memory as a CPU build
    does: {"times": {(engine, kernel or "network"): seconds per repeat},
    "peak": measure_peaks, "pid", "threads": the process's id and torch
    threads}. Needs no compiled network."""
    net = model.spec
    spec = {"variant": net.variant, "num_classes": net.num_classes, "width": net.width,
            "lrn": net.lrn or NO_LRN, "pool": net.pool, "activation": net.activation}
    state = {name: t.detach().cpu().numpy() for name, t in model.state_dict().items()}  # pickled by value
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_torch_side, spec, state, model.training, batch, device_type, backward, repeat,
                           min_repeat_ms, torch_compile, torch.get_num_threads()).result()


def _torch_side(spec: dict, state: dict, training: bool, batch: int, device_type: str, backward: bool,
                repeat: int, min_repeat_ms: float, torch_compile: bool, threads: int) -> dict:
    """time_torch_side's work, in the spawned process."""
    torch.set_num_threads(threads)
    if device_type == "cpu":
        keep_freed_memory()  # as TVM's process does: torch's outputs then reuse memory, not fresh pages
    device = torch.device(device_type)
    model = AlexNet(**spec).train(training)
    model.load_state_dict({name: torch.from_numpy(a) for name, a in state.items()})
    model.to(device)
    kernels = model.spec.compiled_kernels() if backward else model.spec.kernels(training=True)
    args, x = inputs(model, kernels, batch, device)
    times = {}
    with torch.no_grad():
        for k in kernels:
            times["torch", k.name] = time_torch(op_of(k).torch(k, args[k.name]), device, repeat, min_repeat_ms)
        del args
        times["torch eager", "network"] = time_torch(lambda: model.reference_forward(x), device, repeat,
                                                     min_repeat_ms)
        if torch_compile:
            forward = torch.compile(model.reference_forward)
            times["torch.compile", "network"] = time_torch(lambda: forward(x), device, repeat, min_repeat_ms)
    return {"times": times, "peak": measure_peaks(device), "pid": os.getpid(), "threads": torch.get_num_threads()}


def measure_remote(model: AlexNet, batch: int, target, remote, *, repeat: int = 10, min_repeat_ms: float = 50,
                   backward: bool = True, tuning_log: str | None = None,
                   progress: Callable[[str], None] = print) -> dict:
    """The report of `model` compiled here for `target` and timed on a device
    registered with an RPC tracker (`remote`, a tuning.RemoteDevices): the
    library is uploaded through a session and every kernel, and the whole
    network, timed there by TVM's time_evaluator. Torch and the machine's
    peaks are not measured there: their fields are None."""
    import tempfile

    import tvm
    from tvm import relax

    from .build import compile_module
    from .tuning.remote import device_type

    net = model.spec
    kernels = net.compiled_kernels() if backward else net.kernels(training=True)
    progress(f"compiling for {target.kind.name} ...")
    # RPC passes no tuple of weights to forward_transform_params: the network transforms them each call.
    executable, tuned = compile_module(net, batch, target, tuning_log)
    steps = len(kernels) + 2
    done = iter(range(1, steps + 1))
    with tempfile.TemporaryDirectory(prefix="tvm-alexnet-remote-") as scratch:
        whole, only_kernels = Path(scratch) / "alexnet.so", Path(scratch) / "kernels.so"
        executable.export_library(str(whole))
        # The kernels on their own: over RPC the network's library gives no access to the kernels it imports.
        executable.mod.imports[0].export_library(str(only_kernels))
        progress(f"uploading to a device under {remote} ...")
        session, where = remote.session(session_timeout=0)
        for path in (whole, only_kernels):
            session.upload(str(path), path.name)
        network_module, kernel_module = session.load_module(whole.name), session.load_module(only_kernels.name)
    dev = session.device(device_type(target), 0)

    def there(t: torch.Tensor):
        return tvm.runtime.tensor(t.detach().cpu().contiguous().numpy(), dev)

    def timed(name: str, evaluate, args) -> list[float]:
        progress(f"[{next(done)}/{steps}] {name} on {where[0]}:{where[1]}")
        return list(evaluate(*args).results)

    torch.manual_seed(0)
    x = there(torch.randn(batch, *net.input_shape))
    params = [there(p) for p in model.parameters()]
    vm = relax.VirtualMachine(network_module, dev)

    def network() -> list[float]:
        evaluator = vm.time_evaluator("forward", dev, number=1, repeat=repeat, min_repeat_ms=int(min_repeat_ms))
        return timed("TVM network", evaluator, [x, *params])

    times = {("TVM", "network"): network()}
    for k in kernels:
        args = [there(t) for t in kernel_args(model, k, batch, torch.device("cpu"))]
        shape = (batch, *k.output) if k.batch_output else tuple(k.output)
        out = tvm.runtime.empty(shape, args[0].dtype, dev)
        evaluator = kernel_module.time_evaluator(k.name, dev, number=1, repeat=repeat, min_repeat_ms=int(min_repeat_ms))
        times["TVM", k.name] = timed(f"TVM {k.name}", evaluator, [*args, out])
    times["TVM", "network"] += network()
    described = {"cpu": _remote_call(session, "target.llvm_get_system_cpu") or "unknown CPU", "cores": None,
                 "os": "unknown (remote)", "gpu": dev.device_name if target.kind.name == "cuda" else None,
                 "remote": {"tracker": f"{remote.host}:{remote.port}", "key": remote.key,
                            "device": f"{where[0]}:{where[1]}"}}
    threads = _remote_call(session, "runtime.NumThreads")  # the device's TVM_NUM_THREADS, in effect
    return _assemble(net, batch, target, kernels, times, None, tuned, described, tuning_log, repeat, min_repeat_ms,
                     None if threads is None else str(threads))


def _remote_call(session, name: str):
    """A global function of the remote's TVM, called (None where it has none)."""
    try:
        return session.get_function(name)()
    except Exception:  # TVM raises its own error types through RPC
        return None


def _assemble(net, batch: int, target, kernels: list[Kernel], times: dict, peak: dict | None, tuned: list[str],
              machine_info: dict, tuning_log, repeat: int, min_repeat_ms: float, tvm_threads: str | None) -> dict:
    """The report from the timings: `times[engine, kernel or "network"]`, a
    list of seconds each; torch's and the peaks (None) may be missing."""
    from .tuning import target_dirname

    def ratio(a, b):
        return None if a is None or b is None else a / b

    rows = []
    for k in kernels:
        tvm_times, seconds = times["TVM", k.name], statistics.median(times["TVM", k.name])
        flops, nbytes = k.flops * batch, moved_bytes(k, batch)
        torch_seconds = statistics.median(times["torch", k.name]) if ("torch", k.name) in times else None
        rows.append({
            "name": k.name, "layer": k.layer, "op": k.op,
            "direction": "backward" if op_of(k).gradient else "forward",
            "inputs": [[batch, *s] for s in k.inputs], "params": [list(s) for s in k.params],
            "output": [batch, *k.output] if k.batch_output else list(k.output),
            "flops": flops, "bytes": nbytes, "intensity": flops / nbytes,
            "ms": seconds * 1e3, "ms_min": min(tvm_times) * 1e3, "ms_max": max(tvm_times) * 1e3,
            "gflops": flops / seconds / 1e9, "gbs": nbytes / seconds / 1e9,
            "pct_peak_flops": ratio(100 * flops / seconds / 1e9, peak and peak["sgemm_gflops"]),
            "pct_peak_bandwidth": ratio(100 * nbytes / seconds / 1e9, peak and peak["bandwidth_gbs"]),
            "schedule": "tuned" if k.name in tuned else "default",
            "torch_ms": None if torch_seconds is None else torch_seconds * 1e3,
            "speedup_vs_torch": ratio(torch_seconds, seconds),
        })
    eager = statistics.median(times["torch eager", "network"]) if ("torch eager", "network") in times else None
    engines = [{"engine": engine, "ms": statistics.median(t) * 1e3, "ms_min": min(t) * 1e3, "ms_max": max(t) * 1e3,
                "images_per_s": batch / statistics.median(t), "speedup_vs_eager": ratio(eager, statistics.median(t))}
               for (engine, what), t in times.items() if what == "network"]
    in_network = {k.name for k in net.network_kernels()}
    forward_ms = sum(r["ms"] for r in rows if r["name"] in in_network)
    network_ms = engines[0]["ms"]
    return {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info,
        "versions": {"tvm": _version("apache-tvm"), "torch": torch.__version__, "tvm_alexnet": _version("tvm-alexnet"),
                     "python": platform.python_version()},
        "network": {"variant": net.variant, "width": net.width, "num_classes": net.num_classes, "lrn": net.lrn,
                    "pool": net.pool, "activation": net.activation, "batch": batch,
                    "gflop_per_image": net.flops() / 1e9},
        "target": str(target), "target_name": target_dirname(target),
        "tuning_log": _relative(tuning_log) if tuning_log else None,
        "timing": {"statistic": "median", "repeat": repeat, "min_repeat_ms": min_repeat_ms,
                   "threads": torch.get_num_threads(), "tvm_threads": tvm_threads},
        "peak": peak,
        "kernels": rows,
        "network_rows": engines,
        "overhead": {"network_ms": network_ms, "forward_kernels_ms": forward_ms, "overhead_ms": network_ms - forward_ms,
                     "overhead_pct": 100 * (network_ms - forward_ms) / network_ms},
    }


def _relative(path) -> str:
    """A path as the user would type it here (the repository's log is found by absolute path)."""
    path = Path(path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "os": platform.platform(),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None}


def _version(package: str) -> str:
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "unknown"


# -- quick timings: each kernel, each layer ---------------------------------------------------------


def time_kernels(model: AlexNet, batch: int, kernels: list[Kernel], repeat: int = 5) -> list[float]:
    """Seconds per call of each of `kernels` of the compiled `model` on
    random inputs at `batch` (median of `repeat`)."""
    device = torch.device(model.compiled.device_type)
    return [statistics.median(model.compiled.time_kernel(k.name, kernel_args(model, k, batch, device),
                                                         number=1, repeat=repeat, as_in_forward=True))
            for k in kernels]


def time_layers(model: AlexNet, x: torch.Tensor, repeat: int = 3) -> list[dict]:
    """Each layer of the compiled `model` timed on what the layers before it
    make of `x` (median of `repeat`): {"layer", "kernels" (names), "output"
    (shape), "flops" (of the batch), "seconds"}."""
    from .layers import walk_layers

    net, compiled = model.spec, model.compiled
    rows = []

    def run_layer(layer, h, mask):
        module = getattr(model, layer.name)
        params = [module.weight.detach(), module.bias.detach()]
        seconds = statistics.median(compiled.time_function(layer.name, [h, *params], number=1, repeat=repeat))
        with torch.no_grad():
            out = compiled.layer(layer.name, h, params)
        kernels = [k for k in net.kernels() if k.layer == layer.name]
        rows.append({"layer": layer.name, "kernels": [k.name for k in kernels], "output": list(out.shape),
                     "flops": sum(k.flops for k in kernels) * x.shape[0], "seconds": seconds})
        return out

    walk_layers(net, x, run_layer)
    return rows
