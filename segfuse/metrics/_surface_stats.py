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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from segfuse.metrics._edt import nearest_distances
from segfuse.metrics._surface_points import SurfacePoints, compiled


@dataclass(frozen=True)
class DistanceConfig:
    """How distances and their summaries are computed (fixed per metric object)."""

    metric: str
    rule: str  # "deepmind" or "monai"
    percentiles: tuple[float, ...]
    tolerances: tuple[float, ...]
    backend: str


def on_both_sides(function, arguments: list[tuple], device=None, threads: bool = True) -> list:
    """``[function(*a) for a in arguments]`` (the two surfaces or directions), in two threads when ``threads`` and
    torch has two or more on a CPU: the numpy passes, the KD-tree and the numba kernels release the GIL."""
    if (not threads or len(arguments) < 2 or torch.get_num_threads() < 2
            or (device is not None and torch.device(device).type != "cpu")):
        return [function(*a) for a in arguments]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda a: function(*a), arguments))


def empty_statistics(num_classes: int, percentiles: int, tolerances: int, images: int = 1) -> dict[str, np.ndarray]:
    """Statistics arrays ``(N, C, ...)`` with every class absent: sizes 0, distances NaN."""
    return {
        "surface": np.zeros((images, num_classes, 2)),
        "distance_sum": np.zeros((images, num_classes, 2)),
        "hausdorff": np.full((images, num_classes, 2), np.nan),
        "percentile": np.full((images, num_classes, percentiles, 2), np.nan),
        "within": np.zeros((images, num_classes, tolerances, 2)),
    }


@dataclass(frozen=True)
class SegmentStatistics:
    """Statistics of each run of equal keys (sorted ascending): ``keys`` (k,) and arrays with k rows."""

    keys: np.ndarray
    size: np.ndarray
    distance_sum: np.ndarray
    hausdorff: np.ndarray
    percentile: np.ndarray  # (k, P)
    within: np.ndarray  # (k, T)


def segment_statistics(distances: np.ndarray, weights: np.ndarray | None, keys: np.ndarray,
                       config: DistanceConfig, weight_ranks: np.ndarray | None = None,
                       use_compiled: bool = True) -> SegmentStatistics:
    """Per-key statistics of one direction, every key at once (``keys`` sorted, one run per key, none empty).

    ``weight_ranks``: the rank of each weight among the distinct weights (sorts like the weights).

    The points of each key are put in the reference's order, by (distance, weight), with one
    sort of the whole direction; sizes, sums and tolerance counts are reductions over the runs
    (numpy's, or for DeepMind's rule the same arithmetic in one compiled pass where numba is
    installed: :func:`segfuse.metrics._surface_ranks.deepmind_statistics`).
    """
    weights = np.ones(len(distances)) if weights is None else weights
    key_order = _small_integers(keys)  # lexsort sorts small integer keys by radix
    if config.rule == "deepmind":
        order = np.lexsort((_small_integers(np.unique(weights, return_inverse=True)[1]) if weight_ranks is None
                            else weight_ranks, _sortable(distances), key_order))
        kernels = compiled("_surface_ranks") if use_compiled else None
        if kernels is not None:  # keys are sorted: the runs are the same before and after the sort
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            counts = np.diff(np.r_[starts, len(keys)])
            targets = np.asarray((100.0,) + config.percentiles, dtype=np.float64) / 100.0
            size, distance_sum, values, within = kernels.deepmind_statistics(
                np.ascontiguousarray(distances, dtype=np.float64), np.ascontiguousarray(weights, dtype=np.float64),
                order, starts, counts, targets, np.asarray(config.tolerances, dtype=np.float64))
            return SegmentStatistics(keys[starts], size, distance_sum, values[:, 0], values[:, 1:], within)
    else:
        order = np.lexsort((_sortable(distances), key_order))
    distances, weights, keys = distances[order], weights[order], keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    last = starts + counts - 1
    with np.errstate(invalid="ignore"):  # inf * 0 cannot occur (weights > 0); inf - inf in lerps of empty targets
        if config.rule == "deepmind":
            size = np.add.reduceat(weights, starts)
            distance_sum = np.add.reduceat(distances * weights, starts)
            at = _deepmind_ranks(weights, starts, counts, (100.0,) + config.percentiles)
            values = distances[np.minimum(at, last[:, None])]
            hausdorff, percentile = values[:, 0], values[:, 1:]
        else:
            size = counts.astype(np.float64)
            distance_sum = np.add.reduceat(distances, starts)
            hausdorff = distances[last]
            percentile = _columns([_torch_quantiles(distances, starts, counts, p / 100.0) for p in config.percentiles],
                                  len(starts))
        within = _columns([np.add.reduceat(np.where(distances <= t, weights, 0.0), starts) for t in config.tolerances],
                          len(starts))
    return SegmentStatistics(keys[starts], size, distance_sum, hausdorff, percentile, within)


