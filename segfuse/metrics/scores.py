"""Semantic scores from confusion counts (the compute step): IoU, Dice, F-beta, precision, recall.

Per class c, with TP = confusion[c, c], FP = column sum - TP, FN = row sum - TP:
IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN),
F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), precision = TP / (TP + FP),
recall = TP / (TP + FN); aAcc = sum TP / valid pixels, mAcc = mean recall,
fwIoU = sum_c (support_c / valid pixels) IoU_c.

Convention:
    A score is undefined (0/0) only for a class absent from both the truth and the
    prediction (TP = FP = FN = 0); ``zero_division`` then decides: ``"nan"`` leaves the
    class out of every mean (mmseg's nanmean), 0 or 1 sets the value, which then enters
    the means. Any other class with TP = 0 scores 0 on every score: a class predicted but
    absent from the truth has IoU = Dice = F = precision = recall = 0, and a class present
    but never predicted has precision 0 (not 0/0). aAcc and fwIoU are 0/0 only with no
    valid pixel. Means are over classes. With per-image scores, each image is scored like
    this and a class's score is the mean over the images where it is defined (with
    ``"nan"``) or over all images (with 0 or 1: undefined images count as that value).
    Scores are float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from segfuse._validate import check_positive

CLASS_SCORES = ("iou", "dice", "fscore", "precision", "recall")
MEAN_NAMES = {"iou": "miou", "dice": "mdice", "fscore": "mfscore", "precision": "mprecision", "recall": "mrecall"}


def check_zero_division(zero_division) -> None:
    if zero_division == "nan" or (
        not isinstance(zero_division, bool) and isinstance(zero_division, (int, float)) and zero_division in (0, 1)
    ):
        return
    raise ValueError(f"zero_division must be 'nan', 0 or 1, got {zero_division!r}")


def zero_division_value(zero_division) -> float:
    return float("nan") if zero_division == "nan" else float(zero_division)


def overlap_counts(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TP, FP, FN per class ``(..., C)`` from confusion matrices ``(..., C, C)`` (rows = truth)."""
    tp = torch.diagonal(confusion, dim1=-2, dim2=-1)
    fp = confusion.sum(dim=-2) - tp
    fn = confusion.sum(dim=-1) - tp
    return tp, fp, fn


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor, defined: torch.Tensor, fill: float) -> torch.Tensor:
    value = torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), torch.zeros_like(numerator))
    return torch.where(defined, value, torch.full_like(value, fill))


def class_scores(tp, fp, fn, beta: float = 1.0, zero_division="nan") -> dict[str, torch.Tensor]:
    """Per-class IoU, Dice, F-beta, precision and recall ``(..., C)`` from counts ``(..., C)``."""
    tp, fp, fn = (x.to(torch.float64) for x in (tp, fp, fn))
    defined = (tp + fp + fn) > 0
    fill = zero_division_value(zero_division)
    weight = 1.0 + beta * beta
    return {
        "iou": _ratio(tp, tp + fp + fn, defined, fill),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, defined, fill),
        "fscore": _ratio(weight * tp, weight * tp + beta * beta * fn + fp, defined, fill),
        "precision": _ratio(tp, tp + fp, defined, fill),
        "recall": _ratio(tp, tp + fn, defined, fill),
    }


def class_mean(scores: torch.Tensor) -> torch.Tensor:
    """Mean over the last (class) dim, skipping NaN; NaN when every class is NaN."""
    return torch.nanmean(scores, dim=-1)


def pixel_accuracy(confusion: torch.Tensor, zero_division="nan") -> torch.Tensor:
    """aAcc = sum TP / valid pixels, ``(...)`` from ``(..., C, C)``."""
    correct = torch.diagonal(confusion, dim1=-2, dim2=-1).sum(-1).to(torch.float64)
    total = confusion.sum(dim=(-2, -1)).to(torch.float64)
    return _ratio(correct, total, total > 0, zero_division_value(zero_division))


def frequency_weighted_iou(confusion: torch.Tensor, iou: torch.Tensor, zero_division="nan") -> torch.Tensor:
    """fwIoU = sum_c (support_c / valid pixels) IoU_c; classes without support weigh 0."""
    support = confusion.sum(dim=-1).to(torch.float64)
    total = support.sum(-1)
    weighted = torch.where(support > 0, support * iou, torch.zeros_like(iou)).sum(-1)
    return _ratio(weighted, total, total > 0, zero_division_value(zero_division))


@dataclass
class SemanticScores:
    """Result of :func:`semantic_scores` / ``SemanticMetrics.compute()``.

    Per-class tensors ``(..., C)``: iou, dice, fscore, precision, recall. Means ``(...)``:
    miou, mdice, mfscore, mprecision, mrecall, acc (aAcc), macc (mean recall), fwiou.
    ``confusion_matrix`` is the int64 ``(..., C, C)`` it came from (summed over images).
    """

    iou: torch.Tensor
    dice: torch.Tensor
    fscore: torch.Tensor
    precision: torch.Tensor
    recall: torch.Tensor
    miou: torch.Tensor
    mdice: torch.Tensor
    mfscore: torch.Tensor
    mprecision: torch.Tensor
    mrecall: torch.Tensor
    acc: torch.Tensor
    macc: torch.Tensor
    fwiou: torch.Tensor
    confusion_matrix: torch.Tensor
    beta: float = 1.0
    class_names: list[str] | None = field(default=None)

    def names(self) -> list[str]:
        count = self.iou.shape[-1]
        return list(self.class_names) if self.class_names else [str(c) for c in range(count)]

    def to_dict(self) -> dict:
        """Plain Python numbers (NaN stays float('nan')): means, per-class dicts, confusion rows."""
        means = {name: self._number(getattr(self, name)) for name in (*MEAN_NAMES.values(), "acc", "macc", "fwiou")}
        per_class = {
            name: {score: float(getattr(self, score)[..., c]) for score in CLASS_SCORES}
            for c, name in enumerate(self.names())
        }
        return {
            **means,
            "beta": self.beta,
            "class_names": self.names(),
            "per_class": per_class,
            "confusion_matrix": self.confusion_matrix.tolist(),
        }

    @staticmethod
    def _number(value: torch.Tensor):
        return float(value) if value.dim() == 0 else value.tolist()


