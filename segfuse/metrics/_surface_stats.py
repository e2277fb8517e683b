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


def empty_statistics(num_classes: int, percentiles: int, tolerances: int, images: int = 1) -> dict[str, np.ndarray]:
    """Statistics arrays ``(N, C, ...)`` with every class absent: sizes 0, distances NaN."""
    return {
        "surface": np.zeros((images, num_classes, 2)),
        "distance_sum": np.zeros((images, num_classes, 2)),
        "hausdorff": np.full((images, num_classes, 2), np.nan),
        "percentile": np.full((images, num_classes, percentiles, 2), np.nan),
        "within": np.zeros((images, num_classes, tolerances, 2)),
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


def batch_statistics(
    gt: SurfacePoints,
    pred: SurfacePoints,
    classes: np.ndarray,
    num_classes: int,
    images: int,
    spacing: tuple[float, ...],
    weights_table: np.ndarray | None,
    formula: str,
    config: DistanceConfig,
    device=None,
) -> dict[str, np.ndarray]:
    """Statistics arrays ``(N, C, ...)`` of a batch of images (one spacing) from its two surfaces."""
    stats = empty_statistics(num_classes, len(config.percentiles), len(config.tolerances), images)
    base = num_classes + 1
    sides = [_side(points, weights_table, base) for points in (gt, pred)]
    if formula == "monai":
        sides = _monai_crop_coordinates(sides, images * base)
    wanted = set(int(c) for c in classes)
    for direction in (0, 1):
        (coords, keys, weights), target = sides[direction], sides[1 - direction]
        nearest = nearest_by_class(
            coords, keys, target[0], target[1], config.metric, spacing, config.backend, device, formula, base
        )
        distances = np.full(len(coords), np.inf)
        found = nearest[:, 0] >= 0
        distances[found] = point_distances(coords[found, 1:], nearest[found, 1:], config.metric, spacing, formula)
        unique, starts = np.unique(keys, return_index=True)
        ends = np.append(starts[1:], len(keys))
        for key, low, high in zip(unique.tolist(), starts.tolist(), ends.tolist()):
            image, c = divmod(key, base)
            if c not in wanted:
                continue
            size, total, hausdorff, values, within = direction_statistics(
                distances[low:high], None if weights is None else weights[low:high], config
            )
            stats["surface"][image, c, direction] = size
            stats["distance_sum"][image, c, direction] = total
            stats["hausdorff"][image, c, direction] = hausdorff
            stats["percentile"][image, c, :, direction] = values
            stats["within"][image, c, :, direction] = within
    return stats


def _side(points: SurfacePoints, table: np.ndarray | None, base: int) -> tuple:
    """(coords, keys = image * base + class, weights or None) of one surface as numpy arrays."""
    coords = points.coords.cpu().numpy()
    keys = coords[:, 0] * base + points.labels.cpu().numpy()
    weights = None if table is None or points.codes is None else table[points.codes.cpu().numpy()]
    return coords, keys, weights


def _monai_crop_coordinates(sides: list, keys: int) -> list:
    """Coordinates relative to MONAI's crop of each image and class (both masks' bounding box, one voxel margin).

    MONAI's KD-tree measures ``q * s - f * s`` on cropped coordinates; the float result
    depends on the origin, so it is reproduced here (the image column is left as it is).
    """
    big = np.iinfo(np.int64).max
    origin = np.full((keys, sides[0][0].shape[1]), big, dtype=np.int64)
    for coords, point_keys, _ in sides:
        np.minimum.at(origin, point_keys, coords)
    origin[:, 0] = 1
    return [(coords - (origin[point_keys] - 1), point_keys, weights) for coords, point_keys, weights in sides]
