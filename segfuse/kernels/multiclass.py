"""Fused softmax + overlap statistics + cross-entropy + focal for a class-map target.

Forward: one pass over the logits (N, C, S) in their own dtype and layout (contiguous or
channels-last, read through strides) and the labels (N, S) in their own integer dtype.
Each program reduces an equal run of pixel tiles of one image into per-class tp, ps
(float32), gs, the valid count (int32) and the CE / focal sums, and writes them as one
partial row; a second small kernel sums the partial rows per image (``per_image``) or over
the batch in a fixed order (deterministic; counts exact in int64). Nothing of size
N x C x S is allocated. The work split depends on the shape alone (see ``_launch``), so
results are bit-identical across runs and GPU models.

Tiles: for up to 32 classes each thread holds one pixel and all of its classes, so the
softmax maximum and sum, the CE term and the statistics need no shuffles and no barriers;
the class count is a compile-time constant, so padding classes cost nothing. CE reads the
logit at the label (an L1 hit) instead of reducing over classes.

Backward: one pass that recomputes the softmax and writes, in the logits' dtype and layout,

    dL/dx_c = p_c (g_c - sum_k p_k g_k) + k_y (p_c - [y == c])    at valid pixels, else 0

with g_c = dL/dtp_c [y == c] + dL/dps_c (the overlap part, through p) and
k_y = dL/dce w_y - dL/dfocal alpha_y d(focal)/d(log p_y).

Fused losses (:func:`launch_loss_forward`): the finish kernel also combines the sums into
the loss itself (overlap loss of Dice / F-beta / Tversky / Jaccard with its class
reduction, CE's weighted mean, focal's mean) and stores dL/dtp, dL/dps, dL/dce and
dL/dfocal per unit upstream gradient, so DiceCE forward + backward is three launches.

Registered as custom ops ``segfuse::multiclass_forward`` / ``multiclass_backward`` /
``multiclass_loss`` / ``multiclass_loss_backward`` (with autograd and fake kernels), so
the losses trace under torch.compile.
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
# Literals in the kernels: log2(e) = 1.4426950408889634, ln(2) = 0.6931471805599453, the
# smallest normal float32 = 1.1754943508222875e-38 (exp and log run as exp2 / log2).


@triton.jit
def _pixel_tile(tile, BLOCK_S: tl.constexpr):
    """Pixel indices of one tile, with the hint that keeps one pixel per thread (no vector
    loads across pixels, so that every class of a pixel lives in one thread)."""
    pixels = tile * BLOCK_S + tl.arange(0, BLOCK_S)
    return tl.max_contiguous(tl.multiple_of(pixels, 1), BLOCK_S)


@triton.jit
def _labels_tile(labels_row, pixels, in_bounds, stride_ys, ignore_index, HAS_IGNORE: tl.constexpr):
    """(labels as int32 with -1 at invalid pixels, validity) of one tile."""
    raw = tl.load(labels_row + pixels * stride_ys, mask=in_bounds, other=0)
    valid = in_bounds
    if HAS_IGNORE:
        valid = valid & (raw != ignore_index)
    return tl.where(valid, raw.to(tl.int32), -1), valid


@triton.jit
def _class_offsets(classes, pixels, stride_c, stride_s, INT64: tl.constexpr):
    if INT64:
        return classes.to(tl.int64)[:, None] * stride_c + pixels.to(tl.int64)[None, :] * stride_s
    return classes[:, None] * stride_c + pixels[None, :] * stride_s


@triton.jit
def _label_offsets(labels, pixels, stride_c, stride_s, INT64: tl.constexpr):
    safe = tl.maximum(labels, 0)
    if INT64:
        return safe.to(tl.int64) * stride_c + pixels.to(tl.int64) * stride_s
    return safe * stride_c + pixels * stride_s


@triton.jit
def _softmax_tile(logits_image, offsets, class_mask, in_bounds):
    """(x, log2-domain shifted logits, exp, sum of exp, max * log2(e)) of a tile; padding
    classes give exp 0 (free: the class count is a compile-time constant)."""
    x = tl.load(logits_image + offsets, mask=class_mask[:, None] & in_bounds[None, :], other=0.0)
    x = tl.where(class_mask[:, None], x.to(tl.float32), float("-inf"))
    max2 = tl.max(x, 0) * 1.4426950408889634
    shifted2 = x * 1.4426950408889634 - max2[None, :]
    e = tl.where(class_mask[:, None], tl.exp2(shifted2), 0.0)
    return e, tl.sum(e, 0), max2


@triton.jit
def _log_p_label(logits_image, label_offsets, valid, max2, z):
    """log p_y from the logit at the label (read again: an L1 hit), no class reduction."""
    x_y = tl.load(logits_image + label_offsets, mask=valid, other=0.0).to(tl.float32)
    return (x_y * 1.4426950408889634 - max2 - tl.log2(z)) * 0.6931471805599453, x_y


@triton.jit
def _focal_factors(rest, inv_z, gamma):
    """(q^gamma, q^(gamma - 1)) with q = 1 - p_y = sum_{c != y} e_c / z, clamped at tiny."""
    q = tl.maximum(rest * inv_z, 1.1754943508222875e-38)
    log2_q = tl.log2(q)
    return tl.exp2(gamma * log2_q), tl.exp2((gamma - 1.0) * log2_q)


@triton.jit
def _multiclass_forward_kernel(
    logits_ptr, labels_ptr, ce_weight_ptr, alpha_ptr, part_f_ptr, part_i_ptr,
    S, stride_xn, stride_xc, stride_xs, stride_yn, stride_ys, chunks, tiles_per_chunk, ignore_index, gamma,
    C: tl.constexpr, HAS_IGNORE: tl.constexpr, WANT_STATS: tl.constexpr, WANT_CE: tl.constexpr,
    HAS_CE_WEIGHT: tl.constexpr, WANT_FOCAL: tl.constexpr, GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr,
    INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    logits_image = logits_ptr + n.to(tl.int64) * stride_xn
    labels_row = labels_ptr + n.to(tl.int64) * stride_yn

    tp_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    ps_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    gs_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.int32)
    ce_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    ce_weight_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    focal_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    count_acc = tl.zeros((BLOCK_S,), dtype=tl.int32)
    for t in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = _pixel_tile(chunk * tiles_per_chunk + t, BLOCK_S)
        in_bounds = pixels < S
        y, valid = _labels_tile(labels_row, pixels, in_bounds, stride_ys, ignore_index, HAS_IGNORE)
        e, z, max2 = _softmax_tile(logits_image, _class_offsets(classes, pixels, stride_xc, stride_xs, INT64),
                                   class_mask, in_bounds)
        inv_z = 1.0 / z
        count_acc += valid.to(tl.int32)
        is_label = classes[:, None] == y[None, :]
        if WANT_STATS:
            p = e * tl.where(valid, inv_z, 0.0)[None, :]
            tp_acc += tl.where(is_label, p, 0.0)
            ps_acc += p
            gs_acc += is_label.to(tl.int32)
        if WANT_CE or WANT_FOCAL:
            log_p_y, _ = _log_p_label(logits_image, _label_offsets(y, pixels, stride_xc, stride_xs, INT64), valid,
                                      max2, z)
            if WANT_CE:
                if HAS_CE_WEIGHT:
                    w_y = tl.load(ce_weight_ptr + tl.maximum(y, 0), mask=valid, other=0.0)
                else:
                    w_y = valid.to(tl.float32)
                ce_acc += tl.where(valid, -log_p_y * w_y, 0.0)
                ce_weight_acc += w_y
            if WANT_FOCAL:
                if GAMMA_ZERO:
                    term = -log_p_y
                else:
                    q_gamma, _ = _focal_factors(tl.sum(tl.where(is_label, 0.0, e), 0), inv_z, gamma)
                    term = -q_gamma * log_p_y
                if HAS_ALPHA:
                    term = term * tl.load(alpha_ptr + tl.maximum(y, 0), mask=valid, other=0.0)
                focal_acc += tl.where(valid, term, 0.0)

    slot = pid.to(tl.int64)
    width_f = 2 * C + 3
    width_i = C + 1
    if WANT_STATS:
        tl.store(part_f_ptr + slot * width_f + classes, tl.sum(tl.where(class_mask[:, None], tp_acc, 0.0), 1),
                 mask=class_mask)
        tl.store(part_f_ptr + slot * width_f + C + classes, tl.sum(tl.where(class_mask[:, None], ps_acc, 0.0), 1),
                 mask=class_mask)
        tl.store(part_i_ptr + slot * width_i + classes, tl.sum(tl.where(class_mask[:, None], gs_acc, 0), 1),
                 mask=class_mask)
    tl.store(part_f_ptr + slot * width_f + 2 * C, tl.sum(ce_acc, 0))
    tl.store(part_f_ptr + slot * width_f + 2 * C + 1, tl.sum(ce_weight_acc, 0))
    tl.store(part_f_ptr + slot * width_f + 2 * C + 2, tl.sum(focal_acc, 0))
    tl.store(part_i_ptr + slot * width_i + C, tl.sum(count_acc, 0))


@triton.jit
def _group_sums(part_f_ptr, part_i_ptr, group, rows_per_group, classes, class_mask, C,
                WANT_STATS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr):
    """Per-class tp, ps, gs (int64) and the CE / weight / focal / count sums of one group's
    partial rows, summed in a fixed order."""
    width_f = 2 * C + 3
    width_i = C + 1
    tp = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    ps = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)
    gs = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.int64)
    ce = tl.zeros((BLOCK_R,), dtype=tl.float32)
    ce_weight = tl.zeros((BLOCK_R,), dtype=tl.float32)
    focal = tl.zeros((BLOCK_R,), dtype=tl.float32)
    count = tl.zeros((BLOCK_R,), dtype=tl.int64)
    for start in range(0, rows_per_group, BLOCK_R):
        offsets = start + tl.arange(0, BLOCK_R)
        row_mask = offsets < rows_per_group
        rows = tl.cast(group, tl.int64) * rows_per_group + offsets
        if WANT_STATS:
            mask = row_mask[:, None] & class_mask[None, :]
            tp += tl.load(part_f_ptr + rows[:, None] * width_f + classes[None, :], mask=mask, other=0.0)
            ps += tl.load(part_f_ptr + rows[:, None] * width_f + C + classes[None, :], mask=mask, other=0.0)
            gs += tl.load(part_i_ptr + rows[:, None] * width_i + classes[None, :], mask=mask, other=0).to(tl.int64)
        ce += tl.load(part_f_ptr + rows * width_f + 2 * C, mask=row_mask, other=0.0)
        ce_weight += tl.load(part_f_ptr + rows * width_f + 2 * C + 1, mask=row_mask, other=0.0)
        focal += tl.load(part_f_ptr + rows * width_f + 2 * C + 2, mask=row_mask, other=0.0)
        count += tl.load(part_i_ptr + rows * width_i + C, mask=row_mask, other=0).to(tl.int64)
    return (tl.sum(tp, 0), tl.sum(ps, 0), tl.sum(gs, 0), tl.sum(ce, 0), tl.sum(ce_weight, 0), tl.sum(focal, 0),
            tl.sum(count, 0))


@triton.jit
def _multiclass_finish_kernel(
    part_f_ptr, part_i_ptr, tp_ptr, ps_ptr, gs_ptr, ce_ptr, ce_weight_ptr, focal_ptr, count_ptr,
    C, rows_per_group,
    WANT_STATS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """Sum the partial rows of one group (an image, or the whole batch) in a fixed order.
    Every output is written (zeros for the statistics when they were not asked for)."""
    group = tl.program_id(0)
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    tp, ps, gs, ce, ce_weight, focal, count = _group_sums(part_f_ptr, part_i_ptr, group, rows_per_group, classes,
                                                          class_mask, C, WANT_STATS, BLOCK_C, BLOCK_R)
    tl.store(tp_ptr + group * C + classes, tp, mask=class_mask)
    tl.store(ps_ptr + group * C + classes, ps, mask=class_mask)
    tl.store(gs_ptr + group * C + classes, gs.to(tl.float32), mask=class_mask)
    tl.store(ce_ptr + group, ce)
    tl.store(ce_weight_ptr + group, ce_weight)
    tl.store(focal_ptr + group, focal)
    tl.store(count_ptr + group, count.to(tl.float32))


@triton.jit
def _multiclass_loss_finish_kernel(
    part_f_ptr, part_i_ptr, class_weight_ptr, loss_ptr, coef_ptr, scale_ptr,
    C, groups, rows_per_group, tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma,
    overlap_weight, ce_weight, focal_weight,
    WANT_STATS: tl.constexpr, HAS_CLASS_WEIGHT: tl.constexpr, INCLUDE_BACKGROUND: tl.constexpr,
    ABSENT_MODE: tl.constexpr, NORMALIZE_WEIGHTS: tl.constexpr, LOG_LOSS: tl.constexpr, GAMMA_MODE: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """One program: the loss from every group's partial rows, and its derivatives.

    loss = overlap_weight * mean_overlap + ce_weight * CE + focal_weight * focal, where
    mean_overlap = sum w_c m_c l_c / sum w_c m_c (or / sum m_c without NORMALIZE_WEIGHTS)
    over kept classes (and groups), CE = sum ce / sum weights and focal = sum focal /
    count, each 0 when its denominator is 0.
    coef (2, groups, C) holds dL/dtp and dL/dps per unit of scale[0]; scale = (overlap
    scale, dL/dce_sum, dL/dfocal_sum), all per unit upstream gradient.
    """
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    keep = class_mask
    if not INCLUDE_BACKGROUND:
        keep = keep & (classes >= 1)
    if HAS_CLASS_WEIGHT:
        weights = tl.load(class_weight_ptr + classes, mask=class_mask, other=0.0)
    else:
        weights = tl.where(class_mask, 1.0, 0.0)
    overlap_sum = tl.zeros((BLOCK_C,), dtype=tl.float32)
    mask_sum = tl.zeros((BLOCK_C,), dtype=tl.float32)
    ce_total = 0.0
    ce_weight_total = 0.0
    focal_total = 0.0
    count_total = tl.zeros((1,), dtype=tl.int64)
    for group in range(groups):
        tp, ps, gs, ce, ce_w, focal, count = _group_sums(part_f_ptr, part_i_ptr, group, rows_per_group, classes,
                                                         class_mask, C, WANT_STATS, BLOCK_C, BLOCK_R)
        ce_total += ce
        ce_weight_total += ce_w
        focal_total += focal
        count_total += count
        if WANT_STATS:
            gs = gs.to(tl.float32)
            mask, kept = reduction_weights(keep, weights, gs, ABSENT_MODE)
            loss_c, d_tp, d_ps = overlap_terms(tp, ps, gs, keep, tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr,
                                               gamma, LOG_LOSS, GAMMA_MODE, ABSENT_MODE)
            overlap_sum += mask * loss_c
            mask_sum += mask if NORMALIZE_WEIGHTS else kept
            tl.store(coef_ptr + group * C + classes, mask * d_tp, mask=class_mask)
            tl.store(coef_ptr + (groups + group) * C + classes, mask * d_ps, mask=class_mask)
    overlap_den = tl.sum(mask_sum, 0)
    overlap = safe_ratio(tl.sum(overlap_sum, 0), overlap_den)
    ce_mean = safe_ratio(ce_total, ce_weight_total)
    count_all = tl.sum(count_total, 0).to(tl.float32)
    focal_mean = safe_ratio(focal_total, count_all)
    tl.store(loss_ptr, overlap_weight * overlap + ce_weight * ce_mean + focal_weight * focal_mean)
    tl.store(scale_ptr, safe_ratio(overlap_weight, overlap_den))
    tl.store(scale_ptr + 1, safe_ratio(ce_weight, ce_weight_total))
    tl.store(scale_ptr + 2, safe_ratio(focal_weight, count_all))


@triton.jit
def _multiclass_backward_kernel(
    logits_ptr, labels_ptr, ce_weight_ptr, alpha_ptr,
    grad_tp_ptr, grad_ps_ptr, grad_ce_ptr, grad_focal_ptr, upstream_ptr, stats_scale_ptr, grad_ptr,
    S, stride_xn, stride_xc, stride_xs, stride_yn, stride_ys, stride_gn, stride_gc, stride_gs,
    chunks, tiles_per_chunk, ignore_index, gamma, stats_stride, scalar_stride,
    C: tl.constexpr, HAS_IGNORE: tl.constexpr, HAS_GRAD_TP: tl.constexpr, HAS_GRAD_PS: tl.constexpr,
    HAS_GRAD_CE: tl.constexpr, HAS_CE_WEIGHT: tl.constexpr, HAS_GRAD_FOCAL: tl.constexpr,
    GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, HAS_UPSTREAM: tl.constexpr, INT64: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    """HAS_UPSTREAM (fused losses): the gradient vectors are per unit upstream gradient;
    the statistics' ones are further scaled by stats_scale_ptr[0]."""
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    logits_image = logits_ptr + n.to(tl.int64) * stride_xn
    grad_image = grad_ptr + n.to(tl.int64) * stride_gn
    labels_row = labels_ptr + n.to(tl.int64) * stride_yn
    upstream = 1.0
    stats_scale = 1.0
    if HAS_UPSTREAM:
        upstream = tl.load(upstream_ptr).to(tl.float32)
        stats_scale = upstream * tl.load(stats_scale_ptr)
    grad_tp_row = grad_tp_ptr + n * stats_stride
    if HAS_GRAD_PS:
        grad_ps = tl.load(grad_ps_ptr + n * stats_stride + classes, mask=class_mask, other=0.0) * stats_scale
    if HAS_GRAD_CE:
        grad_ce = tl.load(grad_ce_ptr + n * scalar_stride) * upstream
    if HAS_GRAD_FOCAL:
        grad_focal = tl.load(grad_focal_ptr + n * scalar_stride) * upstream

    for t in tl.range(tiles_per_chunk, num_stages=NUM_STAGES):
        pixels = _pixel_tile(chunk * tiles_per_chunk + t, BLOCK_S)
        in_bounds = pixels < S
        y, valid = _labels_tile(labels_row, pixels, in_bounds, stride_ys, ignore_index, HAS_IGNORE)
        e, z, max2 = _softmax_tile(logits_image, _class_offsets(classes, pixels, stride_xc, stride_xs, INT64),
                                   class_mask, in_bounds)
        inv_z = 1.0 / z
        p = e * inv_z[None, :]
        is_label = classes[:, None] == y[None, :]
        if HAS_GRAD_TP or (HAS_GRAD_FOCAL and not GAMMA_ZERO):
            # The logit at the label (an L1 hit): p_y and log p_y without a class reduction.
            log_p_y, x_y = _log_p_label(logits_image, _label_offsets(y, pixels, stride_xc, stride_xs, INT64), valid,
                                        max2, z)
            p_y = tl.exp2(x_y * 1.4426950408889634 - max2) * inv_z
        # With g_c = dL/dp_c = grad_ps_c + [c = y] grad_tp_y and the CE / focal factor k:
        # dL/dx_c = p_c (grad_ps_c + k - sum_j p_j g_j) + [c = y] (p_y grad_tp_y - k).
        mean_g = tl.zeros((BLOCK_S,), dtype=tl.float32)
        label_term = tl.zeros((BLOCK_S,), dtype=tl.float32)
        if HAS_GRAD_PS:
            mean_g += tl.sum(p * grad_ps[:, None], 0)
        if HAS_GRAD_TP:
            at_label = p_y * tl.load(grad_tp_row + tl.maximum(y, 0), mask=valid, other=0.0) * stats_scale
            mean_g += at_label
            label_term += at_label
        k = tl.zeros((BLOCK_S,), dtype=tl.float32)
        if HAS_GRAD_CE:
            if HAS_CE_WEIGHT:
                k += grad_ce * tl.load(ce_weight_ptr + tl.maximum(y, 0), mask=valid, other=0.0)
            else:
                k += grad_ce
        if HAS_GRAD_FOCAL:
            if GAMMA_ZERO:
                d_focal = tl.full((BLOCK_S,), -1.0, dtype=tl.float32)
            else:
                q_gamma, q_gamma_1 = _focal_factors(tl.sum(tl.where(is_label, 0.0, e), 0), inv_z, gamma)
                d_focal = gamma * q_gamma_1 * p_y * log_p_y - q_gamma
            if HAS_ALPHA:
                d_focal = d_focal * tl.load(alpha_ptr + tl.maximum(y, 0), mask=valid, other=0.0)
            k -= grad_focal * d_focal
        shift = k - mean_g
        if HAS_GRAD_PS:
            grad = p * (grad_ps[:, None] + shift[None, :])
        else:
            grad = p * shift[None, :]
        grad += tl.where(is_label, (label_term - k)[None, :], 0.0)
        grad = tl.where(valid[None, :], grad, 0.0)
        tl.store(grad_image + _class_offsets(classes, pixels, stride_gc, stride_gs, INT64),
                 grad.to(grad_ptr.dtype.element_ty), mask=class_mask[:, None] & in_bounds[None, :])


