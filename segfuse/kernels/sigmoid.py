"""Fused sigmoid + overlap statistics + BCE + sigmoid focal for binary / multilabel targets.

Forward: one pass over logits (N, C, S) and a dense target of the same shape (float /
soft, integer or bool, each in its own dtype), both read through strides (contiguous and
channels-last alike, no copy). A program takes a [classes, pixels] tile run of one image:
up to 16 classes of a class block by an equal run of pixel tiles; it reduces them into
per-class tp, ps, gs, BCE and focal sums (float32) and valid counts (int32), one partial
row per class. A second kernel sums the partial rows in a fixed order into (N, C) or (C,)
statistics and (N,) or 0-d sums, looping over class blocks (any C, no register spill).
With p = sigmoid(x) and t the target (0 at ignored entries)::

    tp = sum p t    ps = sum p    gs = sum t    bce = -(t log p + (1 - t) log(1 - p))
    focal = bce * m^gamma * (alpha t + (1 - alpha)(1 - t)),  m = p (1 - t) + (1 - p) t

(torchvision's sigmoid_focal_loss; m is clamped at the smallest normal float).

Backward: one pass writing, in the logits' dtype and layout, at valid entries

    dL/dx = (g_tp t + g_ps) p (1 - p) + g_bce (p - t) + g_focal d(focal)/dx.

Fused losses (:func:`launch_loss_forward`): the finish kernel combines the sums into the
loss (overlap loss with its class reduction, BCE mean, focal mean) and stores the
derivatives per unit upstream gradient for a one-launch backward.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from segfuse.kernels import _launch
from segfuse.kernels._finish import overlap_terms, reduction_weights, safe_ratio

DEFINED_FOR_INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
# Classes of one program's tile; wider class counts take several class blocks.
MAX_BLOCK_C = 16
PARTIAL_WIDTH = 5  # tp, ps, gs, bce, focal
FINISH_BLOCK_C = 32


@triton.jit
def _sigmoid_tile(logits_image, target_image, classes, class_mask, pixels, in_bounds,
                  stride_xc, stride_xs, stride_tc, stride_ts, ignore_index, HAS_IGNORE: tl.constexpr,
                  INT64: tl.constexpr):
    """(t, valid, p, 1 - p, log p, log(1 - p)) of a [classes, pixels] tile, t 0 where ignored."""
    mask = class_mask[:, None] & in_bounds[None, :]
    if INT64:
        c64, s64 = classes.to(tl.int64), pixels.to(tl.int64)
        x_offsets = c64[:, None] * stride_xc + s64[None, :] * stride_xs
        t_offsets = c64[:, None] * stride_tc + s64[None, :] * stride_ts
    else:
        x_offsets = classes[:, None] * stride_xc + pixels[None, :] * stride_xs
        t_offsets = classes[:, None] * stride_tc + pixels[None, :] * stride_ts
    x = tl.load(logits_image + x_offsets, mask=mask, other=0.0).to(tl.float32)
    raw = tl.load(target_image + t_offsets, mask=mask, other=0)
    valid = mask
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
    return t, valid, p, not_p, log_p, log_not_p, x_offsets


@triton.jit
def _program_tile(pid, class_blocks, chunks, BLOCK_C: tl.constexpr):
    """(image, first class, chunk) of a program: programs run image-major, then class block."""
    n = pid // (class_blocks * chunks)
    rest = pid % (class_blocks * chunks)
    return n, (rest // chunks) * BLOCK_C, rest % chunks


@triton.jit
def _sigmoid_forward_kernel(
    logits_ptr, target_ptr, part_f_ptr, part_i_ptr,
    C, S, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts,
    class_blocks, chunks, tiles_per_chunk, ignore_index, gamma, alpha,
    HAS_IGNORE: tl.constexpr, WANT_STATS: tl.constexpr, WANT_BCE: tl.constexpr, WANT_FOCAL: tl.constexpr,
    GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, INT64: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    n, first_class, chunk = _program_tile(pid, class_blocks, chunks, BLOCK_C)
    classes = first_class + tl.arange(0, BLOCK_C)
    class_mask = classes < C
    logits_image = logits_ptr + n.to(tl.int64) * stride_xn
    target_image = target_ptr + n.to(tl.int64) * stride_tn
    tp_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    ps_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    gs_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    bce_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    focal_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    count_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.int32)
    for i in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = (chunk * tiles_per_chunk + i) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        t, valid, p, not_p, log_p, log_not_p, _ = _sigmoid_tile(
            logits_image, target_image, classes, class_mask, pixels, in_bounds, stride_xc, stride_xs, stride_tc,
            stride_ts, ignore_index, HAS_IGNORE, INT64)
        count_acc += valid.to(tl.int32)
        if WANT_STATS:
            p_valid = tl.where(valid, p, 0.0)
            tp_acc += p_valid * t
            ps_acc += p_valid
            gs_acc += t
        if WANT_BCE or WANT_FOCAL:
            bce = tl.where(valid, -(t * log_p + (1.0 - t) * log_not_p), 0.0)
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
    rows = ((n * chunks + chunk).to(tl.int64) * C + classes)
    tl.store(part_f_ptr + rows * 5 + 0, tl.sum(tp_acc, 1), mask=class_mask)
    tl.store(part_f_ptr + rows * 5 + 1, tl.sum(ps_acc, 1), mask=class_mask)
    tl.store(part_f_ptr + rows * 5 + 2, tl.sum(gs_acc, 1), mask=class_mask)
    tl.store(part_f_ptr + rows * 5 + 3, tl.sum(bce_acc, 1), mask=class_mask)
    tl.store(part_f_ptr + rows * 5 + 4, tl.sum(focal_acc, 1), mask=class_mask)
    tl.store(part_i_ptr + rows, tl.sum(count_acc, 1), mask=class_mask)


@triton.jit
def _class_block_sums(part_f_ptr, part_i_ptr, group, images_per_group, chunks, C, classes, class_mask,
                      BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """Per-class sums of one group's partial rows (its images' chunks) for a class block:
    (tp, ps, gs, bce, focal, count) each (BLOCK_C,), summed in a fixed order."""
    tp = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    ps = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    gs = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    bce = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    focal = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    count = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.int64)
    for i in range(images_per_group):
        image = tl.cast(group, tl.int64) * images_per_group + i
        for start in range(0, chunks, BLOCK_K):
            ks = start + tl.arange(0, BLOCK_K)
            mask = class_mask[:, None] & (ks < chunks)[None, :]
            rows = (image * chunks + ks[None, :]) * C + classes[:, None]
            tp += tl.load(part_f_ptr + rows * 5 + 0, mask=mask, other=0.0)
            ps += tl.load(part_f_ptr + rows * 5 + 1, mask=mask, other=0.0)
            gs += tl.load(part_f_ptr + rows * 5 + 2, mask=mask, other=0.0)
            bce += tl.load(part_f_ptr + rows * 5 + 3, mask=mask, other=0.0)
            focal += tl.load(part_f_ptr + rows * 5 + 4, mask=mask, other=0.0)
            count += tl.load(part_i_ptr + rows, mask=mask, other=0).to(tl.int64)
    return tl.sum(tp, 1), tl.sum(ps, 1), tl.sum(gs, 1), tl.sum(bce, 1), tl.sum(focal, 1), tl.sum(count, 1)


@triton.jit
def _sigmoid_finish_kernel(
    part_f_ptr, part_i_ptr, tp_ptr, ps_ptr, gs_ptr, bce_ptr, focal_ptr, count_ptr,
    C, chunks, images_per_group,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Group g = images [g * images_per_group, (g + 1) * images_per_group): statistics per
    class (summed over the group's images and chunks) and the group's scalar sums."""
    group = tl.program_id(0)
    bce_total = tl.zeros((BLOCK_C,), dtype=tl.float32)
    focal_total = tl.zeros((BLOCK_C,), dtype=tl.float32)
    count_total = tl.zeros((BLOCK_C,), dtype=tl.int64)
    for first in range(0, C, BLOCK_C):
        classes = first + tl.arange(0, BLOCK_C)
        class_mask = classes < C
        tp, ps, gs, bce, focal, count = _class_block_sums(part_f_ptr, part_i_ptr, group, images_per_group, chunks,
                                                          C, classes, class_mask, BLOCK_C, BLOCK_K)
        tl.store(tp_ptr + group * C + classes, tp, mask=class_mask)
        tl.store(ps_ptr + group * C + classes, ps, mask=class_mask)
        tl.store(gs_ptr + group * C + classes, gs, mask=class_mask)
        bce_total += bce
        focal_total += focal
        count_total += count
    tl.store(bce_ptr + group, tl.sum(bce_total, 0))
    tl.store(focal_ptr + group, tl.sum(focal_total, 0))
    tl.store(count_ptr + group, tl.sum(count_total, 0).to(tl.float32))


