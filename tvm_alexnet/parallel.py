"""How a training run spreads over processes launched by torchrun: one
process, data parallel (DistributedDataParallel: every rank a slice of each
batch, gradients averaged), or the paper's towers (rank r runs tower r on
the whole batch, towers.py).

Checkpoints are always in the single-device model's format, written by rank
0 only, so a run can resume with another world size or mode.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import placement
from .errors import UserError


class RankError(UserError):
    """Another rank died or stopped answering."""


@dataclass
class Parallel:
    mode: str = "single"  # single | data | towers
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")  # this rank's: its collectives' tensors live there

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def data_shards(self) -> int:
        """Ranks that split each batch between them."""
        return self.world if self.mode == "data" else 1

    @property
    def data_rank(self) -> int:
        return self.rank if self.mode == "data" else 0


def from_environment(towers: int = 1, timeout_s: float = 300, target="llvm") -> Parallel:
    """The process group torchrun set up (WORLD_SIZE, RANK, MASTER_ADDR ...):
    data parallel, or towers with `towers` > 1. A collective that waits on a
    dead rank fails after `timeout_s`. The backend and this rank's device
    follow `target` (placement.py): gloo on the CPU for llvm, NCCL on GPU
    LOCAL_RANK for cuda (more ranks per node than GPUs: a UserError)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = placement.device_for(target)
    if world == 1:
        if towers > 1:
            raise UserError(f"--towers {towers} runs one tower per process: launch with "
                            f"torchrun --nproc-per-node {towers} -m tvm_alexnet train ...")
        return Parallel(device=device)
    if towers > 1 and world != towers:
        raise UserError(f"--towers {towers} needs exactly {towers} processes, torchrun started {world}")
    backend = placement.backend(target)
    if backend == "nccl":
        placement.check_ranks(target)
        torch.cuda.set_device(device)  # NCCL's collectives (and all_gather_object) use the current device
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Parallel("towers" if towers > 1 else "data", dist.get_rank(), world, device)


def close(parallel: Parallel) -> None:
    """Leave the process group once every rank is done: a process that exits
    with gloo's threads still up can abort ("terminate called without an
    active exception")."""
    if parallel.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(order: torch.Tensor, batch: int, parallel: Parallel) -> torch.Tensor:
    """This rank's samples of an epoch's order: of every global batch of
    `batch`, its contiguous slice, so the global batches are the same for
    any world size (and a run can resume with another)."""
    shards = parallel.data_shards
    if shards == 1:
        return order
    if batch % shards:
        raise UserError(f"batch size {batch} does not split over {shards} data-parallel ranks")
    full = len(order) // batch * batch
    return order[:full].view(-1, shards, batch // shards)[:, parallel.data_rank].flatten()


def all_sum(values: list[float], parallel: Parallel) -> list[float]:
    """Per-rank counts summed over the data-parallel ranks (towers see the same batch: nothing to sum)."""
    if parallel.mode != "data":
        return values
    t = torch.tensor(values, dtype=torch.float64, device=parallel.device)  # NCCL reduces GPU tensors only
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool, parallel: Parallel) -> bool:
    """Whether `flag` holds on any rank (a collective under torchrun: every
    rank calls it), so that all ranks stop together."""
    if parallel.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=parallel.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
