"""Seed 000's thresholded F-score of softmax probabilities.

score_c = ((1 + b^2) tp_c + s) / ((1 + b^2) tp_c + b^2 fn_c + fp_c + s), mean over classes,
with tp_c, fp_c, fn_c counted over the whole batch from the probabilities thresholded at
``threshold`` (a pixel may be positive for several classes, or for none).

Convention:
    Like seed 000's ``f_score``: softmax over C, ``p > threshold`` (strict), counts summed
    over batch and space, smoothing ``s`` in numerator and denominator, plain mean over
    all C classes (a class absent everywhere scores s / s = 1). Unlike the seed, pixels
    whose target equals ``ignore_index`` count nowhere (the seed's extra "white border"
    channel made them false positives), and the target is a class map, not one-hot.
    Logits are resized to the target's spatial size (bilinear / trilinear,
    ``align_corners=True``) when any spatial size differs (the seed only did so when
    height and width both differed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segfuse._validate import (
    check_float_tensor,
    check_in_unit_interval,
    check_label_tensor,
    check_labels_in_range,
    check_min_dims,
    check_positive,
)
from segfuse.metrics.confusion import ignored_pixels

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _resize_logits(logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    if tuple(logits.shape[2:]) == size:
        return logits
    mode = _INTERPOLATION.get(len(size))
    if mode is None:
        raise ValueError(f"logits with {len(size)} spatial dims cannot be resized to the target; got {tuple(logits.shape)}")
    return F.interpolate(logits, size=size, mode=mode, align_corners=True)


def _check_fscore_inputs(logits, target, beta, smooth, threshold) -> None:
    check_float_tensor("logits", logits)
    check_label_tensor("target", target)
    check_min_dims("logits", logits, 3, "(N, C, *S)")
    check_positive("beta", beta)
    check_positive("smooth", smooth, allow_zero=True)
    check_in_unit_interval("threshold", threshold)
    if target.dim() != logits.dim() - 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must have shape (N, *S) with N={logits.shape[0]} and {logits.dim() - 2} spatial dims "
            f"for logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )


def thresholded_counts(probs: torch.Tensor, target: torch.Tensor, threshold: float, ignore_index=None):
    """tp, fp, fn ``(C,)`` of ``probs > threshold`` ``(N, C, *S)`` against a class map ``(N, *S)``."""
    num_classes = probs.shape[1]
    positive = probs > threshold
    ignored = ignored_pixels(target, ignore_index)
    valid = torch.ones_like(target, dtype=torch.bool) if ignored is None else ~ignored
    labels = torch.where(valid, target, torch.zeros_like(target)).long()
    hit = positive.gather(1, labels.unsqueeze(1)).squeeze(1) & valid
    tp = torch.bincount(labels[hit], minlength=num_classes)
    predicted = (positive & valid.unsqueeze(1)).transpose(0, 1).reshape(num_classes, -1).sum(1)
    support = torch.bincount(labels[valid], minlength=num_classes)
    return tp, predicted - tp, support - tp


def fscore(
    logits: torch.Tensor,
    target: torch.Tensor,
    beta: float = 1.0,
    smooth: float = 1e-5,
    threshold: float = 0.5,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Seed 000's F-score: softmax, threshold, batch-wide per-class counts, smoothed, class mean.

    Args:
        logits: ``(N, C, *S)`` float, resized to ``target``'s spatial size if it differs.
        target: integer class map ``(N, *S)``, labels in ``[0, C)`` or ``ignore_index``.
        beta: > 0; 1 gives the Dice / F1 score.
        smooth: s >= 0, added to numerator and denominator.
        threshold: probabilities above it count as predicted, in [0, 1].
        ignore_index: target label whose pixels count nowhere, or None.

    Returns:
        0-dim float32 tensor (float64 for float64 logits).

    Example:
        >>> fscore(torch.tensor([[[4.0, -4.0], [-4.0, 4.0]]]), torch.tensor([[0, 1]]))
        tensor(1.)
    """
    _check_fscore_inputs(logits, target, beta, smooth, threshold)
    check_labels_in_range("target", target, logits.shape[1], ignore_index)
    logits = _resize_logits(logits, tuple(target.shape[1:]))
    probs = torch.softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=1)
    tp, fp, fn = (x.to(probs.dtype) for x in thresholded_counts(probs, target, threshold, ignore_index))
    weight = 1.0 + beta * beta
    score = (weight * tp + smooth) / (weight * tp + beta * beta * fn + fp + smooth)
    return score.mean()
