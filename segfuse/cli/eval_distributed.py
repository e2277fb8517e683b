"""``segfuse eval`` under torchrun: process group from the environment, file shards, gathering.

Convention:
    With ``WORLD_SIZE > 1`` in the environment the default process group is initialised
    (NCCL when CUDA is available, else gloo) unless it already is. Rank r reads the pairs
    ``r, r + W, r + 2W, ...`` of the sorted list; their joint histograms (a few hundred
    numbers per image) and the first error are gathered to every rank, and rank 0 alone
    scores them and writes the report. ``segfuse eval`` imports this module (and torch)
    only when ``WORLD_SIZE > 1``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from segfuse.metrics._distributed import gather_objects, rank, world_size

Item = TypeVar("Item")

__all__ = ["gather_objects", "rank", "world_size", "process_group", "shard", "first_error"]


@contextmanager
def process_group():
    """Initialise the process group from torchrun's environment for the block (no-op when single)."""
    started = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
        started = True
    try:
        yield
    finally:
        if started:
            dist.destroy_process_group()


def shard(items: Sequence[Item]) -> list[Item]:
    """This process's share of ``items`` (all of them when single)."""
    return list(items[rank() :: world_size()])


def first_error(message: str | None) -> str | None:
    """The first error message of any process (rank order), or None; every process must call it."""
    return next((found for found in gather_objects(message) if found), None)
