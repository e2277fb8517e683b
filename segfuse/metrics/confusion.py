"""Confusion matrix of class maps: the counts behind every semantic score (the update step).

Convention:
    Rows are the ground truth, columns the prediction: ``confusion[t, p]`` counts the
    valid pixels of true class ``t`` predicted as ``p``. A pixel is ignored (counted
    nowhere) when its *target* equals ``ignore_index``; the prediction at an ignored
    pixel may hold any value. At every other pixel the target and the prediction must
    lie in ``[0, num_classes)``, otherwise a ValueError names the bad values. Scores
    ``(N, C, *S)`` are reduced to a class map by argmax over C (first maximum wins).
    Counts are exact int64, computed as a bincount of ``target * C + pred`` (no one-hot);
    small non-negative labels (e.g. uint8 masks with 255 = ignore) take one bincount of
    the joint (target, pred) histogram, which also yields the label-range checks.
    A class map may carry a singleton channel, ``(N, 1, *S)`` (as MONAI users pass it).
    One-hot (or multi-hot) masks ``(N, C, *S)`` for both ``pred`` and ``target`` (pred
    floating or bool, holding 0 or 1) are counted channel by channel instead
    (:func:`mask_overlap_counts`, MONAI's and torchmetrics' one-hot input): they give
    TP, FP, FN per class but no confusion matrix, and have no ignored pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from segfuse import kernels
from segfuse._validate import (
    FLOAT_DTYPES,
    INTEGER_DTYPES,
    check_label_tensor,
    check_labels_in_range,
    check_num_classes,
    check_tensor,
    representable_ignore_index,
)


class OverlapCounts(NamedTuple):
    """Per-class counts ``(..., C)`` int64: true positives, false positives, false negatives."""

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor


def overlap_counts(confusion: torch.Tensor) -> OverlapCounts:
    """TP, FP, FN per class ``(..., C)`` from confusion matrices ``(..., C, C)`` (rows = truth)."""
    tp = torch.diagonal(confusion, dim1=-2, dim2=-1)
    fp = confusion.sum(dim=-2) - tp
    fn = confusion.sum(dim=-1) - tp
    return OverlapCounts(tp, fp, fn)


def ignored_pixels(target: torch.Tensor, ignore_index) -> torch.Tensor | None:
    """Boolean mask of the pixels whose target equals ``ignore_index``, or None when none can.

    None also when ``ignore_index`` does not fit the target's dtype (e.g. -1 for uint8,
    which a plain ``==`` would wrap to 255).
    """
    ignore_index = representable_ignore_index(target, ignore_index)
    return None if ignore_index is None else target == ignore_index


def is_mask_input(pred, target, num_classes: int) -> bool:
    """One-hot / multi-hot masks: ``pred`` floating or bool ``(N, C, *S)`` and ``target`` of its shape."""
    return (
        isinstance(pred, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and (pred.dtype in FLOAT_DTYPES or pred.dtype == torch.bool)
        and pred.dim() >= 2
        and pred.shape == target.shape
        and pred.shape[1] == num_classes
    )


def squeeze_class_channel(pred: torch.Tensor, target: torch.Tensor, num_classes: int):
    """Class maps with a singleton channel ``(N, 1, *S)`` lose it (pred, target or both stay as given)."""
    if target.dim() >= 2 and target.shape[1] == 1 and target.dtype in INTEGER_DTYPES:
        maps = (target.shape[0], *target.shape[2:])
        scores = (target.shape[0], num_classes, *target.shape[2:])
        if pred.dtype in FLOAT_DTYPES and pred.dim() == target.dim() and tuple(pred.shape) == scores:
            return pred, target.squeeze(1)
        if pred.dtype in INTEGER_DTYPES and tuple(pred.shape) == maps:
            return pred, target.squeeze(1)
    if pred.dtype in INTEGER_DTYPES and pred.dim() == target.dim() + 1 and pred.dim() >= 2 and pred.shape[1] == 1:
        if tuple(pred.shape) == (pred.shape[0], 1, *target.shape[1:]):
            return pred.squeeze(1), target
    return pred, target


def check_class_map_inputs(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> None:
    """Shapes and dtypes: ``pred`` a class map like ``target`` or scores ``(N, C, *S)``."""
    check_tensor("pred", pred)
    if is_mask_input(pred, target, num_classes):
        raise ValueError(
            f"confusion_matrix needs class maps, got one-hot masks {tuple(pred.shape)}; "
            "use mask_overlap_counts (or SemanticMetrics) for masks"
        )
    check_label_tensor("target", target)
    if pred.dtype in FLOAT_DTYPES:
        expected = (target.shape[0], num_classes, *target.shape[1:]) if target.dim() else None
        if tuple(pred.shape) != expected:
            raise ValueError(
                f"pred holding scores must have shape (N, C, *S) = {expected} for target "
                f"{tuple(target.shape)} and num_classes={num_classes}, got {tuple(pred.shape)}"
            )
    elif pred.dtype in INTEGER_DTYPES:
        if pred.shape != target.shape:
            raise ValueError(
                f"pred (a class map) and target must have the same shape, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
    else:
        raise TypeError(f"pred must be an integer class map or floating scores (N, C, *S), got {pred.dtype}")


def _check_pred_range(pred: torch.Tensor, num_classes: int, ignored: torch.Tensor | None) -> None:
    low, high = torch.aminmax(pred)
    if int(low) >= 0 and int(high) < num_classes:
        return
    bad = (pred < 0) | (pred >= num_classes)
    if ignored is not None:
        bad &= ~ignored
    if bool(bad.any()):
        values = torch.unique(pred[bad])[:5].tolist()
        raise ValueError(f"pred must hold labels in [0, {num_classes}) at non-ignored pixels, got {values}")


def check_label_ranges(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index=None) -> None:
    """Target labels in ``[0, C)`` or ``ignore_index``; predictions in ``[0, C)`` where not ignored."""
    if target.numel() == 0:
        return
    low, high = torch.aminmax(target)
    if int(low) < 0 or int(high) >= num_classes:
        check_labels_in_range("target", target, num_classes, ignore_index)
    _check_pred_range(pred, num_classes, ignored_pixels(target, ignore_index))


def as_class_map(pred: torch.Tensor) -> torch.Tensor:
    """Scores ``(N, C, *S)`` to their argmax class map ``(N, *S)``; a class map unchanged."""
    return pred.argmax(dim=1) if pred.dtype in FLOAT_DTYPES else pred


def _count(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index) -> torch.Tensor:
    """Bincount of ``target * C + pred``; ignored pixels go to one extra bin that is dropped."""
    size = num_classes * num_classes
    code_dtype = torch.int32 if size < 2**31 - 1 else torch.int64
    code = target.reshape(-1).to(code_dtype) * num_classes + pred.reshape(-1).to(code_dtype)
    ignored = ignored_pixels(target, ignore_index)
    if ignored is not None:
        code = code.masked_fill(ignored.reshape(-1), size)
    counts = torch.bincount(code, minlength=size + 1)[:size]
    return counts.reshape(num_classes, num_classes)


JOINT_BINS = 1 << 16


def _joint_size(pred: torch.Tensor, target: torch.Tensor) -> tuple[int, int] | None:
    """(target max + 1, pred max + 1) when both are >= 0 and their joint histogram is small."""
    if target.numel() == 0:
        return None
    target_low, target_high = (int(v) for v in torch.aminmax(target))
    pred_low, pred_high = (int(v) for v in torch.aminmax(pred))
    rows, cols = target_high + 1, pred_high + 1
    if min(target_low, pred_low) < 0 or rows * cols > JOINT_BINS:
        return None
    return rows, cols


def _joint_histogram(pred, target, rows: int, cols: int) -> torch.Tensor:
    """Counts ``(rows, cols)`` of every (target, pred) value pair: one bincount, int16 codes."""
    code_dtype = torch.int16 if rows * cols <= 2**15 else torch.int32
    code = target.reshape(-1).to(code_dtype) * cols + pred.reshape(-1).to(code_dtype)
    return torch.bincount(code, minlength=rows * cols).reshape(rows, cols)


def _check_joint(histogram: torch.Tensor, num_classes: int, ignore_index) -> None:
    """Label-range errors read off the joint histogram (same messages as the direct checks)."""
    rows, cols = histogram.shape
    present = torch.nonzero(histogram.sum(1) > 0).reshape(-1).tolist()
    bad_rows = [r for r in present if r >= num_classes and r != ignore_index]
    if bad_rows:
        hint = "" if ignore_index is not None else " (set ignore_index to skip a label)"
        raise ValueError(
            f"target must hold labels in [0, {num_classes}) or ignore_index={ignore_index}, got {bad_rows[:5]}{hint}"
        )
    if cols > num_classes:
        predicted = torch.nonzero(histogram[: min(rows, num_classes), num_classes:].sum(0) > 0).reshape(-1)
        if predicted.numel():
            raise ValueError(
                f"pred must hold labels in [0, {num_classes}) at non-ignored pixels, "
                f"got {(predicted[:5] + num_classes).tolist()}"
            )


def _count_checked(pred, target, num_classes: int, ignore_index, validate_args: bool) -> torch.Tensor:
    """Counts ``(C, C)``: one joint histogram for small non-negative labels (checks included), else direct.

    The joint path reads the label ranges (a device sync), so on CUDA it runs only when
    ``validate_args`` asks for a sync anyway.
    """
    joint = _joint_size(pred, target) if validate_args or target.device.type == "cpu" else None
    if joint is None:
        if validate_args:
            check_label_ranges(pred, target, num_classes, ignore_index)
        return _count(pred, target, num_classes, ignore_index)
    histogram = _joint_histogram(pred, target, *joint)
    if validate_args:
        _check_joint(histogram, num_classes, representable_ignore_index(target, ignore_index))
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=histogram.device)
    rows, cols = min(joint[0], num_classes), min(joint[1], num_classes)
    counts[:rows, :cols] = histogram[:rows, :cols]
    return counts


def _confusion_update(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index=None,
    per_image: bool = False,
    validate_args: bool = True,
) -> torch.Tensor:
    """Counts ``(C, C)``, or one matrix per image ``(N, C, C)`` when ``per_image``."""
    check_num_classes(num_classes)
    check_tensor("pred", pred)
    check_tensor("target", target)
    pred, target = squeeze_class_channel(pred, target, num_classes)
    check_class_map_inputs(pred, target, num_classes)
    if not per_image and kernels.fused_confusion_available(pred, target, num_classes):
        if validate_args:
            scores = pred.dtype in FLOAT_DTYPES
            check_label_ranges(target if scores else pred, target, num_classes, ignore_index)
        return kernels.fused_confusion_matrix(pred, target, num_classes, ignore_index)
    pred = as_class_map(pred)
    if not per_image:
        return _count_checked(pred, target, num_classes, ignore_index, validate_args)
    if target.dim() == 0:
        raise ValueError("target must have shape (N, *S) with a batch dim for per-image counts, got ()")
    if validate_args:
        check_label_ranges(pred, target, num_classes, ignore_index)
    matrices = [_count(pred[i], target[i], num_classes, ignore_index) for i in range(target.shape[0])]
    if not matrices:
        return torch.zeros(0, num_classes, num_classes, dtype=torch.int64, device=target.device)
    return torch.stack(matrices)


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> torch.Tensor:
    """Confusion matrix of a prediction against the ground truth.

    Convention: rows = ground truth, columns = prediction; pixels whose target equals
    ``ignore_index`` are left out (equal to ``sklearn.metrics.confusion_matrix`` on the
    remaining pixels); other labels outside ``[0, C)`` raise ValueError; scores are argmaxed.

    Args:
        pred: class map with ``target``'s shape (any integer dtype), or scores ``(N, C, *S)``.
        target: integer class map ``(N, *S)`` (or any shape), labels in ``[0, C)`` or ``ignore_index``.
        num_classes: C.
        ignore_index: target label to skip, or None.
        validate_args: check label ranges (a device sync); False trusts the input.

    Returns:
        int64 tensor ``(C, C)`` on the input's device.

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), num_classes=2)
        tensor([[1, 1],
                [0, 1]])
    """
    return _confusion_update(pred, target, num_classes, ignore_index, validate_args=validate_args)


def per_image_confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> torch.Tensor:
    """One confusion matrix per image of the batch: int64 ``(N, C, C)``; see :func:`confusion_matrix`."""
    return _confusion_update(pred, target, num_classes, ignore_index, per_image=True, validate_args=validate_args)


# ---- one-hot / multi-hot masks ---------------------------------------------------------------


def check_mask_values(name: str, masks: torch.Tensor) -> None:
    """Masks hold 0 or 1 (bool, integer or floating)."""
    if masks.dtype == torch.bool or masks.numel() == 0:
        return
    bad = (masks != 0) & (masks != 1)
    if bool(bad.any()):
        values = torch.unique(masks[bad])[:5].tolist()
        raise ValueError(f"{name} one-hot masks must hold 0 or 1 (threshold or argmax scores first), got {values}")


def mask_overlap_counts(
    pred: torch.Tensor, target: torch.Tensor, per_image: bool = False, validate_args: bool = True
) -> OverlapCounts:
    """TP, FP, FN per class of one-hot / multi-hot masks, channel by channel (MONAI, torchmetrics one-hot).

    Args:
        pred: masks ``(N, C, *S)`` holding 0 or 1 (bool, integer or floating).
        target: masks of ``pred``'s shape.
        per_image: counts per image ``(N, C)`` instead of summed over the batch ``(C,)``.
        validate_args: check that both hold only 0 and 1 (a device sync).

    Example:
        >>> pred = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]])
        >>> target = torch.tensor([[[1, 0, 0], [0, 1, 1]]])
        >>> mask_overlap_counts(pred, target)
        OverlapCounts(tp=tensor([1, 2]), fp=tensor([1, 0]), fn=tensor([0, 0]))
    """
    check_tensor("pred", pred)
    check_tensor("target", target)
    if pred.dim() < 2 or pred.shape != target.shape:
        raise ValueError(
            "pred and target masks must have the same shape (N, C, *S), "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if validate_args:
        check_mask_values("pred", pred)
        check_mask_values("target", target)
    predicted, truth = pred != 0, target != 0
    dims = tuple(range(2, pred.dim())) if per_image else (0, *range(2, pred.dim()))

    def total(mask: torch.Tensor) -> torch.Tensor:
        return mask.sum(dims, dtype=torch.int64) if dims else mask.to(torch.int64)

    tp = total(predicted & truth)
    return OverlapCounts(tp, total(predicted) - tp, total(truth) - tp)
