"""Dispatch between the fused Triton kernels (CUDA) and the torch reference path.

CUDA tensors take the kernels when Triton is importable; everything else, and every
call while ``SEGFUSE_DISABLE_KERNELS=1`` is set, takes the torch path in
:mod:`segfuse._stats`. The torch path is the reference the kernels are tested against.
"""

from __future__ import annotations

import os

import torch


def kernels_disabled() -> bool:
    return os.environ.get("SEGFUSE_DISABLE_KERNELS", "0") not in ("", "0")


def fused_multiclass_available(logits: torch.Tensor, *, squared: bool = False, from_logits: bool = True) -> bool:
    """Whether :func:`fused_multiclass_terms` serves this call (CUDA, Triton, supported options)."""
    return False


def fused_multiclass_terms(*args, **kwargs):
    raise RuntimeError("fused kernels are unavailable; check fused_multiclass_available() first")
