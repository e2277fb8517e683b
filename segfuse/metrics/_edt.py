"""Exact nearest surface points: which point of one surface is nearest to each point of another.

Four backends answer the same question, exactly (no approximation, float64):

- ``"search"`` (CPU default): every class at once, lattice offsets tried in increasing
  order of their exact distance against a bit mask of the feature points' classes, so
  the first hit is a nearest point; points with no hit within a radius (128 offsets in
  2D, 512 in 3D) go to the KD-tree. Its cost follows the distances, not the volume.
- ``"kdtree"``: ``scipy.spatial.cKDTree`` over each class's feature points.
- ``"scipy"``: ``scipy.ndimage.distance_transform_edt`` / ``distance_transform_cdt`` with
  ``return_indices`` on the bounding box of both point sets (the references' own
  transforms; the test reference).
- ``"torch"`` (CUDA default; runs on CPU too): :func:`exact_distance_transform`, an exact
  separable transform in torch that carries the nearest feature's coordinates.

Distances are then computed from the integer offsets to the nearest point by one formula
per reference (:func:`point_distances`), so every backend gives the same numbers.

Convention:
    ``metric="euclidean"`` scales axis i by ``spacing[i]``; ``"chessboard"`` (L-inf) and
    ``"taxicab"`` (L1) count voxel steps and ignore the spacing, as MONAI's
    ``distance_transform_cdt`` does. ``formula="deepmind"`` is scipy's EDT arithmetic
    ``sqrt(sum_i ((q_i - f_i) * s_i) ** 2)``; ``formula="monai"`` is MONAI's KD-tree on
    scaled coordinates ``sqrt(sum_i (q_i * s_i - f_i * s_i) ** 2)``. They differ in the last bit
    only, which matters where a distance equals a tolerance exactly.
"""

from __future__ import annotations

import importlib
import math
from functools import lru_cache

import numpy as np
import torch

METRICS = ("euclidean", "chessboard", "taxicab")
BACKENDS = ("search", "kdtree", "scipy", "torch")
_MINKOWSKI_P = {"euclidean": 2.0, "chessboard": np.inf, "taxicab": 1.0}
_CHUNK_ELEMENTS = 1 << 23  # temporaries of the brute-force line pass, in elements
_SEARCH_OFFSETS = {1: 16, 2: 128, 3: 512}  # offsets tried before a KD-tree query is the cheaper way
_BALL_VOLUME = {1: 2.0, 2: math.pi, 3: 4.0 * math.pi / 3.0}
_MASK_CELLS = 1 << 21  # cells of one class-bit mask (several images share one up to this size)


def nearest_by_class(
    query: np.ndarray,
    query_keys: np.ndarray,
    features: np.ndarray,
    feature_keys: np.ndarray,
    metric: str,
    spacing,
    backend: str,
    device=None,
    formula: str = "deepmind",
    key_base: int = 1 << 62,
) -> np.ndarray:
    """For each query point, the nearest feature point of the same image and class (-1 rows if none).

    Points are int64 ``(m, 1 + D)``: the image index, then the grid indices. Keys are
    ``image * key_base + class``, sorted on both sides. Among points at the same exact
    distance the search keeps the one whose ``formula`` value is smallest, as a KD-tree on
    the references' coordinates does. ``spacing`` has D entries.
    """
    nearest = np.full(query.shape, -1, dtype=np.int64)
    if len(query) == 0 or len(features) == 0:
        return nearest
    if backend == "search":
        matched = np.isin(query_keys, feature_keys)  # points whose class has no target surface stay -1
        if matched.any():
            nearest[matched] = _search(query[matched], query_keys[matched], features, feature_keys, metric,
                                       tuple(map(float, spacing)), formula, key_base)
        return nearest
    query_start = _segments(query_keys)
    feature_start = _segments(feature_keys)
    for key, (low, high) in query_start.items():
        if key in feature_start:
            f_low, f_high = feature_start[key]
            found = nearest_points(query[low:high, 1:], features[f_low:f_high, 1:], metric, spacing, backend, device)
            nearest[low:high] = np.column_stack([query[low:high, 0], found])
    return nearest