# ---------------------------------------------------------------------------------------
# Launchers.


class _Layout:
    """Everything a streaming launch needs about logits (N, C, *S) and labels (N, *S)."""

    def __init__(self, logits: Tensor, labels: Tensor):
        self.x = _launch.class_layout(logits)
        self.y = _launch.pixel_layout(labels)
        self.n, self.c = logits.shape[:2]
        self.s = logits.numel() // max(self.n * self.c, 1)
        self.block_c = _launch.next_power_of_2(self.c)
        self.config = _launch.tile_config(_launch.softmax_family(self.x.stride_c, self.c), self.block_c)
        self.split = _launch.split_work(_launch.cdiv(self.s, self.config.block_s), self.n)
        self.int64 = _launch.needs_int64(self.x.span, 1 + max(self.s - 1, 0) * abs(self.y.stride_s))

    def stream_args(self) -> tuple:
        return (self.s, self.x.stride_n, self.x.stride_c, self.x.stride_s, self.y.stride_n, self.y.stride_s)

    def meta(self) -> dict:
        return dict(C=self.c, INT64=self.int64, BLOCK_C=self.block_c, BLOCK_S=self.config.block_s,
                    NUM_STAGES=self.config.num_stages, num_warps=self.config.num_warps)


def _check_devices(logits: Tensor, *others: Optional[Tensor]) -> None:
    for other in others:
        if other is not None and other.device != logits.device:
            raise ValueError(f"the kernels need every tensor on the logits' device {logits.device}, "
                             f"got one on {other.device}")


