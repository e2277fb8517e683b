"""Triton helpers shared by the fused losses' finish kernels: the overlap loss of per-class
statistics with its derivatives, and the torch path's safe division. They mirror
:func:`segfuse._stats.overlap_index` / ``ratio_or_one`` / ``safe_divide`` and
:func:`segfuse.losses.overlap.score_to_loss`, NaN propagation included (a non-finite input
never gives a perfect score)."""

from __future__ import annotations

import triton
import triton.language as tl

# ABSENT_MODE of overlap_terms: how a class with gs = 0 enters the mean.
ABSENT_KEEP, ABSENT_ZERO, ABSENT_DROP = 0, 1, 2


@triton.jit
def safe_ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (the torch path's safe_divide)."""
    return tl.where(denominator != 0, numerator / tl.where(denominator != 0, denominator, 1.0), 0.0)


@triton.jit
def _clamp_tiny(x):
    """max(x, smallest normal float), NaN kept (torch's clamp_min)."""
    return tl.where(x != x, x, tl.maximum(x, 1.1754943508222875e-38))


@triton.jit
def overlap_terms(tp, ps, gs, keep, tp_weight, fp_weight, fn_weight, smooth_nr, smooth_dr, gamma,
                  LOG_LOSS: tl.constexpr, GAMMA_MODE: tl.constexpr, ABSENT_MODE: tl.constexpr):
    """Per-class overlap loss l_c and dl_c/dtp_c, dl_c/dps_c (see overlap_loss_from_statistics).

    score = (w_tp tp + s_nr) / ((w_tp - a - b) tp + a ps + b gs + s_dr), 1 (gradient 0)
    where the denominator is exactly 0; l = 1 - score or -log(max(score, tiny)), raised to
    gamma (GAMMA_MODE 1: gamma = 1; 0: gamma = 0, l = 1 unless NaN; 2: other gammas, 0
    where l <= 0). ABSENT_MODE 1 ("zero") sets l = 0 where gs = 0. Classes outside
    ``keep`` give 0.
    """
    numerator = tp_weight * tp + smooth_nr
    slope = tp_weight - fp_weight - fn_weight
    denominator = slope * tp + fp_weight * ps + fn_weight * gs + smooth_dr
    zero = denominator == 0
    safe = tl.where(zero, 1.0, denominator)
    score = tl.where(zero, 1.0, numerator / safe)
    d_score_tp = tl.where(zero, 0.0, (tp_weight * safe - numerator * slope) / (safe * safe))
    d_score_ps = tl.where(zero, 0.0, -numerator * fp_weight / (safe * safe))
    if LOG_LOSS:
        loss = -tl.log(_clamp_tiny(score))
        d_loss = tl.where(score >= 1.1754943508222875e-38, -1.0 / score, 0.0)
    else:
        loss = 1.0 - score
        d_loss = tl.full(score.shape, -1.0, tl.float32)
    if GAMMA_MODE == 0:
        d_loss = tl.where(loss != loss, d_loss, 0.0)
        loss = tl.where(loss != loss, loss, 1.0)
    if GAMMA_MODE == 2:
        clamped = _clamp_tiny(loss)
        power = tl.exp2(gamma * tl.log2(clamped))
        d_power = tl.where(loss >= 1.1754943508222875e-38, gamma * power / clamped, 0.0)
        d_loss = tl.where(loss <= 0, 0.0, d_power * d_loss)
        loss = tl.where(loss <= 0, 0.0, power)
    if ABSENT_MODE == 1:
        present = gs > 0
        loss = tl.where(present, loss, 0.0)
        d_loss = tl.where(present, d_loss, 0.0)
    d_loss = tl.where(keep, d_loss, 0.0)
    return tl.where(keep, loss, 0.0), d_loss * d_score_tp, d_loss * d_score_ps


@triton.jit
def reduction_weights(keep, weights, gs, ABSENT_MODE: tl.constexpr):
    """(w_c m_c, m_c) of the class mean: m_c = 1 for kept classes (0 where gs = 0 with
    ABSENT_MODE 2, "drop"); the mean divides by the sum of the first (normalize_weights)
    or of the second."""
    kept = tl.where(keep, 1.0, 0.0)
    if ABSENT_MODE == 2:
        kept = tl.where(gs > 0, kept, 0.0)
    return kept * weights, kept
