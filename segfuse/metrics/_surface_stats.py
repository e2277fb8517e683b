"""Per-image, per-class sufficient statistics of the surface distances (the ``_update`` layer).

For each class and each direction (0: from the ground-truth surface to the predicted one,
1: from the predicted surface to the ground truth) the statistics are the surface's size
(total surfel area / contour length, or its number of edge voxels), the weighted sum of the
distances, the Hausdorff value, one value per requested percentile and the weighted size
within each tolerance. Every surface metric of one image is a ratio or a maximum of these.

Convention:
    ``rule="deepmind"`` reproduces ``surface_distance.compute_robust_hausdorff``: distances
    sorted by (distance, weight), the first whose cumulative weight fraction reaches p / 100
    (so the Hausdorff value is its p = 100 rule); ``rule="monai"`` is ``torch.quantile``'s
    linear interpolation over the unweighted distances, and the Hausdorff value their max.
    A direction whose source surface is empty has size 0, sum 0, NaN distances; one whose
    target surface is empty has infinite distances (the references' raw lists).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segfuse.metrics._edt import nearest_by_class, point_distances
from segfuse.metrics._surface_points import SurfacePoints


@dataclass(frozen=True)
class DistanceConfig:
    """How distances and their summaries are computed (fixed per metric object)."""

    metric: str
    rule: str  # "deepmind" or "monai"
    percentiles: tuple[float, ...]
    tolerances: tuple[float, ...]
    backend: str


def class_segments(points: SurfacePoints, num_classes: int) -> np.ndarray:
    """Start offsets ``(C + 1,)`` of each class's points in the label-sorted ``points``."""
    counts = torch.bincount(points.labels, minlength=num_classes)[:num_classes].cpu().numpy()
    return np.concatenate([[0], np.cumsum(counts)])


def empty_statistics(num_classes: int, percentiles: int, tolerances: int) -> dict[str, np.ndarray]:
    """Statistics arrays of one image with every class absent: sizes 0, distances NaN."""
    return {
        "surface": np.zeros((num_classes, 2)),
        "distance_sum": np.zeros((num_classes, 2)),
        "hausdorff": np.full((num_classes, 2), np.nan),
        "percentile": np.full((num_classes, percentiles, 2), np.nan),
        "within": np.zeros((num_classes, tolerances, 2)),
    }


def direction_statistics(distances: np.ndarray, weights: np.ndarray | None, config: DistanceConfig) -> tuple:
    """(size, distance_sum, hausdorff, percentile values (P,), within sizes (T,)) of one direction."""
    if config.rule == "deepmind":
        return _deepmind_direction(distances, weights, config)
    return _monai_direction(distances, config)


def _deepmind_direction(distances, weights, config):
    order = np.lexsort((weights, distances))
    distances, weights = distances[order], weights[order]
    size = np.sum(weights)
    fraction = np.cumsum(weights) / size
    last = len(distances) - 1
    at = np.searchsorted(fraction, [1.0] + [p / 100.0 for p in config.percentiles])
    values = distances[np.minimum(at, last)]
    within = [np.sum(weights[distances <= t]) for t in config.tolerances]
    return size, np.sum(distances * weights), values[0], values[1:], np.asarray(within)


def _monai_direction(distances, config):
    ordered = np.sort(distances)
    count = len(ordered)
    values = [_torch_quantile(ordered, p / 100.0) for p in config.percentiles]
    within = [np.count_nonzero(ordered <= t) for t in config.tolerances]
    return float(count), np.sum(ordered), ordered[-1], np.asarray(values), np.asarray(within, dtype=np.float64)


def _torch_quantile(ordered: np.ndarray, q: float) -> float:
    """``torch.quantile(x, q)`` (linear) of sorted float64 values, with torch's lerp arithmetic."""
    rank = q * (len(ordered) - 1)
    below = int(rank)
    above = int(np.ceil(rank))
    weight = rank - below
    start, end = ordered[below], ordered[above]
    with np.errstate(invalid="ignore"):
        if weight < 0.5:
            return start + weight * (end - start)
        return end - (end - start) * (1 - weight)


def image_statistics(
    gt: SurfacePoints,
    pred: SurfacePoints,
    classes: np.ndarray,
    num_classes: int,
    spacing: tuple[float, ...],
    weights_table: np.ndarray | None,
    formula: str,
    config: DistanceConfig,
    device=None,
) -> dict[str, np.ndarray]:
    """Statistics arrays ``(C, ...)`` of one image from its two surfaces."""
    stats = empty_statistics(num_classes, len(config.percentiles), len(config.tolerances))
    sides = [_side(points, weights_table, num_classes) for points in (gt, pred)]
    if formula == "monai":
        sides = _monai_crop_coordinates(sides, num_classes)
    for direction in (0, 1):
        (coords, labels, weights, start), target = sides[direction], sides[1 - direction]
        nearest = nearest_by_class(
            coords, labels, target[0], target[1], config.metric, spacing, config.backend, device, formula
        )
        distances = np.full(len(coords), np.inf)
        found = nearest[:, 0] >= 0
        distances[found] = point_distances(coords[found], nearest[found], config.metric, spacing, formula)
        for c in classes:
            if start[c] == start[c + 1]:
                continue
            part = slice(start[c], start[c + 1])
            size, total, hausdorff, values, within = direction_statistics(
                distances[part], None if weights is None else weights[part], config
            )
            stats["surface"][c, direction] = size
            stats["distance_sum"][c, direction] = total
            stats["hausdorff"][c, direction] = hausdorff
            stats["percentile"][c, :, direction] = values
            stats["within"][c, :, direction] = within
    return stats


def _side(points: SurfacePoints, table: np.ndarray | None, num_classes: int) -> tuple:
    """(coords, labels, weights or None, class start offsets) of one surface as numpy arrays."""
    weights = None if table is None or points.codes is None else table[points.codes.cpu().numpy()]
    return points.coords.cpu().numpy(), points.labels.cpu().numpy(), weights, class_segments(points, num_classes)


def _monai_crop_coordinates(sides: list, num_classes: int) -> list:
    """Coordinates relative to MONAI's per-class crop (bounding box of both masks, one voxel margin).

    MONAI's KD-tree measures ``q * s - f * s`` on cropped coordinates; the float result
    depends on the origin, so it is reproduced here.
    """
    big = np.iinfo(np.int64).max
    origin = np.full((num_classes, sides[0][0].shape[1]), big, dtype=np.int64)
    for coords, labels, _, _ in sides:
        np.minimum.at(origin, labels, coords)
    return [(coords - (origin[labels] - 1), labels, weights, start) for coords, labels, weights, start in sides]

