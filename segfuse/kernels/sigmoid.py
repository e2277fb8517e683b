"""Fused sigmoid + overlap statistics + BCE + sigmoid focal for binary / multilabel targets.

Forward: one pass over logits (N, C, S) and a dense target of the same shape (float /
soft, integer or bool, each in its own dtype). Each program reduces a contiguous chunk
of one (image, channel) row into tp, ps, gs, the BCE and focal sums (float32) and the
valid count (int32) in a partial buffer; a second kernel sums the partials in a fixed
order into (N, C) or (C,) statistics and (N,) or 0-d sums. With p = sigmoid(x) and t the
target (0 at ignored entries)::

    tp = sum p t    ps = sum p    gs = sum t    bce = -(t log p + (1 - t) log(1 - p))
    focal = bce * m^gamma * (alpha t + (1 - alpha)(1 - t)),  m = p (1 - t) + (1 - p) t

(torchvision's sigmoid_focal_loss; m is clamped at the smallest normal float).

Backward: one pass writing, in the logits' dtype, at valid entries

    dL/dx = (g_tp t + g_ps) p (1 - p) + g_bce (p - t) + g_focal d(focal)/dx.
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
# BLOCK elements of one row per loop iteration.
ROW_BLOCK = 2048
PARTIAL_WIDTH = 5  # tp, ps, gs, bce, focal


@triton.jit
def _sigmoid_tile(logits_row, target_row, offsets, in_bounds, ignore_index, HAS_IGNORE: tl.constexpr):
    """(x, t, valid, p, 1 - p, log p, log(1 - p)) of one block, t zeroed where ignored."""
    x = tl.load(logits_row + offsets, mask=in_bounds, other=0.0).to(tl.float32)
    raw = tl.load(target_row + offsets, mask=in_bounds, other=0)
    valid = in_bounds
    if HAS_IGNORE:
        valid = valid & (raw != ignore_index)
    t = tl.where(valid, raw.to(tl.float32), 0.0)
    u = tl.exp(-tl.abs(x))
    inv = 1.0 / (1.0 + u)
    p = tl.where(x >= 0, inv, u * inv)
    not_p = tl.where(x >= 0, u * inv, inv)
    softplus = tl.log(1.0 + u)
    log_p = tl.minimum(x, 0.0) - softplus
    log_not_p = tl.minimum(-x, 0.0) - softplus
    return x, t, valid, p, not_p, log_p, log_not_p


@triton.jit
def _sigmoid_forward_kernel(
    logits_ptr, target_ptr, part_f_ptr, part_i_ptr,
    S, chunks, tiles_per_chunk, ignore_index, gamma, alpha,
    HAS_IGNORE: tl.constexpr, WANT_STATS: tl.constexpr, WANT_BCE: tl.constexpr, WANT_FOCAL: tl.constexpr,
    GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = (pid // chunks).to(tl.int64)
    chunk = pid % chunks
    logits_row = logits_ptr + row * S
    target_row = target_ptr + row * S
    tp_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    ps_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    gs_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    bce_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    focal_acc = tl.zeros((BLOCK,), dtype=tl.float32)
    count_acc = tl.zeros((BLOCK,), dtype=tl.int32)
    for i in range(tiles_per_chunk):
        offsets = (chunk * tiles_per_chunk + i) * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offsets < S
        x, t, valid, p, not_p, log_p, log_not_p = _sigmoid_tile(
            logits_row, target_row, offsets, in_bounds, ignore_index, HAS_IGNORE)
        valid_f = valid.to(tl.float32)
        count_acc += valid.to(tl.int32)
        if WANT_STATS:
            p_valid = p * valid_f
            tp_acc += p_valid * t
            ps_acc += p_valid
            gs_acc += t
        if WANT_BCE or WANT_FOCAL:
            bce = -(t * log_p + (1.0 - t) * log_not_p) * valid_f
            if WANT_BCE:
                bce_acc += bce
            if WANT_FOCAL:
                term = bce
                if not GAMMA_ZERO:
                    m = tl.maximum(p * (1.0 - t) + not_p * t, 1.1754943508222875e-38)
                    term = term * tl.exp2(gamma * tl.log2(m))
                if HAS_ALPHA:
                    term = term * (alpha * t + (1.0 - alpha) * (1.0 - t))
                focal_acc += term
    slot = pid.to(tl.int64)
    tl.store(part_f_ptr + slot * 5 + 0, tl.sum(tp_acc, 0))
    tl.store(part_f_ptr + slot * 5 + 1, tl.sum(ps_acc, 0))
    tl.store(part_f_ptr + slot * 5 + 2, tl.sum(gs_acc, 0))
    tl.store(part_f_ptr + slot * 5 + 3, tl.sum(bce_acc, 0))
    tl.store(part_f_ptr + slot * 5 + 4, tl.sum(focal_acc, 0))
    tl.store(part_i_ptr + slot, tl.sum(count_acc, 0))


@triton.jit
def _sigmoid_finish_kernel(
    part_f_ptr, part_i_ptr, tp_ptr, ps_ptr, gs_ptr, bce_ptr, focal_ptr, count_ptr,
    C, chunks, images_per_group,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Group g = images [g * images_per_group, (g + 1) * images_per_group): statistics per
    class (summed over the group's images and chunks) and the group's scalar sums."""
    group = tl.program_id(0)
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    tp = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    ps = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    gs = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    bce = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    focal = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    count = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.int64)
    for i in range(images_per_group):
        image = group.to(tl.int64) * images_per_group + i
        for start in range(0, chunks, BLOCK_K):
            ks = start + tl.arange(0, BLOCK_K)
            mask = class_mask[:, None] & (ks < chunks)[None, :]
            slots = (image * C + classes[:, None]) * chunks + ks[None, :]
            tp += tl.load(part_f_ptr + slots * 5 + 0, mask=mask, other=0.0)
            ps += tl.load(part_f_ptr + slots * 5 + 1, mask=mask, other=0.0)
            gs += tl.load(part_f_ptr + slots * 5 + 2, mask=mask, other=0.0)
            bce += tl.load(part_f_ptr + slots * 5 + 3, mask=mask, other=0.0)
            focal += tl.load(part_f_ptr + slots * 5 + 4, mask=mask, other=0.0)
            count += tl.load(part_i_ptr + slots, mask=mask, other=0).to(tl.int64)
    tl.store(tp_ptr + group * C + classes, tl.sum(tp, 1), mask=class_mask)
    tl.store(ps_ptr + group * C + classes, tl.sum(ps, 1), mask=class_mask)
    tl.store(gs_ptr + group * C + classes, tl.sum(gs, 1), mask=class_mask)
    tl.store(bce_ptr + group, tl.sum(tl.sum(bce, 1), 0))
    tl.store(focal_ptr + group, tl.sum(tl.sum(focal, 1), 0))
    tl.store(count_ptr + group, tl.sum(tl.sum(count, 1), 0).to(tl.float32))


