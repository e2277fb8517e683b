"""The statistics core: every per-pass quantity a loss asks for, from any mode and target form.

For class c over the valid (non-ignored) pixels i, with prediction p_ic and target g_ic::

    tp_c = sum_i p_ic g_ic      ps_c = sum_i p_ic      gs_c = sum_i g_ic
    fp_c = ps_c - tp_c          fn_c = gs_c - tp_c

:func:`loss_terms` and :func:`fused_loss` are the one dispatch point. For a multiclass
class map, a dense (one-hot / soft) multiclass target or a sigmoid (binary / multilabel)
target, :func:`loss_terms` returns the overlap statistics, the cross-entropy (or BCE) sums,
the focal sums and the valid counts of one pass; :func:`fused_loss` returns a whole loss of
the form :class:`LossMix` (overlap mean + CE + focal, reduction "mean") from the fused
kernels' finish step, or None when the kernels do not serve the request. These two alone
choose between the fused Triton kernels (:mod:`segfuse.kernels`) and the torch reference
passes below. A loss asks :func:`fused_loss` first and, on None, combines what
:func:`loss_terms` returns for the same request (the same value).

From a class map nothing of size N x C x S is built for the statistics: tp gathers p at
the label and scatters it into its class, ps is a masked sum (a batched matrix-vector
product) and gs a count of the labels. Accumulation is float32 for half inputs (float64
stays float64), with autocast switched off inside the core.

Convention:
    ``per_image=False`` sums over batch and space, giving shape (C,) (the seeds'
    convention); ``per_image=True`` sums over space only, giving (N, C). With
    ``squared=True`` (V-Net), ps and gs are the sums of p^2 and g^2. With
    ``soft_label=True`` (MONAI), tp is sum_i min(p_ic, g_ic): equal to sum p g for hard
    targets, and for a soft target g the score is maximal at p = g. Label smoothing
    replaces the target by (1 - eps) g + eps / K (K = C for softmax, 2 for a sigmoid
    channel), at valid pixels only.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from segfuse._validate import representable_ignore_index
# The overlap loss the fused kernels finish (the losses build it here; importing the
# package segfuse.kernels defines no kernel and does not import Triton).
from segfuse.kernels import OverlapTerm


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


class LossTerms(NamedTuple):
    """What one pass over the input and the target produces.

    ``stats``: the overlap statistics (or None). ``ce_sum`` / ``ce_weight``: the summed
    (weighted) cross-entropy, or BCE for sigmoid modes, and the denominator of its mean
    (torch's: the summed class weights of the valid pixels for a class map, the pixel or
    element count otherwise). ``focal_sum``: the summed focal terms. ``count``: the number
    of valid pixels (multiclass) or elements (sigmoid). Sums are per image (N,) with
    ``per_image=True``, else 0-d.
    """

    stats: Optional[OverlapStatistics]
    ce_sum: Optional[Tensor]
    ce_weight: Optional[Tensor]
    focal_sum: Optional[Tensor]
    count: Tensor


# The name the multiclass kernel (segfuse.kernels.fused_multiclass_terms) builds.
MulticlassTerms = LossTerms


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other float type accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def valid_label_mask(labels: Tensor, ignore_index: Optional[int]) -> Optional[Tensor]:
    """Boolean mask of the non-ignored pixels, or None when nothing can be ignored."""
    ignore_index = representable_ignore_index(labels, ignore_index)
    return None if ignore_index is None else labels != ignore_index


binary_valid_mask = valid_label_mask


def safe_labels(labels: Tensor, valid: Optional[Tensor]) -> Tensor:
    """int64 labels with ignored pixels moved to class 0 (their weight is zero)."""
    labels = labels.long()
    return labels if valid is None else labels.masked_fill(~valid, 0)


def flatten_spatial(x: Tensor, leading: int) -> Tensor:
    """(d0, ..., d_{leading-1}, *S) -> (d0, ..., d_{leading-1}, prod(S)); also for empty batches."""
    return x.reshape(*x.shape[:leading], math.prod(x.shape[leading:]))


def _autocast_off(device: torch.device):
    """The core computes in the accumulation dtype: autocast must not recast its matmuls."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------
# The dispatch point
# --------------------------------------------------------------------------------------