def _launch_partials(layout: _Layout, ce_weight, focal_alpha, ignore_index, want_stats, want_ce, focal_gamma):
    """Run the streaming forward kernel; (partial float rows, partial int rows)."""
    device = layout.x.tensor.device
    c, programs = layout.c, layout.split.programs
    part_f = _launch.new_empty((programs, 2 * c + 3), torch.float32, device)
    part_i = _launch.new_empty((programs, c + 1), torch.int32, device)
    has_weight = want_ce and ce_weight is not None
    has_alpha = focal_gamma is not None and focal_alpha is not None
    _launch.launch(
        _multiclass_forward_kernel, (programs,),
        layout.x.tensor, layout.y.tensor, _launch.vector_or_dummy(ce_weight if has_weight else None, part_f),
        _launch.vector_or_dummy(focal_alpha if has_alpha else None, part_f), part_f, part_i,
        *layout.stream_args(), layout.split.chunks, layout.split.tiles_per_chunk,
        0 if ignore_index is None else ignore_index, 0.0 if focal_gamma is None else float(focal_gamma),
        HAS_IGNORE=ignore_index is not None, WANT_STATS=want_stats, WANT_CE=want_ce, HAS_CE_WEIGHT=has_weight,
        WANT_FOCAL=focal_gamma is not None, GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0,
        HAS_ALPHA=has_alpha, **layout.meta(),
    )
    return part_f, part_i


