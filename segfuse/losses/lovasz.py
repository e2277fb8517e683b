"""Lovasz losses (Berman et al. 2018): Lovasz-softmax (multiclass) and Lovasz-hinge
(binary / multilabel), convex surrogates of the Jaccard index.

Every class (and image, with ``per_image``) is one row of a batched sort: ignored pixels
are given an error below every real one, so they sort last, where the Lovasz gradient
is zero, and rows of different valid lengths share one ``torch.sort``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from segfuse import _stats
from segfuse._validate import check_choice
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import binary_valid_mask, check_loss_arguments, finish, prepare_inputs

Classes = Union[str, Sequence[int]]


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss along the last dim.

    ``gt_sorted`` (..., P): foreground indicators in decreasing order of error.
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def _softmax_rows(probs: Tensor, labels: Tensor, valid: Optional[Tensor], classes: Classes) -> Tensor:
    """probs (B, C, P), labels (B, P), valid (B, P) -> Lovasz-softmax per row group (B,)."""
    b, c, _ = probs.shape
    index = labels if valid is None else labels.masked_fill(~valid, 0)
    errors = probs.scatter(1, index.unsqueeze(1), 1 - probs.gather(1, index.unsqueeze(1)))
    if valid is not None:
        errors = errors.masked_fill(~valid.unsqueeze(1), -1.0)
    errors_sorted, order = errors.sort(dim=-1, descending=True)
    owner = labels if valid is None else labels.masked_fill(~valid, -1)
    sorted_labels = owner.unsqueeze(1).expand(b, c, -1).gather(-1, order)
    foreground = (sorted_labels == torch.arange(c, device=probs.device).view(1, c, 1)).to(probs.dtype)
    losses = (errors_sorted * lovasz_grad(foreground)).sum(-1)
    return _mean_over_classes(losses, foreground.sum(-1), classes, _valid_rows(valid, labels))


def _mean_over_classes(losses: Tensor, class_counts: Tensor, classes: Classes, has_pixels: Tensor) -> Tensor:
    """(B, C) class losses -> (B,) means over the chosen classes; 0 for rows without pixels."""
    if classes == "present":
        chosen = (class_counts > 0).to(losses.dtype)
    elif classes == "all":
        chosen = torch.ones_like(losses)
    else:
        chosen = torch.zeros_like(losses)
        chosen[:, list(classes)] = 1.0
    mean = _stats.safe_divide((losses * chosen).sum(-1), chosen.sum(-1))
    return torch.where(has_pixels, mean, 0.0)


def _valid_rows(valid: Optional[Tensor], reference: Tensor) -> Tensor:
    if valid is None:
        return torch.full(reference.shape[:1], reference.shape[-1] > 0, device=reference.device)
    return valid.any(-1)


def _hinge_rows(logits: Tensor, target: Tensor, valid: Optional[Tensor]) -> Tensor:
    """logits, {0, 1} target, valid (B, C, P) -> Lovasz hinge per row group, mean over C (B,)."""
    errors = 1.0 - logits * (2.0 * target - 1.0)
    if valid is not None:
        errors = errors.masked_fill(~valid, float("-inf"))
    errors_sorted, order = errors.sort(dim=-1, descending=True)
    losses = (F.relu(errors_sorted) * lovasz_grad(target.gather(-1, order))).sum(-1)
    if valid is not None:
        losses = torch.where(valid.any(-1), losses, 0.0)
    return losses.mean(-1)


def lovasz_loss(
    input: Tensor,
    target: Tensor,
    mode: str = "multiclass",
    per_image: bool = False,
    classes: Classes = "present",
    ignore_index: Optional[int] = None,
    *,
    from_logits: bool = True,
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """Lovasz-softmax (multiclass) or Lovasz-hinge (binary / multilabel) loss.

    Args:
        input: logits (N, C, *S) (binary: (N, 1, *S) or (N, *S)). The hinge needs logits.
        target: class map (N, *S) or (N, 1, *S) (multiclass) or {0, 1} labels of the
            input's shape.
        per_image: the loss of each image, averaged over images (Berman's per_image).
        classes: "present" (classes in the valid target), "all", or a list of class ids.

    Convention:
        Berman's reference: per class, errors |1[y = c] - p_c| sorted in decreasing order
        dotted with the Lovasz gradient of the Jaccard loss; the mean over the chosen
        classes (multiclass) or channels (multilabel). Ignored pixels are removed first;
        an image with no valid pixel contributes 0 to the per-image mean (as in Berman's
        code); an empty batch gives 0 with a zero gradient. kornia's lovasz_softmax_loss is
        ``per_image=True, classes="all"``.

    Example:
        >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        >>> lovasz_loss(logits, torch.randint(0, 3, (2, 8, 8))).backward()
    """
    check_loss_arguments(mode=mode, ignore_index=ignore_index)
    if isinstance(classes, str):
        check_choice("classes", classes, ("present", "all"))
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = _stats.flatten_spatial(prepared.input.to(_stats.accumulation_dtype(input.dtype)), 2)
    if mode == "multiclass":
        if not prepared.class_map:
            raise ValueError(f"Lovasz-softmax expects a class map target (N, *S), got {tuple(target.shape)}")
        labels = _stats.flatten_spatial(prepared.target, 1).long()
        probs = torch.softmax(x, 1) if from_logits else x
        if not per_image:
            probs, labels = probs.transpose(0, 1).reshape(1, x.shape[1], -1), labels.reshape(1, -1)
        valid = _stats.valid_label_mask(labels, ignore_index)
        losses = _softmax_rows(probs, labels, valid, classes)
    else:
        if not from_logits:
            raise ValueError("the Lovasz hinge is defined on logits: from_logits must be True in binary / multilabel mode")
        raw = _stats.flatten_spatial(prepared.target, 2)
        if not per_image:
            x, raw = x.transpose(0, 1).reshape(1, x.shape[1], -1), raw.transpose(0, 1).reshape(1, x.shape[1], -1)
        valid = binary_valid_mask(raw, ignore_index)
        clean = raw.to(x.dtype) if valid is None else torch.where(valid, raw.to(x.dtype), 0.0)
        losses = _hinge_rows(x, clean, valid)
    # the mean over rows (images with per_image, else the one batch row); 0 for an empty batch
    return finish(losses.sum() / max(losses.numel(), 1), input)


class LovaszLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.lovasz_loss`."""

    def __init__(self, mode: str = "multiclass", per_image: bool = False, classes: Classes = "present",
                 ignore_index: Optional[int] = None, *, from_logits=True, resize_logits=False, validate_args=True):
        super().__init__()
        check_loss_arguments(mode=mode, ignore_index=ignore_index)
        self.mode, self.per_image, self.classes, self.ignore_index = mode, per_image, classes, ignore_index
        self.options = dict(from_logits=from_logits, resize_logits=resize_logits, validate_args=validate_args)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return lovasz_loss(input, target, self.mode, self.per_image, self.classes, self.ignore_index, **self.options)