def loss_terms(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    class_map: bool,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    from_logits: bool = True,
    want_stats: bool = True,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    want_ce: bool = False,
    ce_weight: Optional[Tensor] = None,
    ce_label_smoothing: float = 0.0,
    pos_weight: Optional[Tensor] = None,
    focal_gamma: Optional[float] = None,
    focal_alpha=None,
) -> LossTerms:
    """Every per-pass quantity of a loss, through the fused kernel or the torch reference.

    Args:
        input: logits (or probabilities with ``from_logits=False``) (N, C, *S).
        target: a class map (N, *S) when ``class_map`` (multiclass), else a dense target
            (N, C, *S): one-hot / soft for multiclass, {0, 1} / soft (or ``ignore_index``)
            for binary / multilabel.
        mode: "multiclass" (softmax) or "binary" / "multilabel" (sigmoid).
        want_stats, squared, soft_label, label_smoothing: the overlap statistics and how
            the target enters them.
        want_ce, ce_weight, ce_label_smoothing, pos_weight: softmax cross-entropy with
            per-class weights (C,) and torch's label smoothing, or BCE with a per-channel
            ``pos_weight`` (C,) for sigmoid modes.
        focal_gamma, focal_alpha: the focal sums (None skips them); alpha is a per-class
            tensor (C,) for softmax, a float for sigmoid.

    Returns:
        :class:`LossTerms`, summed over the batch unless ``per_image``.
    """
    with _autocast_off(input.device):
        if class_map:
            return _class_map_terms(
                input, target, ignore_index=ignore_index, per_image=per_image, from_logits=from_logits,
                want_stats=want_stats, squared=squared, soft_label=soft_label, label_smoothing=label_smoothing,
                want_ce=want_ce, ce_weight=ce_weight, ce_label_smoothing=ce_label_smoothing,
                focal_gamma=focal_gamma, focal_alpha=focal_alpha)
        if mode == "multiclass":
            terms = dense_softmax_terms(
                input, target, from_logits=from_logits, want_stats=want_stats, squared=squared,
                soft_label=soft_label, label_smoothing=label_smoothing, want_ce=want_ce, ce_weight=ce_weight,
                ce_label_smoothing=ce_label_smoothing, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
            return terms if per_image else _sum_over_batch(terms)
        return _sigmoid_terms(
            input, target, ignore_index=ignore_index, per_image=per_image, from_logits=from_logits,
            want_stats=want_stats, squared=squared, soft_label=soft_label, label_smoothing=label_smoothing,
            want_ce=want_ce, ce_label_smoothing=ce_label_smoothing, pos_weight=pos_weight,
            focal_gamma=focal_gamma, focal_alpha=focal_alpha)


class LossMix(NamedTuple):
    """A loss the fused kernels compute whole (reduction "mean"):
    ``overlap_weight * overlap + ce_weight * CE + focal_weight * focal``.

    ``overlap``: the overlap term's mean over classes (:class:`OverlapTerm`, pooling
    "none"), or None for no overlap term. CE is torch's weighted mean over valid pixels
    (BCE: the mean over valid entries), focal the mean over valid pixels (entries); their
    class weights, gamma and alpha come from the request (see :func:`fused_loss`). A term
    with weight 0 is not computed.
    """

    overlap: Optional[OverlapTerm] = None
    overlap_weight: float = 1.0
    ce_weight: float = 0.0
    focal_weight: float = 0.0


def fused_loss(
    input: Tensor,
    target: Tensor,
    mix: Optional[LossMix],
    *,
    mode: str,
    class_map: bool,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    from_logits: bool = True,
    want_stats: bool = True,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    want_ce: bool = False,
    ce_weight: Optional[Tensor] = None,
    ce_label_smoothing: float = 0.0,
    pos_weight: Optional[Tensor] = None,
    focal_gamma: Optional[float] = None,
    focal_alpha=None,
) -> Optional[Tensor]:
    """The loss ``mix`` as one float32 0-d tensor from the fused kernels, or None.

    Takes the request of :func:`loss_terms` (same arguments, same meaning) and the loss's
    combination ``mix``. Returns None, so that the loss combines :func:`loss_terms` of the
    same request, when ``mix`` is None, when the kernels do not serve the input (CPU
    without SEGFUSE_FORCE_KERNELS=1 and TRITON_INTERPRET=1, float64, squared, probabilities,
    a dense multiclass target, more classes than the kernels hold, an empty batch), when
    the target is smoothed (``label_smoothing`` or ``ce_label_smoothing``), with a BCE
    ``pos_weight``, with soft-label tp against a soft sigmoid target, or when a weight is
    a tensor that requires grad (the fused op gives no gradient to weights). Otherwise
    forward is two launches and backward one, under one autograd node; values and
    gradients equal the torch path's to float32 rounding.
    """
    if mix is None or label_smoothing != 0 or ce_label_smoothing != 0 or not _plain_numbers(mix):
        return None
    from segfuse import kernels

    focal, ce = mix.focal_weight != 0, mix.ce_weight != 0
    overlap_weights = None if mix.overlap is None else mix.overlap.class_weights
    if (focal and focal_gamma is None) or _requires_grad(ce_weight if ce else None, focal_alpha if focal else None,
                                                         overlap_weights):
        return None
    with _autocast_off(input.device):
        if class_map:
            if not kernels.fused_multiclass_available(input, squared=squared, from_logits=from_logits):
                return None
            return kernels.fused_multiclass_loss(
                input, target, ignore_index=ignore_index, per_image=per_image, overlap=mix.overlap,
                overlap_weight=mix.overlap_weight, ce_weight=mix.ce_weight, ce_class_weights=ce_weight if ce else None,
                focal_weight=mix.focal_weight, focal_gamma=focal_gamma if focal else 2.0,
                focal_alpha=focal_alpha if focal else None)
        if mode == "multiclass" or pos_weight is not None or (soft_label and target.is_floating_point()):
            return None
        if not kernels.fused_binary_available(input, target, squared=squared, from_logits=from_logits):
            return None
        return kernels.fused_binary_loss(
            input, target, ignore_index=ignore_index, per_image=per_image, overlap=mix.overlap,
            overlap_weight=mix.overlap_weight, bce_weight=mix.ce_weight, focal_weight=mix.focal_weight,
            focal_gamma=focal_gamma if focal else 2.0, focal_alpha=focal_alpha if focal else None)


def _plain_numbers(mix: LossMix) -> bool:
    """Whether the term weights are Python numbers (a tensor weight may be learned)."""
    weights = (mix.overlap_weight, mix.ce_weight, mix.focal_weight)
    return all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)


