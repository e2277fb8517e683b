"""Confusion matrix from scores (argmax fused) or from a class map, exact int64 counts.

Rows are the truth, columns the prediction. Scores (N, C, S) are reduced to the prediction
inside the kernel (argmax over C, first maximum wins, NaN counts as the largest, as
torch.argmax), so the class map is never written to memory. Ignored pixels and values
outside [0, C) are dropped.

Counting:

* up to 64 classes (``DOT_MAX_CLASSES``), each program keeps a private C x C count in
  registers and adds one tile's counts as a matrix product of one-hot codes,
  ``onehot(truth)^T @ onehot(prediction)`` in int8 with int32 accumulation (tensor cores;
  exact, no atomics, so skewed labels cost nothing extra); a finish kernel sums the
  programs' counts in int64, in a fixed order;
* above that, programs add into int64 global counters with relaxed atomics, after
  counting in registers the pixels that share the program's first code (with 90 percent
  background that is most pixels), so same-address contention stays low.
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
DOT_MAX_CLASSES = 64
DOT_MIN_BLOCK = 16  # tl.dot needs every side >= 16
# Programs of the one-hot product path (each writes a BLOCK_C x BLOCK_C partial count).
DOT_MAX_PROGRAMS = 512
# Pixels per tile of a class map on the product path (one-hot tiles live in registers).
DOT_MAP_BLOCK_S = 128


@triton.jit
def _predicted_class(x, classes, BLOCK_C: tl.constexpr):
    """argmax over dim 0 of a [classes, pixels] tile: first maximum, a NaN beats everything
    (first NaN wins), as torch.argmax. Padding classes hold -inf."""
    nan_first = tl.min(tl.where(x != x, classes[:, None], BLOCK_C), 0)
    best = tl.max(x, 0)
    max_first = tl.min(tl.where(x == best[None, :], classes[:, None], BLOCK_C), 0)
    return tl.where(nan_first < BLOCK_C, nan_first, max_first)


@triton.jit
def _truth(target_row, pixels, in_bounds, stride_ts, ignore_index, C, HAS_IGNORE: tl.constexpr):
    """Labels as int32, -1 where ignored, outside [0, C) or out of bounds."""
    raw = tl.load(target_row + pixels * stride_ts, mask=in_bounds, other=0)
    valid = in_bounds
    if HAS_IGNORE:
        valid = valid & (raw != ignore_index)
    truth = raw.to(tl.int32)
    valid = valid & (truth >= 0) & (truth < C)
    return tl.where(valid, truth, -1)


@triton.jit
def _count(counts, truth, pred, classes, counts_ptr, first_code, hits, C,
           USE_DOT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """Add one tile of (truth, prediction) pairs (truth -1: skip).

    USE_DOT: counts (BLOCK_C, BLOCK_C) += onehot(truth)^T onehot(pred). Otherwise pairs
    equal to ``first_code`` (the program's first code, -1 until one is seen) are counted
    in ``hits`` and the rest go to the global int64 counters at ``counts_ptr``."""
    ok = (truth >= 0) & (pred >= 0) & (pred < C)
    if USE_DOT:
        truth_hot = (classes[:, None] == tl.where(ok, truth, -1)[None, :]).to(tl.int8)
        pred_hot = (pred[:, None] == classes[None, :]).to(tl.int8)
        counts += tl.dot(truth_hot, pred_hot, out_dtype=tl.int32)
    else:
        codes = tl.where(ok, truth * C + pred, -1)
        if first_code < 0:  # the program's first valid code (with skewed labels, the common one)
            position = tl.arange(0, BLOCK_S)
            first = tl.min(tl.where(ok, position, BLOCK_S), 0)
            first_code = tl.max(tl.where(position == first, codes, -1), 0)
        same = ok & (codes == first_code)
        hits += tl.sum(same.to(tl.int64), 0)
        tl.atomic_add(counts_ptr + tl.maximum(codes, 0), tl.full((BLOCK_S,), 1, tl.int64), mask=ok & ~same,
                      sem="relaxed")
    return counts, first_code, hits


@triton.jit
def _flush(counts, first_code, hits, counts_ptr, partial_ptr, pid, classes,
           USE_DOT: tl.constexpr, BLOCK_C: tl.constexpr):
    if USE_DOT:
        tl.store(partial_ptr + pid.to(tl.int64) * BLOCK_C * BLOCK_C + classes[:, None] * BLOCK_C + classes[None, :],
                 counts)
    else:
        if first_code >= 0:
            tl.atomic_add(counts_ptr + first_code, hits, sem="relaxed")


@triton.jit
def _confusion_scores_kernel(
    scores_ptr, target_ptr, counts_ptr, partial_ptr,
    S, stride_xn, stride_xc, stride_xs, stride_tn, stride_ts, chunks, tiles_per_chunk, ignore_index,
    C: tl.constexpr, HAS_IGNORE: tl.constexpr, USE_DOT: tl.constexpr, INT64: tl.constexpr,
    BLOCK_C: tl.constexpr, COUNT_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    scores_image = scores_ptr + n.to(tl.int64) * stride_xn
    target_row = target_ptr + n.to(tl.int64) * stride_tn
    counts = tl.zeros((COUNT_C, COUNT_C), dtype=tl.int32)
    first_code = -1
    hits = (pid * 0).to(tl.int64)
    for t in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = (chunk * tiles_per_chunk + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        pixels = tl.max_contiguous(tl.multiple_of(pixels, 1), BLOCK_S)
        in_bounds = pixels < S
        truth = _truth(target_row, pixels, in_bounds, stride_ts, ignore_index, C, HAS_IGNORE)
        if INT64:
            offsets = classes.to(tl.int64)[:, None] * stride_xc + pixels.to(tl.int64)[None, :] * stride_xs
        else:
            offsets = classes[:, None] * stride_xc + pixels[None, :] * stride_xs
        x = tl.load(scores_image + offsets, mask=class_mask[:, None] & in_bounds[None, :], other=0.0)
        x = tl.where(class_mask[:, None], x.to(tl.float32), float("-inf"))
        pred = _predicted_class(x, classes, BLOCK_C)
        counts, first_code, hits = _count(counts, truth, pred, classes, counts_ptr, first_code, hits, C, USE_DOT,
                                          BLOCK_C, BLOCK_S)
    _flush(counts, first_code, hits, counts_ptr, partial_ptr, pid, classes, USE_DOT, BLOCK_C)


@triton.jit
def _confusion_map_kernel(
    pred_ptr, target_ptr, counts_ptr, partial_ptr,
    S, stride_pn, stride_ps, stride_tn, stride_ts, chunks, tiles_per_chunk, ignore_index,
    C: tl.constexpr, HAS_IGNORE: tl.constexpr, USE_DOT: tl.constexpr,
    BLOCK_C: tl.constexpr, COUNT_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    pred_row = pred_ptr + n.to(tl.int64) * stride_pn
    target_row = target_ptr + n.to(tl.int64) * stride_tn
    counts = tl.zeros((COUNT_C, COUNT_C), dtype=tl.int32)
    first_code = -1
    hits = (pid * 0).to(tl.int64)
    for t in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = (chunk * tiles_per_chunk + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        truth = _truth(target_row, pixels, in_bounds, stride_ts, ignore_index, C, HAS_IGNORE)
        pred = tl.load(pred_row + pixels * stride_ps, mask=in_bounds, other=-1).to(tl.int32)
        counts, first_code, hits = _count(counts, truth, pred, classes, counts_ptr, first_code, hits, C, USE_DOT,
                                          BLOCK_C, BLOCK_S)
    _flush(counts, first_code, hits, counts_ptr, partial_ptr, pid, classes, USE_DOT, BLOCK_C)


@triton.jit
def _confusion_finish_kernel(partial_ptr, out_ptr, programs, C, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """Row r of the (C, C) int64 matrix: the sum over programs of their partial counts."""
    row = tl.program_id(0)
    columns = tl.arange(0, BLOCK_C)
    total = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.int64)
    for start in range(0, programs, BLOCK_P):
        ps = start + tl.arange(0, BLOCK_P)
        mask = (ps < programs)[:, None] & (columns < C)[None, :]
        total += tl.load(partial_ptr + ps.to(tl.int64)[:, None] * BLOCK_C * BLOCK_C + row * BLOCK_C + columns[None, :],
                         mask=mask, other=0).to(tl.int64)
    tl.store(out_ptr + row * C + columns, tl.sum(total, 0), mask=columns < C)


def _plan(num_classes: int, images: int, pixels: int, family: str):
    """(BLOCK_C, config, split, use_dot) of a launch."""
    use_dot = num_classes <= DOT_MAX_CLASSES
    block_c = _launch.next_power_of_2(num_classes)
    config = _launch.tile_config(family, 0 if family == "class_map" else block_c)
    if use_dot:
        block_c = max(block_c, DOT_MIN_BLOCK)
        block_s = DOT_MAP_BLOCK_S if family == "class_map" else config.block_s
        config = config._replace(block_s=max(block_s, DOT_MIN_BLOCK * 2))
    max_programs = DOT_MAX_PROGRAMS if use_dot and not _launch.interpreter_enabled() else None
    split = _launch.split_work(_launch.cdiv(pixels, config.block_s), images, max_programs)
    return block_c, config, split, use_dot


def launch_confusion(pred: Tensor, target: Tensor, num_classes: int, ignore_index: Optional[int]) -> Tensor:
    """int64 (C, C) counts; ``ignore_index`` already known to fit the target's dtype."""
    if pred.device != target.device:
        raise ValueError(f"pred and target must be on one device, got {pred.device} and {target.device}")
    c = num_classes
    device = target.device
    with _launch.device_guard(device):
        truth = _launch.pixel_layout(target)
        n = target.shape[0] if target.dim() else 1
        s = target.numel() // max(n, 1)
        if pred.dtype.is_floating_point:
            scores = _launch.class_layout(pred)
            family = "confusion" if _launch.softmax_family(scores.stride_c, c) == "softmax" else "softmax_channels_last"
            block_c, config, split, use_dot = _plan(c, n, s, family)
            args = (scores.tensor, truth.tensor)
            strides = (s, scores.stride_n, scores.stride_c, scores.stride_s, truth.stride_n, truth.stride_s)
            kernel, extra = _confusion_scores_kernel, dict(INT64=_launch.needs_int64(scores.span))
        else:
            predicted = _launch.pixel_layout(pred)
            block_c, config, split, use_dot = _plan(c, n, s, "class_map")
            args = (predicted.tensor, truth.tensor)
            strides = (s, predicted.stride_n, predicted.stride_s, truth.stride_n, truth.stride_s)
            kernel, extra = _confusion_map_kernel, {}
        if use_dot:
            counts = torch.empty(1, dtype=torch.int64, device=device)
            partial = _launch.new_empty((split.programs, block_c * block_c), torch.int32, device)
        else:
            counts = torch.zeros(c * c, dtype=torch.int64, device=device)
            partial = torch.empty(1, dtype=torch.int32, device=device)
        _launch.launch(
            kernel, (split.programs,), *args, counts, partial, *strides, split.chunks, split.tiles_per_chunk,
            0 if ignore_index is None else ignore_index, C=c, HAS_IGNORE=ignore_index is not None, USE_DOT=use_dot,
            BLOCK_C=block_c, COUNT_C=block_c if use_dot else DOT_MIN_BLOCK, BLOCK_S=config.block_s,
            NUM_STAGES=config.num_stages, num_warps=config.num_warps, **extra,
        )
        if not use_dot:
            return counts.view(c, c)
        out = _launch.new_empty((c, c), torch.int64, device)
        block_p = max(1, min(_launch.next_power_of_2(split.programs), _launch.TILE_ROWS_ELEMENTS // block_c))
        _launch.launch(_confusion_finish_kernel, (c,), partial, out, split.programs, c, BLOCK_C=block_c,
                       BLOCK_P=block_p)
        return out


@torch.library.custom_op("segfuse::confusion_matrix", mutates_args=())
def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: Optional[int]) -> Tensor:
    """int64 (C, C) confusion matrix of a class map or of the argmax of scores (N, C, *S)."""
    return launch_confusion(pred, target, num_classes, ignore_index)


@confusion_matrix.register_fake
def _(pred, target, num_classes, ignore_index):
    return target.new_empty((num_classes, num_classes), dtype=torch.int64)
