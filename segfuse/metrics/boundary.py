"""Boundary IoU for semantic segmentation (Cheng et al., CVPR 2021), per class and image, any D.

The boundary region of a mask is the set of its pixels within distance d of its contour;
Boundary IoU is the IoU of the two masks' boundary regions. From a class map this is
computed for every class at once: a pixel of class c lies in c's band when a pixel of
another label (or the outside of the image) lies within the window around it.

Three layers: :func:`boundary_iou_statistics` (per-image, per-class int64 counts: band
intersection, ground-truth band, predicted band), :func:`boundary_iou_scores` (per-image
IoU), :class:`BoundaryIoU` (streaming: dataset-level IoU from the summed counts, and the
mean of the per-image values).

Convention:
    The boundary-iou-api's ``mask_to_boundary``: d = ``int(round(dilation_ratio * diagonal))``
    pixels (at least 1), the band is ``mask - erode(pad(mask, 1 pixel of 0), 3x3, d times)``,
    i.e. mask pixels with a non-mask pixel, or the image border, within chessboard distance
    d. ``boundary_width`` gives d directly instead. With ``spacing``, d is in the spacing's
    unit (the diagonal is the physical one) and axis i's window half-width is
    ``max(1, round(d / spacing[i]))`` (Python's round); without, it is d on every axis.
    IoU = |B_gt & B_pred| / |B_gt | B_pred| per class; a class absent from both maps is
    NaN (0 / 0, left out of means), one absent from one map scores 0. Ignored pixels
    (``ignore_index`` in the target) belong to no class in both maps: the bands stop at
    them and they are never counted. All classes are scored unless
    ``include_background=False``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from segfuse._validate import check_num_classes, check_positive
from segfuse.metrics._distributed import sum_across_processes
from segfuse.metrics._surface_inputs import class_maps, evaluated_classes, spacing_per_image


@dataclass(frozen=True)
class BoundaryStatistics:
    """Per-image, per-class int64 counts (N, C): ``intersection``, ``gt_band``, ``pred_band``; ``evaluated`` (C,)."""

    intersection: torch.Tensor
    gt_band: torch.Tensor
    pred_band: torch.Tensor
    evaluated: torch.Tensor

    def __len__(self) -> int:
        return self.intersection.shape[0]

    @property
    def union(self) -> torch.Tensor:
        return self.gt_band + self.pred_band - self.intersection

    @staticmethod
    def concatenate(parts: Sequence["BoundaryStatistics"]) -> "BoundaryStatistics":
        """Several batches' (or workers') counts stacked along the image dim."""
        if not parts:
            raise ValueError("parts must hold at least one BoundaryStatistics, got none")
        return BoundaryStatistics(
            torch.cat([p.intersection for p in parts]),
            torch.cat([p.gt_band for p in parts]),
            torch.cat([p.pred_band for p in parts]),
            parts[0].evaluated,
        )


def band_radii(shape: Sequence[int], spacing, dilation_ratio: float, boundary_width: float | None) -> tuple[int, ...]:
    """Window half-width per axis (see the module's Convention)."""
    if spacing is None:
        width = boundary_width if boundary_width is not None else dilation_ratio * math.sqrt(sum(n * n for n in shape))
        return (max(1, int(round(width))),) * len(shape)
    if boundary_width is None:
        boundary_width = dilation_ratio * math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    return tuple(max(1, int(round(boundary_width / s))) for s in spacing)


def _window_extremes(labels: torch.Tensor, radii: Sequence[int], fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and min of ``labels`` (one image ``S``) over the box of half-widths ``radii`` (outside = ``fill``)."""
    high = labels.float()
    low = -high
    for axis, radius in enumerate(radii):
        high = _axis_max(high, axis, radius, float(fill))
        low = _axis_max(low, axis, radius, -float(fill))
    return high, -low


def _axis_max(values: torch.Tensor, axis: int, radius: int, fill: float) -> torch.Tensor:
    moved = values.movedim(axis, -1)
    shape = moved.shape
    lines = F.pad(moved.reshape(-1, 1, shape[-1]), (radius, radius), value=fill)
    pooled = F.max_pool1d(lines, kernel_size=2 * radius + 1, stride=1)
    return pooled.reshape(shape).movedim(-1, axis)


def boundary_bands(labels: torch.Tensor, radii: Sequence[int], no_class: int) -> torch.Tensor:
    """Bool map of the pixels in their own class's band (one image ``S``; ``no_class`` = no class)."""
    high, low = _window_extremes(labels, radii, no_class)
    values = labels.float()
    return ((high != values) | (low != values)) & (labels != no_class)


def boundary_iou_statistics(
    pred,
    target,
    num_classes: int,
    dilation_ratio: float = 0.02,
    boundary_width: float | None = None,
    spacing=None,
    include_background: bool = True,
    ignore_index: int | None = None,
    validate_args: bool = True,
) -> BoundaryStatistics:
    """Per-image, per-class band counts of a batch of class maps.

    Args:
        pred: class map ``(N, *S)`` like ``target`` or scores ``(N, C, *S)``; torch or numpy.
        target: integer class map ``(N, *S)``, any D >= 1.
        num_classes: C.
        dilation_ratio: d as a fraction of the image diagonal (the API's 0.02).
        boundary_width: d itself (pixels, or the spacing's unit), instead of the ratio.
        spacing: one value per spatial axis (or a number, or one row per image); None = pixels.
        include_background: score class 0 too (default True, as IoU does).
        ignore_index: target label whose pixels belong to no class in both maps.
        validate_args: check label ranges (a device sync).

    Example:
        >>> target = torch.zeros(1, 8, 8, dtype=torch.uint8); target[0, 2:6, 2:6] = 1
        >>> pred = torch.zeros_like(target); pred[0, 2:6, 3:7] = 1
        >>> boundary_iou_scores(boundary_iou_statistics(pred, target, 2, boundary_width=1))
        tensor([[0.7308, 0.3333]], dtype=torch.float64)
    """
    check_positive("dilation_ratio", dilation_ratio)
    if boundary_width is not None:
        check_positive("boundary_width", boundary_width)
    pred, target = class_maps(pred, target, num_classes, ignore_index, validate_args, spatial_dims=range(1, 8))
    images, shape = target.shape[0], tuple(target.shape[1:])
    spacings = spacing_per_image(spacing, images, len(shape)) if spacing is not None else [None] * images
    counts = torch.zeros(3, images, num_classes + 1, dtype=torch.int64)
    for index in range(images):
        radii = band_radii(shape, spacings[index], dilation_ratio, boundary_width)
        gt, predicted = target[index], pred[index]
        gt_band = boundary_bands(gt, radii, num_classes)
        pred_band = boundary_bands(predicted, radii, num_classes)
        both = gt_band & pred_band & (gt == predicted)
        for row, (labels, band) in enumerate(((gt, both), (gt, gt_band), (predicted, pred_band))):
            counts[row, index] = torch.bincount(labels[band].long(), minlength=num_classes + 1).cpu()
    evaluated = torch.zeros(num_classes, dtype=torch.bool)
    evaluated[torch.from_numpy(evaluated_classes(num_classes, include_background))] = True
    return BoundaryStatistics(counts[0, :, :-1], counts[1, :, :-1], counts[2, :, :-1], evaluated)


def boundary_iou_scores(statistics: BoundaryStatistics) -> torch.Tensor:
    """Per-image Boundary IoU (N, C) float64: NaN where both bands are empty or the class is not scored."""
    union = statistics.union
    iou = statistics.intersection.double() / union.double()
    iou[union == 0] = math.nan
    iou[:, ~statistics.evaluated] = math.nan
    return iou


def boundary_iou(pred, target, num_classes: int, **kwargs) -> torch.Tensor:
    """Per-image, per-class Boundary IoU (N, C) of one batch; arguments of :func:`boundary_iou_statistics`."""
    return boundary_iou_scores(boundary_iou_statistics(pred, target, num_classes, **kwargs))


@dataclass(frozen=True)
class BoundaryIoUSummary:
    """``iou`` (C,) from the summed counts and ``miou`` their mean; ``iou_per_image`` (C,) the mean of the
    per-image values and ``miou_per_image``; ``images`` (C,) images with a defined per-image value."""

    iou: torch.Tensor
    miou: torch.Tensor
    iou_per_image: torch.Tensor
    miou_per_image: torch.Tensor
    images: torch.Tensor

    def to_dict(self) -> dict:
        return {
            "iou": self.iou.tolist(),
            "miou": float(self.miou),
            "iou_per_image": self.iou_per_image.tolist(),
            "miou_per_image": float(self.miou_per_image),
            "images": self.images.tolist(),
        }


def _nanmean(values: torch.Tensor) -> torch.Tensor:
    defined = ~torch.isnan(values)
    return values[defined].mean() if bool(defined.any()) else torch.tensor(math.nan, dtype=torch.float64)


class BoundaryIoU:
    """Streaming Boundary IoU: ``update(pred, target)``, ``compute()``, ``reset()``.

    Arguments as :func:`boundary_iou_statistics`. State: summed counts (3, C) int64 and the
    per-image IoU sums and counts (C,); compute() sums them across processes.

    Example:
        >>> metric = BoundaryIoU(num_classes=2, boundary_width=1)
        >>> target = torch.zeros(1, 8, 8, dtype=torch.uint8); target[0, 2:6, 2:6] = 1
        >>> _ = metric.update(target, target)
        >>> metric.compute().miou
        tensor(1., dtype=torch.float64)
    """

    def __init__(
        self,
        num_classes: int,
        dilation_ratio: float = 0.02,
        boundary_width: float | None = None,
        spacing=None,
        include_background: bool = True,
        ignore_index: int | None = None,
        validate_args: bool = True,
    ) -> None:
        check_num_classes(num_classes)
        check_positive("dilation_ratio", dilation_ratio)
        if boundary_width is not None:
            check_positive("boundary_width", boundary_width)
        self.num_classes, self.dilation_ratio, self.boundary_width = num_classes, dilation_ratio, boundary_width
        self.spacing, self.include_background, self.ignore_index = spacing, include_background, ignore_index
        self.validate_args = validate_args
        self.reset()

    def reset(self) -> None:
        """Zero the state."""
        self.counts = torch.zeros(3, self.num_classes, dtype=torch.int64)
        self.image_sums = torch.zeros(self.num_classes, dtype=torch.float64)
        self.image_counts = torch.zeros(self.num_classes, dtype=torch.int64)
        self.evaluated = torch.zeros(self.num_classes, dtype=torch.bool)
        self.evaluated[torch.from_numpy(evaluated_classes(self.num_classes, self.include_background))] = True

    def update(self, pred, target) -> torch.Tensor:
        """Add a batch; returns its per-image Boundary IoU (N, C)."""
        statistics = boundary_iou_statistics(
            pred, target, self.num_classes, self.dilation_ratio, self.boundary_width, self.spacing,
            self.include_background, self.ignore_index, self.validate_args,
        )
        return self.update_statistics(statistics)

    def update_statistics(self, statistics: BoundaryStatistics) -> torch.Tensor:
        """Add precomputed counts (e.g. from worker processes); returns their per-image IoU."""
        if statistics.intersection.shape[1] != self.num_classes:
            raise ValueError(f"statistics must cover {self.num_classes} classes, got {statistics.intersection.shape[1]}")
        self.counts += torch.stack([statistics.intersection.sum(0), statistics.gt_band.sum(0), statistics.pred_band.sum(0)])
        scores = boundary_iou_scores(statistics)
        defined = ~torch.isnan(scores)
        self.image_sums += torch.where(defined, scores, 0.0).sum(0)
        self.image_counts += defined.sum(0)
        return scores

    def compute(self) -> BoundaryIoUSummary:
        """Dataset-level and per-image-mean Boundary IoU of everything added (summed over processes)."""
        counts = sum_across_processes(self.counts)
        image_sums, image_counts = sum_across_processes(self.image_sums), sum_across_processes(self.image_counts)
        summed = BoundaryStatistics(counts[0:1], counts[1:2], counts[2:3], self.evaluated)
        iou = boundary_iou_scores(summed)[0]
        per_image = torch.where(image_counts > 0, image_sums / image_counts.clamp(min=1), math.nan)
        per_image[~self.evaluated] = math.nan
        return BoundaryIoUSummary(iou, _nanmean(iou), per_image, _nanmean(per_image), image_counts)
