"""CUDA sources of built modules, and compiling them with nvcc to check them.

TVM keeps a CUDA build's source in the library and compiles it when a GPU
loads it; compiling it here first makes a build that cannot run fail on the
machine that built it, GPU or not.
"""

from __future__ import annotations

import re

import tvm


def source(module) -> str:
    """The CUDA C source of a built or loaded library ('' for CPU builds)."""
    for lib in _walk(module):
        if lib.kind == "cuda":
            return lib.inspect_source()
    return ""


def kernel_source(code: str, name: str) -> str:
    """The __global__ functions in `code` generated for one kernel (dlight
    may split a kernel into several)."""
    parts = re.split(r'(?=extern "C" __global__)', code)
    return "".join(p for p in parts if re.search(rf"\b{re.escape(name)}_kernel(_\d+)?\(", p.split("{")[0]))


def _walk(module):
    yield module
    for m in module.imports:
        yield from _walk(m)


def check_source(code: str, target: tvm.target.Target) -> None:
    """Compile CUDA C to PTX with nvcc for the target's arch; raises on errors."""
    from tvm.support import nvcc

    with target:  # nvcc.py reads the arch from the current target
        nvcc.compile_cuda(code, target_format="ptx", arch=target.attrs["arch"], compiler="nvcc")
