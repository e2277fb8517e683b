"""Focal loss (Lin et al. 2017): softmax for multiclass, sigmoid for binary / multilabel."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from segfuse import _stats
from segfuse._validate import check_class_vector, check_in_unit_interval, check_positive
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import (
    binary_valid_mask,
    check_loss_arguments,
    finish,
    fused_loss_of,
    prepare_inputs,
    terms_of,
)

Alpha = Union[None, float, Sequence[float], Tensor]


def check_focal_arguments(mode: str, alpha: Alpha, gamma: float) -> None:
    check_positive("gamma", gamma, allow_zero=True)
    if alpha is None:
        return
    if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
        check_in_unit_interval("alpha", float(alpha))
    elif mode == "multiclass":
        check_class_vector("alpha", alpha)
    else:
        raise TypeError(f"alpha must be None or a float in [0, 1] in {mode} mode, got {type(alpha).__name__}")


def focal_loss(
    input: Tensor,
    target: Tensor,
    mode: str = "multiclass",
    alpha: Alpha = None,
    gamma: float = 2.0,
    *,
    ignore_index: Optional[int] = None,
    reduction: str = "mean",
    from_logits: bool = True,
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """Focal loss, finite in value and gradient for every gamma >= 0.

    multiclass: per pixel -alpha_y (1 - p_y)^gamma log p_y with p the softmax; alpha None
    (1), a float (every class) or a per-class sequence (C,). With a one-hot or soft target
    g (N, C, *S) the pixel term is -sum_c alpha_c g_c (1 - p_c)^gamma log p_c. binary /
    multilabel: torchvision's ``sigmoid_focal_loss``: BCE(x, t) (1 - p_t)^gamma, times
    alpha t + (1 - alpha)(1 - t) when alpha is a float (None disables it).

    Args:
        input: logits (N, C, *S) (binary: (N, 1, *S) or (N, *S)).
        target: class map (N, *S) or (N, 1, *S), or a one-hot / soft target (N, C, *S)
            (multiclass); {0, 1} / soft values of the input's shape (binary / multilabel).
        reduction: "mean" over valid pixels (elements, for sigmoid), "sum", or "none"
            (per pixel (N, *S) multiclass / per element (N, C, *S) sigmoid, 0 where ignored).

    Convention:
        ``1 - p`` is evaluated as -expm1(log p) and clamped at the smallest normal float,
        so gamma < 1 with saturated logits gives finite gradients. With gamma = 0 and
        alpha None the multiclass loss is exactly the (unweighted) cross-entropy. The
        alpha-weighted mean still divides by the number of valid pixels (not by the
        summed alpha). All pixels ignored (or an empty batch) gives 0 with a zero
        gradient. MONAI's and kornia's softmax focal means divide by N * C * S (every
        entry of the one-hot loss tensor), ours by N * S.

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, requires_grad=True)
        >>> focal_loss(logits, torch.randint(0, 4, (2, 8, 8)), gamma=0.5).backward()
    """
    check_loss_arguments(mode=mode, reduction=reduction, ignore_index=ignore_index)
    check_focal_arguments(mode, alpha, gamma)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = prepared.input
    acc = _stats.accumulation_dtype(x.dtype)
    if mode == "multiclass":
        alpha = alpha_vector(alpha, x.shape[1], x.new_empty(0, dtype=acc))
        if prepared.class_map and gamma == 0 and alpha is None and from_logits:
            # the focal loss with gamma 0 and no alpha is cross-entropy: share its path, bit for bit
            from segfuse.losses.cross_entropy import cross_entropy

            return cross_entropy(x, prepared.target, ignore_index=ignore_index, reduction=reduction,
                                 validate_args=False)
    if reduction == "none":
        return finish(_focal_per_pixel(prepared, mode, alpha, gamma, ignore_index, from_logits), input)
    request = dict(ignore_index=ignore_index, from_logits=from_logits, want_stats=False, focal_gamma=gamma,
                   focal_alpha=alpha)
    fused = fused_loss_of(prepared, _stats.LossMix(focal_weight=1.0) if reduction == "mean" else None, mode=mode,
                          **request)
    if fused is not None:
        return finish(fused, input)
    terms = terms_of(prepared, mode=mode, **request)
    loss = terms.focal_sum if reduction == "sum" else _stats.safe_divide(terms.focal_sum, terms.count)
    return finish(loss, input)


def alpha_vector(alpha: Alpha, num_classes: int, like: Tensor) -> Optional[Tensor]:
    """The multiclass alpha as a per-class tensor (C,) (None stays None)."""
    if alpha is None:
        return None
    values = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    if values.dim() == 0:
        return values.expand(num_classes)
    if values.numel() != num_classes:
        raise ValueError(f"alpha must have {num_classes} entries (one per class), got {values.numel()}")
    return values


def _focal_per_pixel(prepared, mode, alpha, gamma, ignore_index, from_logits) -> Tensor:
    """reduction="none": per pixel (N, *S) for softmax, per element (N, C, *S) for sigmoid."""
    x, target = prepared.input, prepared.target
    if mode != "multiclass":
        return _sigmoid_focal(x, target, alpha, gamma, ignore_index, "none", from_logits)
    acc = _stats.accumulation_dtype(x.dtype)
    x = x.to(acc)
    log_p = torch.log_softmax(x, 1) if from_logits else torch.log(x.clamp_min(torch.finfo(acc).tiny))
    if not prepared.class_map:
        terms = _stats.focal_pixel_terms(log_p, gamma) * target.to(acc)
        if alpha is not None:
            terms = terms * alpha.view(1, -1, *([1] * (x.dim() - 2)))
        return terms.sum(1)
    valid = _stats.valid_label_mask(target, ignore_index)
    index = _stats.safe_labels(target, valid)
    terms = _stats.focal_pixel_terms(log_p.gather(1, index.unsqueeze(1)).squeeze(1), gamma)
    if alpha is not None:
        terms = terms * alpha[index]
    return terms if valid is None else terms * valid


def _sigmoid_focal(x, target, alpha, gamma, ignore_index, reduction, from_logits) -> Tensor:
    """Sigmoid focal loss of x against a dense target of its shape (the torch reference)."""
    acc = _stats.accumulation_dtype(x.dtype)
    valid = binary_valid_mask(target, ignore_index)
    t = target.to(acc) if valid is None else torch.where(valid, target.to(acc), 0)
    element = _stats.sigmoid_focal_terms(x.to(acc), t, alpha, gamma, from_logits)
    if valid is not None:
        element = element * valid
    if reduction == "none":
        return element
    if reduction == "sum":
        return element.sum()
    count = torch.tensor(float(element.numel()), dtype=acc, device=x.device) if valid is None else valid.sum().to(acc)
    return _stats.safe_divide(element.sum(), count)


class FocalLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.focal_loss`."""

    def __init__(self, mode: str = "multiclass", alpha: Alpha = None, gamma: float = 2.0, *, ignore_index=None,
                 reduction="mean", from_logits=True, resize_logits=False, validate_args=True):
        super().__init__()
        check_loss_arguments(mode=mode, reduction=reduction, ignore_index=ignore_index)
        check_focal_arguments(mode, alpha, gamma)
        self.mode, self.alpha, self.gamma = mode, alpha, gamma
        self.options = dict(ignore_index=ignore_index, reduction=reduction, from_logits=from_logits,
                            resize_logits=resize_logits, validate_args=validate_args)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return focal_loss(input, target, self.mode, self.alpha, self.gamma, **self.options)
