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

    Misses (``misses=``, ``segfuse eval``'s pixels whose prediction holds the ignore value):
    per true class, pixels with no predicted class. They add to that class's FN and to the
    valid pixels, and to no class's FP (mmseg's and the Cityscapes script's rule).

    Arrays: the math runs in numpy on the small count arrays (scores come from ``(..., C)``
    counts, never from pixels), so this module never imports torch. Torch tensors in give
    torch tensors out (float64, on the input's device); numpy arrays in give numpy arrays.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

CLASS_SCORES = ("iou", "dice", "fscore", "precision", "recall")
MEAN_NAMES = {"iou": "miou", "dice": "mdice", "fscore": "mfscore", "precision": "mprecision", "recall": "mrecall"}
MEAN_SCORES = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")
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


# ---- argument checks (torch-free; the messages of segfuse._validate) -------------------------------


def check_choice(name: str, value, choices) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value != value or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


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


def resolve_per_image(convention: str, per_image: bool | None, per_image_average: str | None) -> bool:
    """Check the per-image arguments against the convention; the per_image to use."""
    rule = get_convention(convention)
    if per_image is not None and not isinstance(per_image, bool):
        raise TypeError(f"per_image must be a bool or None, got {type(per_image).__name__}")
    if rule.per_image and per_image is False:
        raise ValueError(f"convention={convention!r} scores each image (per_image=True), got per_image=False")
    resolved = rule.per_image or bool(per_image)
    if per_image_average is not None:
        check_choice("per_image_average", per_image_average, PER_IMAGE_AVERAGES)
        if not resolved:
            raise ValueError(f"per_image_average={per_image_average!r} needs per_image=True, got per_image={per_image}")
    return resolved


# ---- arrays in, arrays out: torch tensors converted at the boundary -----------------------------------


def _torch_of(*values):
    """The torch module when any value is (or, for a tuple, holds) a tensor; None otherwise.

    torch is looked up in ``sys.modules``: a tensor exists only once torch is imported.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    for value in values:
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(item, torch.Tensor) for item in items):
            return torch
    return None


def _numpy(value) -> np.ndarray:
    torch = _torch_of(value)
    if torch is not None:
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _device(*values):
    torch = sys.modules["torch"]
    for value in values:
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, torch.Tensor):
                return item.device
    return None


def _to_torch(value, torch, device):
    """A float64 / int64 / bool numpy result as a tensor on ``device`` (other values unchanged)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return torch.as_tensor(np.array(value), device=device)
    return value


# ---- the math, in numpy on (..., C) counts ---------------------------------------------------------------


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (or NaN)."""
    positive = denominator > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(positive, numerator / np.where(positive, denominator, 1.0), np.nan)


def _float_counts(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.asarray(_numpy(x), dtype=np.float64) for x in (tp, fp, fn))


def undefined_as_nan(tp, fp, fn, beta: float = 1.0, convention: str = DEFAULT_CONVENTION) -> dict[str, np.ndarray]:
    """Per-class scores ``(..., C)`` float64, NaN exactly where ``convention`` leaves them undefined (numpy)."""
    rule = get_convention(convention)
    tp, fp, fn = _float_counts(tp, fp, fn)
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
        scores = {name: np.where(absent, np.nan, value) for name, value in scores.items()}
    return scores


def class_scores(tp, fp, fn, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION):
    """Per-class scores ``(..., C)`` after ``zero_division``, and which of them enter the means (numpy).

    Returns two dicts keyed by ``CLASS_SCORES``: the float64 values and bool masks ``counted``.
    """
    rule = get_convention(convention)
    tp, fp, fn = _float_counts(tp, fp, fn)
    raw = undefined_as_nan(tp, fp, fn, beta, convention)
    fill = zero_division_value(zero_division)
    if not rule.zero_for_empty_denominator:
        values = raw if zero_division == "nan" else {name: np.nan_to_num(value, nan=fill) for name, value in raw.items()}
        return values, {name: ~np.isnan(value) for name, value in values.items()}
    absent_from_both = (tp + fp + fn) == 0
    other = 0.0 if zero_division == "nan" else fill
    values = {name: np.where(absent_from_both, fill, np.nan_to_num(value, nan=other)) for name, value in raw.items()}
    return values, {name: ~absent_from_both for name in raw}


def counted_mean(values: np.ndarray, counted: np.ndarray, fill: float, axis: int = -1) -> np.ndarray:
    """Mean of the counted values over ``axis``; ``fill`` where none counts (numpy)."""
    count = counted.sum(axis)
    total = np.where(counted, values, 0.0).sum(axis)
    return np.where(count > 0, total / np.maximum(count, 1), fill)


def _accuracy_and_fwiou(tp, fn, iou: np.ndarray, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """aAcc = sum TP / sum support and fwIoU = sum (support / total) IoU, ``fill`` with no support."""
    support = tp + fn
    total = support.sum(-1)
    weighted = np.where(support > 0, support * iou, 0.0).sum(-1)
    defined = total > 0
    acc = np.where(defined, tp.sum(-1) / np.maximum(total, 1), fill)
    fwiou = np.where(defined, weighted / np.maximum(total, 1), fill)
    return acc, fwiou


@dataclass
class SemanticScores:
    """Result of :func:`semantic_scores` / ``SemanticMetrics.compute()``.

    Per-class ``(..., C)``: iou, dice, fscore, precision, recall. Means ``(...)``: miou,
    mdice, mfscore, mprecision, mrecall, acc (aAcc), macc (mean recall), fwiou. Tensors
    (float64, on the counts' device) for torch input, numpy arrays for numpy input.
    ``confusion_matrix`` is the ``(..., C, C)`` it came from (summed over images), or None
    when the counts came from one-hot masks. ``misses`` ``(..., C)`` are the pixels of each
    true class with no prediction when they were given (else None). ``convention`` names
    the rules used.
    """

    iou: object
    dice: object
    fscore: object
    precision: object
    recall: object
    miou: object
    mdice: object
    mfscore: object
    mprecision: object
    mrecall: object
    acc: object
    macc: object
    fwiou: object
    confusion_matrix: object
    beta: float = 1.0
    class_names: list[str] | None = field(default=None)
    convention: str = DEFAULT_CONVENTION
    per_image: bool = False
    per_image_average: str | None = None
    misses: object = None

    def names(self) -> list[str]:
        count = self.iou.shape[-1]
        return list(self.class_names) if self.class_names else [str(c) for c in range(count)]

    def to_dict(self) -> dict:
        """Plain Python numbers (NaN stays float('nan')): means, per-class dicts, confusion rows."""
        means = {name: self._number(getattr(self, name)) for name in MEAN_SCORES}
        per_class = {
            name: {score: float(getattr(self, score)[..., c]) for score in CLASS_SCORES}
            for c, name in enumerate(self.names())
        }
        matrix = self.confusion_matrix
        document = {
            **means,
            "beta": self.beta,
            "convention": self.convention,
            "per_image": self.per_image,
            "per_image_average": self.per_image_average,
            "class_names": self.names(),
            "per_class": per_class,
            "confusion_matrix": None if matrix is None else matrix.tolist(),
        }
        if self.misses is not None:
            document["misses"] = self.misses.tolist()
        return document

    @staticmethod
    def _number(value):
        return float(value) if np.ndim(value) == 0 else value.tolist()


def _matrix_counts(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN ``(..., C)`` int64 from confusion matrices ``(..., C, C)`` (rows = truth)."""
    confusion = confusion.astype(np.int64, copy=False)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    return tp, confusion.sum(-2) - tp, confusion.sum(-1) - tp


def _as_counts(counts):
    """``((tp, fp, fn) numpy, the confusion matrix as given or None)``; counts are (..., C, C) or (tp, fp, fn)."""
    if isinstance(counts, tuple):
        if len(counts) != 3:
            raise ValueError(f"counts must be (tp, fp, fn), got a tuple of {len(counts)}")
        tp, fp, fn = (_numpy(x) for x in counts)
        if not tp.shape == fp.shape == fn.shape or tp.ndim < 1:
            raise ValueError(f"tp, fp and fn must share one shape (..., C), got {tp.shape}, {fp.shape}, {fn.shape}")
        return (tp, fp, fn), None
    if _torch_of(counts) is None and not isinstance(counts, np.ndarray):
        raise TypeError(
            f"confusion must be a tensor or array (..., C, C) or OverlapCounts (tp, fp, fn), got {type(counts).__name__}"
        )
    matrix = _numpy(counts)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"confusion must have shape (..., C, C), got {tuple(matrix.shape)}")
    if not (np.issubdtype(matrix.dtype, np.integer) or np.issubdtype(matrix.dtype, np.floating)):
        raise TypeError(f"confusion must hold counts, got dtype {matrix.dtype}")
    return _matrix_counts(matrix), counts


def _with_misses(fn: np.ndarray, misses) -> np.ndarray:
    if misses is None:
        return fn
    extra = _numpy(misses)
    if extra.shape != fn.shape:
        raise ValueError(f"misses must have the counts' shape (..., C) = {tuple(fn.shape)}, got {tuple(extra.shape)}")
    if np.issubdtype(extra.dtype, np.floating) or (extra.size and extra.min() < 0):
        raise ValueError("misses must hold pixel counts (integers >= 0)")
    return fn + extra


def _result(fields: dict, like: tuple, **extra) -> SemanticScores:
    """A SemanticScores of numpy ``fields``, as tensors on the input's device when ``like`` holds tensors."""
    torch = _torch_of(*like)
    if torch is not None:
        device = _device(*like)
        fields = {name: _to_torch(value, torch, device) for name, value in fields.items()}
    return SemanticScores(**fields, **extra)


def semantic_scores(
    confusion,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    convention: str = DEFAULT_CONVENTION,
    misses=None,
) -> SemanticScores:
    """All semantic scores of confusion matrices ``(..., C, C)`` (rows = truth) or of
    :class:`~segfuse.metrics.confusion.OverlapCounts` ``(..., C)``; see the module Convention.

    A batch ``(N, C, C)`` gives per-image scores ``(N, C)`` and means ``(N,)`` (MONAI's
    ``reduction="none"``); ``convention`` names the rules (default ``"segfuse"``). ``misses``
    ``(..., C)``: pixels of each true class whose prediction held no class (added to FN).
    Torch tensors or numpy arrays; the result holds the same kind.

    Example:
        >>> scores = semantic_scores(torch.tensor([[3, 1], [0, 2]]))
        >>> scores.iou
        tensor([0.7500, 0.6667], dtype=torch.float64)
    """
    (tp, fp, fn), matrix = _as_counts(confusion)
    check_score_args(beta, zero_division, class_names, tp.shape[-1], convention)
    tp, fp, fn = _float_counts(tp, fp, _with_misses(fn, misses))
    values, counted = class_scores(tp, fp, fn, beta, zero_division, convention)
    fill = zero_division_value(zero_division)
    means = {MEAN_NAMES[name]: counted_mean(values[name], counted[name], fill) for name in CLASS_SCORES}
    acc, fwiou = _accuracy_and_fwiou(tp, fn, values["iou"], fill)
    return _result(
        {**values, **means, "acc": acc, "macc": means["mrecall"], "fwiou": fwiou}, (confusion, misses),
        confusion_matrix=matrix, beta=beta, class_names=list(class_names) if class_names is not None else None,
        convention=convention, misses=misses,
    )


# ---- per-image averaging with O(C) state ------------------------------------------------

IMAGE_SCORES = (*MEAN_NAMES.values(), "acc", "fwiou")


def per_image_values(counts, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION):
    """Per-image scores of counts ``(N, C)`` as the terms of :func:`per_image_sums` (numpy).

    Returns ``class_values`` (N, 5, C) float64 (0 where a score does not count),
    ``class_counted`` (N, 5, C) bool, ``image_values`` (N, 7) float64 (0 where undefined)
    and ``image_counted`` (N, 7) bool, in the orders of ``CLASS_SCORES`` and ``IMAGE_SCORES``.
    A weighted sum over images of these (e.g. a bootstrap resample) is a valid ``sums``.
    """
    (tp, fp, fn), _ = _as_counts(counts)
    tp, fp, fn = _float_counts(tp, fp, fn)
    values, counted = class_scores(tp, fp, fn, beta, zero_division, convention)
    fill = zero_division_value(zero_division)
    stacked = np.stack([values[name] for name in CLASS_SCORES], axis=-2)
    counted_stack = np.stack([counted[name] for name in CLASS_SCORES], axis=-2)
    image_means = counted_mean(stacked, counted_stack, float("nan"))
    acc, fwiou = _accuracy_and_fwiou(tp, fn, values["iou"], fill)
    image_values = np.concatenate([image_means, acc[..., None], fwiou[..., None]], axis=-1)
    image_counted = ~np.isnan(image_values)
    return {
        "class_values": np.where(counted_stack, stacked, 0.0),
        "class_counted": counted_stack,
        "image_values": np.nan_to_num(image_values, nan=0.0),
        "image_counted": image_counted,
    }


def per_image_sums(counts, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION) -> dict:
    """Sufficient O(C) statistics of per-image scores from per-image counts ``(N, C)``.

    Returns ``class_sums`` (5, C) float64 and ``class_counts`` (5, C) int64 (sums and numbers
    of the per-image class scores that count, in the order of ``CLASS_SCORES``),
    ``image_sums`` (7,) float64 and ``image_counts`` (7,) int64 (the same for each image's
    class means, aAcc and fwIoU, in the order of ``IMAGE_SCORES``) and ``num_images`` (), int64.
    Tensors (on the counts' device) for tensor counts, numpy arrays otherwise.
    """
    terms = per_image_values(counts, beta, zero_division, convention)
    sums = {
        "class_sums": terms["class_values"].sum(0),
        "class_counts": terms["class_counted"].sum(0).astype(np.int64),
        "image_sums": terms["image_values"].sum(0),
        "image_counts": terms["image_counted"].sum(0).astype(np.int64),
        "num_images": np.asarray(terms["class_values"].shape[0], dtype=np.int64),
    }
    torch = _torch_of(counts)
    if torch is None:
        return sums
    device = _device(counts)
    return {name: _to_torch(value, torch, device) for name, value in sums.items()}


def _ratio_or_fill(total: np.ndarray, count: np.ndarray, fill: float) -> np.ndarray:
    return np.where(count > 0, total / np.maximum(count, 1), fill)


def per_image_scores(
    sums: dict,
    confusion,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    convention: str = DEFAULT_CONVENTION,
    per_image_average: str | None = None,
    misses=None,
) -> SemanticScores:
    """Per-image averaged scores from :func:`per_image_sums` (summed over batches / processes).

    ``sums`` must have been made with the same ``beta``, ``zero_division`` and ``convention``;
    ``per_image_average`` (None: the convention's) is ``"class"``, ``"image"`` or ``"pooled"``.
    Sums with leading dims (e.g. one row per bootstrap resample) give scores with those dims.
    ``confusion`` and ``misses`` are carried into the result as given.
    """
    arrays = {name: _numpy(value) for name, value in sums.items()}
    check_score_args(beta, zero_division, class_names, arrays["class_sums"].shape[-1], convention)
    average = per_image_average or get_convention(convention).per_image_average
    check_choice("per_image_average", average, PER_IMAGE_AVERAGES)
    fill = zero_division_value(zero_division)
    class_sums, class_counts = arrays["class_sums"], arrays["class_counts"]
    image_sums, image_counts = arrays["image_sums"], arrays["image_counts"]
    per_class = _ratio_or_fill(class_sums, class_counts, fill)
    if average == "class":
        means = counted_mean(per_class, class_counts > 0, fill)
    elif average == "pooled":
        means = _ratio_or_fill(class_sums.sum(-1), class_counts.sum(-1), fill)
    else:
        means = _ratio_or_fill(image_sums[..., :5], image_counts[..., :5], fill)
    acc, fwiou = np.moveaxis(_ratio_or_fill(image_sums[..., 5:], image_counts[..., 5:], fill), -1, 0)
    mean_values = dict(zip(MEAN_NAMES.values(), np.moveaxis(means, -1, 0)))
    fields = {**dict(zip(CLASS_SCORES, np.moveaxis(per_class, -2, 0))), **mean_values, "acc": acc,
              "macc": mean_values["mrecall"], "fwiou": fwiou}
    return _result(
        fields, (sums["class_sums"],), confusion_matrix=confusion, beta=beta,
        class_names=list(class_names) if class_names is not None else None, convention=convention,
        per_image=True, per_image_average=average, misses=misses,
    )


# ---- generalized Dice score ----------------------------------------------------------------------

GENERALIZED_DICE_WEIGHTS = ("square", "simple", "linear")


def generalized_dice_score(counts, weight: str = "square", zero_division="nan"):
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
        float64 ``(...)``: one score per count vector (per image for per-image counts); a
        tensor on the counts' device for tensor counts, a numpy array otherwise.

    Example:
        >>> counts = (torch.tensor([3, 1]), torch.tensor([1, 0]), torch.tensor([0, 1]))  # tp, fp, fn
        >>> generalized_dice_score(counts)
        tensor(0.7636, dtype=torch.float64)
    """
    check_choice("weight", weight, GENERALIZED_DICE_WEIGHTS)
    check_zero_division(zero_division)
    (tp, fp, fn), _ = _as_counts(counts)
    tp, fp, fn = _float_counts(tp, fp, fn)
    support = tp + fn
    if weight == "linear":
        weights = np.ones_like(support)
    else:
        with np.errstate(divide="ignore"):
            weights = np.where(support > 0, 1.0 / np.maximum(support, 1) ** (2 if weight == "square" else 1), 0.0)
    largest = weights.max(-1, keepdims=True)
    weights = np.where(support > 0, weights, np.where(largest > 0, largest, 1.0))
    numerator = (2 * weights * tp).sum(-1)
    denominator = (weights * (2 * tp + fp + fn)).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(denominator > 0, numerator / np.maximum(denominator, 1e-300), zero_division_value(zero_division))
    torch = _torch_of(counts)
    return score if torch is None else _to_torch(np.asarray(score), torch, _device(counts))