def _columns(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """The columns side by side, ``(rows, len(columns))``."""
    return np.stack(columns, 1) if columns else np.zeros((rows, 0))


def _sortable(distances: np.ndarray) -> np.ndarray:
    """Distances (>= 0, inf allowed) as int64 bit patterns: the same order, and integers sort faster."""
    return np.ascontiguousarray(distances, dtype=np.float64).view(np.int64)


def _small_integers(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned dtype that holds them (or their ranks, if too large)."""
    if len(values) == 0:
        return values.astype(np.uint8)
    if values.min() < 0 or values.max() >= 1 << 32:
        values = np.unique(values, return_inverse=True)[1]
    high = int(values.max())
    return values.astype(np.uint8 if high < 1 << 8 else np.uint16 if high < 1 << 16 else np.uint32)


def _deepmind_ranks(weights: np.ndarray, starts: np.ndarray, counts: np.ndarray, percentiles,
                    use_compiled: bool = True) -> np.ndarray:
    """``compute_robust_hausdorff``'s index per run and percentile: ``searchsorted(cumsum(w) / sum(w), p / 100)``.

    With the reference's own arithmetic (``np.cumsum`` and ``np.sum`` of each run), so the
    index is the reference's even where a cumulative fraction equals p / 100: one compiled
    loop over the runs where numba is installed (:mod:`segfuse.metrics._surface_ranks`), else
    numpy per run.
    """
    targets = np.asarray(percentiles, dtype=np.float64) / 100.0
    kernels = compiled("_surface_ranks") if use_compiled else None
    if kernels is not None:
        return kernels.deepmind_ranks(np.ascontiguousarray(weights, dtype=np.float64), starts.astype(np.int64),
                                      counts.astype(np.int64), targets)
    at = np.empty((len(starts), len(targets)), dtype=np.int64)
    for row, (start, count) in enumerate(zip(starts.tolist(), counts.tolist())):
        run = weights[start : start + count]
        at[row] = np.searchsorted(np.cumsum(run) / np.sum(run), targets)
    return at + starts[:, None]


def _torch_quantiles(ordered: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """``torch.quantile(x, q)`` (linear) of each sorted float64 run, with torch's lerp arithmetic."""
    rank = q * (counts - 1)
    below = rank.astype(np.int64)
    above = np.ceil(rank).astype(np.int64)
    weight = rank - below
    start, end = ordered[starts + below], ordered[starts + above]
    with np.errstate(invalid="ignore"):
        return np.where(weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight))


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
    threads: bool = True,
) -> dict[str, np.ndarray]:
    """Statistics arrays ``(N, C, ...)`` of a batch of images (one spacing) from its two surfaces.

    ``threads``: the two directions in two threads where torch has two (:func:`on_both_sides`)."""
    stats = empty_statistics(num_classes, len(config.percentiles), len(config.tolerances), images)
    base = num_classes + 1
    sides = [_side(points, weights_table, base) for points in (gt, pred)]
    weight_ranks = [None if weights_table is None or points.codes is None
                    else _small_integers(np.unique(weights_table, return_inverse=True)[1][points.codes])
                    for points in (gt, pred)]
    if formula == "monai":
        sides = _monai_crop_coordinates(sides)
    wanted = np.zeros(base, dtype=bool)
    wanted[classes] = True
    directions = [d for d in (0, 1) if len(sides[d][0])]

    def direction_statistics(d: int) -> SegmentStatistics:
        distances = nearest_distances(sides[d][0], sides[d][1], sides[1 - d][0], sides[1 - d][1], config.metric,
                                      spacing, config.backend, device, formula)
        return segment_statistics(distances, sides[d][2], sides[d][1], config, weight_ranks[d])

    parts = on_both_sides(direction_statistics, [(d,) for d in directions], device, threads)
    for direction, part in zip(directions, parts):
        image, c = np.divmod(part.keys, base)
        rows = wanted[c]
        image, c = image[rows], c[rows]
        stats["surface"][image, c, direction] = part.size[rows]
        stats["distance_sum"][image, c, direction] = part.distance_sum[rows]
        stats["hausdorff"][image, c, direction] = part.hausdorff[rows]
        stats["percentile"][image, c, :, direction] = part.percentile[rows]
        stats["within"][image, c, :, direction] = part.within[rows]
    return stats


def _side(points: SurfacePoints, table: np.ndarray | None, base: int) -> tuple:
    """(coords, keys = image * base + class, weights or None) of one surface as numpy arrays."""
    coords = points.coords
    keys = coords[:, 0] * base + points.labels
    weights = None if table is None or points.codes is None else table[points.codes]
    return coords, keys, weights


def _monai_crop_coordinates(sides: list) -> list:
    """Coordinates relative to MONAI's crop of each image and class (both masks' bounding box, one voxel margin).

    MONAI's KD-tree measures ``q * s - f * s`` on cropped coordinates; the float result
    depends on the origin, so it is reproduced here (the image column is left as it is).
    """
    runs = []
    for coords, point_keys, _ in sides:  # points sorted by key: one run per key
        starts = np.flatnonzero(np.r_[True, point_keys[1:] != point_keys[:-1]]) if len(point_keys) else np.zeros(0, int)
        lows = np.minimum.reduceat(coords, starts) if len(starts) else np.zeros((0, coords.shape[1]), np.int64)
        runs.append((point_keys[starts], starts, lows))
    keys = np.union1d(runs[0][0], runs[1][0])
    origin = np.full((len(keys), sides[0][0].shape[1]), np.iinfo(np.int64).max, dtype=np.int64)
    for run_keys, _, lows in runs:
        rows = np.searchsorted(keys, run_keys)
        origin[rows] = np.minimum(origin[rows], lows)
    origin[:, 0] = 1
    shifted = []
    for (coords, point_keys, weights), (run_keys, starts, _) in zip(sides, runs):
        counts = np.diff(np.r_[starts, len(point_keys)])
        shifted.append((coords - np.repeat(origin[np.searchsorted(keys, run_keys)] - 1, counts, axis=0), point_keys,
                        weights))
    return shifted
