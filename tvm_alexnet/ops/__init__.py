"""The ops of the network and their gradients: TE definitions, default CPU
and CUDA schedules and torch equivalents, tied together per op in
registry.OPS by the names spec.Kernel.op uses."""

from .registry import OPS, Op, default_schedule, gpu_default_schedule, op_of, transforms_weights

__all__ = ["OPS", "Op", "default_schedule", "gpu_default_schedule", "op_of", "transforms_weights"]
