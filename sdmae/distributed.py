"""torch.distributed plumbing for torchrun: one process per device, DDP for training,
videos sharded across ranks for scoring. Outside torchrun everything is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from .errors import SdmaeError


@dataclass
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around ``model`` when several processes train."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def setup(device: str = "cpu") -> Context:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, MASTER_ADDR ...).

    gloo on CPU, NCCL on GPU; each process takes the GPU of its LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = local_cuda_device()
        torch.cuda.set_device(dev)
    if world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank, world, local, dev)


def local_cuda_device() -> torch.device:
    """This process's GPU: the one of its LOCAL_RANK. Two ranks on one GPU would make
    NCCL fail at the first collective, so more processes than GPUs is an error."""
    if not torch.cuda.is_available():
        raise SdmaeError(f"--device cuda: torch {torch.__version__} sees no CUDA device (a CPU-only build, "
                         "or no GPU or driver); use --device cpu")
    local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local >= count:
        raise SdmaeError(f"LOCAL_RANK {local} needs GPU {local} but this node has {count}: start at most "
                         f"{count} processes per node (torchrun --nproc_per_node {count})")
    return torch.device("cuda", local)


def barrier() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()


def shutdown() -> None:
    """Leave the process group (torchrun processes exit cleanly)."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def mean(value: float, ctx: Context) -> float:
    """The mean of a float over all ranks."""
    if ctx.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)  # NCCL reduces only CUDA tensors
    tdist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def gather(obj: Any, ctx: Context) -> list[Any] | None:
    """Every rank's ``obj`` (plain data: arrays, numbers, dicts) on rank 0, None elsewhere."""
    if ctx.world_size == 1:
        return [obj]
    out = [None] * ctx.world_size if ctx.is_main else None
    tdist.gather_object(obj, out, dst=0)
    return out
