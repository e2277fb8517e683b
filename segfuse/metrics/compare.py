"""Comparing two models on the same images: score deltas with paired bootstrap intervals.

Per class and for the means, delta = score(B) - score(A), where each score is the
dataset-level one (computed from the confusion counts summed over the images, as
:func:`segfuse.metrics.semantic_scores` and the tables of mmseg do). The interval comes
from a paired bootstrap over images: resample the N images with replacement, sum each
model's counts over the resample, score, subtract; repeat. Only per-image TP, FP and FN
per class enter (:func:`image_counts`), so the bootstrap costs one counting pass plus a
(resamples x N) by (N x 3C) product, with no Python loop over resamples.

Convention:
    The interval is a percentile bootstrap interval for the difference between the
    dataset-level scores of B and A on the population of images the evaluation set was
    drawn from. Images are the resampling unit (pixels of one image are not independent)
    and the resampling is paired: both models are scored on the same resampled images, so
    the difficulty of an image cancels. Each resample recomputes the statistic exactly as
    on the full set: a class's score is undefined where TP + FP + FN = 0 in that resample
    (``zero_division="nan"``, the default), and a mean is the mean over the classes
    defined for that model in that resample. A resample in which a delta is undefined
    counts against a verdict in both directions: it is placed at -inf for the lower
    bound and at +inf for the upper bound, so a class missing from more than
    (1 - confidence) / 2 of the resamples gets an unbounded interval (reported with the
    fraction of resamples where it was defined). An observed delta that is undefined
    (the class is absent from the truth and from at least one model's prediction) gets
    the verdict "absent" and a NaN interval. Otherwise the verdict is "better" when the
    lower bound is > 0, "worse" when the upper bound is < 0, and "within noise" when the
    interval holds 0. Bounds are linear interpolations between order statistics (numpy's
    default percentile). The resamples are drawn on the CPU from
    ``torch.Generator().manual_seed(seed)`` (whatever the device of the counts) and are
    the same for every score, so the verdicts are reproducible and consistent.
    Counts are summed in float64, exact while every sum stays below 2**53 pixels.

    With ``per_image=True`` (or a convention that scores each image, ``"monai"``) the
    statistic is the per-image averaged score instead (:func:`segfuse.metrics.scores.per_image_scores`,
    ``per_image_average`` as there): a resample averages the per-image scores of the
    images it holds, each as often as it was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from segfuse._validate import check_in_unit_interval, check_tensor
from segfuse.metrics.confusion import OverlapCounts, overlap_counts
from segfuse.metrics.scores import (
    CLASS_SCORES,
    DEFAULT_CONVENTION,
    IMAGE_SCORES,
    MEAN_NAMES,
    check_score_args,
    get_convention,
    per_image_scores,
    per_image_values,
    resolve_per_image,
    semantic_scores,
)

MEAN_SCORES = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")
VERDICTS = ("better", "worse", "within noise", "absent")
CHUNK_ELEMENTS = 1 << 21  # resample x image entries drawn per chunk (16 MiB of int64 indices)


def image_counts(confusions: torch.Tensor) -> torch.Tensor:
    """Per-image TP, FP, FN per class: int64 ``(N, 3, C)`` from confusion matrices ``(N, C, C)``."""
    check_tensor("confusions", confusions)
    if confusions.dim() != 3 or confusions.shape[-1] != confusions.shape[-2]:
        raise ValueError(f"confusions must have shape (N, C, C), got {tuple(confusions.shape)}")
    if confusions.dtype.is_floating_point or confusions.dtype == torch.bool:
        raise TypeError(f"confusions must hold integer counts, got {confusions.dtype}")
    return torch.stack(overlap_counts(confusions.to(torch.int64)), dim=1)


def scores_from_counts(
    counts: torch.Tensor, beta: float = 1.0, zero_division="nan", convention: str = DEFAULT_CONVENTION
) -> dict[str, torch.Tensor]:
    """Per-class scores ``(..., C)`` and means ``(...)`` from TP, FP, FN counts ``(..., 3, C)``.

    Keys: ``CLASS_SCORES`` (iou, dice, fscore, precision, recall) and ``MEAN_SCORES``
    (miou, mdice, mfscore, mprecision, mrecall, acc, macc, fwiou): the fields of
    :func:`segfuse.metrics.semantic_scores` of the same counts, under ``convention``.
    """
    tp, fp, fn = counts.unbind(-2)
    scores = semantic_scores(OverlapCounts(tp, fp, fn), beta, zero_division, convention=convention)
    return {name: getattr(scores, name) for name in (*CLASS_SCORES, *MEAN_SCORES)}


def _chunks(num_images: int, resamples: int, seed: int) -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rows = max(1, CHUNK_ELEMENTS // num_images)
    for start in range(0, resamples, rows):
        yield torch.randint(num_images, (min(rows, resamples - start), num_images), generator=generator)


def bootstrap_indices(num_images: int, resamples: int, seed: int = 0) -> torch.Tensor:
    """The image indices of every resample, int64 ``(resamples, num_images)``, as :func:`compare_counts` draws them."""
    return torch.cat(list(_chunks(num_images, resamples, seed)))


def _multiplicities(indices: torch.Tensor, num_images: int, device=None) -> torch.Tensor:
    """How often each image occurs in each resample: float64 ``(r, N)`` on ``device``."""
    indices = indices.to(device)
    weights = torch.zeros(indices.shape[0], num_images, dtype=torch.float64, device=device)
    return weights.scatter_add_(1, indices, torch.ones_like(indices, dtype=torch.float64))


def _quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolated quantile over dim 0 that keeps +-inf (torch.quantile would give NaN)."""
    ordered = values.sort(dim=0).values
    position = q * (values.shape[0] - 1)
    below, above = ordered[math.floor(position)], ordered[math.ceil(position)]
    fraction = position - math.floor(position)
    interpolated = below + (above - below) * fraction
    return torch.where(torch.isinf(below), below, torch.where(torch.isinf(above) & (fraction > 0), above, interpolated))


