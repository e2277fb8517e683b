"""Semantic scores from per-class counts (the compute step), under a named convention.

Per class c, with TP, FP, FN (from a confusion matrix: TP = confusion[c, c], FP = column
sum - TP, FN = row sum - TP; or counted channel by channel from one-hot masks):
IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN),
F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), precision = TP / (TP + FP),
recall = TP / (TP + FN); aAcc = sum TP / sum (TP + FN) (the valid pixels of a class map),
mAcc = mean recall, fwIoU = sum_c (support_c / valid pixels) IoU_c with support = TP + FN.

Convention:
    ``convention="segfuse"`` (the default): a score is undefined (0/0) exactly when its own
    denominator is 0: the recall of a class absent from the truth, the precision of a class
    never predicted, IoU / Dice / F of a class absent from both. So a class predicted but
    absent from the truth has IoU = Dice = F = precision = 0 and an undefined recall, and a
    class present but never predicted has IoU = Dice = F = recall = 0 and an undefined
    precision. ``zero_division`` decides what undefined becomes: ``"nan"`` leaves it out of
    every mean (mmseg's nanmean), 0 or 1 sets the value, which then enters the means. Means
    are over classes; a mean with no value to average is undefined as well. aAcc and fwIoU
    are undefined with no valid pixel. Scores are float64.

    The named conventions of :data:`CONVENTIONS` change only these rules:
    ``"mmseg"`` (mmseg IoUMetric) computes F from precision and recall,
    F = (1 + b^2) P R / (b^2 P + R), so F is undefined where P or R is and where TP = 0;
    ``zero_division`` plays the part of its ``nan_to_num``. ``"detectron2"``
    (SemSegEvaluator) leaves every score of a class absent from the truth undefined, so
    mIoU and mACC average the classes present in the truth. ``"torchmetrics"`` sets a score
    whose denominator is 0 to 0 and leaves a class absent from both truth and prediction
    out of every mean (its macro weights); that class reads NaN with ``zero_division="nan"``,
    while 0 or 1 is torchmetrics' own ``zero_division`` (it replaces every 0/0).
    ``"monai"`` (DiceMetric / MeanIoU with ``ignore_empty=True``) scores each image and
    leaves every score of a class absent from that image's truth undefined.

    Per-image scores (``per_image_scores``): each image is scored by these rules, a class's
    score is the mean of its per-image values that count, and the means follow
    ``per_image_average``: ``"class"`` (the mean of the per-class column),
    ``"image"`` (the mean over images of each image's class mean: MONAI's
    ``reduction="mean"``, torchmetrics DiceScore ``average="macro"``) or ``"pooled"`` (the
    mean of every counted (image, class) value: torchmetrics MeanIoU). Each convention has a
    default (``Convention.per_image_average``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from segfuse._validate import check_choice, check_positive
from segfuse.metrics.confusion import OverlapCounts, overlap_counts

CLASS_SCORES = ("iou", "dice", "fscore", "precision", "recall")
MEAN_NAMES = {"iou": "miou", "dice": "mdice", "fscore": "mfscore", "precision": "mprecision", "recall": "mrecall"}
PER_IMAGE_AVERAGES = ("class", "image", "pooled")


@dataclass(frozen=True)
class Convention:
    """The rules a named convention changes; see the module Convention."""

    name: str
    reference: str
    undefined_without_truth: bool = False
    fscore_from_precision_recall: bool = False
    zero_for_empty_denominator: bool = False
    per_image: bool | None = None
    per_image_average: str = "class"


CONVENTIONS: dict[str, Convention] = {
    rule.name: rule
    for rule in (
        Convention("segfuse", "SPEC 4: a score is undefined exactly when its own denominator is 0"),
        Convention("mmseg", "mmsegmentation IoUMetric (F from precision and recall)",
                   fscore_from_precision_recall=True),
        Convention("detectron2", "detectron2 SemSegEvaluator (classes absent from the truth left out)",
                   undefined_without_truth=True),
        Convention("torchmetrics", "torchmetrics Multiclass* (average='macro'), MeanIoU per image",
                   zero_for_empty_denominator=True, per_image_average="pooled"),
        Convention("monai", "MONAI DiceMetric / MeanIoU (per image, ignore_empty=True, reduction='mean')",
                   undefined_without_truth=True, per_image=True, per_image_average="image"),
    )
}
DEFAULT_CONVENTION = "segfuse"


def get_convention(name: str) -> Convention:
    """The :class:`Convention` called ``name``; ValueError naming the choices otherwise."""
    check_choice("convention", name, CONVENTIONS)
    return CONVENTIONS[name]


def check_zero_division(zero_division) -> None:
    if zero_division == "nan" or (
        not isinstance(zero_division, bool) and isinstance(zero_division, (int, float)) and zero_division in (0, 1)
    ):
        return
    raise ValueError(f"zero_division must be 'nan', 0 or 1, got {zero_division!r}")


def zero_division_value(zero_division) -> float:
    return float("nan") if zero_division == "nan" else float(zero_division)


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, NaN where the denominator is 0 (or NaN)."""
    return torch.where(denominator > 0, numerator / denominator, torch.full_like(numerator, float("nan")))


