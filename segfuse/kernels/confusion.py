"""Confusion matrix from scores (argmax fused) or from a class map, exact int64 counts.

Each pixel becomes the code ``target * C + pred`` (rows truth, columns prediction);
ignored pixels and labels outside [0, C) go to one spare code ``C * C`` that is dropped.
Scores (N, C, S) are reduced to the prediction inside the kernel (argmax over C, first
maximum wins, as torch.argmax), so the class map is never written to memory.

Counting: for C * C + 1 <= HISTOGRAM_BINS each program keeps a private histogram
(``tl.histogram``) over its chunk and writes it as an int32 partial row, summed in int64
afterwards (deterministic); above that, programs add into int64 global counters with
atomics (integer adds: exact in any order).
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from segfuse.kernels import _launch

DEFINED_FOR_INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
HISTOGRAM_BINS = 4096
MAP_BLOCK = 2048


@triton.jit
def _count_codes(counts, codes, counts_ptr, USE_HISTOGRAM: tl.constexpr, NUM_BINS: tl.constexpr, spare, mask):
    if USE_HISTOGRAM:
        counts += tl.histogram(codes, NUM_BINS)
    else:
        tl.atomic_add(counts_ptr + codes, 1, mask=mask & (codes != spare))
    return counts


@triton.jit
def _code(truth, pred, valid, C):
    ok = valid & (truth >= 0) & (truth < C) & (pred >= 0) & (pred < C)
    return tl.where(ok, truth * C + pred, C * C), ok


@triton.jit
def _confusion_scores_kernel(
    scores_ptr, target_ptr, out_ptr, C, S, chunks, tiles_per_chunk, ignore_index,
    HAS_IGNORE: tl.constexpr, USE_HISTOGRAM: tl.constexpr, NUM_BINS: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0)
    image = (pid // chunks).to(tl.int64)
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    rows = scores_ptr + image * C * S + classes.to(tl.int64)[:, None] * S
    target_row = target_ptr + image * S
    counts = tl.zeros((NUM_BINS,), dtype=tl.int32)
    for t in range(tiles_per_chunk):
        pixels = (chunk * tiles_per_chunk + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        raw = tl.load(target_row + pixels, mask=in_bounds, other=0)
        valid = in_bounds
        if HAS_IGNORE:
            valid = valid & (raw != ignore_index)
        x = tl.load(rows + pixels[None, :], mask=class_mask[:, None] & in_bounds[None, :], other=0.0)
        x = tl.where(class_mask[:, None], x.to(tl.float32), float("-inf"))
        best = tl.max(x, 0)
        pred = tl.min(tl.where(x == best[None, :], classes[:, None], BLOCK_C), 0)
        codes, ok = _code(raw.to(tl.int32), pred, valid, C)
        counts = _count_codes(counts, codes, out_ptr, USE_HISTOGRAM, NUM_BINS, C * C, ok)
    if USE_HISTOGRAM:
        tl.store(out_ptr + pid.to(tl.int64) * NUM_BINS + tl.arange(0, NUM_BINS), counts)


@triton.jit
def _confusion_map_kernel(
    pred_ptr, target_ptr, out_ptr, C, total, tiles_per_program, ignore_index,
    HAS_IGNORE: tl.constexpr, USE_HISTOGRAM: tl.constexpr, NUM_BINS: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    counts = tl.zeros((NUM_BINS,), dtype=tl.int32)
    for t in range(tiles_per_program):
        offsets = (pid.to(tl.int64) * tiles_per_program + t) * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offsets < total
        raw = tl.load(target_ptr + offsets, mask=in_bounds, other=0)
        valid = in_bounds
        if HAS_IGNORE:
            valid = valid & (raw != ignore_index)
        pred = tl.load(pred_ptr + offsets, mask=in_bounds, other=0)
        codes, ok = _code(raw.to(tl.int32), pred.to(tl.int32), valid, C)
        counts = _count_codes(counts, codes, out_ptr, USE_HISTOGRAM, NUM_BINS, C * C, ok)
    if USE_HISTOGRAM:
        tl.store(out_ptr + pid.to(tl.int64) * NUM_BINS + tl.arange(0, NUM_BINS), counts)


def launch_confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: Optional[int]) -> Tensor:
    """int64 (C, C) counts; ``ignore_index`` already known to fit the target's dtype."""
    pred, target = _launch.loadable(pred), _launch.loadable(target)
    c = num_classes
    device = target.device
    use_histogram = c * c + 1 <= HISTOGRAM_BINS
    num_bins = _launch.next_power_of_2(c * c + 1) if use_histogram else 1
    ignore = 0 if ignore_index is None else ignore_index
    if pred.dtype.is_floating_point:
        n = pred.shape[0]
        s = pred.numel() // max(n * c, 1)
        block_c, block_s, num_warps = _launch.class_tile(c)
        chunks, tiles_per_chunk = _launch.split_rows(_launch.cdiv(s, block_s), n, device)
        programs = n * chunks
        out = _counters(programs, num_bins, c, use_histogram, device)
        _confusion_scores_kernel[(programs,)](
            pred, target, out, c, s, chunks, tiles_per_chunk, ignore, HAS_IGNORE=ignore_index is not None,
            USE_HISTOGRAM=use_histogram, NUM_BINS=num_bins, BLOCK_C=block_c, BLOCK_S=block_s, num_warps=num_warps,
        )
    else:
        total = target.numel()
        programs, tiles_per_program = _launch.split_rows(_launch.cdiv(total, MAP_BLOCK), 1, device)
        out = _counters(programs, num_bins, c, use_histogram, device)
        _confusion_map_kernel[(programs,)](
            pred, target, out, c, total, tiles_per_program, ignore, HAS_IGNORE=ignore_index is not None,
            USE_HISTOGRAM=use_histogram, NUM_BINS=num_bins, BLOCK=MAP_BLOCK, num_warps=8,
        )
    if use_histogram:
        out = out.sum(0, dtype=torch.int64)[: c * c]
    return out[: c * c].reshape(c, c)


def _counters(programs: int, num_bins: int, c: int, use_histogram: bool, device) -> Tensor:
    if use_histogram:
        return torch.empty((programs, num_bins), dtype=torch.int32, device=device)
    return torch.zeros(c * c, dtype=torch.int64, device=device)


@torch.library.custom_op("segfuse::confusion_matrix", mutates_args=())
def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: Optional[int]) -> Tensor:
    """int64 (C, C) confusion matrix of a class map or of the argmax of scores (N, C, *S)."""
    return launch_confusion(pred, target, num_classes, ignore_index)


@confusion_matrix.register_fake
def _(pred, target, num_classes, ignore_index):
    return target.new_empty((num_classes, num_classes), dtype=torch.int64)
