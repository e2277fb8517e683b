"""Pixel precision-recall curves and average precision of scores, exact or binned (streaming).

Convention:
    Exact mode (``thresholds=None``) is scikit-learn's ``precision_recall_curve`` /
    ``average_precision_score``: one threshold per distinct score, in decreasing order
    after reversal (precision, recall end with 1, 0; precision 0 where nothing is
    predicted; recall 1 everywhere when there is no positive; AP = -sum(diff(recall) *
    precision[:-1]), clipped at 0). Binned mode (``thresholds=T``, an int for
    ``linspace(0, 1, T)`` or a 1-D tensor, used sorted ascending) is torchmetrics'
    ``BinaryPrecisionRecallCurve(thresholds=T)``: a pixel is positive at t when
    ``score >= t``, precision / recall in ascending threshold order with 1 / 0 appended,
    NaN for 0/0 (counted as 0 in AP). Memory is O(T): counts per threshold bucket.
    Scores are used as given (no sigmoid). Pixels whose target equals ``ignore_index`` are
    dropped. Multiclass scores ``(N, C, *S)`` with a class map ``(N, *S)`` are scored one
    class against the rest; a class without positive pixels has AP NaN and is left out of
    the macro mean (``convention="segfuse"``, the default, in both modes).
    ``convention="torchmetrics"`` reproduces ``MulticlassAveragePrecision``: the same in
    exact mode, but in binned mode such a class scores 0 (its NaN recall counts as 0)
    and enters the macro mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from segfuse._validate import (
    check_binary_values,
    check_choice,
    check_float_tensor,
    check_label_tensor,
    check_labels_in_range,
)
from segfuse.metrics._distributed import gather_objects, sum_across_processes
from segfuse.metrics.confusion import ignored_pixels


class PRCurve(NamedTuple):
    """precision and recall ``(K + 1,)``, thresholds ``(K,)``."""

    precision: torch.Tensor
    recall: torch.Tensor
    thresholds: torch.Tensor


# ---- inputs --------------------------------------------------------------------------------


def _is_multiclass(scores: torch.Tensor, target: torch.Tensor) -> bool:
    return scores.dim() == target.dim() + 1


def _check_pr_inputs(scores, target, ignore_index) -> None:
    check_float_tensor("scores", scores)
    if target.dtype != torch.bool:
        check_label_tensor("target", target)
    if _is_multiclass(scores, target):
        expected = (target.shape[0], scores.shape[1], *target.shape[1:]) if target.dim() else None
        if tuple(scores.shape) != expected:
            raise ValueError(
                f"multiclass scores must have shape (N, C, *S) = {expected} for target {tuple(target.shape)}, "
                f"got {tuple(scores.shape)}"
            )
        check_labels_in_range("target", target, scores.shape[1], ignore_index)
    elif scores.shape != target.shape:
        raise ValueError(
            f"binary scores and target must have the same shape (or scores (N, C, *S) for a class map), "
            f"got {tuple(scores.shape)} and {tuple(target.shape)}"
        )
    elif target.dtype != torch.bool:
        check_binary_values("target", target, ignore_index)


def thresholds_tensor(thresholds) -> torch.Tensor | None:
    """None, an int T >= 2 (``linspace(0, 1, T)``) or a 1-D tensor / list, as a sorted tensor."""
    if thresholds is None:
        return None
    if isinstance(thresholds, bool):
        raise TypeError("thresholds must be None, an int or a 1-D tensor, got bool")
    if isinstance(thresholds, int):
        if thresholds < 2:
            raise ValueError(f"thresholds as an int must be >= 2, got {thresholds}")
        return torch.linspace(0, 1, thresholds)
    values = torch.as_tensor(thresholds)
    if values.dim() != 1 or values.numel() == 0 or not values.is_floating_point():
        raise ValueError(f"thresholds must be a non-empty 1-D float tensor, got shape {tuple(values.shape)} {values.dtype}")
    return values.sort().values


def _valid_pairs(scores: torch.Tensor, positives: torch.Tensor, ignored) -> tuple[torch.Tensor, torch.Tensor]:
    scores, positives = scores.reshape(-1), positives.reshape(-1)
    if ignored is None:
        return scores, positives
    keep = ~ignored.reshape(-1)
    return scores[keep], positives[keep]


def _binary_pairs(scores, target, ignore_index):
    positives = target if target.dtype == torch.bool else target == 1
    ignored = None if target.dtype == torch.bool else ignored_pixels(target, ignore_index)
    return _valid_pairs(scores, positives, ignored)


def _class_pairs(scores, target, ignore_index, c):
    return _valid_pairs(scores[:, c], target == c, ignored_pixels(target, ignore_index))


# ---- exact (sklearn) -----------------------------------------------------------------------


def exact_curve(scores: torch.Tensor, positives: torch.Tensor) -> PRCurve:
    """sklearn's curve of 1-D scores and a 1-D bool target."""
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positives = scores[order], positives[order]
    distinct = torch.nonzero(scores[1:] != scores[:-1]).reshape(-1)
    last = torch.tensor([scores.numel() - 1], device=scores.device)
    cut = torch.cat([distinct, last])
    tps = torch.cumsum(positives.to(torch.int64), 0)[cut].to(torch.float64)
    fps = 1 + cut.to(torch.float64) - tps
    predicted = tps + fps
    precision = torch.where(predicted != 0, tps / predicted, torch.zeros_like(tps))
    recall = torch.ones_like(tps) if tps[-1] == 0 else tps / tps[-1]
    one, zero = torch.ones(1, dtype=torch.float64, device=scores.device), torch.zeros_like(tps[:1])
    return PRCurve(torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), zero]), scores[cut].flip(0))