def _requires_grad(*values) -> bool:
    return any(isinstance(v, Tensor) and v.requires_grad for v in values)


def _class_map_terms(input, target, *, ignore_index, per_image, from_logits, want_stats, squared, soft_label,
                     label_smoothing, want_ce, ce_weight, ce_label_smoothing, focal_gamma, focal_alpha) -> LossTerms:
    from segfuse import kernels

    fused = (kernels.fused_multiclass_available(input, squared=squared, from_logits=from_logits)
             and ce_label_smoothing == 0 and not (soft_label and label_smoothing > 0))
    if not fused:
        return multiclass_terms_reference(
            input, target, ignore_index=ignore_index, per_image=per_image, want_stats=want_stats, squared=squared,
            ce_weight=ce_weight, want_ce=want_ce, focal_gamma=focal_gamma, focal_alpha=focal_alpha,
            from_logits=from_logits, soft_label=soft_label, label_smoothing=label_smoothing,
            ce_label_smoothing=ce_label_smoothing)
    terms = kernels.fused_multiclass_terms(
        input, target, ignore_index=ignore_index, per_image=per_image, want_stats=want_stats, ce_weight=ce_weight,
        want_ce=want_ce, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
    if want_stats and label_smoothing > 0:
        stats = smooth_class_map_statistics(terms.stats, terms.count, label_smoothing, input.shape[1])
        terms = terms._replace(stats=stats)
    return terms


def _sigmoid_terms(input, target, *, ignore_index, per_image, from_logits, want_stats, squared, soft_label,
                   label_smoothing, want_ce, ce_label_smoothing, pos_weight, focal_gamma, focal_alpha) -> LossTerms:
    from segfuse import kernels

    fused = (kernels.fused_binary_available(input, target, squared=squared, from_logits=from_logits)
             and pos_weight is None and label_smoothing == 0 and ce_label_smoothing == 0
             and not (soft_label and target.is_floating_point()))
    if not fused:
        terms = sigmoid_terms_reference(
            input, target, ignore_index=ignore_index, from_logits=from_logits, want_stats=want_stats,
            squared=squared, soft_label=soft_label, label_smoothing=label_smoothing, want_ce=want_ce,
            ce_label_smoothing=ce_label_smoothing, pos_weight=pos_weight, focal_gamma=focal_gamma,
            focal_alpha=focal_alpha)
        return terms if per_image else _sum_over_batch(terms)
    terms = kernels.fused_binary_terms(input, target, ignore_index=ignore_index, per_image=per_image,
                                       want_stats=want_stats, want_bce=want_ce, focal_gamma=focal_gamma,
                                       focal_alpha=focal_alpha)
    return LossTerms(terms.stats, terms.bce_sum, terms.count if want_ce else None, terms.focal_sum, terms.count)


def _sum_over_batch(terms: LossTerms) -> LossTerms:
    def total(x):
        return None if x is None else x.sum(0)

    stats = None if terms.stats is None else OverlapStatistics(*(x.sum(0) for x in terms.stats))
    return LossTerms(stats, total(terms.ce_sum), total(terms.ce_weight), total(terms.focal_sum), total(terms.count))


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


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
    c = probs.shape[1]
    p = flatten_spatial(probs, 2)
    valid = valid_label_mask(flatten_spatial(labels, 1), ignore_index)
    index = safe_labels(flatten_spatial(labels, 1), valid)
    weight = None if valid is None else valid.to(p.dtype)
    tp = _per_image_label_sum(p.gather(1, index.unsqueeze(1)).squeeze(1), index, weight, c)
    ps = _masked_class_sum(p * p if squared else p, weight)
    stats = OverlapStatistics(tp, ps, _label_counts(index, valid, c, p.dtype))
    return stats if per_image else OverlapStatistics(*(x.sum(0) for x in stats))


def dense_statistics(
    probs: Tensor,
    target: Tensor,
    *,
    valid: Optional[Tensor] = None,
    per_image: bool = False,
    squared: bool = False,
    soft_label: bool = False,
) -> OverlapStatistics:
    """Soft statistics of probabilities (N, C, *S) against a dense target of the same shape.

    ``valid`` is a boolean mask broadcastable to the target ((N, C, *S) or (N, 1, *S)):
    False pixels contribute nothing. The target must already be zero there.
    ``soft_label`` takes tp = sum min(p, g) (MONAI's soft-label formula; with ``squared``
    MONAI's formula is sum p g, as here).
    """
    p = flatten_spatial(probs, 2)
    g = flatten_spatial(target.to(p.dtype), 2)
    if valid is not None:
        p = p * flatten_spatial(valid, 2).to(p.dtype)
    tp = torch.minimum(p, g).sum(-1) if soft_label and not squared else (p * g).sum(-1)
    ps = (p * p).sum(-1) if squared else p.sum(-1)
    gs = (g * g).sum(-1) if squared else g.sum(-1)
    if per_image:
        return OverlapStatistics(tp, ps, gs)
    return OverlapStatistics(tp.sum(0), ps.sum(0), gs.sum(0))


def smooth_class_map_statistics(stats: OverlapStatistics, count: Tensor, eps: float,
                                num_classes: int) -> OverlapStatistics:
    """Statistics against the smoothed one-hot (1 - eps) [y = c] + eps / C, from those of the
    hard one-hot (``squared=False``): tp and gs are linear in the target, so no one-hot is
    needed. ``count`` is the number of valid pixels per image (N,) or in all (0-d).
    """
    low = eps / num_classes
    scale = 1 - eps
    count = count.unsqueeze(-1).to(stats.gs.dtype)
    return OverlapStatistics(scale * stats.tp + low * stats.ps, stats.ps, scale * stats.gs + low * count)


def smooth_target(target: Tensor, eps: float, classes: int) -> Tensor:
    """(1 - eps) g + eps / classes (torch's label smoothing of a dense target)."""
    return target if eps == 0 else target * (1 - eps) + eps / classes


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


def _label_counts(index: Tensor, valid: Optional[Tensor], num_classes: int, dtype: torch.dtype) -> Tensor:
    """gs per image and class (N, C): a count of n * C + label over the valid pixels."""
    n = index.shape[0]
    bins = index + (torch.arange(n, device=index.device) * num_classes).unsqueeze(1)
    if torch.compiler.is_compiling():
        # bincount's output size depends on the data: a graph break under torch.compile
        ones = torch.ones(bins.shape, dtype=dtype, device=bins.device) if valid is None else valid.to(dtype)
        return torch.zeros(n * num_classes, dtype=dtype, device=bins.device).index_add_(
            0, bins.reshape(-1), ones.reshape(-1)).view(n, num_classes)
    if valid is not None:
        bins = torch.where(valid, bins, n * num_classes)  # ignored pixels go to one extra bin
    counts = torch.bincount(bins.reshape(-1), minlength=n * num_classes + 1)[: n * num_classes]
    return counts.view(n, num_classes).to(dtype)


# --------------------------------------------------------------------------------------
# The torch reference passes
# --------------------------------------------------------------------------------------


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
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    ce_label_smoothing: float = 0.0,
) -> LossTerms:
    """Plain-torch pass over logits (N, C, *S) and a class map (N, *S) (any device, autograd).

    The reference of the fused multiclass kernel. Softmax statistics with optional CE take
    :class:`SoftmaxStatistics` (an explicit backward: one pass fewer over N x C x S than
    autograd); CE alone takes torch's ``cross_entropy``; the other combinations (focal,
    squared, probabilities, smoothed CE, soft-label smoothing) compose torch ops.
    """
    acc = accumulation_dtype(logits.dtype)
    x = flatten_spatial(logits.to(acc), 2)
    flat_labels = flatten_spatial(labels, 1)
    valid = valid_label_mask(flat_labels, ignore_index)
    index = safe_labels(flat_labels, valid)
    weight = None if valid is None else valid.to(acc)
    ce_class_weight = None if ce_weight is None else ce_weight.to(device=x.device, dtype=acc)
    plain = from_logits and focal_gamma is None and ce_label_smoothing == 0
    stats = ce_sum = ce_weight_sum = focal_sum = None
    explicit = want_stats and plain and not squared and not (soft_label and label_smoothing > 0)
    if explicit:
        tp, ps, ce_sum, ce_weight_sum = SoftmaxStatistics.apply(x, index, weight, ce_class_weight, want_ce)
        stats = OverlapStatistics(tp, ps, _label_counts(index, valid, x.shape[1], acc))
    elif not want_stats and want_ce and from_logits and focal_gamma is None:
        return _torch_cross_entropy_terms(x, index, valid, weight, ce_class_weight, ce_label_smoothing, per_image)
    else:
        stats, ce_sum, ce_weight_sum, focal_sum = _composed_terms(
            x, index, weight, ce_class_weight, want_stats, want_ce, squared, soft_label, label_smoothing,
            ce_label_smoothing, focal_gamma, focal_alpha, from_logits)
    count = torch.full((x.shape[0],), float(x.shape[2]), dtype=acc, device=x.device) if weight is None \
        else weight.sum(-1)
    if explicit and label_smoothing > 0:
        stats = smooth_class_map_statistics(stats, count, label_smoothing, x.shape[1])
    terms = LossTerms(stats, ce_sum if want_ce else None, ce_weight_sum if want_ce else None, focal_sum, count)
    return terms if per_image else _sum_over_batch(terms)


