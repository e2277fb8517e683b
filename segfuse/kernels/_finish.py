"""Triton helpers shared by the fused losses' finish kernels: the overlap loss of per-class
statistics with its derivatives, and the torch path's safe division (see
:func:`segfuse.losses.overlap.overlap_loss_from_statistics` and
:func:`segfuse._stats.safe_divide`, which these mirror)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def safe_ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is not positive (torch path's safe_divide)."""
    return tl.where(denominator > 0, numerator / tl.where(denominator > 0, denominator, 1.0), 0.0)


@triton.jit
def overlap_terms(tp, ps, gs, keep, tp_weight, fp_weight, fn_weight, smooth, gamma,
                  LOG_LOSS: tl.constexpr, GAMMA_MODE: tl.constexpr):
    """Per-class overlap loss l_c and dl_c/dtp_c, dl_c/dps_c (see overlap_loss_from_statistics).

    score = (w_tp tp + s) / ((w_tp - a - b) tp + a ps + b gs + s), 1 (gradient 0) where the
    denominator is 0; NaN statistics give NaN. l = (1 - score) or -log(max(score, tiny)),
    then raised to gamma (GAMMA_MODE 1: gamma = 1, 0: gamma = 0, 2: any other gamma).
    """
    numerator = tp_weight * tp + smooth
    slope = tp_weight - fp_weight - fn_weight
    denominator = slope * tp + fp_weight * ps + fn_weight * gs + smooth
    zero = denominator == 0
    safe = tl.where(zero, 1.0, denominator)
    score = tl.where(zero, 1.0, numerator / safe)
    d_score_tp = tl.where(zero, 0.0, (tp_weight * safe - numerator * slope) / (safe * safe))
    d_score_ps = tl.where(zero, 0.0, -numerator * fp_weight / (safe * safe))
    if LOG_LOSS:
        loss = -tl.log(tl.maximum(score, 1.1754943508222875e-38))
        d_loss = tl.where(score >= 1.1754943508222875e-38, -1.0 / score, 0.0)
    else:
        loss = 1.0 - score
        d_loss = tl.full(score.shape, -1.0, tl.float32)
    if GAMMA_MODE == 0:
        loss = tl.full(score.shape, 1.0, tl.float32)
        d_loss = tl.zeros(score.shape, tl.float32)
    if GAMMA_MODE == 2:
        clamped = tl.maximum(loss, 1.1754943508222875e-38)
        power = tl.exp2(gamma * tl.log2(clamped))
        d_power = tl.where(loss >= 1.1754943508222875e-38, gamma * power / clamped, 0.0)
        d_loss = tl.where(loss > 0, d_power * d_loss, 0.0)
        loss = tl.where(loss > 0, power, 0.0)
    d_loss = tl.where(keep, d_loss, 0.0)
    return tl.where(keep, loss, 0.0), d_loss * d_score_tp, d_loss * d_score_ps
