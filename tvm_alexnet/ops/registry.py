"""Every op in one table, as TVM's op strategies are: what it computes, how
it is scheduled and tuned on CPU, what torch runs for it, and how the
autograd bridge treats it. A spec.Kernel names its op (`Kernel.op`); every
other module asks `op_of(kernel)` instead of testing op names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tvm import s_tir, tirx

from ..spec import Kernel
from ..target import VectorUnit
from . import conv, cpu_conv, cpu_dense_packed, cpu_winograd, dense, elementwise, gpu_conv, grad, lrn, pool, winograd
from . import cpu_schedules as cpu
from . import gpu_schedules as gpu
from . import torch_equivalents as torch_ops


@dataclass(frozen=True)
class Op:
    name: str
    # TE: (activations..., weight, bias, **kernel.attrs) -> output.
    compute: Callable
    # (kernel, args) -> a call computing the same output with torch (torch_equivalents).
    torch: Callable
    # The default CPU schedule, (schedule, kernel, batch, vector unit) -> None; None: left as lowered.
    schedule: Callable | None = None
    # The default schedule's design spaces for tuning, (schedule, kernel, batch, vector unit) -> [schedule];
    # None: MetaSchedule's own space.
    space: Callable | None = None
    # Whether tuning searches for it: not where a kernel takes microseconds.
    tunable: bool = True
    # A gradient kernel of training's backward pass (inputs: dy, then the saved tensors).
    gradient: bool = False
    # What the forward keeps for its gradients: "input", "output" (the activation's), "mask".
    saves: tuple[str, ...] = ()
    # Takes a dropout mask drawn by the caller: the identity without one (inference),
    # and its own gradient with the same mask.
    masked: bool = False
    # (kernel, batch, device) -> random activations shaped like what the kernel gets in the network.
    random_inputs: Callable = torch_ops.random_inputs
    # The default CUDA schedule, (schedule, kernel, batch) -> None, or False where it
    # leaves this kernel to dlight; None: dlight's rules (gpu_build.dlight).
    gpu_schedule: Callable | None = None
    # On CPU at a static batch: (kernel, batch) -> whether `forward` takes the kernel's weights
    # transformed once per weight version, and (kernel, batch, vector unit) -> the scheduled
    # transform, the kernel on its output, and that output's shape (graph.Transformed).
    transforms_weights: Callable | None = None
    transformed_funcs: Callable | None = None


# Microsecond kernels (elementwise ops and small sums) are not worth a tuning trial.
OPS: dict[str, Op] = {op.name: op for op in (
    Op("conv2d", conv.conv2d, torch_ops.conv2d, cpu_conv.conv2d, cpu_conv.conv2d_space, saves=("input", "output"),
       gpu_schedule=gpu_conv.conv2d, transforms_weights=cpu_conv.transforms_weights,
       transformed_funcs=cpu_conv.transformed_funcs),
    Op("lrn", lrn.lrn, torch_ops.lrn, cpu.lrn, saves=("input",), gpu_schedule=gpu.lrn),
    Op("max_pool", pool.max_pool, torch_ops.max_pool, cpu.max_pool, saves=("input",), gpu_schedule=gpu.max_pool),
    Op("avg_pool", pool.avg_pool, torch_ops.avg_pool, gpu_schedule=gpu.avg_pool),
    Op("dense", dense.dense, torch_ops.dense, cpu.dense, saves=("input", "output"), gpu_schedule=gpu.dense,
       transforms_weights=cpu_dense_packed.applies, transformed_funcs=cpu_dense_packed.transformed_funcs),
    Op("dropout", elementwise.dropout, torch_ops.dropout, cpu.dropout, tunable=False, saves=("mask",),
       masked=True, random_inputs=torch_ops.dropout_inputs, gpu_schedule=gpu.elementwise),
    Op("softmax", elementwise.softmax, torch_ops.softmax, tunable=False),
    # training's backward pass
    Op("relu_grad", grad.relu_grad, torch_ops.relu_grad, cpu.elementwise, tunable=False, gradient=True,
       random_inputs=torch_ops.relu_grad_inputs, gpu_schedule=gpu.elementwise),
    Op("tanh_grad", grad.tanh_grad, torch_ops.tanh_grad, cpu.elementwise, tunable=False, gradient=True,
       random_inputs=torch_ops.tanh_grad_inputs, gpu_schedule=gpu.elementwise),
    Op("bias_grad", grad.bias_grad, torch_ops.bias_grad, cpu.bias_grad, tunable=False, gradient=True, gpu_schedule=gpu.bias_grad),
    Op("conv2d_grad_input", grad.conv2d_grad_input, torch_ops.conv2d_grad_input, cpu_conv.conv2d_grad_input,
       cpu_conv.conv2d_grad_input_space, gradient=True, gpu_schedule=gpu_conv.conv2d_grad_input),
    Op("conv2d_grad_weight", grad.conv2d_grad_weight, torch_ops.conv2d_grad_weight, cpu_conv.conv2d_grad_weight,
       gradient=True, gpu_schedule=gpu_conv.conv2d_grad_weight),
    Op("dense_grad_input", grad.dense_grad_input, torch_ops.dense_grad_input, cpu.dense_grad_input, gradient=True),
    Op("dense_grad_weight", grad.dense_grad_weight, torch_ops.dense_grad_weight, cpu.dense_grad_weight,
       gradient=True),
    Op("lrn_grad", grad.lrn_grad, torch_ops.lrn_grad, cpu.lrn_grad, gradient=True, gpu_schedule=gpu.lrn_grad),
    # Not tuned: MetaSchedule inlines the window maxima into the sums, an expression
    # it takes minutes to simplify per candidate, and the default has no parameters to search.
    Op("max_pool_grad", grad.max_pool_grad, torch_ops.max_pool_grad, cpu.max_pool_grad, tunable=False,
       gradient=True, gpu_schedule=gpu.max_pool_grad),
    Op("avg_pool_grad", grad.avg_pool_grad, torch_ops.avg_pool_grad, cpu.elementwise, tunable=False, gradient=True, gpu_schedule=gpu.elementwise),
)}


def op_of(kernel: Kernel) -> Op:
    return OPS[kernel.op]


def default_schedule(func: tirx.PrimFunc, kernel: Kernel, batch: int | None, unit: VectorUnit) -> tirx.PrimFunc:
    """The kernel's PrimFunc with its op's default CPU schedule for `unit`
    applied (ops that take microseconds, softmax and the adaptive pool, are
    left as they are); 3x3 convolutions at a static batch by Winograd
    instead (winograd.applies)."""
    if winograd.applies(kernel, batch):
        return cpu_winograd.kernel_func(kernel, batch, unit)
    rule = op_of(kernel).schedule
    if rule is None:
        return func
    sch = s_tir.Schedule(func)
    rule(sch, kernel, batch, unit)
    return sch.mod["main"].with_attr("global_symbol", kernel.name)


def transforms_weights(kernel: Kernel, batch: int | None) -> bool:
    """Whether `forward` of a CPU build for `batch` takes `kernel`'s weights
    transformed once per weight version (Winograd's, or packed)."""
    rule = op_of(kernel).transforms_weights
    return batch is not None and rule is not None and rule(kernel, batch)


def gpu_default_schedule(func: tirx.PrimFunc, kernel: Kernel, batch: int | None) -> tirx.PrimFunc | None:
    """The kernel's PrimFunc with its op's default CUDA schedule applied,
    marked scheduled (dlight then leaves it alone) and as keeping its own
    registers (gpu_build's pipeline); None where dlight is to schedule it."""
    rule = op_of(kernel).gpu_schedule
    if rule is None:
        return None
    sch = s_tir.Schedule(func)
    if rule(sch, kernel, batch) is False:
        return None
    return (sch.mod["main"].with_attr("global_symbol", kernel.name).with_attr("tirx.is_scheduled", True)
            .with_attr(gpu.OWN_REGISTERS, True))