def _pixel_weights(index: Tensor, weight: Optional[Tensor], ce_class_weight: Optional[Tensor], dtype) -> Tensor:
    """CE weight of each pixel (N, S): w_y at valid pixels, 0 at ignored ones."""
    pixel = torch.ones(index.shape, dtype=dtype, device=index.device) if weight is None else weight
    return pixel if ce_class_weight is None else pixel * ce_class_weight[index]


def _torch_cross_entropy_terms(x, index, valid, weight, ce_class_weight, label_smoothing, per_image) -> LossTerms:
    """CE alone, from ``torch.nn.functional.cross_entropy`` itself: per image (reduction
    "none", summed over space) or over the batch (reduction "sum", torch's fastest path)."""
    target = index if valid is None else index.masked_fill(~valid, -100)
    losses = F.cross_entropy(x, target, weight=ce_class_weight, ignore_index=-100,
                             reduction="none" if per_image else "sum", label_smoothing=label_smoothing)
    count = torch.full((x.shape[0],), float(x.shape[2]), dtype=x.dtype, device=x.device) if weight is None \
        else weight.sum(-1)
    pixel_weight = count if ce_class_weight is None else _pixel_weights(index, weight, ce_class_weight, x.dtype).sum(-1)
    if per_image:
        return LossTerms(None, losses.sum(-1), pixel_weight, None, count)
    return LossTerms(None, losses, pixel_weight.sum(), None, count.sum())


