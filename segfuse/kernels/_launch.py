"""Host-side helpers shared by the kernel launchers: grid sizing, label and ignore handling.

Nothing here imports Triton; the kernel modules do, and they are imported lazily by the
dispatch in :mod:`segfuse.kernels` (so that ``TRITON_INTERPRET`` is read when the kernels
are defined, not when :mod:`segfuse` is imported).
"""

from __future__ import annotations

import functools
import os
from typing import Optional

import torch

# Elements of one [BLOCK_C, BLOCK_S] tile: 4096 keeps 8 warps at 16 values per thread.
TILE_ELEMENTS = 4096
MIN_BLOCK_S = 16
# Programs per streaming multiprocessor on CUDA; programs in total under the interpreter
# (it runs one program at a time, so fewer and larger programs are faster there).
PROGRAMS_PER_SM = 8
INTERPRETER_PROGRAMS = 12


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def next_power_of_2(value: int) -> int:
    return 1 if value <= 1 else 1 << (int(value) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def target_programs(device: torch.device) -> int:
    """How many programs a streaming kernel should launch on this device."""
    if device.type == "cuda" and not interpreter_enabled():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return PROGRAMS_PER_SM * _sm_count(index)
    return INTERPRETER_PROGRAMS


def split_rows(tiles_per_row: int, rows: int, device: torch.device) -> tuple[int, int]:
    """(chunks per row, tiles per chunk): each row of tiles is cut into equal chunks so
    that rows * chunks is about :func:`target_programs`."""
    tiles_per_row = max(tiles_per_row, 1)
    chunks = min(max(cdiv(target_programs(device), max(rows, 1)), 1), tiles_per_row)
    tiles_per_chunk = cdiv(tiles_per_row, chunks)
    return cdiv(tiles_per_row, tiles_per_chunk), tiles_per_chunk


def class_tile(num_classes: int) -> tuple[int, int, int]:
    """(BLOCK_C, BLOCK_S, num_warps) for a [classes, pixels] tile."""
    block_c = next_power_of_2(num_classes)
    block_s = max(MIN_BLOCK_S, TILE_ELEMENTS // block_c)
    return block_c, block_s, 8 if block_c * block_s >= TILE_ELEMENTS else 4


def loadable(tensor: torch.Tensor) -> torch.Tensor:
    """Contiguous, with bool viewed as uint8 (no copy of the data in either dtype otherwise)."""
    tensor = tensor.contiguous()
    return tensor.view(torch.uint8) if tensor.dtype == torch.bool else tensor


def kernel_ignore_index(ignore_index: Optional[int], dtype: torch.dtype):
    """The ignore value the kernels compare with: None when no value of ``dtype`` equals it.

    Same convention as :func:`segfuse._validate.representable_ignore_index` (uint8 labels
    with ignore_index=-1 ignore nothing, rather than 255 as a wrapped comparison would).
    Float targets compare with the value rounded to their dtype.
    """
    if ignore_index is None or dtype == torch.bool:
        return None
    if dtype.is_floating_point:
        return float(torch.tensor(ignore_index, dtype=torch.float64).to(dtype))
    info = torch.iinfo(dtype)
    return int(ignore_index) if info.min <= ignore_index <= info.max else None


def vector_or_dummy(values: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """A per-class vector as contiguous float32 on ``like``'s device, or a 1-element dummy."""
    if values is None:
        return torch.empty(1, dtype=torch.float32, device=like.device)
    return values.to(device=like.device, dtype=torch.float32).reshape(-1).contiguous()