def _percentile_interval(replicates: torch.Tensor, confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    tail = (1.0 - confidence) / 2
    undefined = torch.isnan(replicates)
    low = _quantile(replicates.masked_fill(undefined, -math.inf), tail)
    high = _quantile(replicates.masked_fill(undefined, math.inf), 1.0 - tail)
    return low, high


def _verdicts(delta: torch.Tensor, low: torch.Tensor, high: torch.Tensor):
    def one(d: float, lo: float, hi: float) -> str:
        if d != d:
            return "absent"
        return "better" if lo > 0 else "worse" if hi < 0 else "within noise"

    if delta.dim() == 0:
        return one(float(delta), float(low), float(high))
    return [one(*values) for values in zip(delta.tolist(), low.tolist(), high.tolist())]


@dataclass
class ScoreDelta:
    """One score of both models: values, delta = B - A, its interval and verdict(s).

    Tensors are float64, ``(C,)`` for a per-class score and ``()`` for a mean; ``verdict``
    is a list of C strings or one string. ``defined`` is the fraction of resamples in which
    the delta was defined (1.0 unless a class is missing from some resamples).
    """

    a: torch.Tensor
    b: torch.Tensor
    delta: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    defined: torch.Tensor
    verdict: list[str] | str

    def to_dict(self) -> dict:
        """Plain Python numbers; NaN and +-inf stay floats (JSON writers map them to null)."""
        keys = ("a", "b", "delta", "low", "high", "defined")
        return {**{key: getattr(self, key).tolist() for key in keys}, "verdict": self.verdict}


@dataclass
class ModelComparison:
    """Result of :func:`compare_models`: per-class and mean :class:`ScoreDelta` of B against A.

    ``per_class`` maps each of ``CLASS_SCORES`` and ``means`` each of ``MEAN_SCORES`` to a
    :class:`ScoreDelta`. ``image_miou_a`` / ``image_miou_b`` are per-image mIoUs ``(N,)``
    (NaN for an image with no valid pixel). ``replicates`` (with ``keep_replicates=True``)
    maps every score name to its bootstrap deltas ``(resamples, ...)``.
    """

    per_class: dict[str, ScoreDelta]
    means: dict[str, ScoreDelta]
    image_miou_a: torch.Tensor
    image_miou_b: torch.Tensor
    num_images: int
    resamples: int
    confidence: float
    seed: int
    beta: float = 1.0
    zero_division: object = "nan"
    convention: str = DEFAULT_CONVENTION
    class_names: list[str] | None = None
    replicates: dict[str, torch.Tensor] | None = field(default=None, repr=False)
    per_image: bool = False
    per_image_average: str | None = None

    def names(self) -> list[str]:
        count = self.per_class["iou"].a.shape[-1]
        return list(self.class_names) if self.class_names else [str(c) for c in range(count)]

    def statistic(self) -> str:
        """What each score is: ``"dataset-level"`` or ``"per-image averaged (<average>)"``."""
        return f"per-image averaged ({self.per_image_average})" if self.per_image else "dataset-level"

    def to_dict(self) -> dict:
        """Settings, means and per-class deltas as plain Python values."""
        return {
            "num_images": self.num_images,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "beta": self.beta,
            "zero_division": self.zero_division,
            "convention": self.convention,
            "per_image": self.per_image,
            "per_image_average": self.per_image_average,
            "interval": f"paired percentile bootstrap over images of the {self.statistic()} score difference (B - A)",
            "class_names": self.names(),
            "means": {name: delta.to_dict() for name, delta in self.means.items()},
            "per_class": {name: delta.to_dict() for name, delta in self.per_class.items()},
        }


def _check_counts(counts_a: torch.Tensor, counts_b: torch.Tensor) -> None:
    for name, counts in (("counts_a", counts_a), ("counts_b", counts_b)):
        check_tensor(name, counts)
        if counts.dim() != 3 or counts.shape[1] != 3:
            raise ValueError(f"{name} must have shape (N, 3, C) (TP, FP, FN per image), got {tuple(counts.shape)}")
    if counts_a.shape != counts_b.shape or counts_a.device != counts_b.device:
        raise ValueError(
            f"counts_a and counts_b must have the same shape and device, got {tuple(counts_a.shape)} on "
            f"{counts_a.device} and {tuple(counts_b.shape)} on {counts_b.device}"
        )
    if counts_a.shape[0] < 2:
        raise ValueError(f"a bootstrap over images needs at least 2 images, got {counts_a.shape[0]}")
    support_a, support_b = counts_a[:, 0] + counts_a[:, 2], counts_b[:, 0] + counts_b[:, 2]
    mismatch = (support_a != support_b).nonzero()
    if len(mismatch):
        image, label = mismatch[0].tolist()
        raise ValueError(
            f"counts_a and counts_b must come from the same ground truth: image {image} has "
            f"{int(support_a[image, label])} pixels of class {label} in A and {int(support_b[image, label])} in B"
        )


def _check_bootstrap_args(resamples, confidence, seed) -> None:
    for name, value in (("resamples", resamples), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    check_in_unit_interval("confidence", confidence, closed=False)


class _Statistic:
    """The score statistic of one model: per-image rows ``(N, K)`` whose (weighted) sum over images scores it."""

    def __init__(self, num_classes, beta, zero_division, convention, per_image, per_image_average) -> None:
        self.num_classes, self.beta, self.zero_division, self.convention = num_classes, beta, zero_division, convention
        self.per_image, self.per_image_average = per_image, per_image_average

    def rows(self, counts: torch.Tensor) -> torch.Tensor:
        """Float64 ``(N, K)``: the flattened counts, or the per-image score terms (per_image)."""
        images = counts.shape[0]
        if not self.per_image:
            return counts.reshape(images, -1).to(torch.float64)
        terms = per_image_values(tuple(counts.unbind(1)), self.beta, self.zero_division, self.convention)
        parts = [terms[name].reshape(images, -1).astype("float64") for name in
                 ("class_values", "class_counted", "image_values", "image_counted")]
        return torch.cat([torch.from_numpy(part) for part in parts], dim=1).to(counts.device)

    def scores(self, sums: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scores ``(..., C)`` and means ``(...)`` of summed rows ``(..., K)``."""
        size, lead = self.num_classes, sums.shape[:-1]
        if not self.per_image:
            return scores_from_counts(sums.reshape(*lead, 3, size), self.beta, self.zero_division, self.convention)
        width, images = len(CLASS_SCORES) * size, len(IMAGE_SCORES)
        parts = sums.split([width, width, images, images], dim=-1)
        state = {
            "class_sums": parts[0].reshape(*lead, len(CLASS_SCORES), size),
            "class_counts": parts[1].reshape(*lead, len(CLASS_SCORES), size),
            "image_sums": parts[2],
            "image_counts": parts[3],
        }
        scores = per_image_scores(state, None, self.beta, self.zero_division, None, self.convention,
                                  self.per_image_average)
        return {name: getattr(scores, name) for name in (*CLASS_SCORES, *MEAN_SCORES)}


def _replicate_deltas(rows_a, rows_b, statistic: _Statistic, resamples, seed) -> dict[str, torch.Tensor]:
    """Bootstrap deltas of every score, ``(resamples, ...)``, one matrix product per chunk."""
    num_images = rows_a.shape[0]
    parts: dict[str, list[torch.Tensor]] = {}
    for indices in _chunks(num_images, resamples, seed):
        weights = _multiplicities(indices, num_images, rows_a.device)
        scores_a, scores_b = statistic.scores(weights @ rows_a), statistic.scores(weights @ rows_b)
        for name in scores_a:
            parts.setdefault(name, []).append(scores_b[name] - scores_a[name])
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def compare_counts(
    counts_a: torch.Tensor,
    counts_b: torch.Tensor,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    keep_replicates: bool = False,
    convention: str = DEFAULT_CONVENTION,
    per_image: bool | None = None,
    per_image_average: str | None = None,
) -> ModelComparison:
    """:func:`compare_models` from per-image counts ``(N, 3, C)`` of :func:`image_counts`.

    Misses (pixels with no prediction, ``segfuse eval``) belong in FN.
    """
    _check_counts(counts_a, counts_b)
    _check_bootstrap_args(resamples, confidence, seed)
    check_score_args(beta, zero_division, class_names, counts_a.shape[-1], convention)
    per_image = resolve_per_image(convention, per_image, per_image_average)
    average = (per_image_average or get_convention(convention).per_image_average) if per_image else None
    statistic = _Statistic(counts_a.shape[-1], beta, zero_division, convention, per_image, average)
    rows_a, rows_b = statistic.rows(counts_a), statistic.rows(counts_b)
    observed_a, observed_b = statistic.scores(rows_a.sum(0)), statistic.scores(rows_b.sum(0))
    replicates = _replicate_deltas(rows_a, rows_b, statistic, resamples, seed)
    deltas = {}
    for name in (*CLASS_SCORES, *MEAN_SCORES):
        delta = observed_b[name] - observed_a[name]
        low, high = _percentile_interval(replicates[name], confidence)
        undefined = torch.isnan(delta)
        low, high = low.masked_fill(undefined, math.nan), high.masked_fill(undefined, math.nan)
        defined = (~torch.isnan(replicates[name])).to(torch.float64).mean(0)
        deltas[name] = ScoreDelta(observed_a[name], observed_b[name], delta, low, high, defined, _verdicts(delta, low, high))
    image_a = scores_from_counts(counts_a, beta, convention=convention)["miou"]
    image_b = scores_from_counts(counts_b, beta, convention=convention)["miou"]
    return ModelComparison(
        per_class={name: deltas[name] for name in CLASS_SCORES},
        means={name: deltas[name] for name in MEAN_SCORES},
        image_miou_a=image_a,
        image_miou_b=image_b,
        num_images=counts_a.shape[0],
        resamples=resamples,
        confidence=confidence,
        seed=seed,
        beta=beta,
        zero_division=zero_division,
        convention=convention,
        class_names=list(class_names) if class_names is not None else None,
        replicates=replicates if keep_replicates else None,
        per_image=per_image,
        per_image_average=average,
    )


def compare_models(
    confusion_a: torch.Tensor,
    confusion_b: torch.Tensor,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    beta: float = 1.0,
    zero_division="nan",
    class_names: Sequence[str] | None = None,
    keep_replicates: bool = False,
    convention: str = DEFAULT_CONVENTION,
    per_image: bool | None = None,
    per_image_average: str | None = None,
) -> ModelComparison:
    """Is model B better than model A? Per-class and mean deltas with paired bootstrap intervals.

    See the module Convention for what the interval is of and how undefined scores count.

    Args:
        confusion_a, confusion_b: per-image confusion matrices ``(N, C, C)`` (rows = truth)
            of the two models on the same N images, e.g. from
            :func:`segfuse.metrics.per_image_confusion_matrix`; N >= 2.
        resamples: bootstrap resamples (default 1000).
        confidence: interval level in (0, 1) (default 0.95).
        seed: seed of the resampling generator (default 0).
        beta, zero_division, class_names, convention: as in
            :func:`segfuse.metrics.semantic_scores` (default convention ``"segfuse"``).
        per_image, per_image_average: compare per-image averaged scores (as
            :class:`segfuse.metrics.SemanticMetrics`; None: the convention's choice).
        keep_replicates: keep every bootstrap delta in ``result.replicates``.

    Returns:
        :class:`ModelComparison` with per-class (iou, dice, fscore, precision, recall) and
        mean (miou, mdice, mfscore, mprecision, mrecall, acc, macc, fwiou) deltas.

    Example:
        >>> gt = torch.randint(0, 3, (8, 16, 16))
        >>> noisy = torch.where(torch.rand(8, 16, 16) < 0.5, gt, torch.randint(0, 3, (8, 16, 16)))
        >>> from segfuse.metrics import per_image_confusion_matrix
        >>> result = compare_models(per_image_confusion_matrix(noisy, gt, 3), per_image_confusion_matrix(gt, gt, 3))
        >>> result.means["miou"].verdict
        'better'
    """
    return compare_counts(
        image_counts(confusion_a), image_counts(confusion_b), resamples, confidence, seed,
        beta, zero_division, class_names, keep_replicates, convention, per_image, per_image_average,
    )