def _composed_terms(x, index, weight, ce_class_weight, want_stats, want_ce, squared, soft_label, label_smoothing,
                    ce_label_smoothing, focal_gamma, focal_alpha, from_logits):
    """Per-image (stats, ce_sum, ce_weight_sum, focal_sum) composed of torch ops (autograd)."""
    acc = x.dtype
    need_log = want_ce or focal_gamma is not None
    if from_logits:
        log_p = torch.log_softmax(x, dim=1) if need_log else None
        probs = (log_p.exp() if need_log else torch.softmax(x, 1)) if want_stats else None
    else:
        probs = x
        log_p = torch.log(x.clamp_min(torch.finfo(acc).tiny)) if need_log else None
    stats = None
    if want_stats:
        stats = _class_map_soft_statistics(probs, index, weight, squared, soft_label, label_smoothing)
    ce_sum = ce_weight_sum = focal_sum = None
    if need_log:
        log_p_label = log_p.gather(1, index.unsqueeze(1)).squeeze(1)
    if want_ce:
        pixel_weight = _pixel_weights(index, weight, ce_class_weight, acc)
        ce_sum = (-log_p_label * pixel_weight).sum(-1)
        if ce_label_smoothing > 0:
            ce_sum = _smoothed_cross_entropy(ce_sum, log_p, weight, ce_class_weight, ce_label_smoothing)
        ce_weight_sum = pixel_weight.sum(-1)
    if focal_gamma is not None:
        terms = focal_pixel_terms(log_p_label, focal_gamma)
        if focal_alpha is not None:
            terms = terms * focal_alpha.to(device=x.device, dtype=acc)[index]
        focal_sum = (terms if weight is None else terms * weight).sum(-1)
    return stats, ce_sum, ce_weight_sum, focal_sum


