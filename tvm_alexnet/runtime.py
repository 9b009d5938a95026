"""A built library, loaded: call its functions and kernels on torch tensors."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import platform
import threading
from pathlib import Path

import torch
import tvm
from tvm import relax

from . import artifact
from .artifact import LIBRARY
from .errors import UserError


def kernel_ready(t: torch.Tensor) -> torch.Tensor:
    """Contiguous and 64-byte aligned, as TVM's vectorised kernels assume: a
    misaligned tensor makes them crash, not fail."""
    t = t.contiguous()
    return t if t.data_ptr() % 64 == 0 else t.clone()


def batch_chunks(n: int, fixed: list[int]) -> list[tuple[int, int | None]]:
    """How a batch of `n` images runs on builds for the `fixed` batch sizes
    and one for any batch size: (chunk size, fixed size or None for the
    any-batch build) per chunk. Chunks of the largest fixed size while one
    fits, then the rest in one chunk, on its own fixed build if there is one
    of that size."""
    chunks = []
    largest = max(fixed, default=None)
    while largest is not None and n >= largest:
        chunks.append((largest, largest))
        n -= largest
    if n or not chunks:
        chunks.append((n, n if n in fixed else None))
    return chunks


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks for reuse instead of unmapping them: a
    training step frees and reallocates its activations and gradients
    (hundreds of MB at batch 32), each block above glibc's mmap threshold
    otherwise page-faulted and zeroed afresh every step. The process keeps
    its peak memory. False where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameters; a trim threshold of -1: never trim
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, -1))


# Holders of a storage (tensors and views on it, storage objects); private to torch, hence looked up.
_storage_use_count = getattr(torch._C, "_storage_Use_Count", None)


class OutputBuffers:
    """Kernels' outputs on CPU, each kernel's memory reused by its next call
    once nothing uses it any more (no tensor or view of it, no autograd graph
    or `.grad` holding it): fresh memory would be page-faulted again by the
    kernel, since glibc's heap, even keeping freed blocks, splits a large
    one for smaller allocations in between (a training step's gradients then
    land on fresh pages in some steps). One buffer per kernel: while a
    caller keeps the last output, a call gets new memory. Per thread (a
    buffer is checked, then used)."""

    def __init__(self):
        self._local = threading.local()

    def empty(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        storages = self._local.__dict__.setdefault("storages", {})
        nbytes = math.prod(shape) * like.element_size()
        storage = storages.get(name)
        if storage is None or storage.nbytes() != nbytes or _storage_use_count(storage._cdata) > 1:
            out = like.new_empty(shape)
            storages[name] = out.untyped_storage()
            return out
        return like.new_empty(0).set_(storage, 0, shape)


class CompiledNetwork:
    """The compiled network of one build directory, on one device (GPU
    `device_index` for a CUDA build).

    `forward(x, params)` runs the whole network; `layer(name, x, params)` one
    layer; `kernel(name)` one kernel in destination-passing style.
    """

    def __init__(self, directory: str | os.PathLike, device_index: int = 0):
        directory = Path(directory)
        self.manifest = artifact.check(directory)  # a truncated library would crash the process, not fail
        self.device_type = "cuda" if self.manifest.target["kind"] == "cuda" else "cpu"
        if self.device_type == "cuda":
            _enable_cuda_jit()
        else:
            keep_freed_memory()
        self.executable = tvm.runtime.load_module(str(directory / LIBRARY))
        self.device = tvm.cuda(device_index) if self.device_type == "cuda" else tvm.cpu(0)
        self._local = threading.local()  # a VM may not be shared between threads
        self.kernels = {k["name"]: k for k in self.manifest.kernels}
        self._kernel_funcs = {}
        # CUDA: torch's caching allocator reuses memory already
        self._outputs = OutputBuffers() if self.device_type == "cpu" and _storage_use_count else None

    @property
    def vm(self) -> relax.VirtualMachine:
        if not hasattr(self._local, "vm"):
            self._local.vm = relax.VirtualMachine(self.executable, self.device)
        return self._local.vm

    def _check_batch(self, x: torch.Tensor) -> None:
        if self.manifest.batch is not None and x.shape[0] != self.manifest.batch:
            raise UserError(f"this build is for batch {self.manifest.batch}, got a batch of {x.shape[0]}")

    def forward(self, x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        self._check_batch(x)
        return self.vm["forward"](*self._forward_args(x, params))

    def _forward_args(self, x: torch.Tensor, params: list[torch.Tensor]) -> list:
        if "forward_transform_params" in self.manifest.functions:
            return [kernel_ready(x), *self._transformed(params)]
        return [kernel_ready(x), *map(kernel_ready, params)]

    def _transformed(self, params: list[torch.Tensor]) -> list:
        """What `forward` takes for `params` (graph.Transformed: Winograd's
        weights transformed), made again only when a parameter changed: another
        tensor, or torch's version counter moved (an optimizer step, a load)."""
        key = tuple((id(p), p.data_ptr(), p._version) for p in params)
        if getattr(self._local, "transformed_key", None) != key:
            self._local.transformed = list(self.vm["forward_transform_params"](list(map(kernel_ready, params))))
            self._local.transformed_key = key
        return self._local.transformed

    def layer(self, name: str, x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        return self.vm[name](kernel_ready(x), *map(kernel_ready, params))

    def kernel(self, name: str):
        """The kernel `name` as f(*inputs, *params) -> output tensor."""
        if name not in self._kernel_funcs:
            self._kernel_funcs[name] = self.executable.imports[0][name]
        func = self._kernel_funcs[name]

        def call(*args: torch.Tensor) -> torch.Tensor:
            with torch.profiler.record_function(name):  # named in torch's profiler (scripts/profile_step.py)
                args = [kernel_ready(a) for a in args]
                out = self._output(name, args[0])
                func(*args, out)
                return out

        return call

    def _output(self, kernel: str, x: torch.Tensor) -> torch.Tensor:
        info = self.kernels[kernel]
        if not info.get("batch_output", True):  # a parameter gradient, summed over the batch
            shape = tuple(info["output"])
        else:
            shape = (x.shape[0], *info["output"][1:])
        return x.new_empty(shape) if self._outputs is None else self._outputs.empty(kernel, shape, x)

    def time_function(self, name: str, args: list[torch.Tensor], number: int = 3, repeat: int = 3,
                      min_repeat_ms: int = 0) -> list[float]:
        """Seconds per call of a VM function (a layer or `forward`), one
        value per repeat (of at least `number` calls and `min_repeat_ms`), after a warm-up call."""
        evaluator = self.vm.time_evaluator(name, self.device, number=number, repeat=repeat,
                                           min_repeat_ms=int(min_repeat_ms))
        args = self._forward_args(args[0], args[1:]) if name == "forward" else list(map(kernel_ready, args))
        return list(evaluator(*args).results)

    def time_kernel(self, name: str, args: list[torch.Tensor], number: int = 3, repeat: int = 3,
                    min_repeat_ms: int = 0, as_in_forward: bool = False) -> list[float]:
        """Seconds per call of one kernel (inputs and params as `kernel`
        takes them), one value per repeat (of at least `number` calls and
        `min_repeat_ms`), after a warm-up call. With `as_in_forward`, the
        kernel `forward` runs: where that takes its weights transformed once
        per weight version (a static CPU build's Winograd convolutions), that
        kernel on weights transformed ahead, the transform not timed."""
        args = [kernel_ready(a) for a in args]
        out = self._output(name, args[0])
        transformed = self.manifest.transformed_weights.get(name) if as_in_forward else None
        if transformed is not None:
            weight = args[1].new_empty(transformed)
            self.executable.imports[0][f"{name}_weight_transform"](args[1], weight)
            name, args = f"{name}_transformed", [args[0], weight, *args[2:]]
        evaluator = self.executable.imports[0].time_evaluator(name, self.device, number=number, repeat=repeat,
                                                              min_repeat_ms=int(min_repeat_ms))
        return list(evaluator(*args, out).results)


def _enable_cuda_jit() -> None:
    # CUDA modules keep their source and compile it when loaded; the compiler
    # callback lives in tvm.support.nvcc. nvcc is on every machine we target,
    # NVRTC needs an extra package.
    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    import tvm.support.nvcc  # noqa: F401  (registers tvm_callback_cuda_compile)
