"""Where tensors live: the one place that maps a target to a torch device.

A `llvm` target runs on the CPU; a `cuda:sm_XX` target on GPU 0, or, under
torchrun, on GPU LOCAL_RANK (one GPU per process on each node). The process
group's backend follows the target, never the machine: gloo for llvm (even
on a machine with GPUs), NCCL for cuda. NCCL cannot put two ranks on one
GPU, so more processes per node than GPUs is refused with a UserError naming
the fix; there is no silent fallback to gloo or to a shared GPU. (Two towers
on one GPU run in one process instead: towers.TowerAlexNet, a CUDA stream each.)

Every command and train.train / train.evaluate go through this module: the
model and its optimizer's state with `move`, each batch with `to_device`
(pinned host memory and a non-blocking copy for a GPU), checkpoints with
`map_location`, so a checkpoint written on a GPU loads on a CPU and back.
"""

from __future__ import annotations

import os

import torch

from .errors import UserError
from .target import parse_target


class PlacementError(UserError):
    """A target that cannot be placed on this machine's devices."""


def _is_cuda(target) -> bool:
    return parse_target(target).kind.name == "cuda"


def local_rank() -> int:
    """This process's rank on its node (torchrun's LOCAL_RANK; 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_for(target, rank: int | None = None) -> torch.device:
    """The torch device `target` implies for this process: cpu for llvm;
    cuda:LOCAL_RANK for cuda (`rank` overrides LOCAL_RANK)."""
    if not _is_cuda(target):
        return torch.device("cpu")
    return torch.device("cuda", local_rank() if rank is None else rank)


def backend(target) -> str:
    """The torch.distributed backend for ranks running `target`: gloo for llvm, nccl for cuda."""
    return "nccl" if _is_cuda(target) else "gloo"


def check_ranks(target, local_world: int | None = None) -> None:
    """Refuse (PlacementError) a cuda run with more processes on this node
    than GPUs: NCCL ranks cannot share a GPU. llvm runs are not limited."""
    if not _is_cuda(target):
        return
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if local_world is None else local_world
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0:
        raise PlacementError("a cuda target needs a GPU, and torch sees none here; use --target llvm")
    if local_world > gpus:
        raise PlacementError(
            f"{local_world} processes on this node but {gpus} GPU(s): NCCL cannot put two ranks on one GPU; "
            f"launch torchrun --nproc-per-node {gpus} (or run the paper's towers in one process on one GPU, "
            "a CUDA stream each: towers.TowerAlexNet)")


def model_device(model) -> torch.device:
    """The device a model runs on: its compiled network's (GPU index
    included), else its parameters'."""
    compiled = getattr(model, "compiled", None)
    if compiled is not None and not isinstance(compiled, list):
        if compiled.device_type == "cuda":
            return torch.device("cuda", compiled.device.device_id)
        return torch.device("cpu")
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def move(model, device: torch.device | str, optimizer: torch.optim.Optimizer | None = None):
    """`model` (and, given, `optimizer`'s per-parameter state: momenta)
    on `device`; returns the model."""
    device = torch.device(device)
    model.to(device)
    if optimizer is not None:
        for entry in optimizer.state.values():
            for key, value in entry.items():
                # a scalar "step" stays where the optimizer keeps it (on the CPU, unless fused/capturable)
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    entry[key] = value.to(device)
    return model


def to_device(batch, device: torch.device | str):
    """A batch (a tensor, or tuples, lists and dicts of them; other values
    as they are) on `device`. For a GPU, from pinned host memory with a
    non-blocking copy (the caching host allocator keeps the pinned buffer
    alive until the copy is done)."""
    device = torch.device(device)
    if isinstance(batch, torch.Tensor):
        if batch.device == device or (device.type == batch.device.type and device.index is None):
            return batch
        if device.type == "cuda":
            if batch.device.type == "cpu" and not batch.is_pinned():
                batch = batch.pin_memory()
            return batch.to(device, non_blocking=True)
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device) for b in batch]
        return type(batch)(moved) if isinstance(batch, list) or type(batch) is tuple else type(batch)(*moved)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def pin_memory(device: torch.device | str) -> bool:
    """Whether a DataLoader feeding `device` should pin its batches."""
    return torch.device(device).type == "cuda"


def map_location(device: torch.device | str | None = None):
    """torch.load's map_location: every tensor of a checkpoint (written on
    any device) onto `device` (default the CPU)."""
    return torch.device(device) if device is not None else torch.device("cpu")
