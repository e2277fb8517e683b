"""Scores of ``segfuse eval`` from its (C, C + 1) counts, in numpy (the command never imports torch).

The formulas, undefined cases and means are those of :mod:`segfuse.metrics.scores`
(``semantic_scores`` for dataset counts, ``per_image_sums`` / ``per_image_scores`` for
``--per-image``); tests/cli/test_eval_scores.py holds the two equal on random and edge
cases. The extra last column counts pixels whose prediction held the ignore value: they
add to the class's FN (a miss) and to the valid pixels, and to no class's FP.

Convention:
    With misses m_c: TP = M[c, c], FP = column sum over the C rows - TP, FN = row sum
    (misses included) - TP. A score is undefined when TP + FP + FN = 0 (NaN, left out of
    the means); any other class with TP = 0 scores 0. aAcc = sum TP / valid pixels,
    mAcc = mean recall, fwIoU = sum_c support_c IoU_c / valid pixels. Scores are float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASS_SCORES = ("iou", "dice", "fscore", "precision", "recall")
MEAN_NAMES = {"iou": "miou", "dice": "mdice", "fscore": "mfscore", "precision": "mprecision", "recall": "mrecall"}


@dataclass
class EvalScores:
    """The fields of ``segfuse.metrics.SemanticScores`` as numpy arrays, plus the misses.

    ``confusion_matrix`` is (C, C) without the misses; ``misses`` (C,) counts, per true
    class, the pixels whose prediction held the ignore value (both None for per-image
    scores computed from TP / FP / FN alone).
    """

    iou: np.ndarray
    dice: np.ndarray
    fscore: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    miou: np.ndarray
    mdice: np.ndarray
    mfscore: np.ndarray
    mprecision: np.ndarray
    mrecall: np.ndarray
    acc: np.ndarray
    macc: np.ndarray
    fwiou: np.ndarray
    confusion_matrix: np.ndarray
    misses: np.ndarray
    beta: float = 1.0
    class_names: list[str] | None = field(default=None)

    def names(self) -> list[str]:
        count = self.iou.shape[-1]
        return list(self.class_names) if self.class_names else [str(c) for c in range(count)]


def _ratio(numerator, denominator, defined, fill: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)
    return np.where(defined, value, fill)


def overlap_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN (..., C) float64 from counts (..., C, C + 1) (last column: misses)."""
    size = counts.shape[-2]
    tp = np.diagonal(counts[..., :size], axis1=-2, axis2=-1).astype(np.float64)
    fp = counts[..., :size].sum(axis=-2) - tp
    fn = counts.sum(axis=-1) - tp
    return tp, fp.astype(np.float64), fn.astype(np.float64)


def class_scores(tp, fp, fn, beta: float = 1.0, fill: float = float("nan")) -> dict[str, np.ndarray]:
    defined = (tp + fp + fn) > 0
    weight = 1.0 + beta * beta
    return {
        "iou": _ratio(tp, tp + fp + fn, defined, fill),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, defined, fill),
        "fscore": _ratio(weight * tp, weight * tp + beta * beta * fn + fp, defined, fill),
        "precision": _ratio(tp, tp + fp, defined, fill),
        "recall": _ratio(tp, tp + fn, defined, fill),
    }


def _nanmean(values: np.ndarray) -> np.ndarray:
    defined = ~np.isnan(values)
    count = defined.sum(-1)
    total = np.where(defined, values, 0.0).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _image_scores(tp: np.ndarray, fn: np.ndarray, per_class: dict) -> tuple[np.ndarray, np.ndarray]:
    """aAcc and fwIoU (...) from TP and FN (..., C) (support = TP + FN, misses included)."""
    support = tp + fn
    total = support.sum(-1)
    weighted = np.where(support > 0, support * per_class["iou"], 0.0).sum(-1)
    return _ratio(tp.sum(-1), total, total > 0, np.nan), _ratio(weighted, total, total > 0, np.nan)


def overlap_scores(tp, fp, fn, beta: float = 1.0, class_names=None, confusion=None, misses=None) -> EvalScores:
    """Scores from TP, FP, FN (..., C) float64; ``confusion`` / ``misses`` are carried along (or None)."""
    per_class = class_scores(tp, fp, fn, beta=beta)
    acc, fwiou = _image_scores(tp, fn, per_class)
    means = {MEAN_NAMES[name]: _nanmean(per_class[name]) for name in CLASS_SCORES}
    return EvalScores(**per_class, **means, acc=acc, macc=means["mrecall"], fwiou=fwiou, confusion_matrix=confusion,
                      misses=misses, beta=beta, class_names=list(class_names) if class_names else None)


def eval_scores(counts: np.ndarray, beta: float = 1.0, class_names=None) -> EvalScores:
    """Scores of counts (..., C, C + 1); a batch (N, C, C + 1) gives per-image scores (N, C)."""
    counts = np.asarray(counts, dtype=np.int64)
    size = counts.shape[-2]
    return overlap_scores(*overlap_counts(counts), beta, class_names, counts[..., :size], counts[..., size])


@dataclass
class PerImageSums:
    """Sufficient statistics of per-image averaging (``segfuse.metrics.scores.per_image_sums``)."""

    class_sums: np.ndarray  # (5, C) sums of each score over the images where the class is defined
    class_counts: np.ndarray  # (C,) those images
    image_sums: np.ndarray  # (2,) aAcc and fwIoU summed over images with valid pixels
    image_counts: np.ndarray  # (2,) images with valid pixels, all images

    def __add__(self, other: "PerImageSums") -> "PerImageSums":
        return PerImageSums(self.class_sums + other.class_sums, self.class_counts + other.class_counts,
                            self.image_sums + other.image_sums, self.image_counts + other.image_counts)


def per_image_sums(scores: EvalScores) -> PerImageSums:
    """Sums of per-image scores (N, C) for averaging; NaN (undefined) images are left out."""
    stacked = np.stack([getattr(scores, name) for name in CLASS_SCORES])
    images = np.stack([scores.acc, scores.fwiou])
    return PerImageSums(np.nan_to_num(stacked, nan=0.0).sum(1), (~np.isnan(scores.iou)).sum(0),
                        np.nan_to_num(images, nan=0.0).sum(1),
                        np.array([int((~np.isnan(scores.acc)).sum()), scores.acc.shape[0]]))


def per_image_average(sums: PerImageSums, counts: np.ndarray, beta: float = 1.0, class_names=None) -> EvalScores:
    """Per-image averaged scores (``--per-image``); ``counts`` (C, C + 1) are the dataset totals."""
    with np.errstate(divide="ignore", invalid="ignore"):
        averaged = np.where(sums.class_counts > 0, sums.class_sums / np.maximum(sums.class_counts, 1), np.nan)
        images = sums.image_sums / sums.image_counts[0] if sums.image_counts[0] > 0 else np.full(2, np.nan)
    per_class = dict(zip(CLASS_SCORES, averaged))
    means = {MEAN_NAMES[name]: _nanmean(per_class[name]) for name in CLASS_SCORES}
    counts = np.asarray(counts, np.int64)
    size = counts.shape[-2]
    return EvalScores(**per_class, **means, acc=np.float64(images[0]), macc=means["mrecall"], fwiou=np.float64(images[1]),
                      confusion_matrix=counts[:, :size], misses=counts[:, size], beta=beta,
                      class_names=list(class_names) if class_names else None)
