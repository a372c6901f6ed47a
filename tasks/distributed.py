"""Data-parallel helpers, shared by the runner and data-parallel tasks: one process per device,
launched by torchrun or SLURM (submitit).

Without a launcher everything here is a no-op, so the same code path runs single-process.
Nero, Madam and LAMB need no communication of their own under DistributedDataParallel: every
rank holds the same all-reduced gradients, so their per-neuron (or per-element) state stays
identical on every rank (tests/test_imagenet.py checks this).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def init(device_name: str) -> tuple[int, int, int]:
    """Join the process group if a launcher started several processes: (rank, world, local rank)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        try:  # a multi-task SLURM job from Hydra's submitit launcher
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export()
        except (ImportError, RuntimeError):
            return 0, 1, 0
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BN running statistics) everywhere, as DDP does before each forward."""
    if world_size() > 1:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