@triton.jit
def _sigmoid_backward_kernel(
    logits_ptr, target_ptr, grad_tp_ptr, grad_ps_ptr, grad_bce_ptr, grad_focal_ptr, grad_ptr,
    C, S, chunks, tiles_per_chunk, ignore_index, gamma, alpha, stats_stride, scalar_stride,
    HAS_IGNORE: tl.constexpr, HAS_GRAD_TP: tl.constexpr, HAS_GRAD_PS: tl.constexpr, HAS_GRAD_BCE: tl.constexpr,
    HAS_GRAD_FOCAL: tl.constexpr, GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    row = pid // chunks
    chunk = pid % chunks
    n = row // C
    c = row % C
    logits_row = logits_ptr + row.to(tl.int64) * S
    target_row = target_ptr + row.to(tl.int64) * S
    grad_row = grad_ptr + row.to(tl.int64) * S
    grad_tp = 0.0
    grad_ps = 0.0
    grad_bce = 0.0
    grad_focal = 0.0
    if HAS_GRAD_TP:
        grad_tp = tl.load(grad_tp_ptr + n * stats_stride + c)
    if HAS_GRAD_PS:
        grad_ps = tl.load(grad_ps_ptr + n * stats_stride + c)
    if HAS_GRAD_BCE:
        grad_bce = tl.load(grad_bce_ptr + n * scalar_stride)
    if HAS_GRAD_FOCAL:
        grad_focal = tl.load(grad_focal_ptr + n * scalar_stride)
    for i in range(tiles_per_chunk):
        offsets = (chunk * tiles_per_chunk + i) * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offsets < S
        x, t, valid, p, not_p, log_p, log_not_p = _sigmoid_tile(
            logits_row, target_row, offsets, in_bounds, ignore_index, HAS_IGNORE)
        slope = p * (1.0 - p)
        grad = (grad_tp * t + grad_ps) * slope + grad_bce * (p - t)
        if HAS_GRAD_FOCAL:
            d_focal = p - t
            if not GAMMA_ZERO:
                bce = -(t * log_p + (1.0 - t) * log_not_p)
                m_raw = p * (1.0 - t) + not_p * t
                m = tl.maximum(m_raw, 1.1754943508222875e-38)
                log2_m = tl.log2(m)
                d_m = tl.where(m_raw >= 1.1754943508222875e-38, slope * (1.0 - 2.0 * t), 0.0)
                d_focal = d_focal * tl.exp2(gamma * log2_m) + bce * gamma * tl.exp2((gamma - 1.0) * log2_m) * d_m
            if HAS_ALPHA:
                d_focal = d_focal * (alpha * t + (1.0 - alpha) * (1.0 - t))
            grad += grad_focal * d_focal
        grad = tl.where(valid, grad, 0.0)
        tl.store(grad_row + offsets, grad.to(grad_ptr.dtype.element_ty), mask=in_bounds)


def _layout(logits: Tensor) -> tuple[int, ...]:
    """(N, C, S, chunks per row, tiles per chunk) for rows of S entries per (image, channel)."""
    n, c = logits.shape[:2]
    s = logits.numel() // max(n * c, 1)
    chunks, tiles_per_chunk = _launch.split_rows(_launch.cdiv(s, ROW_BLOCK), n * c, logits.device)
    return n, c, s, chunks, tiles_per_chunk


def launch_forward(
    logits: Tensor,
    target: Tensor,
    ignore_index: Optional[float],
    per_image: bool,
    want_stats: bool,
    want_bce: bool,
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> tuple[Tensor, ...]:
    """(tp, ps, gs, bce_sum, focal_sum, count), float32. ``ignore_index`` is compared with
    the target as stored (already cast to its dtype)."""
    logits, target = _launch.loadable(logits), _launch.loadable(target)
    n, c, s, chunks, tiles_per_chunk = _layout(logits)
    device = logits.device
    programs = n * c * chunks
    part_f = torch.empty((programs, PARTIAL_WIDTH), dtype=torch.float32, device=device)
    part_i = torch.empty((programs,), dtype=torch.int32, device=device)
    _sigmoid_forward_kernel[(programs,)](
        logits, target, part_f, part_i, s, chunks, tiles_per_chunk,
        0 if ignore_index is None else ignore_index, 0.0 if focal_gamma is None else float(focal_gamma),
        0.0 if focal_alpha is None else float(focal_alpha),
        HAS_IGNORE=ignore_index is not None, WANT_STATS=want_stats, WANT_BCE=want_bce,
        WANT_FOCAL=focal_gamma is not None, GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0,
        HAS_ALPHA=focal_alpha is not None, BLOCK=ROW_BLOCK, num_warps=8,
    )
    groups = n if per_image else 1
    stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
    tp, ps, gs = (torch.empty(stats_shape, dtype=torch.float32, device=device) for _ in range(3))
    bce, focal, count = (torch.empty(scalar_shape, dtype=torch.float32, device=device) for _ in range(3))
    block_c = _launch.next_power_of_2(c)
    block_k = max(1, min(_launch.next_power_of_2(chunks), _launch.TILE_ELEMENTS // block_c))
    _sigmoid_finish_kernel[(groups,)](
        part_f, part_i, tp, ps, gs, bce, focal, count, c, chunks, n // groups, BLOCK_C=block_c, BLOCK_K=block_k,
    )
    return tp, ps, gs, bce, focal, count


def launch_backward(
    logits: Tensor,
    target: Tensor,
    grad_tp: Optional[Tensor],
    grad_ps: Optional[Tensor],
    grad_bce: Optional[Tensor],
    grad_focal: Optional[Tensor],
    ignore_index: Optional[float],
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> Tensor:
    """dL/dlogits in the logits' dtype; grad_tp / grad_ps (C,) or (N, C), grad_bce /
    grad_focal 0-d or (N,); None = zero."""
    logits, target = _launch.loadable(logits), _launch.loadable(target)
    n, c, s, chunks, tiles_per_chunk = _layout(logits)
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)

    def flat(value):
        return None if value is None else value.to(torch.float32).reshape(-1).contiguous()

    grad_tp, grad_ps, grad_bce, grad_focal = flat(grad_tp), flat(grad_ps), flat(grad_bce), flat(grad_focal)
    stats = grad_tp if grad_tp is not None else grad_ps
    scalars = grad_bce if grad_bce is not None else grad_focal
    dummy = _launch.vector_or_dummy(None, logits)
    _sigmoid_backward_kernel[(n * c * chunks,)](
        logits, target, dummy if grad_tp is None else grad_tp, dummy if grad_ps is None else grad_ps,
        dummy if grad_bce is None else grad_bce, dummy if grad_focal is None else grad_focal, grad,
        c, s, chunks, tiles_per_chunk, 0 if ignore_index is None else ignore_index,
        0.0 if focal_gamma is None else float(focal_gamma), 0.0 if focal_alpha is None else float(focal_alpha),
        c if stats is not None and stats.numel() > c else 0, 1 if scalars is not None and scalars.numel() > 1 else 0,
        HAS_IGNORE=ignore_index is not None, HAS_GRAD_TP=grad_tp is not None, HAS_GRAD_PS=grad_ps is not None,
        HAS_GRAD_BCE=grad_bce is not None, HAS_GRAD_FOCAL=grad_focal is not None and focal_gamma is not None,
        GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0, HAS_ALPHA=focal_alpha is not None,
        BLOCK=ROW_BLOCK, num_warps=8,
    )
    return grad


# ---------------------------------------------------------------------------------------
# Custom ops: opaque to torch.compile, with autograd and fake (meta) implementations.


@torch.library.custom_op("segfuse::sigmoid_forward", mutates_args=())
def sigmoid_forward(
    logits: Tensor,
    target: Tensor,
    ignore_index: Optional[float],
    per_image: bool,
    want_stats: bool,
    want_bce: bool,
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(tp, ps, gs, bce_sum, focal_sum, count) in one pass; see :func:`launch_forward`."""
    return launch_forward(logits, target, ignore_index, per_image, want_stats, want_bce, focal_gamma, focal_alpha)


@sigmoid_forward.register_fake
def _(logits, target, ignore_index, per_image, want_stats, want_bce, focal_gamma, focal_alpha):
    n, c = logits.shape[:2]
    stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
    stats = [logits.new_empty(stats_shape, dtype=torch.float32) for _ in range(3)]
    return (*stats, *[logits.new_empty(scalar_shape, dtype=torch.float32) for _ in range(3)])


@torch.library.custom_op("segfuse::sigmoid_backward", mutates_args=())
def sigmoid_backward(
    logits: Tensor,
    target: Tensor,
    grad_tp: Optional[Tensor],
    grad_ps: Optional[Tensor],
    grad_bce: Optional[Tensor],
    grad_focal: Optional[Tensor],
    ignore_index: Optional[float],
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> Tensor:
    """dL/dlogits from the upstream gradients of tp, ps, bce_sum and focal_sum."""
    return launch_backward(logits, target, grad_tp, grad_ps, grad_bce, grad_focal, ignore_index, focal_gamma,
                           focal_alpha)


@sigmoid_backward.register_fake
def _(logits, target, grad_tp, grad_ps, grad_bce, grad_focal, ignore_index, focal_gamma, focal_alpha):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, target, ignore_index, per_image, want_stats, want_bce, focal_gamma, focal_alpha = inputs
    ctx.save_for_backward(logits, target)
    ctx.ignore_index, ctx.want_stats, ctx.want_bce = ignore_index, want_stats, want_bce
    ctx.focal_gamma, ctx.focal_alpha = focal_gamma, focal_alpha
    tp, ps, gs, bce, focal, count = output
    ctx.mark_non_differentiable(gs, count)


def _backward(ctx, grad_tp, grad_ps, grad_gs, grad_bce, grad_focal, grad_count):
    logits, target = ctx.saved_tensors
    grad_tp, grad_ps = (grad_tp, grad_ps) if ctx.want_stats else (None, None)
    grad_bce = grad_bce if ctx.want_bce else None
    grad_focal = grad_focal if ctx.focal_gamma is not None else None
    if all(g is None for g in (grad_tp, grad_ps, grad_bce, grad_focal)):
        return (None,) * 8
    grad = sigmoid_backward(logits, target, grad_tp, grad_ps, grad_bce, grad_focal, ctx.ignore_index,
                            ctx.focal_gamma, ctx.focal_alpha)
    return (grad,) + (None,) * 7


sigmoid_forward.register_autograd(_backward, setup_context=_setup_context)
