"""The overlap family: Dice, F-beta, Tversky (focal Tversky), Jaccard, generalized Dice.

Each is one ratio of the per-class statistics of :mod:`segfuse._stats`::

    score_c = (w_tp tp_c + s_nr) / (w_tp tp_c + a fp_c + b fn_c + s_dr)
    loss_c  = (1 - score_c) ** gamma        (or -log(score_c) with log_loss=True)

F-beta: w_tp = 1 + beta^2, a = 1, b = beta^2 (seed 000's f_score); Dice: beta = 1;
Tversky: w_tp = 1, a = alpha, b = beta; Jaccard: w_tp = 1, a = b = 1.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from segfuse import _stats
from segfuse._validate import check_choice, check_positive
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import (
    check_loss_arguments,
    check_overlap_arguments,
    class_weight_tensor,
    finish,
    fused_loss_of,
    overlap_term,
    prepare_inputs,
    reduce_class_losses,
    terms_of,
)


def overlap_loss(
    input: Tensor,
    target: Tensor,
    *,
    tp_weight: float,
    fp_weight: float,
    fn_weight: float,
    gamma: float = 1.0,
    mode: str = "multiclass",
    smooth: float = 1e-5,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    per_image: bool = False,
    ignore_index: Optional[int] = None,
    class_weights: Optional[Sequence[float]] = None,
    normalize_weights: bool = True,
    include_background: bool = True,
    skip_absent=False,
    pooling: str = "none",
    log_loss: bool = False,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    reduction: str = "mean",
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    r"""The overlap loss with explicit weights (w_tp, a, b); the named losses call it.

    Args:
        input: logits (or probabilities with ``from_logits=False``) of shape (N, C, *S);
            (N, 1, *S) or (N, *S) in binary mode. Any float dtype; half accumulates in fp32.
        target: multiclass: class map (N, *S) or (N, 1, *S) with labels in [0, C) (uint8
            to int64), or a one-hot / soft target (N, C, *S); binary / multilabel: {0, 1}
            or soft values in [0, 1] of the input's shape (entries equal to
            ``ignore_index`` are ignored).
        tp_weight, fp_weight, fn_weight: w_tp, a, b of the ratio.
        gamma: exponent of the per-class loss (focal Tversky when != 1).
        mode: "multiclass" (softmax), "binary" or "multilabel" (sigmoid).
        smooth: s, added to numerator and denominator. Default 1e-5.
        smooth_nr, smooth_dr: separate numerator / denominator smoothing (MONAI's); None
            takes ``smooth``.
        per_image: statistics per image and class (N, C) instead of over the batch (C,).
        ignore_index: label whose pixels contribute nothing. None: every label is checked.
        class_weights: per-class weights w_c of the mean.
        normalize_weights: True (default): sum w_c l_c / sum w_c. False: the mean of
            w_c l_c over the classes (MONAI's ``DiceLoss(weight=...)``).
        include_background: False drops class 0 (multiclass, multilabel).
        skip_absent: False (default) keeps classes with gs_c = 0 in the mean; True or
            "zero" sets their loss to 0 and still divides by the class count (smp's
            ``DiceLoss``); "drop" leaves them out of the mean.
        pooling: "none" (default, macro: one score per class, then the mean) or "class"
            (micro: tp, fp, fn summed over the classes, weighted by ``class_weights``,
            into one score per image or batch; kornia's ``average="micro"``).
        log_loss: -log(score) instead of 1 - score.
        squared: V-Net denominator: sums of p^2 and g^2 in place of ps and gs.
        soft_label: tp = sum min(p, g) (MONAI's ``soft_label=True``): for a soft target the
            score is maximal at p = g. The same as the default for hard targets.
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) g + eps / K (K = C
            classes for softmax, 2 for a sigmoid channel) at valid pixels.
        from_logits: False when ``input`` already holds probabilities (or any activation's
            output, e.g. MONAI's ``other_act``).
        reduction: "mean", "sum" or "none" (per-class, or per-image-and-class, losses; per
            image (N,) or 0-d with ``pooling="class"``).
        resize_logits: True (or an interpolation mode) resizes the logits to the target size.
        validate_args: check label values (a device sync); shape checks always run.

    Returns:
        0-d loss, or the per-class losses (C,) / (N, C) with ``reduction="none"``.

    Convention:
        Statistics are summed over batch and space (``per_image=False``), soft
        probabilities against the target, ignored pixels left out of every sum. ``s`` is
        in numerator and denominator, so a class with no target and no prediction scores
        ~1 (loss ~0) and a class with no target but some prediction scores ~0 (loss ~1);
        a zero denominator scores 1. The mean is over classes (and images with
        ``per_image``), weighted by ``class_weights``; all pixels ignored (or an empty
        batch) gives 0 with a zero gradient. A NaN input gives NaN, never a perfect 0.
    """
    check_loss_arguments(mode=mode, smooth=smooth, reduction=reduction, class_weights=class_weights,
                         ignore_index=ignore_index)
    check_overlap_arguments(smooth_nr=smooth_nr, smooth_dr=smooth_dr, skip_absent=skip_absent,
                            normalize_weights=normalize_weights, pooling=pooling, soft_label=soft_label,
                            label_smoothing=label_smoothing)
    check_positive("gamma", gamma, allow_zero=True)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    reduction_options = dict(
        tp_weight=tp_weight, fp_weight=fp_weight, fn_weight=fn_weight, gamma=gamma, smooth=smooth, smooth_nr=smooth_nr,
        smooth_dr=smooth_dr, log_loss=log_loss, include_background=include_background or mode == "binary",
        skip_absent=skip_absent, class_weights=class_weights, normalize_weights=normalize_weights, pooling=pooling,
        reduction=reduction)
    request = dict(ignore_index=ignore_index, per_image=per_image, from_logits=from_logits, squared=squared,
                   soft_label=soft_label, label_smoothing=label_smoothing)
    term = overlap_term(**reduction_options)
    fused = fused_loss_of(prepared, None if term is None else _stats.LossMix(term), mode=mode, **request)
    if fused is not None:
        return finish(fused, input)
    terms = terms_of(prepared, mode=mode, **request)
    return finish(overlap_loss_from_statistics(terms.stats, **reduction_options), input)


def overlap_loss_from_statistics(
    stats: _stats.OverlapStatistics,
    *,
    tp_weight: float,
    fp_weight: float,
    fn_weight: float,
    gamma: float = 1.0,
    smooth: float = 1e-5,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    log_loss: bool = False,
    include_background: bool = True,
    skip_absent=False,
    class_weights=None,
    normalize_weights: bool = True,
    pooling: str = "none",
    reduction: str = "mean",
) -> Tensor:
    """The overlap loss of precomputed statistics (shared with the compound losses)."""
    ratio = dict(tp_weight=tp_weight, fp_weight=fp_weight, fn_weight=fn_weight, smooth=smooth, smooth_nr=smooth_nr,
                 smooth_dr=smooth_dr)
    if pooling == "class":
        pooled = pool_classes(stats, class_weights, include_background)
        losses = score_to_loss(_stats.overlap_index(pooled, **ratio), gamma=gamma, log_loss=log_loss)
        return losses if reduction == "none" else losses.sum() if reduction == "sum" else losses.mean()
    losses = score_to_loss(_stats.overlap_index(stats, **ratio), gamma=gamma, log_loss=log_loss)
    return reduce_class_losses(losses, stats.gs, include_background=include_background, skip_absent=skip_absent,
                               class_weights=class_weights, normalize_weights=normalize_weights,
                               reduction=reduction)


def pool_classes(stats: _stats.OverlapStatistics, class_weights, include_background: bool) -> _stats.OverlapStatistics:
    """tp, ps, gs summed over the class axis (weighted by class_weights): (C,) -> (), (N, C) -> (N,)."""
    weights = class_weight_tensor(class_weights, stats.tp)
    if weights is not None and weights.numel() != stats.tp.shape[-1]:
        raise ValueError(f"class_weights must have {stats.tp.shape[-1]} entries (one per class), "
                         f"got {weights.numel()}")
    first = 0 if include_background else 1
    weights = None if weights is None else weights[first:]
    return _stats.OverlapStatistics(*(
        (x[..., first:] if weights is None else x[..., first:] * weights).sum(-1) for x in stats))


def score_to_loss(score: Tensor, *, gamma: float = 1.0, log_loss: bool = False) -> Tensor:
    """1 - score (or -log score), raised to gamma; finite gradients for gamma < 1, NaN kept."""
    tiny = torch.finfo(score.dtype).tiny
    loss = -torch.log(score.clamp_min(tiny)) if log_loss else 1 - score
    if gamma == 1:
        return loss
    if gamma == 0:
        return torch.where(torch.isnan(loss), loss, 1.0)
    return torch.where(loss <= 0, 0.0, loss.clamp_min(tiny) ** gamma)


def fbeta_loss(input: Tensor, target: Tensor, beta: float = 1.0, **kwargs) -> Tensor:
    """F-beta loss 1 - F_beta: w_tp = 1 + beta^2, a = 1, b = beta^2 (seed 000's f_score).

    beta > 1 weighs recall (false negatives) more, beta < 1 precision. Other arguments
    and the Convention: :func:`overlap_loss`.
    """
    check_positive("beta", beta)
    return overlap_loss(input, target, tp_weight=1 + beta**2, fp_weight=1.0, fn_weight=beta**2, **kwargs)


def dice_loss(input: Tensor, target: Tensor, **kwargs) -> Tensor:
    """Dice loss 1 - (2 tp + s) / (ps + gs + s), i.e. 1 - F1 (seed 000).

    Equals MONAI's DiceLoss(softmax=True, to_onehot_y=True, batch=not per_image) at the
    same smoothing, smp's DiceLoss with ``skip_absent=True`` and kornia's dice_loss with
    ``pooling="class", per_image=True``. Arguments and Convention: :func:`overlap_loss`.

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 4, (2, 8, 8))
        >>> dice_loss(logits, labels).backward()
    """
    return overlap_loss(input, target, tp_weight=2.0, fp_weight=1.0, fn_weight=1.0, **kwargs)


def tversky_loss(input: Tensor, target: Tensor, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0,
                 **kwargs) -> Tensor:
    """Tversky loss (Salehi et al. 2017): score = (tp + s) / (tp + alpha fp + beta fn + s).

    alpha weighs false positives, beta false negatives (MONAI's convention);
    loss_c = (1 - score_c)^gamma is the focal Tversky loss (Abraham & Khan 2019) for
    gamma != 1. Arguments and Convention: :func:`overlap_loss`.
    """
    check_positive("alpha", alpha, allow_zero=True)
    check_positive("beta", beta, allow_zero=True)
    return overlap_loss(input, target, tp_weight=1.0, fp_weight=alpha, fn_weight=beta, gamma=gamma, **kwargs)


def jaccard_loss(input: Tensor, target: Tensor, **kwargs) -> Tensor:
    """Jaccard (soft IoU) loss 1 - (tp + s) / (tp + fp + fn + s).

    MONAI's DiceLoss(jaccard=True) is (2 tp + s') / (2 (ps + gs - tp) + s'): the same
    with s' = 2 s. Arguments and Convention: :func:`overlap_loss`.
    """
    return overlap_loss(input, target, tp_weight=1.0, fp_weight=1.0, fn_weight=1.0, **kwargs)


GENERALIZED_DICE_WEIGHTS = ("square", "simple", "uniform")


def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    weight_type: str = "square",
    *,
    mode: str = "multiclass",
    smooth: float = 1e-5,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    per_image: bool = False,
    ignore_index: Optional[int] = None,
    include_background: bool = True,
    squared: bool = False,
    soft_label: bool = False,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    reduction: str = "mean",
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """Generalized Dice loss (Sudre et al. 2017).

    1 - (2 sum_c w_c tp_c + s_nr) / (sum_c w_c (ps_c + gs_c) + s_dr), with w_c = 1 / gs_c^2
    ("square"), 1 / gs_c ("simple") or 1 ("uniform").

    Convention:
        An infinite weight (a class absent from the target) is replaced by the largest
        finite weight of the same image (``per_image=True``) or batch (MONAI's
        convention); when every class is absent the weights are 0 and the loss is 0.
        ``reduction="none"`` returns the per-image losses (N,) with ``per_image``, else
        a 0-d loss. Other arguments (smooth_nr / smooth_dr, soft_label,
        label_smoothing): :func:`overlap_loss`.
    """
    check_loss_arguments(mode=mode, smooth=smooth, reduction=reduction, ignore_index=ignore_index)
    check_overlap_arguments(smooth_nr=smooth_nr, smooth_dr=smooth_dr, soft_label=soft_label,
                            label_smoothing=label_smoothing)
    check_choice("weight_type", weight_type, GENERALIZED_DICE_WEIGHTS)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    stats = terms_of(prepared, mode=mode, ignore_index=ignore_index, per_image=per_image, from_logits=from_logits,
                     squared=squared, soft_label=soft_label, label_smoothing=label_smoothing).stats
    if not include_background and mode != "binary":
        stats = _stats.OverlapStatistics(*(x[..., 1:] for x in stats))
    weights = generalized_dice_weights(stats.gs, weight_type)
    numerator = 2 * (weights * stats.tp).sum(-1) + (smooth if smooth_nr is None else smooth_nr)
    denominator = (weights * (stats.ps + stats.gs)).sum(-1) + (smooth if smooth_dr is None else smooth_dr)
    loss = 1 - _stats.ratio_or_one(numerator, denominator)
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return finish(loss, input)


def generalized_dice_weights(gs: Tensor, weight_type: str) -> Tensor:
    """Class weights from target sums (C,) or (N, C); infinite ones -> the row's max finite."""
    gs = gs.detach()
    if weight_type == "uniform":
        return torch.ones_like(gs)
    weights = 1.0 / (gs * gs if weight_type == "square" else gs)
    infinite = torch.isinf(weights)
    weights = weights.masked_fill(infinite, 0.0)
    row_max = weights.amax(dim=-1, keepdim=True) if weights.numel() else weights
    return torch.where(infinite, row_max, weights)


OVERLAP_DEFAULTS = dict(mode="multiclass", smooth=1e-5, smooth_nr=None, smooth_dr=None, per_image=False,
                        ignore_index=None, class_weights=None, normalize_weights=True, include_background=True,
                        skip_absent=False, pooling="none", log_loss=False, squared=False, soft_label=False,
                        label_smoothing=0.0, from_logits=True, reduction="mean", resize_logits=False,
                        validate_args=True)


class _OverlapModule(SegmentationLoss):
    """Stores the shared overlap arguments (checked once here); subclasses pick the loss function."""

    def __init__(self, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(OVERLAP_DEFAULTS))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {unknown}")
        self.options = {**OVERLAP_DEFAULTS, **kwargs}
        options = self.options
        check_loss_arguments(mode=options["mode"], smooth=options["smooth"], reduction=options["reduction"],
                             class_weights=options["class_weights"], ignore_index=options["ignore_index"])
        check_overlap_arguments(**{k: options[k] for k in ("smooth_nr", "smooth_dr", "skip_absent",
                                                           "normalize_weights", "pooling", "soft_label",
                                                           "label_smoothing")})

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items() if OVERLAP_DEFAULTS.get(k, k) != v)


class FBetaLoss(_OverlapModule):
    """Module form of :func:`segfuse.functional.fbeta_loss`."""

    def __init__(self, beta: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        check_positive("beta", beta)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return fbeta_loss(input, target, beta=self.beta, **self.options)


class DiceLoss(_OverlapModule):
    """Module form of :func:`segfuse.functional.dice_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_loss(input, target, **self.options)


class TverskyLoss(_OverlapModule):
    """Module form of :func:`segfuse.functional.tversky_loss`."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            check_positive(name, value, allow_zero=True)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return tversky_loss(input, target, alpha=self.alpha, beta=self.beta, gamma=self.gamma, **self.options)


class JaccardLoss(_OverlapModule):
    """Module form of :func:`segfuse.functional.jaccard_loss`."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return jaccard_loss(input, target, **self.options)


class GeneralizedDiceLoss(_OverlapModule):
    """Module form of :func:`segfuse.functional.generalized_dice_loss`."""

    UNSUPPORTED = ("class_weights", "skip_absent", "log_loss", "pooling", "normalize_weights")

    def __init__(self, weight_type: str = "square", **kwargs):
        for name in self.UNSUPPORTED:
            if name in kwargs and kwargs[name] != OVERLAP_DEFAULTS[name]:
                raise ValueError(f"GeneralizedDiceLoss does not take {name}; its class weights come from weight_type")
        super().__init__(**kwargs)
        check_choice("weight_type", weight_type, GENERALIZED_DICE_WEIGHTS)
        self.weight_type = weight_type
        for name in self.UNSUPPORTED:
            self.options.pop(name)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return generalized_dice_loss(input, target, weight_type=self.weight_type, **self.options)