@triton.jit
def _sigmoid_loss_finish_kernel(
    part_f_ptr, part_i_ptr, class_weight_ptr, loss_ptr, coef_ptr, scale_ptr,
    C, chunks, groups, images_per_group, tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma,
    overlap_weight, bce_weight, focal_weight,
    WANT_STATS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr, INCLUDE_BACKGROUND: tl.constexpr,
    ABSENT_MODE: tl.constexpr, NORMALIZE_WEIGHTS: tl.constexpr, LOG_LOSS: tl.constexpr, GAMMA_MODE: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One program: loss = overlap_weight * mean_overlap + bce_weight * BCE mean + focal_weight
    * focal mean, and coef (2, groups, C) / scale (3,) as in the multiclass finish."""
    overlap_sum = tl.zeros((BLOCK_C,), dtype=tl.float32)
    mask_sum = tl.zeros((BLOCK_C,), dtype=tl.float32)
    bce_total = tl.zeros((BLOCK_C,), dtype=tl.float32)
    focal_total = tl.zeros((BLOCK_C,), dtype=tl.float32)
    count_total = tl.zeros((BLOCK_C,), dtype=tl.int64)
    for group in range(groups):
        for first in range(0, C, BLOCK_C):
            classes = first + tl.arange(0, BLOCK_C)
            class_mask = classes < C
            tp, ps, gs, bce, focal, count = _class_block_sums(part_f_ptr, part_i_ptr, group, images_per_group,
                                                              chunks, C, classes, class_mask, BLOCK_C, BLOCK_K)
            bce_total += bce
            focal_total += focal
            count_total += count
            if WANT_STATS:
                keep = class_mask
                if not INCLUDE_BACKGROUND:
                    keep = keep & (classes >= 1)
                if HAS_CLASS_WEIGHT:
                    weights = tl.load(class_weight_ptr + classes, mask=class_mask, other=0.0)
                else:
                    weights = tl.where(class_mask, 1.0, 0.0)
                mask, kept = reduction_weights(keep, weights, gs, ABSENT_MODE)
                loss_c, d_tp, d_ps = overlap_terms(tp, ps, gs, keep, tp_weight, fp_weight, fn_weight, smooth_nr,
                                                   smooth_dr, gamma, LOG_LOSS, GAMMA_MODE, ABSENT_MODE)
                overlap_sum += mask * loss_c
                mask_sum += mask if NORMALIZE_WEIGHTS else kept
                tl.store(coef_ptr + group * C + classes, mask * d_tp, mask=class_mask)
                tl.store(coef_ptr + (groups + group) * C + classes, mask * d_ps, mask=class_mask)
    overlap_den = tl.sum(mask_sum, 0)
    count = tl.sum(count_total, 0).to(tl.float32)
    overlap = safe_ratio(tl.sum(overlap_sum, 0), overlap_den)
    tl.store(loss_ptr, overlap_weight * overlap + bce_weight * safe_ratio(tl.sum(bce_total, 0), count)
             + focal_weight * safe_ratio(tl.sum(focal_total, 0), count))
    tl.store(scale_ptr, safe_ratio(overlap_weight, overlap_den))
    tl.store(scale_ptr + 1, safe_ratio(bce_weight, count))
    tl.store(scale_ptr + 2, safe_ratio(focal_weight, count))


@triton.jit
def _sigmoid_backward_kernel(
    logits_ptr, target_ptr, grad_tp_ptr, grad_ps_ptr, grad_bce_ptr, grad_focal_ptr, upstream_ptr, stats_scale_ptr,
    grad_ptr,
    C, S, stride_xn, stride_xc, stride_xs, stride_tn, stride_tc, stride_ts, stride_gn, stride_gc, stride_gs,
    class_blocks, chunks, tiles_per_chunk, ignore_index, gamma, alpha, stats_stride, scalar_stride,
    HAS_IGNORE: tl.constexpr, HAS_GRAD_TP: tl.constexpr, HAS_GRAD_PS: tl.constexpr, HAS_GRAD_BCE: tl.constexpr,
    HAS_GRAD_FOCAL: tl.constexpr, GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, HAS_UPSTREAM: tl.constexpr,
    INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    n, first_class, chunk = _program_tile(pid, class_blocks, chunks, BLOCK_C)
    classes = first_class + tl.arange(0, BLOCK_C)
    class_mask = classes < C
    logits_image = logits_ptr + n.to(tl.int64) * stride_xn
    target_image = target_ptr + n.to(tl.int64) * stride_tn
    grad_image = grad_ptr + n.to(tl.int64) * stride_gn
    upstream = 1.0
    stats_scale = 1.0
    if HAS_UPSTREAM:
        upstream = tl.load(upstream_ptr).to(tl.float32)
        stats_scale = upstream * tl.load(stats_scale_ptr)
    grad_tp = tl.zeros((BLOCK_C,), dtype=tl.float32)
    grad_ps = tl.zeros((BLOCK_C,), dtype=tl.float32)
    grad_bce = 0.0
    grad_focal = 0.0
    if HAS_GRAD_TP:
        grad_tp = tl.load(grad_tp_ptr + n * stats_stride + classes, mask=class_mask, other=0.0) * stats_scale
    if HAS_GRAD_PS:
        grad_ps = tl.load(grad_ps_ptr + n * stats_stride + classes, mask=class_mask, other=0.0) * stats_scale
    if HAS_GRAD_BCE:
        grad_bce = tl.load(grad_bce_ptr + n * scalar_stride) * upstream
    if HAS_GRAD_FOCAL:
        grad_focal = tl.load(grad_focal_ptr + n * scalar_stride) * upstream
    for i in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = (chunk * tiles_per_chunk + i) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        t, valid, p, not_p, log_p, log_not_p, _ = _sigmoid_tile(
            logits_image, target_image, classes, class_mask, pixels, in_bounds, stride_xc, stride_xs, stride_tc,
            stride_ts, ignore_index, HAS_IGNORE, INT64)
        slope = p * not_p
        grad = (grad_tp[:, None] * t + grad_ps[:, None]) * slope + grad_bce * (p - t)
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
        if INT64:
            offsets = classes.to(tl.int64)[:, None] * stride_gc + pixels.to(tl.int64)[None, :] * stride_gs
        else:
            offsets = classes[:, None] * stride_gc + pixels[None, :] * stride_gs
        tl.store(grad_image + offsets, grad.to(grad_ptr.dtype.element_ty),
                 mask=class_mask[:, None] & in_bounds[None, :])


# ---------------------------------------------------------------------------------------
# Launchers.


class _Layout:
    """Logits and target (N, C, *S) through strides, tiles and the work split."""

    def __init__(self, logits: Tensor, target: Tensor):
        self.x = _launch.class_layout(logits)
        target_layout = _launch.class_layout(target)
        target_tensor = target_layout.tensor
        if target_tensor.dtype == torch.bool:
            target_tensor = target_tensor.view(torch.uint8)
        self.t = target_layout._replace(tensor=target_tensor)
        self.n, self.c = logits.shape[:2]
        self.s = logits.numel() // max(self.n * self.c, 1)
        self.block_c = min(_launch.next_power_of_2(self.c), MAX_BLOCK_C)
        self.class_blocks = _launch.cdiv(self.c, self.block_c)
        self.config = _launch.tile_config("sigmoid", self.block_c)
        tiles = _launch.cdiv(self.s, self.config.block_s)
        self.split = _launch.split_work(tiles, self.n * self.class_blocks)
        self.programs = self.split.programs
        self.int64 = _launch.needs_int64(self.x.span, self.t.span)

    def stream_args(self) -> tuple:
        return (self.c, self.s, self.x.stride_n, self.x.stride_c, self.x.stride_s, self.t.stride_n,
                self.t.stride_c, self.t.stride_s)

    def split_args(self) -> tuple:
        return (self.class_blocks, self.split.chunks, self.split.tiles_per_chunk)

    def meta(self) -> dict:
        return dict(INT64=self.int64, BLOCK_C=self.block_c, BLOCK_S=self.config.block_s,
                    NUM_STAGES=self.config.num_stages, num_warps=self.config.num_warps)


def _check_devices(logits: Tensor, target: Tensor) -> None:
    if target.device != logits.device:
        raise ValueError(f"the kernels need the target on the logits' device {logits.device}, got {target.device}")


def _launch_partials(layout: _Layout, ignore_index, want_stats, want_bce, focal_gamma, focal_alpha):
    device = layout.x.tensor.device
    rows = layout.n * layout.split.chunks * layout.c
    part_f = _launch.new_empty((rows, PARTIAL_WIDTH), torch.float32, device)
    part_i = _launch.new_empty((rows,), torch.int32, device)
    _launch.launch(
        _sigmoid_forward_kernel, (layout.programs,),
        layout.x.tensor, layout.t.tensor, part_f, part_i, *layout.stream_args(), *layout.split_args(),
        0 if ignore_index is None else ignore_index, 0.0 if focal_gamma is None else float(focal_gamma),
        0.0 if focal_alpha is None else float(focal_alpha),
        HAS_IGNORE=ignore_index is not None, WANT_STATS=want_stats, WANT_BCE=want_bce,
        WANT_FOCAL=focal_gamma is not None, GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0,
        HAS_ALPHA=focal_alpha is not None, **layout.meta(),
    )
    return part_f, part_i


def _finish_block_k(chunks: int) -> int:
    return max(1, min(_launch.next_power_of_2(chunks), _launch.TILE_ROWS_ELEMENTS // FINISH_BLOCK_C // 4))


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
    _check_devices(logits, target)
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, target)
        part_f, part_i = _launch_partials(layout, ignore_index, want_stats, want_bce, focal_gamma, focal_alpha)
        n, c, device = layout.n, layout.c, logits.device
        groups = n if per_image else 1
        stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
        tp, ps, gs = (_launch.new_empty(stats_shape, torch.float32, device) for _ in range(3))
        bce, focal, count = (_launch.new_empty(scalar_shape, torch.float32, device) for _ in range(3))
        _launch.launch(
            _sigmoid_finish_kernel, (groups,),
            part_f, part_i, tp, ps, gs, bce, focal, count, c, layout.split.chunks, n // groups,
            BLOCK_C=FINISH_BLOCK_C, BLOCK_K=_finish_block_k(layout.split.chunks),
        )
    return tp, ps, gs, bce, focal, count


def launch_loss_forward(
    logits: Tensor,
    target: Tensor,
    overlap_class_weight: Optional[Tensor],
    ignore_index: Optional[float],
    per_image: bool,
    overlap: Optional[tuple],
    overlap_weight: float,
    bce_weight: float,
    focal_weight: float,
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss 0-d float32, coef (2, groups, C), scale (3,)); ``overlap`` as in
    :func:`segfuse.kernels.multiclass.launch_loss_forward`."""
    _check_devices(logits, target)
    want_stats, want_bce = overlap is not None, bce_weight != 0
    if focal_weight == 0:
        focal_gamma = None
    tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma, log_loss, include_background, absent, normalize = (
        overlap if overlap is not None else (1.0, 1.0, 1.0, 0.0, 0.0, 1.0, False, True, 0, True))
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, target)
        part_f, part_i = _launch_partials(layout, ignore_index, want_stats, want_bce, focal_gamma,
                                          focal_alpha if focal_gamma is not None else None)
        groups = layout.n if per_image else 1
        device = logits.device
        loss = _launch.new_empty((), torch.float32, device)
        coef = _launch.new_empty((2, groups, layout.c), torch.float32, device)
        scale = _launch.new_empty((3,), torch.float32, device)
        if not want_stats:
            coef.zero_()
        _launch.launch(
            _sigmoid_loss_finish_kernel, (1,),
            part_f, part_i, _launch.vector_or_dummy(overlap_class_weight, part_f), loss, coef, scale,
            layout.c, layout.split.chunks, groups, layout.n // groups, float(tp_weight), float(fp_weight),
            float(fn_weight), float(smooth_nr), float(smooth_dr), float(gamma), float(overlap_weight),
            float(bce_weight) if want_bce else 0.0, float(focal_weight) if focal_gamma is not None else 0.0,
            WANT_STATS=want_stats, HAS_CLASS_WEIGHT=overlap_class_weight is not None,
            INCLUDE_BACKGROUND=bool(include_background), ABSENT_MODE=int(absent), NORMALIZE_WEIGHTS=bool(normalize),
            LOG_LOSS=bool(log_loss),
            GAMMA_MODE=1 if gamma == 1 else 0 if gamma == 0 else 2, BLOCK_C=FINISH_BLOCK_C,
            BLOCK_K=_finish_block_k(layout.split.chunks),
        )
    return loss, coef, scale


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
    upstream: Optional[Tensor] = None,
    stats_scale: Optional[Tensor] = None,
) -> Tensor:
    """dL/dlogits in the logits' dtype and layout; grad_tp / grad_ps (C,) or (N, C),
    grad_bce / grad_focal 0-d or (N,); None = zero. ``upstream`` / ``stats_scale`` as in
    :func:`segfuse.kernels.multiclass.launch_backward`."""
    _check_devices(logits, target)
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, target)
        c = layout.c
        grad = _launch.poison(_launch.gradient_like(layout.x.tensor))
        gradient = _launch.class_layout(grad)

        def flat(value):
            return None if value is None else value.to(torch.float32).reshape(-1).contiguous()

        grad_tp, grad_ps, grad_bce, grad_focal = flat(grad_tp), flat(grad_ps), flat(grad_bce), flat(grad_focal)
        stats = grad_tp if grad_tp is not None else grad_ps
        scalars = grad_bce if grad_bce is not None else grad_focal
        dummy = _launch.vector_or_dummy(None, grad)
        _launch.launch(
            _sigmoid_backward_kernel, (layout.programs,),
            layout.x.tensor, layout.t.tensor, dummy if grad_tp is None else grad_tp,
            dummy if grad_ps is None else grad_ps, dummy if grad_bce is None else grad_bce,
            dummy if grad_focal is None else grad_focal, dummy if upstream is None else upstream.reshape(()),
            dummy if stats_scale is None else stats_scale, grad,
            *layout.stream_args(), gradient.stride_n, gradient.stride_c, gradient.stride_s, *layout.split_args(),
            0 if ignore_index is None else ignore_index, 0.0 if focal_gamma is None else float(focal_gamma),
            0.0 if focal_alpha is None else float(focal_alpha),
            c if stats is not None and stats.numel() > c else 0,
            1 if scalars is not None and scalars.numel() > 1 else 0,
            HAS_IGNORE=ignore_index is not None, HAS_GRAD_TP=grad_tp is not None, HAS_GRAD_PS=grad_ps is not None,
            HAS_GRAD_BCE=grad_bce is not None, HAS_GRAD_FOCAL=grad_focal is not None and focal_gamma is not None,
            GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0, HAS_ALPHA=focal_alpha is not None,
            HAS_UPSTREAM=upstream is not None, **layout.meta(),
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
    return _launch.gradient_like(logits)


def _setup_context(ctx, inputs, output):
    logits, target, ignore_index, per_image, want_stats, want_bce, focal_gamma, focal_alpha = inputs
    ctx.save_for_backward(logits, target)
    ctx.ignore_index, ctx.want_stats, ctx.want_bce = ignore_index, want_stats, want_bce
    ctx.focal_gamma, ctx.focal_alpha = focal_gamma, focal_alpha
    tp, ps, gs, bce, focal, count = output
    ctx.mark_non_differentiable(gs, count)
    ctx.set_materialize_grads(False)  # no zero-filled gradients (launches) for unused outputs


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


@torch.library.custom_op("segfuse::sigmoid_loss", mutates_args=())
def sigmoid_loss(
    logits: Tensor,
    target: Tensor,
    overlap_class_weight: Optional[Tensor],
    ignore_index: Optional[float],
    per_image: bool,
    has_overlap: bool,
    tp_weight: float,
    fp_weight: float,
    fn_weight: float,
    smooth_nr: float,
    smooth_dr: float,
    overlap_gamma: float,
    log_loss: bool,
    include_background: bool,
    absent_mode: int,
    normalize_weights: bool,
    overlap_weight: float,
    bce_weight: float,
    focal_weight: float,
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, saved derivatives, saved scales): overlap + BCE + focal in two launches."""
    overlap = ((tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, overlap_gamma, log_loss, include_background,
                absent_mode, normalize_weights) if has_overlap else None)
    return launch_loss_forward(logits, target, overlap_class_weight, ignore_index, per_image, overlap,
                               overlap_weight, bce_weight, focal_weight, focal_gamma, focal_alpha)


@sigmoid_loss.register_fake
def _(logits, target, overlap_class_weight, ignore_index, per_image, has_overlap, tp_weight, fp_weight, fn_weight,
      smooth_nr, smooth_dr, overlap_gamma, log_loss, include_background, absent_mode, normalize_weights,
      overlap_weight, bce_weight, focal_weight, focal_gamma, focal_alpha):
    groups = logits.shape[0] if per_image else 1
    return (logits.new_empty((), dtype=torch.float32),
            logits.new_empty((2, groups, logits.shape[1]), dtype=torch.float32),
            logits.new_empty((3,), dtype=torch.float32))


@torch.library.custom_op("segfuse::sigmoid_loss_backward", mutates_args=())
def sigmoid_loss_backward(
    logits: Tensor,
    target: Tensor,
    coef: Tensor,
    scale: Tensor,
    upstream: Tensor,
    ignore_index: Optional[float],
    has_overlap: bool,
    want_bce: bool,
    focal_gamma: Optional[float],
    focal_alpha: Optional[float],
) -> Tensor:
    """dL/dlogits of :func:`sigmoid_loss` for an upstream gradient (0-d), one launch."""
    return launch_backward(logits, target, coef[0] if has_overlap else None, coef[1] if has_overlap else None,
                           scale[1] if want_bce else None, scale[2] if focal_gamma is not None else None,
                           ignore_index, focal_gamma, focal_alpha if focal_gamma is not None else None,
                           upstream=upstream, stats_scale=scale[0])


@sigmoid_loss_backward.register_fake
def _(logits, target, coef, scale, upstream, ignore_index, has_overlap, want_bce, focal_gamma, focal_alpha):
    return _launch.gradient_like(logits)


def _loss_setup_context(ctx, inputs, output):
    (logits, target, overlap_class_weight, ignore_index, per_image, has_overlap, *_, bce_weight, focal_weight,
     focal_gamma, focal_alpha) = inputs
    loss, coef, scale = output
    ctx.save_for_backward(logits, target, coef, scale)
    ctx.ignore_index, ctx.has_overlap, ctx.want_bce = ignore_index, has_overlap, bce_weight != 0
    ctx.focal_gamma = focal_gamma if focal_weight != 0 else None
    ctx.focal_alpha = focal_alpha
    ctx.mark_non_differentiable(coef, scale)
    ctx.set_materialize_grads(False)  # no zero-filled gradients (launches) for unused outputs


def _loss_backward(ctx, grad_loss, grad_coef, grad_scale):
    logits, target, coef, scale = ctx.saved_tensors
    if grad_loss is None:
        return (None,) * 21
    grad = sigmoid_loss_backward(logits, target, coef, scale, grad_loss, ctx.ignore_index, ctx.has_overlap,
                                 ctx.want_bce, ctx.focal_gamma, ctx.focal_alpha)
    return (grad,) + (None,) * 20


sigmoid_loss.register_autograd(_loss_backward, setup_context=_loss_setup_context)