def _smoothed_cross_entropy(nll_sum, log_p, weight, ce_class_weight, eps):
    """torch's label smoothing: (1 - eps) sum w_y nll + eps / C sum_c w_c (-log p_c), per image."""
    log_p_weighted = log_p if ce_class_weight is None else log_p * ce_class_weight.view(1, -1, 1)
    uniform = -log_p_weighted.sum(1)
    if weight is not None:
        uniform = uniform * weight
    return (1 - eps) * nll_sum + eps / log_p.shape[1] * uniform.sum(-1)


def _class_map_soft_statistics(probs, index, weight, squared, soft_label, eps) -> OverlapStatistics:
    """Per-image statistics of probs (N, C, S) against a class map, hard or smoothed to
    g' = (1 - eps) [y = c] + eps / C; with ``soft_label`` (and not ``squared``) tp is
    sum min(p, g'), else sum p g'. Nothing of size N x C x S beyond probs-sized temporaries."""
    c = probs.shape[1]
    valid = None if weight is None else weight > 0
    p_label = probs.gather(1, index.unsqueeze(1)).squeeze(1)
    ps = _masked_class_sum(probs * probs if squared else probs, weight)
    gs = _label_counts(index, valid, c, probs.dtype)
    if eps == 0:
        return OverlapStatistics(_per_image_label_sum(p_label, index, weight, c), ps, gs)
    low, high = eps / c, 1 - eps + eps / c
    if soft_label and not squared:
        at_label = torch.minimum(p_label, p_label.new_tensor(high)) - torch.minimum(p_label, p_label.new_tensor(low))
        tp = _masked_class_sum(probs.clamp_max(low), weight) + _per_image_label_sum(at_label, index, weight, c)
    else:
        plain_ps = ps if not squared else _masked_class_sum(probs, weight)
        tp = (high - low) * _per_image_label_sum(p_label, index, weight, c) + low * plain_ps
    count = (torch.ones(index.shape, dtype=probs.dtype, device=probs.device) if weight is None
             else weight).sum(-1, keepdim=True)
    if squared:  # g'^2 = ((high - low)^2 + 2 (high - low) low) [y = c] + low^2
        gs = ((high - low) ** 2 + 2 * (high - low) * low) * gs + low * low * count
    else:
        gs = (high - low) * gs + low * count
    return OverlapStatistics(tp, ps, gs)


def dense_softmax_terms(
    logits: Tensor,
    target: Tensor,
    *,
    from_logits: bool = True,
    want_stats: bool = True,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    want_ce: bool = False,
    ce_weight: Optional[Tensor] = None,
    ce_label_smoothing: float = 0.0,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[Tensor] = None,
) -> LossTerms:
    """Per-image terms of softmax(logits) (N, C, *S) against a one-hot / soft target of the same shape.

    CE is torch's for probability targets, -sum_c w_c g_c log p_c per pixel, its mean over
    the pixels; the focal term is -sum_c alpha_c g_c (1 - p_c)^gamma log p_c per pixel.
    """
    acc = accumulation_dtype(logits.dtype)
    x = flatten_spatial(logits.to(acc), 2)
    g = flatten_spatial(target.to(acc), 2)
    n, c, s = x.shape
    need_log = want_ce or focal_gamma is not None
    if from_logits:
        log_p = torch.log_softmax(x, 1) if need_log else None
        probs = (log_p.exp() if need_log else torch.softmax(x, 1)) if want_stats else None
    else:
        probs = x
        log_p = torch.log(x.clamp_min(torch.finfo(acc).tiny)) if need_log else None
    stats = ce_sum = ce_weight_sum = focal_sum = None
    if want_stats:
        stats = dense_statistics(probs, smooth_target(g, label_smoothing, c), per_image=True, squared=squared,
                                 soft_label=soft_label)
    count = torch.full((n,), float(s), dtype=acc, device=x.device)
    if want_ce:
        weighted = log_p if ce_weight is None else log_p * ce_weight.to(device=x.device, dtype=acc).view(1, c, 1)
        ce_sum = -(weighted * smooth_target(g, ce_label_smoothing, c)).sum((1, 2))
        ce_weight_sum = count
    if focal_gamma is not None:
        terms = focal_pixel_terms(log_p, focal_gamma) * g
        if focal_alpha is not None:
            terms = terms * focal_alpha.to(device=x.device, dtype=acc).view(1, c, 1)
        focal_sum = terms.sum((1, 2))
    return LossTerms(stats, ce_sum, ce_weight_sum, focal_sum, count)


