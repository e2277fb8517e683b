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

from segfuse._validate import representable_ignore_index


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
    ignore_index = representable_ignore_index(labels, ignore_index)
    return None if ignore_index is None else labels != ignore_index


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
    tp = _per_image_label_sum(p.gather(1, index.unsqueeze(1)).squeeze(1), index, weight, c)
    ps = _masked_class_sum(p * p if squared else p, weight)
    stats = OverlapStatistics(tp, ps, _label_counts(index, valid, c, p.dtype))
    return stats if per_image else OverlapStatistics(*(x.sum(0) for x in stats))


def _per_image_label_sum(values: Tensor, index: Tensor, weight: Optional[Tensor], num_classes: int) -> Tensor:
    """Scatter-add (N, S) values into (N, C) by label, skipping zero-weight pixels."""
    n = index.shape[0]
    if weight is not None:
        values = values * weight
    bins = index + (torch.arange(n, device=index.device) * num_classes).unsqueeze(1)
    return values.new_zeros(n * num_classes).index_add_(0, bins.reshape(-1), values.reshape(-1)).view(n, num_classes)


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
    """Plain-torch implementation of :func:`multiclass_terms` (any device, autograd).

    Softmax statistics with optional CE take :class:`SoftmaxStatistics` (an explicit
    backward: one pass fewer over N x C x S than autograd); the other combinations
    (focal, squared, probabilities) compose torch ops.
    """
    acc = accumulation_dtype(logits.dtype)
    x = flatten_spatial(logits.to(acc), 2)
    flat_labels = flatten_spatial(labels, 1)
    valid = valid_label_mask(flat_labels, ignore_index)
    index = safe_labels(flat_labels, valid)
    weight = None if valid is None else valid.to(acc)
    ce_pixel_weight = None
    if want_ce:
        ce_pixel_weight = torch.ones_like(index, dtype=acc) if weight is None else weight
        if ce_weight is not None:
            ce_pixel_weight = ce_pixel_weight * ce_weight.to(acc)[index]
    stats = ce_sum = focal_sum = None
    if want_stats and from_logits and not squared and focal_gamma is None:
        tp, ps, ce_sum = SoftmaxStatistics.apply(x, index, weight, ce_pixel_weight)
        ce_sum = ce_sum if want_ce else None
        stats = OverlapStatistics(tp, ps, _label_counts(index, valid, x.shape[1], acc))
    else:
        stats, ce_sum, focal_sum = _composed_terms(x, labels, index, weight, ce_pixel_weight, ignore_index,
                                                   want_stats, squared, focal_gamma, focal_alpha, from_logits)
    ce_weight_sum = None if ce_pixel_weight is None else ce_pixel_weight.sum(-1)
    count = torch.full((x.shape[0],), float(x.shape[2]), dtype=acc, device=x.device) if weight is None \
        else weight.sum(-1)
    terms = MulticlassTerms(stats, ce_sum, ce_weight_sum, focal_sum, count)
    return terms if per_image else _sum_over_batch(terms)


def _label_counts(index: Tensor, valid: Optional[Tensor], num_classes: int, dtype: torch.dtype) -> Tensor:
    """gs per image and class (N, C): a bincount of n * C + label over valid pixels."""
    n = index.shape[0]
    bins = index + (torch.arange(n, device=index.device) * num_classes).unsqueeze(1)
    bins = bins.reshape(-1) if valid is None else bins[valid]
    return torch.bincount(bins, minlength=n * num_classes).view(n, num_classes).to(dtype)


def _sum_over_batch(terms: MulticlassTerms) -> MulticlassTerms:
    def total(x):
        return None if x is None else x.sum(0)

    stats = None if terms.stats is None else OverlapStatistics(*(x.sum(0) for x in terms.stats))
    return MulticlassTerms(stats, total(terms.ce_sum), total(terms.ce_weight), total(terms.focal_sum),
                           total(terms.count))


