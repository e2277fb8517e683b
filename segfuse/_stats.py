"""The statistics core: per-class tp, sum of predictions and sum of targets.

For class c over the valid (non-ignored) pixels i, with prediction p_ic and target g_ic::

    tp_c = sum_i p_ic g_ic      ps_c = sum_i p_ic      gs_c = sum_i g_ic
    fp_c = ps_c - tp_c          fn_c = gs_c - tp_c

Losses feed soft statistics (probabilities) to the overlap formulas; metrics use hard
counts. From a class map nothing of size N x C x S is built: tp gathers p at the label and
scatters it into its class, ps is a masked sum (a batched matrix-vector product) and gs a
bincount of the labels. Accumulation is float32 for half inputs (float64 stays float64).

Convention:
    ``per_image=False`` sums over batch and space, giving shape (C,) (the seeds'
    convention); ``per_image=True`` sums over space only, giving (N, C). With
    ``squared=True`` (V-Net), ps and gs are the sums of p^2 and g^2.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class OverlapStatistics(NamedTuple):
    """Per-class sums, each of shape (C,) or (N, C) with ``per_image=True``."""

    tp: Tensor
    ps: Tensor
    gs: Tensor

    @property
    def fp(self) -> Tensor:
        return self.ps - self.tp

    @property
    def fn(self) -> Tensor:
        return self.gs - self.tp


class MulticlassTerms(NamedTuple):
    """What one pass over multiclass logits and a class map produces.

    ``stats``: the overlap statistics (or None). ``ce_sum`` / ``ce_weight``: the summed
    weighted negative log-likelihood and the summed weights of the valid pixels (their
    ratio is torch's weighted mean). ``focal_sum``: the summed focal terms. ``count``:
    the number of valid pixels (per image with ``per_image=True``, else a scalar).
    """

    stats: Optional[OverlapStatistics]
    ce_sum: Optional[Tensor]
    ce_weight: Optional[Tensor]
    focal_sum: Optional[Tensor]
    count: Tensor


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float type accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def valid_label_mask(labels: Tensor, ignore_index: Optional[int]) -> Optional[Tensor]:
    """Boolean mask of the non-ignored pixels, or None when nothing can be ignored."""
    if ignore_index is None:
        return None
    return labels != ignore_index


def safe_labels(labels: Tensor, valid: Optional[Tensor]) -> Tensor:
    """int64 labels with ignored pixels moved to class 0 (their weight is zero)."""
    labels = labels.long()
    return labels if valid is None else labels.masked_fill(~valid, 0)


def flatten_spatial(x: Tensor, leading: int) -> Tensor:
    """(d0, ..., d_{leading-1}, *S) -> (d0, ..., d_{leading-1}, prod(S))."""
    return x.reshape(*x.shape[:leading], -1)


def class_map_statistics(
    probs: Tensor,
    labels: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    squared: bool = False,
) -> OverlapStatistics:
    """Soft statistics of probabilities (N, C, *S) against a class map (N, *S).

    No one-hot target is built: extra memory is O(N * S).
    """
    n, c = probs.shape[:2]
    p = flatten_spatial(probs, 2)
    valid = valid_label_mask(flatten_spatial(labels, 1), ignore_index)
    index = safe_labels(flatten_spatial(labels, 1), valid)
    weight = None if valid is None else valid.to(p.dtype)
    tp_terms = p.gather(1, index.unsqueeze(1)).squeeze(1)
    if weight is not None:
        tp_terms = tp_terms * weight
    bins = index + (torch.arange(n, device=index.device) * c).unsqueeze(1) if per_image else index
    size = n * c if per_image else c
    tp = p.new_zeros(size).index_add_(0, bins.reshape(-1), tp_terms.reshape(-1))
    gs_bins = bins.reshape(-1) if valid is None else bins[valid]
    gs = torch.bincount(gs_bins, minlength=size).to(p.dtype)
    ps = _masked_class_sum(p * p if squared else p, weight)
    if per_image:
        return OverlapStatistics(tp.view(n, c), ps, gs.view(n, c))
    return OverlapStatistics(tp, ps.sum(0), gs)


def _masked_class_sum(p: Tensor, weight: Optional[Tensor]) -> Tensor:
    """sum_s p[n, c, s] * weight[n, s] -> (N, C), as a batched matrix-vector product."""
    if weight is None:
        return p.sum(-1)
    return torch.bmm(p, weight.unsqueeze(-1)).squeeze(-1)


def dense_statistics(
    probs: Tensor,
    target: Tensor,
    *,
    valid: Optional[Tensor] = None,
    per_image: bool = False,
    squared: bool = False,
) -> OverlapStatistics:
    """Soft statistics of probabilities (N, C, *S) against a dense target of the same shape.

    ``valid`` is a boolean mask broadcastable to the target ((N, C, *S) or (N, 1, *S)):
    False pixels contribute nothing. The target must already be zero there.
    """
    p = flatten_spatial(probs, 2)
    g = flatten_spatial(target.to(p.dtype), 2)
    if valid is not None:
        p = p * flatten_spatial(valid, 2).to(p.dtype)
    tp = (p * g).sum(-1)
    ps = (p * p).sum(-1) if squared else p.sum(-1)
    gs = (g * g).sum(-1) if squared else g.sum(-1)
    if per_image:
        return OverlapStatistics(tp, ps, gs)
    return OverlapStatistics(tp.sum(0), ps.sum(0), gs.sum(0))


def multiclass_terms(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    want_stats: bool = True,
    squared: bool = False,
    ce_weight: Optional[Tensor] = None,
    want_ce: bool = False,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[Tensor] = None,
    from_logits: bool = True,
) -> MulticlassTerms:
    """One softmax over logits (N, C, *S) shared by the overlap statistics, CE and focal.

    This is the torch reference path of the fused CUDA kernel (segfuse.kernels): both
    return the same :class:`MulticlassTerms`. ``focal_gamma`` None skips the focal term.
    """
    from segfuse import kernels

    if kernels.fused_multiclass_available(logits, squared=squared, from_logits=from_logits):
        return kernels.fused_multiclass_terms(
            logits, labels, ignore_index=ignore_index, per_image=per_image, want_stats=want_stats,
            ce_weight=ce_weight, want_ce=want_ce, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
        )
    return multiclass_terms_reference(
        logits, labels, ignore_index=ignore_index, per_image=per_image, want_stats=want_stats,
        squared=squared, ce_weight=ce_weight, want_ce=want_ce, focal_gamma=focal_gamma,
        focal_alpha=focal_alpha, from_logits=from_logits,
    )


def multiclass_terms_reference(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    want_stats: bool = True,
    squared: bool = False,
    ce_weight: Optional[Tensor] = None,
    want_ce: bool = False,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[Tensor] = None,
    from_logits: bool = True,
) -> MulticlassTerms:
    """Plain-torch implementation of :func:`multiclass_terms` (any device, autograd)."""
    acc = accumulation_dtype(logits.dtype)
    x = logits.to(acc)
    if from_logits:
        log_p = torch.log_softmax(x, dim=1)
        probs = log_p.exp()
    else:
        probs = x
        log_p = torch.log(x.clamp_min(torch.finfo(acc).tiny)) if (want_ce or focal_gamma is not None) else None
    flat_labels = flatten_spatial(labels, 1)
    valid = valid_label_mask(flat_labels, ignore_index)
    count = _valid_count(flat_labels, valid, per_image, acc)
    stats = None
    if want_stats:
        stats = class_map_statistics(probs, labels, ignore_index=ignore_index, per_image=per_image, squared=squared)
    ce_sum = ce_weight_sum = focal_sum = None
    if want_ce or focal_gamma is not None:
        index = safe_labels(flat_labels, valid)
        log_p_label = flatten_spatial(log_p, 2).gather(1, index.unsqueeze(1)).squeeze(1)
        weight = torch.ones_like(log_p_label) if valid is None else valid.to(acc)
        if want_ce:
            pixel_weight = weight if ce_weight is None else weight * ce_weight.to(acc)[index]
            ce_sum = _reduce_pixels(-log_p_label * pixel_weight, per_image)
            ce_weight_sum = _reduce_pixels(pixel_weight, per_image)
        if focal_gamma is not None:
            terms = focal_pixel_terms(log_p_label, focal_gamma)
            if focal_alpha is not None:
                terms = terms * focal_alpha.to(acc)[index]
            focal_sum = _reduce_pixels(terms * weight, per_image)
    return MulticlassTerms(stats, ce_sum, ce_weight_sum, focal_sum, count)


def focal_pixel_terms(log_p_label: Tensor, gamma: float) -> Tensor:
    """-(1 - p)^gamma log p, finite in value and gradient for every gamma >= 0.

    ``1 - p`` is computed as ``-expm1(log p)`` (no cancellation) and clamped at the
    smallest normal number, so ``gamma < 1`` never meets ``0 ** (gamma - 1)``.
    """
    if gamma == 0:
        return -log_p_label
    one_minus_p = (-torch.expm1(log_p_label)).clamp_min(torch.finfo(log_p_label.dtype).tiny)
    return -(one_minus_p**gamma) * log_p_label


def _reduce_pixels(values: Tensor, per_image: bool) -> Tensor:
    """(N, S) -> (N,) with per_image, else a 0-d sum."""
    return values.sum(-1) if per_image else values.sum()


def _valid_count(flat_labels: Tensor, valid: Optional[Tensor], per_image: bool, dtype: torch.dtype) -> Tensor:
    n, s = flat_labels.shape
    if valid is None:
        full = torch.full((n,), float(s), dtype=dtype, device=flat_labels.device)
        return full if per_image else full.sum()
    counts = valid.sum(-1).to(dtype)
    return counts if per_image else counts.sum()


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 0 where the denominator is 0, with a finite gradient."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, torch.ones_like(denominator)), 0)


def binary_probabilities(logits: Tensor, from_logits: bool) -> Tensor:
    """Sigmoid in the accumulation dtype (or the probabilities as given)."""
    x = logits.to(accumulation_dtype(logits.dtype))
    return torch.sigmoid(x) if from_logits else x


def log_sigmoid_pair(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(log sigmoid(x), log sigmoid(-x)) in the accumulation dtype, stable for large |x|."""
    x = logits.to(accumulation_dtype(logits.dtype))
    return F.logsigmoid(x), F.logsigmoid(-x)


def overlap_index(
    stats: OverlapStatistics,
    *,
    tp_weight: float,
    fp_weight: float,
    fn_weight: float,
    smooth: float,
) -> Tensor:
    """(w_tp tp + s) / (w_tp tp + a fp + b fn + s), per class (the one ratio behind
    Dice, F-beta, Tversky and Jaccard). Written with ps and gs so that no cancellation
    makes fp or fn negative: the denominator is (w_tp - a - b) tp + a ps + b gs + s.
    A class with nothing predicted and nothing true (0 / 0 when s = 0) scores 1."""
    numerator = tp_weight * stats.tp + smooth
    denominator = (tp_weight - fp_weight - fn_weight) * stats.tp + fp_weight * stats.ps + fn_weight * stats.gs + smooth
    return ratio_or_one(numerator, denominator)


def ratio_or_one(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 1 where the denominator is 0, with a finite gradient."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, torch.ones_like(denominator)), 1.0)