def sigmoid_terms_reference(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    from_logits: bool = True,
    want_stats: bool = True,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    want_ce: bool = False,
    ce_label_smoothing: float = 0.0,
    pos_weight: Optional[Tensor] = None,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[float] = None,
) -> LossTerms:
    """Per-image terms of sigmoid(logits) (N, C, *S) against a dense target of the same shape.

    The reference of the fused sigmoid kernel. Entries equal to ``ignore_index`` leave every
    sum; BCE is torch's ``binary_cross_entropy_with_logits`` (``pos_weight`` per channel),
    the focal term torchvision's ``sigmoid_focal_loss``.
    """
    acc = accumulation_dtype(logits.dtype)
    x = flatten_spatial(logits.to(acc), 2)
    raw = flatten_spatial(target, 2)
    valid = binary_valid_mask(raw, ignore_index)
    t = raw.to(acc) if valid is None else torch.where(valid, raw.to(acc), 0)
    mask = None if valid is None else valid.to(acc)
    stats = ce_sum = focal_sum = None
    if want_stats:
        probs = torch.sigmoid(x) if from_logits else x
        g = smooth_target(t, label_smoothing, 2)
        g = g if mask is None or label_smoothing == 0 else g * mask
        stats = dense_statistics(probs, g, valid=valid, per_image=True, squared=squared, soft_label=soft_label)
    if want_ce:
        ce_sum = _masked_sum(binary_cross_entropy_terms(x, smooth_target(t, ce_label_smoothing, 2), pos_weight,
                                                        from_logits), mask)
    if focal_gamma is not None:
        focal_sum = _masked_sum(sigmoid_focal_terms(x, t, focal_alpha, focal_gamma, from_logits), mask)
    count = (torch.full((x.shape[0],), float(x.shape[1] * x.shape[2]), dtype=acc, device=x.device)
             if mask is None else mask.sum((1, 2)))
    return LossTerms(stats, ce_sum, count if want_ce else None, focal_sum, count)