def assemble_scores(per_class: dict, acc, fwiou, confusion, beta, class_names) -> SemanticScores:
    """Build the result: per-class tensors, their class means, aAcc, mAcc, fwIoU."""
    means = {MEAN_NAMES[name]: class_mean(per_class[name]) for name in CLASS_SCORES}
    return SemanticScores(
        **per_class, **means, acc=acc, macc=means["mrecall"], fwiou=fwiou,
        confusion_matrix=confusion, beta=beta, class_names=class_names,
    )


def check_score_args(beta: float, zero_division, class_names: Sequence[str] | None, num_classes: int) -> None:
    check_positive("beta", beta)
    check_zero_division(zero_division)
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise TypeError(f"class_names must be a sequence of strings, got {type(class_names).__name__}")
        if len(class_names) != num_classes:
            raise ValueError(f"class_names must have num_classes={num_classes} entries, got {len(class_names)}")


def semantic_scores(
    confusion: torch.Tensor, beta: float = 1.0, zero_division="nan", class_names: Sequence[str] | None = None
) -> SemanticScores:
    """All semantic scores of confusion matrices ``(..., C, C)`` (rows = truth); see the module Convention.

    A batch of matrices ``(N, C, C)`` gives per-image scores ``(N, C)`` and means ``(N,)``.

    Example:
        >>> scores = semantic_scores(torch.tensor([[3, 1], [0, 2]]))
        >>> scores.iou
        tensor([0.7500, 0.6667], dtype=torch.float64)
    """
    if confusion.dim() < 2 or confusion.shape[-1] != confusion.shape[-2]:
        raise ValueError(f"confusion must have shape (..., C, C), got {tuple(confusion.shape)}")
    check_score_args(beta, zero_division, class_names, confusion.shape[-1])
    per_class = class_scores(*overlap_counts(confusion), beta=beta, zero_division=zero_division)
    acc = pixel_accuracy(confusion, zero_division)
    fwiou = frequency_weighted_iou(confusion, per_class["iou"], zero_division)
    names = list(class_names) if class_names is not None else None
    return assemble_scores(per_class, acc, fwiou, confusion, beta, names)


# ---- per-image averaging with O(C) state ------------------------------------------------


def per_image_sums(confusions: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
    """Sufficient O(C) statistics of per-image scores from per-image matrices ``(N, C, C)``.

    Returns ``class_sums`` (5, C) float64 (sums over the images where each class is
    defined, in the order of ``CLASS_SCORES``), ``class_counts`` (C,) int64 (those images),
    ``image_sums`` (2,) float64 (aAcc and fwIoU summed over images with valid pixels) and
    ``image_counts`` (2,) int64 (images with valid pixels, all images).
    """
    scores = semantic_scores(confusions, beta=beta, zero_division="nan")
    per_class = torch.stack([getattr(scores, name) for name in CLASS_SCORES])
    image_scores = torch.stack([scores.acc, scores.fwiou])
    return {
        "class_sums": per_class.nan_to_num(0.0).sum(dim=1),
        "class_counts": (~torch.isnan(scores.iou)).sum(dim=0).to(torch.int64),
        "image_sums": image_scores.nan_to_num(0.0).sum(dim=1),
        "image_counts": torch.tensor(
            [int((~torch.isnan(scores.acc)).sum()), confusions.shape[0]], dtype=torch.int64, device=confusions.device
        ),
    }


def _average(sums: torch.Tensor, counts: torch.Tensor, num_images: torch.Tensor, zero_division) -> torch.Tensor:
    counts = counts.to(torch.float64)
    if zero_division == "nan":
        return torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("nan")))
    total = num_images.to(torch.float64)
    filled = sums + float(zero_division) * (total - counts)
    return torch.where(total > 0, filled / total.clamp_min(1), torch.full_like(sums, float(zero_division)))


def per_image_scores(
    sums: dict[str, torch.Tensor],
    confusion: torch.Tensor,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
) -> SemanticScores:
    """Per-image averaged scores from :func:`per_image_sums` (summed over batches / processes)."""
    check_score_args(beta, zero_division, class_names, confusion.shape[-1])
    num_images = sums["image_counts"][1]
    averaged = _average(sums["class_sums"], sums["class_counts"], num_images, zero_division)
    per_class = dict(zip(CLASS_SCORES, averaged.unbind(0)))
    images = _average(sums["image_sums"], sums["image_counts"][:1].expand(2), num_images, zero_division)
    names = list(class_names) if class_names is not None else None
    return assemble_scores(per_class, images[0], images[1], confusion, beta, names)
