"""Streaming semantic segmentation metrics: a confusion matrix (plus O(C) per-image sums).

The functional :func:`semantic_metrics` and the stateful :class:`SemanticMetrics` chain
the same steps: ``confusion._confusion_update`` (counts), ``scores.per_image_sums``
(per-image statistics) and ``scores.semantic_scores`` / ``scores.per_image_scores``
(scores). The class only keeps the counts between updates and sums them across
processes in ``compute()``.

Convention:
    ``per_image=False`` (default) scores the dataset-level confusion matrix (mmseg).
    ``per_image=True`` averages per-image scores (torchmetrics MeanIoU / MONAI): each item
    of the batch dim N is one image, a class's score is its mean over the images where it
    is defined (absent from both truth and prediction is undefined). Absent classes and
    ``zero_division`` follow :mod:`segfuse.metrics.scores`; ignored pixels follow
    :mod:`segfuse.metrics.confusion`. Under torch.distributed, ``compute()`` all-reduces
    the int64 confusion matrix (exact) and the per-image sums.
"""

from __future__ import annotations

from typing import Sequence

import torch

from segfuse._validate import check_num_classes
from segfuse.metrics._distributed import sum_across_processes
from segfuse.metrics.confusion import _confusion_update
from segfuse.metrics.scores import (
    SemanticScores,
    check_score_args,
    per_image_scores,
    per_image_sums,
    semantic_scores,
)


def _check_metric_args(num_classes, ignore_index, beta, zero_division, class_names) -> None:
    check_num_classes(num_classes)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    check_score_args(beta, zero_division, class_names, num_classes)


def semantic_metrics(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = None,
    beta: float = 1.0,
    zero_division="nan",
    per_image: bool = False,
    class_names: Sequence[str] | None = None,
) -> SemanticScores:
    """IoU, Dice, F-beta, precision, recall (per class and means), aAcc, mAcc, fwIoU of one batch.

    Args:
        pred: class map like ``target`` or scores ``(N, C, *S)``.
        target: integer class map ``(N, *S)``, labels in ``[0, C)`` or ``ignore_index``.
        num_classes, ignore_index, beta, zero_division, per_image, class_names: see
            :class:`SemanticMetrics`.

    Example:
        >>> semantic_metrics(torch.tensor([[0, 1, 1]]), torch.tensor([[0, 0, 1]]), 2).miou
        tensor(0.5000, dtype=torch.float64)
    """
    _check_metric_args(num_classes, ignore_index, beta, zero_division, class_names)
    confusion = _confusion_update(pred, target, num_classes, ignore_index, per_image=per_image)
    if not per_image:
        return semantic_scores(confusion, beta, zero_division, class_names)
    sums = per_image_sums(confusion, beta)
    return per_image_scores(sums, confusion.sum(0), beta, zero_division, class_names)


class SemanticMetrics:
    """Streaming :func:`semantic_metrics`: ``update(pred, target)`` per batch, ``compute()``, ``reset()``.

    Args:
        num_classes: C.
        ignore_index: target label whose pixels are skipped, or None (labels outside
            ``[0, C)`` are then errors).
        beta: F-beta's beta (> 0).
        zero_division: ``"nan"``, 0 or 1 for undefined (0/0) scores.
        per_image: average per-image scores instead of scoring the summed counts.
        class_names: C names used by ``to_dict()`` and reports.
        validate_args: check label ranges on every update (a device sync).

    State: ``confusion`` int64 (C, C); with ``per_image`` also ``class_sums`` (5, C),
    ``class_counts`` (C,), ``image_sums`` (2,), ``image_counts`` (2,). Never per-image lists.

    Example:
        >>> metric = SemanticMetrics(num_classes=3, ignore_index=255)
        >>> metric.update(torch.tensor([[0, 2, 1]]), torch.tensor([[0, 2, 255]]))
        >>> metric.compute().miou
        tensor(1., dtype=torch.float64)
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        beta: float = 1.0,
        zero_division="nan",
        per_image: bool = False,
        class_names: Sequence[str] | None = None,
        validate_args: bool = True,
    ) -> None:
        _check_metric_args(num_classes, ignore_index, beta, zero_division, class_names)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.beta = beta
        self.zero_division = zero_division
        self.per_image = per_image
        self.class_names = list(class_names) if class_names is not None else None
        self.validate_args = validate_args
        self.reset()

    def reset(self) -> None:
        """Zero the state."""
        size = self.num_classes
        self.confusion = torch.zeros(size, size, dtype=torch.int64)
        self.sums = per_image_sums(torch.zeros(0, size, size, dtype=torch.int64), self.beta) if self.per_image else {}

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: ``pred`` a class map like ``target`` or scores ``(N, C, *S)``; ``target`` ``(N, *S)``."""
        confusion = _confusion_update(
            pred, target, self.num_classes, self.ignore_index, per_image=self.per_image,
            validate_args=self.validate_args,
        )
        self.update_confusion(confusion)

    def update_confusion(self, confusion: torch.Tensor) -> None:
        """Add precomputed counts: ``(C, C)`` (one image) or per-image ``(N, C, C)``, rows = truth."""
        size = self.num_classes
        if confusion.dim() not in (2, 3) or tuple(confusion.shape[-2:]) != (size, size):
            raise ValueError(f"confusion must have shape (C, C) or (N, C, C) with C={size}, got {tuple(confusion.shape)}")
        if confusion.dtype != torch.int64:
            raise TypeError(f"confusion must be int64 counts, got {confusion.dtype}")
        batch = confusion if confusion.dim() == 3 else confusion.unsqueeze(0)
        self.confusion = self.confusion.to(batch.device) + batch.sum(0)
        if self.per_image:
            new = per_image_sums(batch, self.beta)
            self.sums = {name: self.sums[name].to(batch.device) + new[name] for name in new}

    def compute(self) -> SemanticScores:
        """Scores of everything added since the last ``reset()`` (summed over processes)."""
        confusion = sum_across_processes(self.confusion)
        if not self.per_image:
            return semantic_scores(confusion, self.beta, self.zero_division, self.class_names)
        sums = {name: sum_across_processes(value) for name, value in self.sums.items()}
        return per_image_scores(sums, confusion, self.beta, self.zero_division, self.class_names)