def _masked_sum(values: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Per-image sum of (N, C, S) values over the valid entries."""
    return (values if mask is None else values * mask).sum((1, 2))


def binary_cross_entropy_terms(x: Tensor, t: Tensor, pos_weight: Optional[Tensor], from_logits: bool) -> Tensor:
    """Element BCE of logits (or probabilities) x (N, C, S); ``pos_weight`` (C,) weighs t = 1."""
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=x.device, dtype=x.dtype).reshape(-1, 1)
    if from_logits:
        return F.binary_cross_entropy_with_logits(x, t, pos_weight=pos_weight, reduction="none")
    tiny = torch.finfo(x.dtype).tiny
    positive = -torch.log(x.clamp_min(tiny)) * t
    if pos_weight is not None:
        positive = positive * pos_weight
    return positive - torch.log((1 - x).clamp_min(tiny)) * (1 - t)


def sigmoid_focal_terms(x: Tensor, t: Tensor, alpha: Optional[float], gamma: float, from_logits: bool) -> Tensor:
    """torchvision's sigmoid focal terms BCE(x, t) (1 - p_t)^gamma, times alpha t + (1 - alpha)(1 - t)."""
    acc = x.dtype
    if from_logits:
        log_p, log_not_p = F.logsigmoid(x), F.logsigmoid(-x)
    else:
        tiny = torch.finfo(acc).tiny
        log_p, log_not_p = torch.log(x.clamp_min(tiny)), torch.log((1 - x).clamp_min(tiny))
    element = -(t * log_p + (1 - t) * log_not_p)
    if gamma != 0:
        one_minus_p_t = (log_p.exp() * (1 - t) + log_not_p.exp() * t).clamp_min(torch.finfo(acc).tiny)
        element = element * one_minus_p_t**gamma
    if alpha is not None:
        element = element * (alpha * t + (1 - alpha) * (1 - t))
    return element


class SoftmaxStatistics(torch.autograd.Function):
    """Per-image tp, ps (N, C) and CE sums (N,) of softmax(logits) with an explicit backward.

    Inputs: logits (N, C, S); index (N, S) int64 labels (ignored pixels moved to 0);
    weight (N, S) 0/1 validity or None; ce_class_weight (C,) or None; want_ce.
    Outputs: tp, ps, ce_sum (differentiable) and the summed CE pixel weights (N,).
    Backward: with G_c = dL/dp_c = g_ps[c] valid + g_tp[c] [y = c] valid,
    dL/dx_c = p_c (G_c - sum_k p_k G_k) + g_ce w (p_c - [y = c]).
    """

    @staticmethod
    def forward(ctx, logits, index, weight, ce_class_weight, want_ce):
        n, c, _ = logits.shape
        ce_pixel_weight = None
        if want_ce:
            log_p = torch.log_softmax(logits, 1)
            ce_pixel_weight = _pixel_weights(index, weight, ce_class_weight, logits.dtype)
            ce_sum = -(log_p.gather(1, index.unsqueeze(1)).squeeze(1) * ce_pixel_weight).sum(-1)
            ce_weight_sum = ce_pixel_weight.sum(-1)
            probs = log_p.exp_()
        else:
            probs = torch.softmax(logits, 1)
            ce_sum = logits.new_zeros(n)
            ce_weight_sum = logits.new_zeros(n)
        p_label = probs.gather(1, index.unsqueeze(1)).squeeze(1)
        tp = _per_image_label_sum(p_label, index, weight, c)
        ps = _masked_class_sum(probs, weight)
        ctx.save_for_backward(probs, index, weight, ce_pixel_weight, p_label)
        ctx.mark_non_differentiable(ce_weight_sum)
        if not want_ce:
            ctx.mark_non_differentiable(ce_sum)
        ctx.set_materialize_grads(False)
        return tp, ps, ce_sum, ce_weight_sum

    @staticmethod
    def backward(ctx, grad_tp, grad_ps, grad_ce, grad_ce_weight):
        probs, index, weight, ce_pixel_weight, p_label = ctx.saved_tensors
        n, c, s = probs.shape
        coefficient = torch.zeros(n, s, dtype=probs.dtype, device=probs.device)
        label_term = torch.zeros_like(coefficient)
        if grad_tp is not None:
            grad_at_label = grad_tp.to(probs.dtype).gather(1, index)
            if weight is not None:
                grad_at_label = grad_at_label * weight
            label_term += p_label * grad_at_label
            coefficient -= p_label * grad_at_label
        if grad_ps is not None:
            grad_ps = grad_ps.to(probs.dtype)
            inner = torch.bmm(grad_ps.unsqueeze(1), probs).squeeze(1)
            coefficient -= inner if weight is None else inner * weight
        if grad_ce is not None and ce_pixel_weight is not None:
            ce_scale = grad_ce.to(probs.dtype).unsqueeze(1) * ce_pixel_weight
            coefficient += ce_scale
            label_term -= ce_scale
        if grad_ps is None:
            grad = probs * coefficient.unsqueeze(1)
        elif weight is None:
            grad = (grad_ps.unsqueeze(2) + coefficient.unsqueeze(1)).mul_(probs)
        else:
            grad = torch.addcmul(coefficient.unsqueeze(1), grad_ps.unsqueeze(2), weight.unsqueeze(1)).mul_(probs)
        grad.scatter_add_(1, index.unsqueeze(1), label_term.unsqueeze(1))
        return grad, None, None, None, None


def focal_pixel_terms(log_p: Tensor, gamma: float) -> Tensor:
    """-(1 - p)^gamma log p, finite in value and gradient for every gamma >= 0.

    ``1 - p`` is computed as ``-expm1(log p)`` (no cancellation) and clamped at the
    smallest normal number, so ``gamma < 1`` never meets ``0 ** (gamma - 1)``.
    """
    if gamma == 0:
        return -log_p
    one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    return -(one_minus_p**gamma) * log_p


# --------------------------------------------------------------------------------------
# Ratios
# --------------------------------------------------------------------------------------


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 0 where the denominator is 0, with a finite gradient.

    A NaN numerator stays NaN (a non-finite input is never hidden)."""
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, torch.ones_like(denominator)), 0)


def overlap_index(
    stats: OverlapStatistics,
    *,
    tp_weight: float,
    fp_weight: float,
    fn_weight: float,
    smooth: float = 0.0,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
) -> Tensor:
    """(w_tp tp + s_nr) / (w_tp tp + a fp + b fn + s_dr), per class (the one ratio behind
    Dice, F-beta, Tversky and Jaccard); ``smooth_nr`` / ``smooth_dr`` default to ``smooth``.
    Written with ps and gs so that no cancellation makes fp or fn negative: the
    denominator is (w_tp - a - b) tp + a ps + b gs + s_dr. A zero denominator (nothing
    predicted, nothing true, no smoothing) scores 1; a NaN statistic gives NaN."""
    smooth_nr = smooth if smooth_nr is None else smooth_nr
    smooth_dr = smooth if smooth_dr is None else smooth_dr
    numerator = tp_weight * stats.tp + smooth_nr
    denominator = (tp_weight - fp_weight - fn_weight) * stats.tp + fp_weight * stats.ps + fn_weight * stats.gs
    return ratio_or_one(numerator, denominator + smooth_dr)


def ratio_or_one(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 1 where the denominator is exactly 0, with a finite gradient.

    A NaN denominator (from NaN or infinite logits) gives NaN, never a perfect score."""
    zero = denominator == 0
    return torch.where(zero, 1.0, numerator / torch.where(zero, torch.ones_like(denominator), denominator))
