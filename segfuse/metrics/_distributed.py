"""Reductions across processes when torch.distributed is initialised (no-ops otherwise).

Convention:
    Sums are all-reduced on a copy (the caller's state is never modified, so ``compute()``
    can be called again after more updates). With the NCCL backend the copy travels
    through the current CUDA device and comes back on the state's device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the default group; 1 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """Rank of this process in the default group; 0 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def _transport_device(tensor: torch.Tensor) -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return tensor.device


def sum_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``tensor`` over all processes (a copy; the input when not distributed)."""
    if world_size() == 1:
        return tensor
    reduced = tensor.detach().clone().to(_transport_device(tensor))
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(tensor.device)


def gather_objects(value) -> list:
    """Every process's ``value``, in rank order (``[value]`` when not distributed)."""
    if world_size() == 1:
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered
