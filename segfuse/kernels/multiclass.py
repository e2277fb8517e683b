"""Fused softmax + overlap statistics + cross-entropy + focal for a class-map target.

Forward: one pass over the logits (N, C, S) in their own dtype and the labels (N, S) in
their own integer dtype. Each program reduces a contiguous chunk of pixels of one image
into per-class tp, ps (float32), gs, the valid count (int32) and the CE / focal sums,
and writes them to a partial buffer; a second small kernel sums the partials per image
(``per_image``) or over the batch, in a fixed order (deterministic; counts exact in
int64). Nothing of size N x C x S is allocated.

Backward: one pass that recomputes the softmax and writes, in the logits' dtype,

    dL/dx_c = p_c (g_c - sum_k p_k g_k) + k_y (p_c - [y == c])    at valid pixels, else 0

with g_c = dL/dtp_c [y == c] + dL/dps_c (the overlap part, through p) and
k_y = dL/dce w_y - dL/dfocal alpha_y d(focal)/d(log p_y).

Registered as the custom ops ``segfuse::multiclass_forward`` / ``multiclass_backward``
(with autograd and fake kernels), so the losses trace under torch.compile.
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
FLOAT32_TINY = 1.1754943508222875e-38


@triton.jit
def _softmax_tile(logits_rows, pixels, in_bounds, class_mask):
    """Shifted logits, exp, 1 / sum(exp) and log(sum(exp)) of a [BLOCK_C, BLOCK_S] tile."""
    x = tl.load(logits_rows + pixels[None, :], mask=class_mask[:, None] & in_bounds[None, :], other=0.0)
    x = tl.where(class_mask[:, None], x.to(tl.float32), float("-inf"))
    shifted = x - tl.max(x, 0)[None, :]
    e = tl.exp(shifted)
    z = tl.sum(e, 0)
    return shifted, e, 1.0 / z, tl.log(z)


@triton.jit
def _labels_tile(labels_row, pixels, in_bounds, ignore_index, HAS_IGNORE: tl.constexpr):
    raw = tl.load(labels_row + pixels, mask=in_bounds, other=0)
    valid = in_bounds
    if HAS_IGNORE:
        valid = valid & (raw != ignore_index)
    return raw.to(tl.int32), valid


@triton.jit
def _focal_factors(rest, inv_z, gamma):
    """(q^gamma, q^(gamma - 1)) with q = 1 - p_y = sum_{c != y} e_c / z, clamped at tiny."""
    q = tl.maximum(rest * inv_z, 1.1754943508222875e-38)
    log2_q = tl.log2(q)
    return tl.exp2(gamma * log2_q), tl.exp2((gamma - 1.0) * log2_q)


@triton.jit
def _multiclass_forward_kernel(
    logits_ptr, labels_ptr, ce_weight_ptr, alpha_ptr, part_f_ptr, part_i_ptr,
    C, S, chunks, tiles_per_chunk, ignore_index, gamma,
    HAS_IGNORE: tl.constexpr, WANT_STATS: tl.constexpr, WANT_CE: tl.constexpr,
    HAS_CE_WEIGHT: tl.constexpr, WANT_FOCAL: tl.constexpr, GAMMA_ZERO: tl.constexpr,
    HAS_ALPHA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    image = n.to(tl.int64)
    logits_rows = logits_ptr + image * C * S + classes.to(tl.int64)[:, None] * S
    labels_row = labels_ptr + image * S
    if HAS_CE_WEIGHT:
        ce_weights = tl.load(ce_weight_ptr + classes, mask=class_mask, other=0.0)
    if HAS_ALPHA:
        alphas = tl.load(alpha_ptr + classes, mask=class_mask, other=0.0)

    tp_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    ps_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
    gs_acc = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.int32)
    ce_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    ce_weight_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    focal_acc = tl.zeros((BLOCK_S,), dtype=tl.float32)
    count_acc = tl.zeros((BLOCK_S,), dtype=tl.int32)
    for t in range(tiles_per_chunk):
        pixels = (chunk * tiles_per_chunk + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        y, valid = _labels_tile(labels_row, pixels, in_bounds, ignore_index, HAS_IGNORE)
        shifted, e, inv_z, log_z = _softmax_tile(logits_rows, pixels, in_bounds, class_mask)
        target = (classes[:, None] == y[None, :]) & class_mask[:, None] & valid[None, :]
        valid_f = valid.to(tl.float32)
        count_acc += valid.to(tl.int32)
        if WANT_STATS:
            p = e * inv_z[None, :]
            tp_acc += tl.where(target, p, 0.0)
            ps_acc += p * valid_f[None, :]
            gs_acc += target.to(tl.int32)
        if WANT_CE or WANT_FOCAL:
            log_p_y = tl.sum(tl.where(target, shifted, 0.0), 0) - log_z
            if WANT_CE:
                if HAS_CE_WEIGHT:
                    w_y = tl.sum(tl.where(target, ce_weights[:, None], 0.0), 0)
                else:
                    w_y = valid_f
                ce_acc += -log_p_y * w_y
                ce_weight_acc += w_y
            if WANT_FOCAL:
                if GAMMA_ZERO:
                    term = -log_p_y
                else:
                    q_gamma, _ = _focal_factors(tl.sum(tl.where(target, 0.0, e), 0), inv_z, gamma)
                    term = -q_gamma * log_p_y
                if HAS_ALPHA:
                    term = term * tl.sum(tl.where(target, alphas[:, None], 0.0), 0)
                focal_acc += term * valid_f

    slot = pid.to(tl.int64)
    width_f = 2 * C + 3
    width_i = C + 1
    if WANT_STATS:
        tl.store(part_f_ptr + slot * width_f + classes, tl.sum(tp_acc, 1), mask=class_mask)
        tl.store(part_f_ptr + slot * width_f + C + classes, tl.sum(ps_acc, 1), mask=class_mask)
        tl.store(part_i_ptr + slot * width_i + classes, tl.sum(gs_acc, 1), mask=class_mask)
    tl.store(part_f_ptr + slot * width_f + 2 * C, tl.sum(ce_acc, 0))
    tl.store(part_f_ptr + slot * width_f + 2 * C + 1, tl.sum(ce_weight_acc, 0))
    tl.store(part_f_ptr + slot * width_f + 2 * C + 2, tl.sum(focal_acc, 0))
    tl.store(part_i_ptr + slot * width_i + C, tl.sum(count_acc, 0))


@triton.jit
def _multiclass_finish_kernel(
    part_f_ptr, part_i_ptr, tp_ptr, ps_ptr, gs_ptr, ce_ptr, ce_weight_ptr, focal_ptr, count_ptr,
    C, rows_per_group,
    WANT_STATS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """Sum the partial rows of one group (an image, or the whole batch) in a fixed order."""
    group = tl.program_id(0)
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
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
        rows = group.to(tl.int64) * rows_per_group + offsets
        if WANT_STATS:
            mask = row_mask[:, None] & class_mask[None, :]
            tp += tl.load(part_f_ptr + rows[:, None] * width_f + classes[None, :], mask=mask, other=0.0)
            ps += tl.load(part_f_ptr + rows[:, None] * width_f + C + classes[None, :], mask=mask, other=0.0)
            gs += tl.load(part_i_ptr + rows[:, None] * width_i + classes[None, :], mask=mask, other=0).to(tl.int64)
        ce += tl.load(part_f_ptr + rows * width_f + 2 * C, mask=row_mask, other=0.0)
        ce_weight += tl.load(part_f_ptr + rows * width_f + 2 * C + 1, mask=row_mask, other=0.0)
        focal += tl.load(part_f_ptr + rows * width_f + 2 * C + 2, mask=row_mask, other=0.0)
        count += tl.load(part_i_ptr + rows * width_i + C, mask=row_mask, other=0).to(tl.int64)
    if WANT_STATS:
        tl.store(tp_ptr + group * C + classes, tl.sum(tp, 0), mask=class_mask)
        tl.store(ps_ptr + group * C + classes, tl.sum(ps, 0), mask=class_mask)
        tl.store(gs_ptr + group * C + classes, tl.sum(gs, 0).to(tl.float32), mask=class_mask)
    tl.store(ce_ptr + group, tl.sum(ce, 0))
    tl.store(ce_weight_ptr + group, tl.sum(ce_weight, 0))
    tl.store(focal_ptr + group, tl.sum(focal, 0))
    tl.store(count_ptr + group, tl.sum(count, 0).to(tl.float32))


@triton.jit
def _multiclass_backward_kernel(
    logits_ptr, labels_ptr, ce_weight_ptr, alpha_ptr,
    grad_tp_ptr, grad_ps_ptr, grad_ce_ptr, grad_focal_ptr, grad_ptr,
    C, S, chunks, tiles_per_chunk, ignore_index, gamma, stats_stride, scalar_stride,
    HAS_IGNORE: tl.constexpr, HAS_GRAD_TP: tl.constexpr, HAS_GRAD_PS: tl.constexpr,
    HAS_GRAD_CE: tl.constexpr, HAS_CE_WEIGHT: tl.constexpr, HAS_GRAD_FOCAL: tl.constexpr,
    GAMMA_ZERO: tl.constexpr, HAS_ALPHA: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    pid = tl.program_id(0)
    n = pid // chunks
    chunk = pid % chunks
    classes = tl.arange(0, BLOCK_C)
    class_mask = classes < C
    image = n.to(tl.int64)
    offsets_rows = image * C * S + classes.to(tl.int64)[:, None] * S
    logits_rows = logits_ptr + offsets_rows
    grad_rows = grad_ptr + offsets_rows
    labels_row = labels_ptr + image * S
    if HAS_GRAD_TP:
        grad_tp = tl.load(grad_tp_ptr + n * stats_stride + classes, mask=class_mask, other=0.0)
    if HAS_GRAD_PS:
        grad_ps = tl.load(grad_ps_ptr + n * stats_stride + classes, mask=class_mask, other=0.0)
    if HAS_GRAD_CE:
        grad_ce = tl.load(grad_ce_ptr + n * scalar_stride)
        if HAS_CE_WEIGHT:
            ce_weights = tl.load(ce_weight_ptr + classes, mask=class_mask, other=0.0)
    if HAS_GRAD_FOCAL:
        grad_focal = tl.load(grad_focal_ptr + n * scalar_stride)
        if HAS_ALPHA:
            alphas = tl.load(alpha_ptr + classes, mask=class_mask, other=0.0)

    for t in range(tiles_per_chunk):
        pixels = (chunk * tiles_per_chunk + t) * BLOCK_S + tl.arange(0, BLOCK_S)
        in_bounds = pixels < S
        y, valid = _labels_tile(labels_row, pixels, in_bounds, ignore_index, HAS_IGNORE)
        shifted, e, inv_z, log_z = _softmax_tile(logits_rows, pixels, in_bounds, class_mask)
        target = (classes[:, None] == y[None, :]) & class_mask[:, None] & valid[None, :]
        p = e * inv_z[None, :]
        # dL/dp_c and its p-weighted mean over classes (the softmax Jacobian).
        g = tl.zeros((BLOCK_C, BLOCK_S), dtype=tl.float32)
        if HAS_GRAD_TP:
            g += tl.where(target, grad_tp[:, None], 0.0)
        if HAS_GRAD_PS:
            g += grad_ps[:, None]
        mean_g = tl.sum(p * g, 0)
        # k_y multiplies (p - onehot): the CE and focal parts.
        k = tl.zeros((BLOCK_S,), dtype=tl.float32)
        if HAS_GRAD_CE:
            if HAS_CE_WEIGHT:
                k += grad_ce * tl.sum(tl.where(target, ce_weights[:, None], 0.0), 0)
            else:
                k += grad_ce
        if HAS_GRAD_FOCAL:
            if GAMMA_ZERO:
                d_focal = tl.full((BLOCK_S,), -1.0, dtype=tl.float32)
            else:
                log_p_y = tl.sum(tl.where(target, shifted, 0.0), 0) - log_z
                p_y = tl.sum(tl.where(target, p, 0.0), 0)
                q_gamma, q_gamma_1 = _focal_factors(tl.sum(tl.where(target, 0.0, e), 0), inv_z, gamma)
                d_focal = gamma * q_gamma_1 * p_y * log_p_y - q_gamma
            if HAS_ALPHA:
                d_focal = d_focal * tl.sum(tl.where(target, alphas[:, None], 0.0), 0)
            k -= grad_focal * d_focal
        grad = p * (g - mean_g[None, :] + k[None, :]) - tl.where(target, k[None, :], 0.0)
        grad = tl.where(valid[None, :], grad, 0.0)
        tl.store(grad_rows + pixels[None, :], grad.to(grad_ptr.dtype.element_ty),
                 mask=class_mask[:, None] & in_bounds[None, :])


def _layout(logits: Tensor) -> tuple[int, ...]:
    """(N, C, S, BLOCK_C, BLOCK_S, num_warps, chunks per image, tiles per chunk)."""
    n, c = logits.shape[:2]
    s = logits.numel() // max(n * c, 1)
    block_c, block_s, num_warps = _launch.class_tile(c)
    chunks, tiles_per_chunk = _launch.split_rows(_launch.cdiv(s, block_s), n, logits.device)
    return n, c, s, block_c, block_s, num_warps, chunks, tiles_per_chunk


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
    their dtype). Outputs that were not asked for are returned as zeros.
    """
    logits, labels = _launch.loadable(logits), _launch.loadable(labels)
    n, c, s, block_c, block_s, num_warps, chunks, tiles_per_chunk = _layout(logits)
    device = logits.device
    programs = n * chunks
    part_f = torch.empty((programs, 2 * c + 3), dtype=torch.float32, device=device)
    part_i = torch.empty((programs, c + 1), dtype=torch.int32, device=device)
    has_weight, has_alpha = want_ce and ce_weight is not None, focal_gamma is not None and focal_alpha is not None
    _multiclass_forward_kernel[(programs,)](
        logits, labels, _launch.vector_or_dummy(ce_weight if has_weight else None, logits),
        _launch.vector_or_dummy(focal_alpha if has_alpha else None, logits), part_f, part_i,
        c, s, chunks, tiles_per_chunk, 0 if ignore_index is None else ignore_index,
        0.0 if focal_gamma is None else float(focal_gamma),
        HAS_IGNORE=ignore_index is not None, WANT_STATS=want_stats, WANT_CE=want_ce, HAS_CE_WEIGHT=has_weight,
        WANT_FOCAL=focal_gamma is not None, GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0,
        HAS_ALPHA=has_alpha, BLOCK_C=block_c, BLOCK_S=block_s, num_warps=num_warps,
    )
    groups = n if per_image else 1
    stats_shape, scalar_shape = ((n, c), (n,)) if per_image else ((c,), ())
    tp, ps, gs = (torch.zeros(stats_shape, dtype=torch.float32, device=device) for _ in range(3))
    ce, ce_weight_sum, focal, count = (torch.empty(scalar_shape, dtype=torch.float32, device=device)
                                       for _ in range(4))
    block_r = max(1, min(64, _launch.TILE_ELEMENTS // block_c))
    _multiclass_finish_kernel[(groups,)](
        part_f, part_i, tp, ps, gs, ce, ce_weight_sum, focal, count, c, programs // groups,
        WANT_STATS=want_stats, BLOCK_C=block_c, BLOCK_R=block_r,
    )
    return tp, ps, gs, ce, ce_weight_sum, focal, count


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
) -> Tensor:
    """dL/dlogits in the logits' dtype (a new tensor) from the upstream gradients.

    grad_tp / grad_ps: (C,) or (N, C); grad_ce / grad_focal: 0-d or (N,); None = zero.
    """
    logits, labels = _launch.loadable(logits), _launch.loadable(labels)
    n, c, s, block_c, block_s, num_warps, chunks, tiles_per_chunk = _layout(logits)
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format)

    def per_class(value):
        return None if value is None else value.to(torch.float32).reshape(-1, c).contiguous()

    def per_image(value):
        return None if value is None else value.to(torch.float32).reshape(-1).contiguous()

    grad_tp, grad_ps = per_class(grad_tp), per_class(grad_ps)
    grad_ce, grad_focal = per_image(grad_ce), per_image(grad_focal)
    stats = grad_tp if grad_tp is not None else grad_ps
    scalars = grad_ce if grad_ce is not None else grad_focal
    dummy = _launch.vector_or_dummy(None, logits)
    _multiclass_backward_kernel[(n * chunks,)](
        logits, labels, _launch.vector_or_dummy(ce_weight, logits), _launch.vector_or_dummy(focal_alpha, logits),
        dummy if grad_tp is None else grad_tp, dummy if grad_ps is None else grad_ps,
        dummy if grad_ce is None else grad_ce, dummy if grad_focal is None else grad_focal, grad,
        c, s, chunks, tiles_per_chunk, 0 if ignore_index is None else ignore_index,
        0.0 if focal_gamma is None else float(focal_gamma),
        c if stats is not None and stats.shape[0] > 1 else 0, 1 if scalars is not None and scalars.numel() > 1 else 0,
        HAS_IGNORE=ignore_index is not None, HAS_GRAD_TP=grad_tp is not None, HAS_GRAD_PS=grad_ps is not None,
        HAS_GRAD_CE=grad_ce is not None, HAS_CE_WEIGHT=ce_weight is not None,
        HAS_GRAD_FOCAL=grad_focal is not None and focal_gamma is not None,
        GAMMA_ZERO=focal_gamma is not None and float(focal_gamma) == 0.0, HAS_ALPHA=focal_alpha is not None,
        BLOCK_C=block_c, BLOCK_S=block_s, num_warps=num_warps,
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
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, labels, ce_weight, focal_alpha, ignore_index, per_image, want_stats, want_ce, focal_gamma = inputs
    ctx.save_for_backward(logits, labels, ce_weight if want_ce else None,
                          focal_alpha if focal_gamma is not None else None)
    ctx.ignore_index, ctx.want_stats, ctx.want_ce, ctx.focal_gamma = ignore_index, want_stats, want_ce, focal_gamma
    ctx.logits_dtype = logits.dtype
    tp, ps, gs, ce, ce_weight_sum, focal, count = output
    ctx.mark_non_differentiable(gs, ce_weight_sum, count)


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