def _finish_rows(block_c: int) -> int:
    return max(1, min(64, _launch.TILE_ROWS_ELEMENTS // block_c))


def launch_forward(
    logits: Tensor,
    labels: Tensor,
    ce_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    ignore_index: Optional[int],
    per_image: bool,
    want_stats: bool,
    want_ce: bool,
    focal_gamma: Optional[float],
) -> tuple[Tensor, ...]:
    """(tp, ps, gs, ce_sum, ce_weight_sum, focal_sum, count), float32; see the module doc.

    ``ignore_index`` is the value compared with the labels as stored (already wrapped to
    their dtype). Outputs that were not asked for are zeros (written by the finish kernel).
    """
    _check_devices(logits, labels, ce_weight, focal_alpha)
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, labels)
        part_f, part_i = _launch_partials(layout, ce_weight, focal_alpha, ignore_index, want_stats, want_ce,
                                          focal_gamma)
        n, c, device = layout.n, layout.c, logits.device
        groups = n if per_image else 1
        stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
        tp, ps, gs = (_launch.new_empty(stats_shape, torch.float32, device) for _ in range(3))
        ce, ce_weight_sum, focal, count = (_launch.new_empty(scalar_shape, torch.float32, device) for _ in range(4))
        _launch.launch(
            _multiclass_finish_kernel, (groups,),
            part_f, part_i, tp, ps, gs, ce, ce_weight_sum, focal, count, c, layout.split.programs // groups,
            WANT_STATS=want_stats, BLOCK_C=layout.block_c, BLOCK_R=_finish_rows(layout.block_c),
        )
    return tp, ps, gs, ce, ce_weight_sum, focal, count


# The overlap tuple of a loss without an overlap term.
NO_OVERLAP = (1.0, 1.0, 1.0, 0.0, 0.0, 1.0, False, True, 0, True)


def _overlap_gamma_mode(gamma: float) -> int:
    return 1 if gamma == 1 else 0 if gamma == 0 else 2


def launch_loss_forward(
    logits: Tensor,
    labels: Tensor,
    overlap_class_weight: Optional[Tensor],
    ce_class_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    ignore_index: Optional[int],
    per_image: bool,
    overlap: Optional[tuple],
    overlap_weight: float,
    ce_weight: float,
    focal_weight: float,
    focal_gamma: Optional[float],
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss 0-d float32, coef (2, groups, C), scale (3,)); see _multiclass_loss_finish_kernel.

    ``overlap`` = (tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma, log_loss,
    include_background, absent_mode, normalize_weights) or None (no overlap term;
    absent_mode: _finish.ABSENT_KEEP / ZERO / DROP). CE is computed when
    ``ce_weight`` != 0, focal when ``focal_gamma`` is not None and ``focal_weight`` != 0.
    """
    _check_devices(logits, labels, overlap_class_weight, ce_class_weight, focal_alpha)
    want_stats, want_ce = overlap is not None, ce_weight != 0
    if focal_weight == 0:
        focal_gamma = None
    tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma, log_loss, include_background, absent, normalize = (
        overlap if overlap is not None else NO_OVERLAP)
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, labels)
        part_f, part_i = _launch_partials(layout, ce_class_weight, focal_alpha, ignore_index, want_stats, want_ce,
                                          focal_gamma)
        groups = layout.n if per_image else 1
        device = logits.device
        loss = _launch.new_empty((), torch.float32, device)
        coef = _launch.new_empty((2, groups, layout.c), torch.float32, device)
        scale = _launch.new_empty((3,), torch.float32, device)
        if not want_stats:
            coef.zero_()
        _launch.launch(
            _multiclass_loss_finish_kernel, (1,),
            part_f, part_i, _launch.vector_or_dummy(overlap_class_weight, part_f), loss, coef, scale,
            layout.c, groups, layout.split.programs // groups, float(tp_weight), float(fp_weight), float(fn_weight),
            float(smooth_nr), float(smooth_dr), float(gamma), float(overlap_weight),
            float(ce_weight) if want_ce else 0.0, float(focal_weight) if focal_gamma is not None else 0.0,
            WANT_STATS=want_stats, HAS_CLASS_WEIGHT=overlap_class_weight is not None,
            INCLUDE_BACKGROUND=bool(include_background), ABSENT_MODE=int(absent), NORMALIZE_WEIGHTS=bool(normalize),
            LOG_LOSS=bool(log_loss), GAMMA_MODE=_overlap_gamma_mode(float(gamma)), BLOCK_C=layout.block_c,
            BLOCK_R=_finish_rows(layout.block_c),
        )
    return loss, coef, scale


def launch_backward(
    logits: Tensor,
    labels: Tensor,
    ce_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    grad_tp: Optional[Tensor],
    grad_ps: Optional[Tensor],
    grad_ce: Optional[Tensor],
    grad_focal: Optional[Tensor],
    ignore_index: Optional[int],
    focal_gamma: Optional[float],
    upstream: Optional[Tensor] = None,
    stats_scale: Optional[Tensor] = None,
) -> Tensor:
    """dL/dlogits in the logits' dtype and layout (a new tensor) from the upstream gradients.

    grad_tp / grad_ps: (C,) or (N, C); grad_ce / grad_focal: 0-d or (N,); None = zero.
    With ``upstream`` (a 0-d tensor) every gradient vector is multiplied by it, and
    grad_tp / grad_ps also by ``stats_scale`` (the fused losses' saved derivatives).
    """
    _check_devices(logits, labels, ce_weight, focal_alpha)
    with _launch.device_guard(logits.device):
        layout = _Layout(logits, labels)
        c = layout.c
        grad = _launch.poison(_launch.gradient_like(layout.x.tensor))
        gradient = _launch.class_layout(grad)

        def per_class(value):
            return None if value is None else value.to(torch.float32).reshape(-1, c).contiguous()

        def per_image(value):
            return None if value is None else value.to(torch.float32).reshape(-1).contiguous()

        grad_tp, grad_ps = per_class(grad_tp), per_class(grad_ps)
        grad_ce, grad_focal = per_image(grad_ce), per_image(grad_focal)
        stats = grad_tp if grad_tp is not None else grad_ps
        scalars = grad_ce if grad_ce is not None else grad_focal
        dummy = _launch.vector_or_dummy(None, grad)
        _launch.launch(
            _multiclass_backward_kernel, (layout.split.programs,),
            layout.x.tensor, layout.y.tensor, _launch.vector_or_dummy(ce_weight, grad),
            _launch.vector_or_dummy(focal_alpha, grad),
            dummy if grad_tp is None else grad_tp, dummy if grad_ps is None else grad_ps,
            dummy if grad_ce is None else grad_ce, dummy if grad_focal is None else grad_focal,
            dummy if upstream is None else upstream.reshape(()), dummy if stats_scale is None else stats_scale, grad,
            *layout.stream_args(), gradient.stride_n, gradient.stride_c, gradient.stride_s,
            layout.split.chunks, layout.split.tiles_per_chunk, 0 if ignore_index is None else ignore_index,
            0.0 if focal_gamma is None else float(focal_gamma),
            c if stats is not None and stats.shape[0] > 1 else 0,
            1 if scalars is not None and scalars.numel() > 1 else 0,
            HAS_IGNORE=ignore_index is not None, HAS_GRAD_TP=grad_tp is not None, HAS_GRAD_PS=grad_ps is not None,
            HAS_GRAD_CE=grad_ce is not None, HAS_CE_WEIGHT=ce_weight is not None,
            HAS_GRAD_FOCAL=grad_focal is not None and focal_gamma is not None,
            GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0, HAS_ALPHA=focal_alpha is not None,
            HAS_UPSTREAM=upstream is not None, **layout.meta(),
        )
    return grad


# ---------------------------------------------------------------------------------------
# Custom ops: opaque to torch.compile, with autograd and fake (meta) implementations.


@torch.library.custom_op("segfuse::multiclass_forward", mutates_args=())
def multiclass_forward(
    logits: Tensor,
    labels: Tensor,
    ce_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    ignore_index: Optional[int],
    per_image: bool,
    want_stats: bool,
    want_ce: bool,
    focal_gamma: Optional[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(tp, ps, gs, ce_sum, ce_weight_sum, focal_sum, count) in one pass; see :func:`launch_forward`."""
    return launch_forward(logits, labels, ce_weight, focal_alpha, ignore_index, per_image, want_stats, want_ce,
                          focal_gamma)


@multiclass_forward.register_fake
def _(logits, labels, ce_weight, focal_alpha, ignore_index, per_image, want_stats, want_ce, focal_gamma):
    n, c = logits.shape[:2]
    stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
    stats = [logits.new_empty(stats_shape, dtype=torch.float32) for _ in range(3)]
    scalars = [logits.new_empty(scalar_shape, dtype=torch.float32) for _ in range(4)]
    return (*stats, *scalars)


@torch.library.custom_op("segfuse::multiclass_backward", mutates_args=())
def multiclass_backward(
    logits: Tensor,
    labels: Tensor,
    ce_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    grad_tp: Optional[Tensor],
    grad_ps: Optional[Tensor],
    grad_ce: Optional[Tensor],
    grad_focal: Optional[Tensor],
    ignore_index: Optional[int],
    focal_gamma: Optional[float],
) -> Tensor:
    """dL/dlogits from the upstream gradients of tp, ps, ce_sum and focal_sum."""
    return launch_backward(logits, labels, ce_weight, focal_alpha, grad_tp, grad_ps, grad_ce, grad_focal,
                           ignore_index, focal_gamma)


@multiclass_backward.register_fake
def _(logits, labels, ce_weight, focal_alpha, grad_tp, grad_ps, grad_ce, grad_focal, ignore_index, focal_gamma):
    return _launch.gradient_like(logits)


def _setup_context(ctx, inputs, output):
    logits, labels, ce_weight, focal_alpha, ignore_index, per_image, want_stats, want_ce, focal_gamma = inputs
    ctx.save_for_backward(logits, labels, ce_weight if want_ce else None,
                          focal_alpha if focal_gamma is not None else None)
    ctx.ignore_index, ctx.want_stats, ctx.want_ce, ctx.focal_gamma = ignore_index, want_stats, want_ce, focal_gamma
    tp, ps, gs, ce, ce_weight_sum, focal, count = output
    ctx.mark_non_differentiable(gs, ce_weight_sum, count)
    ctx.set_materialize_grads(False)  # no zero-filled gradients (launches) for unused outputs


def _backward(ctx, grad_tp, grad_ps, grad_gs, grad_ce, grad_ce_weight, grad_focal, grad_count):
    logits, labels, ce_weight, focal_alpha = ctx.saved_tensors
    grad_tp, grad_ps = (grad_tp, grad_ps) if ctx.want_stats else (None, None)
    grad_ce = grad_ce if ctx.want_ce else None
    grad_focal = grad_focal if ctx.focal_gamma is not None else None
    if all(g is None for g in (grad_tp, grad_ps, grad_ce, grad_focal)):
        return (None,) * 9
    grad = multiclass_backward(logits, labels, ce_weight, focal_alpha, grad_tp, grad_ps, grad_ce, grad_focal,
                               ctx.ignore_index, ctx.focal_gamma)
    return (grad,) + (None,) * 8


multiclass_forward.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("segfuse::multiclass_loss", mutates_args=())
def multiclass_loss(
    logits: Tensor,
    labels: Tensor,
    overlap_class_weight: Optional[Tensor],
    ce_class_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    ignore_index: Optional[int],
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
    ce_weight: float,
    focal_weight: float,
    focal_gamma: Optional[float],
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, saved derivatives, saved scales): a whole overlap + CE + focal loss in two launches."""
    overlap = ((tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, overlap_gamma, log_loss, include_background,
                absent_mode, normalize_weights) if has_overlap else None)
    return launch_loss_forward(logits, labels, overlap_class_weight, ce_class_weight, focal_alpha, ignore_index,
                               per_image, overlap, overlap_weight, ce_weight, focal_weight, focal_gamma)


@multiclass_loss.register_fake
def _(logits, labels, overlap_class_weight, ce_class_weight, focal_alpha, ignore_index, per_image, has_overlap,
      tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, overlap_gamma, log_loss, include_background,
      absent_mode, normalize_weights, overlap_weight, ce_weight, focal_weight, focal_gamma):
    groups = logits.shape[0] if per_image else 1
    return (logits.new_empty((), dtype=torch.float32),
            logits.new_empty((2, groups, logits.shape[1]), dtype=torch.float32),
            logits.new_empty((3,), dtype=torch.float32))


@torch.library.custom_op("segfuse::multiclass_loss_backward", mutates_args=())
def multiclass_loss_backward(
    logits: Tensor,
    labels: Tensor,
    ce_class_weight: Optional[Tensor],
    focal_alpha: Optional[Tensor],
    coef: Tensor,
    scale: Tensor,
    upstream: Tensor,
    ignore_index: Optional[int],
    has_overlap: bool,
    want_ce: bool,
    focal_gamma: Optional[float],
) -> Tensor:
    """dL/dlogits of :func:`multiclass_loss` for an upstream gradient (0-d), one launch."""
    return launch_backward(
        logits, labels, ce_class_weight if want_ce else None, focal_alpha if focal_gamma is not None else None,
        coef[0] if has_overlap else None, coef[1] if has_overlap else None, scale[1] if want_ce else None,
        scale[2] if focal_gamma is not None else None, ignore_index, focal_gamma, upstream=upstream,
        stats_scale=scale[0])


@multiclass_loss_backward.register_fake
def _(logits, labels, ce_class_weight, focal_alpha, coef, scale, upstream, ignore_index, has_overlap, want_ce,
      focal_gamma):
    return _launch.gradient_like(logits)


def _loss_setup_context(ctx, inputs, output):
    (logits, labels, overlap_class_weight, ce_class_weight, focal_alpha, ignore_index, per_image, has_overlap,
     *_, ce_weight, focal_weight, focal_gamma) = inputs
    loss, coef, scale = output
    ctx.want_ce = ce_weight != 0
    ctx.focal_gamma = focal_gamma if focal_weight != 0 else None
    ctx.save_for_backward(logits, labels, ce_class_weight if ctx.want_ce else None,
                          focal_alpha if ctx.focal_gamma is not None else None, coef, scale)
    ctx.ignore_index, ctx.has_overlap = ignore_index, has_overlap
    ctx.mark_non_differentiable(coef, scale)
    ctx.set_materialize_grads(False)  # no zero-filled gradients (launches) for unused outputs


def _loss_backward(ctx, grad_loss, grad_coef, grad_scale):
    logits, labels, ce_class_weight, focal_alpha, coef, scale = ctx.saved_tensors
    if grad_loss is None:
        return (None,) * 22
    grad = multiclass_loss_backward(logits, labels, ce_class_weight, focal_alpha, coef, scale, grad_loss,
                                    ctx.ignore_index, ctx.has_overlap, ctx.want_ce, ctx.focal_gamma)
    return (grad,) + (None,) * 21


multiclass_loss.register_autograd(_loss_backward, setup_context=_loss_setup_context)
