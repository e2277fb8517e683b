"""Lovasz losses (Berman et al. 2018): Lovasz-softmax (multiclass) and Lovasz-hinge
(binary / multilabel), convex surrogates of the Jaccard index."""

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
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (P,)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def _lovasz_errors(errors: Tensor, foreground: Tensor) -> Tensor:
    """Lovasz extension: dot(sorted errors, lovasz_grad(foreground in that order))."""
    errors_sorted, order = torch.sort(errors, descending=True)
    return torch.dot(errors_sorted, lovasz_grad(foreground[order]))


def _softmax_flat(probs: Tensor, labels: Tensor, classes: Classes) -> Tensor:
    """probs (C, P) and labels (P,) of valid pixels -> mean over the chosen classes."""
    if labels.numel() == 0:
        return probs.sum() * 0.0
    chosen = range(probs.shape[0]) if isinstance(classes, str) else classes
    losses = []
    for c in chosen:
        foreground = (labels == c).to(probs.dtype)
        if classes == "present" and not bool(foreground.any()):
            continue
        losses.append(_lovasz_errors((foreground - probs[c]).abs(), foreground))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


def _hinge_flat(logits: Tensor, labels: Tensor) -> Tensor:
    """logits (P,) and {0, 1} labels (P,) of valid pixels -> Lovasz hinge."""
    if labels.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(labels[order]))


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
        target: class map (N, *S) (multiclass) or {0, 1} labels of the input's shape.
        per_image: the loss of each image, averaged over images (Berman's per_image).
        classes: "present" (classes in the valid target), "all", or a list of class ids.

    Convention:
        Berman's reference: per class, errors |1[y = c] - p_c| sorted in decreasing order
        dotted with the Lovasz gradient of the Jaccard loss; the mean over the chosen
        classes (multiclass) or channels (multilabel). Ignored pixels are removed first;
        an image with no valid pixel contributes 0 to the per-image mean (as in Berman's
        code). kornia's lovasz_softmax_loss is ``per_image=True, classes="all"``.
    """
    check_loss_arguments(mode=mode, ignore_index=ignore_index)
    if isinstance(classes, str):
        check_choice("classes", classes, ("present", "all"))
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    acc = _stats.accumulation_dtype(input.dtype)
    x, target = prepared.input.to(acc), prepared.target
    if mode == "multiclass":
        if not prepared.class_map:
            raise ValueError(f"Lovasz-softmax expects a class map target (N, *S), got {tuple(target.shape)}")
        probs = torch.softmax(x, 1) if from_logits else x
        per = [_softmax_image(p, t, classes, ignore_index) for p, t in _batches(probs, target, per_image)]
    else:
        if not from_logits:
            raise ValueError("the Lovasz hinge is defined on logits: from_logits must be True in binary / multilabel mode")
        per = [_hinge_image(p, t, ignore_index) for p, t in _batches(x, target, per_image)]
    return finish(torch.stack(per).mean(), input)


def _batches(x: Tensor, target: Tensor, per_image: bool):
    """Yield (C, P) scores with their targets, (P,) class maps or (C, P) binary labels."""
    def flat_target(t: Tensor) -> Tensor:
        return t.reshape(-1) if t.dim() == x.dim() - 1 - per_image else t.reshape(t.shape[0], -1)

    if per_image:
        for image, labels in zip(x, target):
            yield image.reshape(image.shape[0], -1), flat_target(labels)
    else:
        channels_first = target.transpose(0, 1) if target.dim() == x.dim() else target
        yield x.transpose(0, 1).reshape(x.shape[1], -1), flat_target(channels_first)


def _softmax_image(probs: Tensor, labels: Tensor, classes: Classes, ignore_index: Optional[int]) -> Tensor:
    if ignore_index is not None:
        valid = labels != ignore_index
        probs, labels = probs[:, valid], labels[valid]
    return _softmax_flat(probs, labels, classes)


def _hinge_image(logits: Tensor, target: Tensor, ignore_index: Optional[int]) -> Tensor:
    losses = []
    for channel_logits, channel_target in zip(logits, target):
        valid = binary_valid_mask(channel_target, ignore_index)
        if valid is not None:
            channel_logits, channel_target = channel_logits[valid], channel_target[valid]
        losses.append(_hinge_flat(channel_logits, channel_target.to(logits.dtype)))
    return torch.stack(losses).mean()


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