def undefined_as_nan(tp, fp, fn, beta: float = 1.0, convention: str = DEFAULT_CONVENTION) -> dict[str, torch.Tensor]:
    """Per-class scores ``(..., C)`` float64, NaN exactly where ``convention`` leaves them undefined."""
    rule = get_convention(convention)
    tp, fp, fn = (x.to(torch.float64) for x in (tp, fp, fn))
    weight, beta2 = 1.0 + beta * beta, beta * beta
    scores = {
        "iou": _divide(tp, tp + fp + fn),
        "dice": _divide(2 * tp, 2 * tp + fp + fn),
        "fscore": _divide(weight * tp, weight * tp + beta2 * fn + fp),
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
    }
    if rule.fscore_from_precision_recall:
        precision, recall = scores["precision"], scores["recall"]
        scores["fscore"] = _divide(weight * precision * recall, beta2 * precision + recall)
    if rule.undefined_without_truth:
        absent = (tp + fn) == 0
        scores = {name: value.masked_fill(absent, float("nan")) for name, value in scores.items()}
    return scores


def class_scores(tp, fp, fn, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION):
    """Per-class scores ``(..., C)`` after ``zero_division``, and which of them enter the means.

    Returns two dicts keyed by ``CLASS_SCORES``: the float64 values and bool masks ``counted``.
    """
    rule = get_convention(convention)
    raw = undefined_as_nan(tp, fp, fn, beta, convention)
    fill = zero_division_value(zero_division)
    if not rule.zero_for_empty_denominator:
        values = {name: value.nan_to_num(fill) if zero_division != "nan" else value for name, value in raw.items()}
        return values, {name: ~torch.isnan(value) for name, value in values.items()}
    absent_from_both = (tp + fp + fn) == 0
    other = 0.0 if zero_division == "nan" else fill
    values = {
        name: torch.where(absent_from_both, torch.full_like(value, fill), value.nan_to_num(other))
        for name, value in raw.items()
    }
    return values, {name: ~absent_from_both for name in raw}


def counted_mean(values: torch.Tensor, counted: torch.Tensor, fill: float, dim: int = -1) -> torch.Tensor:
    """Mean of the counted values over ``dim``; ``fill`` where none counts."""
    count = counted.sum(dim)
    total = torch.where(counted, values, torch.zeros_like(values)).sum(dim)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, fill))