# ---- binned (torchmetrics) -----------------------------------------------------------------


def binned_counts(scores: torch.Tensor, positives: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Histogram ``(2, T + 1)`` int64 of [negatives, positives] by the number of thresholds <= score."""
    dtype = torch.promote_types(scores.dtype, thresholds.dtype)
    bucket = torch.searchsorted(thresholds.to(scores.device, dtype), scores.to(dtype).contiguous(), right=True)
    size = thresholds.numel() + 1
    return torch.bincount(bucket + size * positives.to(torch.int64), minlength=2 * size).reshape(2, size)


def binned_curve(counts: torch.Tensor, thresholds: torch.Tensor) -> PRCurve:
    """torchmetrics' binned curve from :func:`binned_counts` (summed over updates)."""
    above = counts.flip(1).cumsum(1).flip(1)[:, 1:]
    fps, tps = above[0].to(torch.float64), above[1].to(torch.float64)
    fns = counts[1].sum().to(torch.float64) - tps
    nan = torch.full_like(tps, float("nan"))
    precision = torch.where(tps + fps > 0, tps / (tps + fps).clamp_min(1), nan)
    recall = torch.where(tps + fns > 0, tps / (tps + fns).clamp_min(1), nan)
    one, zero = torch.ones_like(tps[:1]), torch.zeros_like(tps[:1])
    return PRCurve(torch.cat([precision, one]), torch.cat([recall, zero]), thresholds)


def curve_average_precision(curve: PRCurve) -> torch.Tensor:
    """AP = -sum(diff(recall) * precision[:-1]) with NaN counted as 0, clipped at 0."""
    precision, recall = curve.precision.nan_to_num(0.0), curve.recall.nan_to_num(0.0)
    return torch.clamp(-torch.sum((recall[1:] - recall[:-1]) * precision[:-1]), min=0.0)


def _curve(scores, positives, thresholds: torch.Tensor | None) -> PRCurve:
    if thresholds is None:
        if scores.numel() == 0:
            raise ValueError("scores must have at least one non-ignored pixel for an exact PR curve, got 0")
        return exact_curve(scores, positives)
    return binned_curve(binned_counts(scores, positives, thresholds), thresholds.to(scores.device))


# ---- public functions ----------------------------------------------------------------------


def precision_recall_curve(
    scores: torch.Tensor, target: torch.Tensor, thresholds=None, ignore_index: int | None = None
) -> PRCurve | list[PRCurve]:
    """Pixel precision-recall curve; see the module Convention.

    Args:
        scores: binary scores with ``target``'s shape, or multiclass ``(N, C, *S)``.
        target: binary {0, 1} (bool or integer) like ``scores``, or a class map ``(N, *S)``.
        thresholds: None (exact), an int T or a 1-D tensor (binned).
        ignore_index: target label whose pixels are dropped.

    Returns:
        ``PRCurve(precision, recall, thresholds)``; for multiclass a list of C curves.

    Example:
        >>> precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])).precision
        tensor([0.5000, 0.6667, 0.5000, 1.0000, 1.0000], dtype=torch.float64)
    """
    _check_pr_inputs(scores, target, ignore_index)
    grid = thresholds_tensor(thresholds)
    if not _is_multiclass(scores, target):
        return _curve(*_binary_pairs(scores, target, ignore_index), grid)
    return [_curve(*_class_pairs(scores, target, ignore_index, c), grid) for c in range(scores.shape[1])]


AP_CONVENTIONS = ("segfuse", "torchmetrics")


def average_precision(
    scores: torch.Tensor,
    target: torch.Tensor,
    thresholds=None,
    ignore_index: int | None = None,
    average="macro",
    convention: str = "segfuse",
) -> torch.Tensor:
    """Average precision of binary scores, or one-vs-rest per class of multiclass scores.

    ``average="macro"`` returns the mean over the classes that have an AP, None the
    per-class APs ``(C,)``. Binary input ignores it. A class without positive pixels has
    AP NaN, except in binned mode with ``convention="torchmetrics"`` (0); see the module
    Convention.

    Example:
        >>> average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        tensor(0.8333, dtype=torch.float64)
    """
    check_choice("average", average, ("macro", None))
    check_choice("convention", convention, AP_CONVENTIONS)
    _check_pr_inputs(scores, target, ignore_index)
    grid = thresholds_tensor(thresholds)
    if not _is_multiclass(scores, target):
        return curve_average_precision(_curve(*_binary_pairs(scores, target, ignore_index), grid))
    zero_without_positives = convention == "torchmetrics" and grid is not None
    per_class = torch.stack([
        _class_average_precision(scores, target, ignore_index, c, grid, zero_without_positives)
        for c in range(scores.shape[1])
    ])
    return per_class if average is None else torch.nanmean(per_class)


def _class_average_precision(scores, target, ignore_index, c, grid, zero_without_positives: bool) -> torch.Tensor:
    class_scores, positives = _class_pairs(scores, target, ignore_index, c)
    if not zero_without_positives and not bool(positives.any()):
        return torch.tensor(float("nan"), dtype=torch.float64, device=scores.device)
    return curve_average_precision(_curve(class_scores, positives, grid))


# ---- streaming -----------------------------------------------------------------------------


class BinaryPRCurve:
    """Streaming binary :func:`precision_recall_curve`: ``update(scores, target)``, ``compute()``, ``reset()``.

    With ``thresholds`` (int or tensor) the state is an O(T) int64 histogram, summed across
    processes; without, the valid scores are kept (exact, O(pixels)) and gathered.

    Example:
        >>> curve = BinaryPRCurve(thresholds=5)
        >>> curve.update(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> curve.average_precision()
        tensor(0.8333, dtype=torch.float64)
    """

    def __init__(self, thresholds=None, ignore_index: int | None = None) -> None:
        self.thresholds = thresholds_tensor(thresholds)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Zero the state."""
        size = 0 if self.thresholds is None else self.thresholds.numel() + 1
        self.counts = torch.zeros(2, size, dtype=torch.int64)
        self.scores: list[torch.Tensor] = []
        self.positives: list[torch.Tensor] = []

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        """Add binary scores and their {0, 1} target (same shape)."""
        _check_pr_inputs(scores, target, self.ignore_index)
        if _is_multiclass(scores, target):
            raise ValueError(f"BinaryPRCurve needs scores shaped like target, got {tuple(scores.shape)} and {tuple(target.shape)}")
        valid_scores, positives = _binary_pairs(scores, target, self.ignore_index)
        if self.thresholds is None:
            self.scores.append(valid_scores.detach())
            self.positives.append(positives)
            return
        counts = binned_counts(valid_scores.detach(), positives, self.thresholds)
        self.counts = self.counts.to(counts.device) + counts

    def compute(self) -> PRCurve:
        """The curve of everything added since ``reset()`` (across processes)."""
        if self.thresholds is not None:
            return binned_curve(sum_across_processes(self.counts), self.thresholds.to(self.counts.device))
        local = (torch.cat(self.scores), torch.cat(self.positives)) if self.scores else None
        parts = [part for part in gather_objects(local) if part is not None]
        if not parts:
            raise ValueError("BinaryPRCurve.compute() needs at least one update with a non-ignored pixel, got none")
        return _curve(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), None)

    def average_precision(self) -> torch.Tensor:
        """AP of :meth:`compute`'s curve."""
        return curve_average_precision(self.compute())