def _segments(sorted_labels: np.ndarray) -> dict[int, tuple[int, int]]:
    labels, starts = np.unique(sorted_labels, return_index=True)
    ends = np.append(starts[1:], len(sorted_labels))
    return {int(label): (int(low), int(high)) for label, low, high in zip(labels, starts, ends)}


@lru_cache(maxsize=32)
def search_offsets(metric: str, spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer offsets ``(K, D)`` within the search radius sorted by distance, their distances ``(K,)``, and for
    each the end of its run of equal distances (``(K,)``, exclusive)."""
    dims = len(spacing)
    steps = np.asarray(spacing, dtype=np.float64) if metric == "euclidean" else np.ones(dims)
    budget = _SEARCH_OFFSETS.get(dims, 512)
    radius = (budget * float(np.prod(steps)) / _BALL_VOLUME.get(dims, 2.0**dims)) ** (1.0 / dims)
    reach = np.floor(radius / steps).astype(np.int64)
    axes = [np.arange(-r, r + 1) for r in reach]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dims)
    distance = point_distances(np.zeros_like(offsets), offsets, metric, steps, "deepmind")
    inside = distance <= (radius if metric == "euclidean" else reach[0])
    order = np.argsort(distance[inside], kind="stable")
    offsets, distance = offsets[inside][order], distance[inside][order]
    tie_end = np.searchsorted(distance, distance * (1 + 1e-12), side="right")
    for array in (offsets, distance, tie_end):
        array.setflags(write=False)
    return offsets, distance, tie_end


def _search(query, query_keys, features, feature_keys, metric, spacing, formula, key_base) -> np.ndarray:
    spatial, _, tie_end = search_offsets(metric, spacing)
    offsets = np.column_stack([np.zeros(len(spatial), dtype=np.int64), spatial])  # never to another image
    reach = np.abs(offsets).max(0)
    tie = (tie_end, metric, (0.0,) + spacing, formula)
    query_classes, feature_classes = query_keys % key_base, feature_keys % key_base
    nearest = np.full(query.shape, -1, dtype=np.int64)
    extent = np.maximum(query.max(0), features.max(0)) - np.minimum(query.min(0), features.min(0)) + 2 * reach + 1
    images_per_mask = max(1, _MASK_CELLS // int(np.prod(extent[1:])))
    for first_image in range(int(query[:, 0].min()), int(query[:, 0].max()) + 1, images_per_mask):
        last_image = first_image + images_per_mask
        in_query = (query[:, 0] >= first_image) & (query[:, 0] < last_image)
        in_features = (features[:, 0] >= first_image) & (features[:, 0] < last_image)
        for first in range(0, int(max(query_classes.max(), feature_classes.max())) + 1, 64):
            chunk_query = in_query & (query_classes >= first) & (query_classes < first + 64)
            chunk_features = in_features & (feature_classes >= first) & (feature_classes < first + 64)
            if chunk_query.any() and chunk_features.any():
                nearest[chunk_query] = _search_chunk(
                    query[chunk_query], query_classes[chunk_query] - first,
                    features[chunk_features], feature_classes[chunk_features] - first, offsets, reach, tie,
                )
    missing = nearest[:, 0] < 0
    if missing.any():
        nearest[missing] = nearest_by_class(
            query[missing], query_keys[missing], features, feature_keys, metric, spacing, "kdtree", key_base=key_base
        )
    return nearest


def _search_chunk(query, query_bits, features, feature_bits, offsets, reach, tie) -> np.ndarray:
    """Nearest same-class feature within the offsets (labels < 64 here; -1 rows past the radius)."""
    classes = int(max(query_bits.max(), feature_bits.max())) + 1
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if np.iinfo(t).bits >= classes)
    low = np.minimum(query.min(0), features.min(0)) - reach
    shape = np.maximum(query.max(0), features.max(0)) + reach - low + 1
    strides = np.cumprod(np.append(shape[1:], 1)[::-1])[::-1]
    mask = np.zeros(int(np.prod(shape)), dtype=dtype)
    np.bitwise_or.at(mask, (features - low) @ strides, np.left_shift(1, feature_bits).astype(dtype))
    position = (query - low) @ strides
    bits = np.left_shift(1, query_bits).astype(dtype)
    steps = offsets @ strides
    found = np.full(len(query), -1, dtype=np.int64)
    active = np.arange(len(query))
    start, block = 0, 1
    while start < len(steps) and len(active):
        stop = min(len(steps), start + block)
        hits = (mask[position[active, None] + steps[None, start:stop]] & bits[active, None]) != 0
        first = hits.argmax(1)
        hit = hits[np.arange(len(active)), first]
        found[active[hit]] = start + first[hit]
        active = active[~hit]
        start, block = stop, block * 2
    nearest = np.full(query.shape, -1, dtype=np.int64)
    resolved = np.flatnonzero(found >= 0)
    nearest[resolved] = query[resolved] + offsets[found[resolved]]
    tie_end, metric, spacing, formula = tie
    tied = resolved[tie_end[found[resolved]] - found[resolved] > 1]
    # Tied offsets give bit-identical values except under MONAI's formula, whose rounding depends on the
    # coordinates (integer metrics and DeepMind's squared steps do not).
    if len(tied) and metric == "euclidean" and formula == "monai":
        nearest[tied] = _closest_of_ties(query[tied], found[tied], tie_end, mask, position[tied], bits[tied], offsets,
                                         steps, metric, spacing, formula)
    return nearest


def _closest_of_ties(query, found, tie_end, mask, position, bits, offsets, steps, metric, spacing, formula):
    """Among the hits at the first hit's exact distance, the one with the smallest ``formula`` value."""
    width = int((tie_end[found] - found).max())
    index = np.minimum(found[:, None] + np.arange(width), len(offsets) - 1)
    inside = index < tie_end[found][:, None]
    hits = inside & ((mask[position[:, None] + steps[index]] & bits[:, None]) != 0)
    chosen = query + offsets[found]
    several = np.flatnonzero(hits.sum(1) > 1)
    if len(several) == 0:
        return chosen
    query, index, hits = query[several], index[several], hits[several]
    candidates = query[:, None, :] + offsets[index]  # (r, width, D)
    flat = point_distances(np.repeat(query, width, 0), candidates.reshape(-1, query.shape[1]), metric, spacing, formula)
    values = np.where(hits, flat.reshape(len(query), width), np.inf)
    chosen[several] = candidates[np.arange(len(query)), values.argmin(1)]
    return chosen


def nearest_points(query: np.ndarray, features: np.ndarray, metric: str, spacing, backend: str, device=None) -> np.ndarray:
    """Coordinates ``(m, D)`` of the feature point nearest to each query point (both int64 ``(., D)``).

    ``device`` is where the ``"torch"`` backend runs its transform (default CPU).
    """
    if backend == "kdtree":
        return _nearest_kdtree(query, features, metric, spacing)
    low = np.minimum(query.min(0), features.min(0))
    high = np.maximum(query.max(0), features.max(0))
    shape = tuple(int(v) for v in high - low + 1)
    local_query, local_features = query - low, features - low
    if backend == "scipy":
        nearest = _nearest_scipy(local_features, shape, metric, spacing)
        return nearest[(slice(None),) + tuple(local_query.T)].T + low
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    mask[tuple(torch.from_numpy(local_features).to(mask.device).T)] = True
    nearest = exact_distance_transform(mask, metric, spacing)[1]
    return nearest[(slice(None),) + tuple(torch.from_numpy(local_query).to(mask.device).T)].T.cpu().numpy() + low


def scipy_module(name: str):
    """``scipy.<name>``, or an ImportError that names the extra to install."""
    try:
        return importlib.import_module(f"scipy.{name}")
    except ImportError as error:  # pragma: no cover - scipy is installed wherever the tests run
        raise ImportError("the surface-distance metrics need scipy: pip install 'segfuse[surface]'") from error


def _nearest_kdtree(query, features, metric, spacing) -> np.ndarray:
    cKDTree = scipy_module("spatial").cKDTree
    scale = np.asarray(spacing, dtype=np.float64) if metric == "euclidean" else 1.0
    tree = cKDTree(features * scale, leafsize=32)
    index = tree.query(query * scale, k=1, p=_MINKOWSKI_P[metric])[1]
    return features[index]


def _nearest_scipy(features, shape, metric, spacing) -> np.ndarray:
    ndimage = scipy_module("ndimage")
    background = np.ones(shape, dtype=bool)
    background[tuple(features.T)] = False
    if metric == "euclidean":
        return ndimage.distance_transform_edt(
            background, sampling=spacing, return_distances=False, return_indices=True
        )
    return ndimage.distance_transform_cdt(background, metric=metric, return_distances=False, return_indices=True)


def point_distances(query: np.ndarray, nearest: np.ndarray, metric: str, spacing, formula: str) -> np.ndarray:
    """Distance from each query point to its nearest feature point, float64 ``(m,)``."""
    if metric == "chessboard":
        return np.abs(query - nearest).max(1).astype(np.float64)
    if metric == "taxicab":
        return np.abs(query - nearest).sum(1).astype(np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    if formula == "monai":
        steps = (query * spacing - nearest * spacing).T
    else:
        steps = (query - nearest).T.astype(np.float64) * spacing[:, None]
    np.multiply(steps, steps, out=steps)
    return np.sqrt(np.add.reduce(steps, axis=0))


def exact_distance_transform(features: torch.Tensor, metric: str = "euclidean", spacing=None):
    """Exact distance transform of a boolean mask and the nearest feature of every pixel, in torch.

    Separable: one pass per axis, each an exact brute-force minimum over the line
    ``min_q g(q) (+ or max) cost(p - q)`` that also carries the minimiser's coordinates, so
    it is exact on any device (a CUDA tensor stays on the GPU).

    Args:
        features: bool mask ``S`` (any D >= 1); True marks the feature points.
        metric: ``"euclidean"`` (squared distances, axis i scaled by ``spacing[i]``),
            ``"chessboard"`` or ``"taxicab"`` (voxel steps).
        spacing: D floats for the euclidean metric (default 1).

    Returns:
        ``(distance, nearest)``: float64 ``S`` (squared for euclidean; inf where there is no
        feature) and int64 ``(D, *S)`` coordinates of the nearest feature (-1 if none).

    Example:
        >>> mask = torch.tensor([[False, False, True]])
        >>> exact_distance_transform(mask)[0]
        tensor([[4., 1., 0.]], dtype=torch.float64)
    """
    dims = features.dim()
    spacing = [1.0] * dims if spacing is None or metric != "euclidean" else [float(s) for s in spacing]
    value = torch.where(features, 0.0, float("inf")).to(torch.float64)
    nearest = torch.full((dims,) + tuple(features.shape), -1, dtype=torch.int64, device=features.device)
    for axis in reversed(range(dims)):
        value, nearest = _line_pass(value, nearest, axis, metric, spacing[axis])
    return value, nearest


def _line_pass(value, nearest, axis, metric, step):
    """Exact 1-D pass along ``axis``: value'(p) = min_q combine(value(q), cost(p - q))."""
    size = value.shape[axis]
    lines = value.movedim(axis, -1).reshape(-1, size)
    carried = nearest.movedim(axis + 1, -1).reshape(nearest.shape[0], -1, size)
    positions = torch.arange(size, device=value.device)
    gap = (positions[:, None] - positions[None, :]).abs().to(torch.float64)  # (p, q)
    cost = (gap * step) ** 2 if metric == "euclidean" else gap
    out_value = torch.empty_like(lines)
    out_nearest = torch.empty_like(carried)
    chunk = max(1, _CHUNK_ELEMENTS // (size * size))
    for start in range(0, lines.shape[0], chunk):
        block = lines[start : start + chunk, None, :]  # (l, 1, q)
        total = torch.maximum(block, cost) if metric == "chessboard" else block + cost
        best, argbest = total.min(-1)  # (l, p)
        out_value[start : start + chunk] = best
        gathered = torch.gather(carried[:, start : start + chunk], 2, argbest.expand(carried.shape[0], -1, -1))
        gathered[axis] = torch.where(torch.isinf(best), -1, argbest)
        out_nearest[:, start : start + chunk] = gathered
    shape = list(value.movedim(axis, -1).shape)
    value = out_value.reshape(shape).movedim(-1, axis)
    nearest = out_nearest.reshape([nearest.shape[0]] + shape).movedim(-1, axis + 1)
    return value.contiguous(), nearest.contiguous()