def _accuracy_and_fwiou(tp, fn, iou: torch.Tensor, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """aAcc = sum TP / sum support and fwIoU = sum (support / total) IoU, ``fill`` with no support."""
    support = (tp + fn).to(torch.float64)
    total = support.sum(-1)
    correct = tp.to(torch.float64).sum(-1)
    weighted = torch.where(support > 0, support * iou, torch.zeros_like(iou)).sum(-1)
    defined = total > 0
    acc = torch.where(defined, correct / total.clamp_min(1), torch.full_like(total, fill))
    fwiou = torch.where(defined, weighted / total.clamp_min(1), torch.full_like(total, fill))
    return acc, fwiou


@dataclass
class SemanticScores:
    """Result of :func:`semantic_scores` / ``SemanticMetrics.compute()``.

    Per-class tensors ``(..., C)``: iou, dice, fscore, precision, recall. Means ``(...)``:
    miou, mdice, mfscore, mprecision, mrecall, acc (aAcc), macc (mean recall), fwiou.
    ``confusion_matrix`` is the int64 ``(..., C, C)`` it came from (summed over images), or
    None when the counts came from one-hot masks. ``convention`` names the rules used.
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
    confusion_matrix: torch.Tensor | None
    beta: float = 1.0
    class_names: list[str] | None = field(default=None)
    convention: str = DEFAULT_CONVENTION
    per_image: bool = False
    per_image_average: str | None = None

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
        matrix = self.confusion_matrix
        return {
            **means,
            "beta": self.beta,
            "convention": self.convention,
            "per_image": self.per_image,
            "per_image_average": self.per_image_average,
            "class_names": self.names(),
            "per_class": per_class,
            "confusion_matrix": None if matrix is None else matrix.tolist(),
        }

    @staticmethod
    def _number(value: torch.Tensor):
        return float(value) if value.dim() == 0 else value.tolist()


def check_score_args(
    beta: float,
    zero_division,
    class_names: Sequence[str] | None,
    num_classes: int,
    convention: str = DEFAULT_CONVENTION,
) -> None:
    check_positive("beta", beta)
    check_zero_division(zero_division)
    get_convention(convention)
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise TypeError(f"class_names must be a sequence of strings, got {type(class_names).__name__}")
        if len(class_names) != num_classes:
            raise ValueError(f"class_names must have num_classes={num_classes} entries, got {len(class_names)}")


def _as_counts(counts) -> tuple[OverlapCounts, torch.Tensor | None]:
    """(tp, fp, fn) and the confusion matrix (None for counts given directly)."""
    if isinstance(counts, OverlapCounts):
        return counts, None
    if not isinstance(counts, torch.Tensor):
        raise TypeError(f"confusion must be a tensor (..., C, C) or OverlapCounts, got {type(counts).__name__}")
    if counts.dim() < 2 or counts.shape[-1] != counts.shape[-2]:
        raise ValueError(f"confusion must have shape (..., C, C), got {tuple(counts.shape)}")
    return overlap_counts(counts), counts


def semantic_scores(
    confusion,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    convention: str = DEFAULT_CONVENTION,
) -> SemanticScores:
    """All semantic scores of confusion matrices ``(..., C, C)`` (rows = truth) or of
    :class:`~segfuse.metrics.confusion.OverlapCounts` ``(..., C)``; see the module Convention.

    A batch ``(N, C, C)`` gives per-image scores ``(N, C)`` and means ``(N,)`` (MONAI's
    ``reduction="none"``); ``convention`` names the rules (default ``"segfuse"``).

    Example:
        >>> scores = semantic_scores(torch.tensor([[3, 1], [0, 2]]))
        >>> scores.iou
        tensor([0.7500, 0.6667], dtype=torch.float64)
    """
    (tp, fp, fn), matrix = _as_counts(confusion)
    check_score_args(beta, zero_division, class_names, tp.shape[-1], convention)
    values, counted = class_scores(tp, fp, fn, beta, zero_division, convention)
    fill = zero_division_value(zero_division)
    means = {MEAN_NAMES[name]: counted_mean(values[name], counted[name], fill) for name in CLASS_SCORES}
    acc, fwiou = _accuracy_and_fwiou(tp, fn, values["iou"], fill)
    return SemanticScores(
        **values, **means, acc=acc, macc=means["mrecall"], fwiou=fwiou, confusion_matrix=matrix, beta=beta,
        class_names=list(class_names) if class_names is not None else None, convention=convention,
    )


# ---- per-image averaging with O(C) state ------------------------------------------------

IMAGE_SCORES = (*MEAN_NAMES.values(), "acc", "fwiou")


def per_image_sums(
    counts: OverlapCounts, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION
) -> dict[str, torch.Tensor]:
    """Sufficient O(C) statistics of per-image scores from per-image counts ``(N, C)``.

    Returns ``class_sums`` (5, C) float64 and ``class_counts`` (5, C) int64 (sums and numbers
    of the per-image class scores that count, in the order of ``CLASS_SCORES``),
    ``image_sums`` (7,) float64 and ``image_counts`` (7,) int64 (the same for each image's
    class means, aAcc and fwIoU, in the order of ``IMAGE_SCORES``) and ``num_images`` (), int64.
    """
    tp, fp, fn = counts
    values, counted = class_scores(tp, fp, fn, beta, zero_division, convention)
    fill = zero_division_value(zero_division)
    stacked = torch.stack([values[name] for name in CLASS_SCORES], dim=1)
    counted_stack = torch.stack([counted[name] for name in CLASS_SCORES], dim=1)
    image_means = counted_mean(stacked, counted_stack, float("nan"))
    acc, fwiou = _accuracy_and_fwiou(tp, fn, values["iou"], fill)
    image_values = torch.cat([image_means, acc[:, None], fwiou[:, None]], dim=1)
    image_counted = ~torch.isnan(image_values)
    return {
        "class_sums": torch.where(counted_stack, stacked, torch.zeros_like(stacked)).sum(0),
        "class_counts": counted_stack.sum(0).to(torch.int64),
        "image_sums": image_values.nan_to_num(0.0).sum(0),
        "image_counts": image_counted.sum(0).to(torch.int64),
        "num_images": torch.tensor(tp.shape[0], dtype=torch.int64, device=tp.device),
    }


def empty_per_image_sums(num_classes: int, device=None) -> dict[str, torch.Tensor]:
    """The zero state of :func:`per_image_sums`."""
    scores, images = len(CLASS_SCORES), len(IMAGE_SCORES)
    return {
        "class_sums": torch.zeros(scores, num_classes, dtype=torch.float64, device=device),
        "class_counts": torch.zeros(scores, num_classes, dtype=torch.int64, device=device),
        "image_sums": torch.zeros(images, dtype=torch.float64, device=device),
        "image_counts": torch.zeros(images, dtype=torch.int64, device=device),
        "num_images": torch.zeros((), dtype=torch.int64, device=device),
    }


def _ratio_or_fill(total: torch.Tensor, count: torch.Tensor, fill: float) -> torch.Tensor:
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, fill))


def per_image_scores(
    sums: dict[str, torch.Tensor],
    confusion: torch.Tensor | None,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    convention: str = DEFAULT_CONVENTION,
    per_image_average: str | None = None,
) -> SemanticScores:
    """Per-image averaged scores from :func:`per_image_sums` (summed over batches / processes).

    ``sums`` must have been made with the same ``beta``, ``zero_division`` and ``convention``;
    ``per_image_average`` (None: the convention's) is ``"class"``, ``"image"`` or ``"pooled"``.
    """
    check_score_args(beta, zero_division, class_names, sums["class_sums"].shape[-1], convention)
    average = per_image_average or get_convention(convention).per_image_average
    check_choice("per_image_average", average, PER_IMAGE_AVERAGES)
    fill = zero_division_value(zero_division)
    class_sums, class_counts = sums["class_sums"], sums["class_counts"]
    per_class = _ratio_or_fill(class_sums, class_counts, fill)
    if average == "class":
        means = counted_mean(per_class, class_counts > 0, fill)
    elif average == "pooled":
        means = _ratio_or_fill(class_sums.sum(-1), class_counts.sum(-1), fill)
    else:
        means = _ratio_or_fill(sums["image_sums"][:5], sums["image_counts"][:5], fill)
    acc, fwiou = _ratio_or_fill(sums["image_sums"][5:], sums["image_counts"][5:], fill).unbind(0)
    mean_values = dict(zip(MEAN_NAMES.values(), means.unbind(0)))
    return SemanticScores(
        **dict(zip(CLASS_SCORES, per_class.unbind(0))), **mean_values, acc=acc, macc=mean_values["mrecall"],
        fwiou=fwiou, confusion_matrix=confusion, beta=beta,
        class_names=list(class_names) if class_names is not None else None, convention=convention,
        per_image=True, per_image_average=average,
    )


# ---- generalized Dice score ----------------------------------------------------------------------

GENERALIZED_DICE_WEIGHTS = ("square", "simple", "linear")


def generalized_dice_score(counts, weight: str = "square", zero_division="nan") -> torch.Tensor:
    """Generalized Dice score (Sudre et al. 2017) from counts ``(..., C)`` or confusion matrices ``(..., C, C)``.

    GDS = 2 sum_c w_c TP_c / sum_c w_c (2 TP_c + FP_c + FN_c) with w_c = 1 / support_c^2
    (``"square"``), 1 / support_c (``"simple"``) or 1 (``"linear"``), support = TP + FN.

    Convention:
        A class absent from an image's truth has an infinite weight; it takes the largest
        finite weight of that image, or 1 when there is none (MONAI's
        ``compute_generalized_dice``; torchmetrics 1.9 indexes that replacement differently,
        so the two disagree exactly when some class is absent from some image). A score whose
        denominator is 0 (nothing in the truth or the prediction) follows ``zero_division``.

    Returns:
        float64 ``(...)``: one score per count vector (per image for per-image counts).

    Example:
        >>> counts = OverlapCounts(torch.tensor([3, 1]), torch.tensor([1, 0]), torch.tensor([0, 1]))
        >>> generalized_dice_score(counts)
        tensor(0.7636, dtype=torch.float64)
    """
    check_choice("weight", weight, GENERALIZED_DICE_WEIGHTS)
    check_zero_division(zero_division)
    (tp, fp, fn), _ = _as_counts(counts)
    tp, fp, fn = (x.to(torch.float64) for x in (tp, fp, fn))
    support = tp + fn
    if weight == "linear":
        weights = torch.ones_like(support)
    else:
        weights = torch.where(support > 0, 1.0 / support.clamp_min(1) ** (2 if weight == "square" else 1), 0.0)
    largest = weights.amax(-1, keepdim=True)
    weights = torch.where(support > 0, weights, torch.where(largest > 0, largest, torch.ones_like(largest)))
    numerator = (2 * weights * tp).sum(-1)
    denominator = (weights * (2 * tp + fp + fn)).sum(-1)
    fill = torch.full_like(numerator, zero_division_value(zero_division))
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), fill)