def _composed_terms(x, labels, index, weight, ce_pixel_weight, ignore_index, want_stats, squared, focal_gamma,
                    focal_alpha, from_logits):
    """Per-image (stats, ce_sum, focal_sum) composed of torch ops (autograd backward)."""
    acc = x.dtype
    need_log = ce_pixel_weight is not None or focal_gamma is not None
    if from_logits:
        log_p = torch.log_softmax(x, dim=1) if need_log else None
        probs = (log_p.exp() if need_log else torch.softmax(x, 1)) if want_stats else None
    else:
        probs = x
        log_p = torch.log(x.clamp_min(torch.finfo(acc).tiny)) if need_log else None
    stats = None
    if want_stats:
        stats = class_map_statistics(probs, flatten_spatial(labels, 1), ignore_index=ignore_index, per_image=True,
                                     squared=squared)
    ce_sum = focal_sum = None
    if need_log:
        log_p_label = log_p.gather(1, index.unsqueeze(1)).squeeze(1)
        if ce_pixel_weight is not None:
            ce_sum = (-log_p_label * ce_pixel_weight).sum(-1)
        if focal_gamma is not None:
            terms = focal_pixel_terms(log_p_label, focal_gamma)
            if focal_alpha is not None:
                terms = terms * focal_alpha.to(acc)[index]
            focal_sum = (terms if weight is None else terms * weight).sum(-1)
    return stats, ce_sum, focal_sum


class SoftmaxStatistics(torch.autograd.Function):
    """Per-image tp, ps (N, C) and CE sums (N,) of softmax(logits) with an explicit backward.

    Inputs: logits (N, C, S); index (N, S) int64 labels (ignored pixels moved to 0);
    weight (N, S) 0/1 validity or None; ce_pixel_weight (N, S) or None (no CE).
    Backward: with G_c = dL/dp_c = g_ps[c] valid + g_tp[c] [y = c] valid,
    dL/dx_c = p_c (G_c - sum_k p_k G_k) + g_ce w (p_c - [y = c]).
    """

    @staticmethod
    def forward(ctx, logits, index, weight, ce_pixel_weight):
        n, c, _ = logits.shape
        if ce_pixel_weight is not None:
            log_p = torch.log_softmax(logits, 1)
            ce_sum = -(log_p.gather(1, index.unsqueeze(1)).squeeze(1) * ce_pixel_weight).sum(-1)
            probs = log_p.exp_()
        else:
            probs = torch.softmax(logits, 1)
            ce_sum = logits.new_zeros(n)
        p_label = probs.gather(1, index.unsqueeze(1)).squeeze(1)
        tp = _per_image_label_sum(p_label, index, weight, c)
        ps = _masked_class_sum(probs, weight)
        ctx.save_for_backward(probs, index, weight, ce_pixel_weight, p_label)
        if ce_pixel_weight is None:
            ctx.mark_non_differentiable(ce_sum)
        ctx.set_materialize_grads(False)
        return tp, ps, ce_sum

    @staticmethod
    def backward(ctx, grad_tp, grad_ps, grad_ce):
        probs, index, weight, ce_pixel_weight, p_label = ctx.saved_tensors
        n, c, s = probs.shape
        coefficient = torch.zeros(n, s, dtype=probs.dtype, device=probs.device)
        label_term = torch.zeros_like(coefficient)
        if grad_tp is not None:
            grad_at_label = grad_tp.gather(1, index)
            if weight is not None:
                grad_at_label = grad_at_label * weight
            label_term += p_label * grad_at_label
            coefficient -= p_label * grad_at_label
        if grad_ps is not None:
            inner = torch.bmm(grad_ps.unsqueeze(1), probs).squeeze(1)
            coefficient -= inner if weight is None else inner * weight
        if grad_ce is not None and ce_pixel_weight is not None:
            ce_scale = grad_ce.unsqueeze(1) * ce_pixel_weight
            coefficient += ce_scale
            label_term -= ce_scale
        if grad_ps is None:
            grad = probs * coefficient.unsqueeze(1)
        elif weight is None:
            grad = (grad_ps.unsqueeze(2) + coefficient.unsqueeze(1)).mul_(probs)
        else:
            grad = torch.addcmul(coefficient.unsqueeze(1), grad_ps.unsqueeze(2), weight.unsqueeze(1)).mul_(probs)
        grad.scatter_add_(1, index.unsqueeze(1), label_term.unsqueeze(1))
        return grad, None, None, None


def focal_pixel_terms(log_p_label: Tensor, gamma: float) -> Tensor:
    """-(1 - p)^gamma log p, finite in value and gradient for every gamma >= 0.

    ``1 - p`` is computed as ``-expm1(log p)`` (no cancellation) and clamped at the
    smallest normal number, so ``gamma < 1`` never meets ``0 ** (gamma - 1)``.
    """
    if gamma == 0:
        return -log_p_label
    one_minus_p = (-torch.expm1(log_p_label)).clamp_min(torch.finfo(log_p_label.dtype).tiny)
    return -(one_minus_p**gamma) * log_p_label


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
