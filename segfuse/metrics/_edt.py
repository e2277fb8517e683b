"""Exact nearest surface points: which point of one surface is nearest to each point of another.

Four backends answer the same question, exactly (no approximation, float64):

- ``"search"`` (CPU default): with numba installed, the compiled row search of
  :mod:`segfuse.metrics._surface_rows` (every image and class in one call, its cost
  following the distances); without numba, the ``"kdtree"`` backend.
- ``"kdtree"``: one ``scipy.spatial.cKDTree`` per call over the feature points of every image and class, with
  an extra coordinate ``rank(key) * L`` where L exceeds every distance within one image and
  class. A point's own key differs by exactly 0 there, so distances stay exact, and a point
  of another key is never nearer (checked; a per-key tree answers otherwise). Minkowski
  ``p`` 2, inf or 1 for the metrics; ``workers`` = torch's intra-op thread count.
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
    only, which matters where a distance equals a tolerance exactly. The KD-tree measures on
    the scaled coordinates, as MONAI's does, so among points at the same exact distance it
    keeps one of smallest ``formula="monai"`` value.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch

from segfuse.metrics._surface_points import compiled

METRICS = ("euclidean", "chessboard", "taxicab")
BACKENDS = ("search", "kdtree", "scipy", "torch")
_METRIC_IDS = {"euclidean": 0, "chessboard": 1, "taxicab": 2}
_MINKOWSKI_P = {"euclidean": 2.0, "chessboard": np.inf, "taxicab": 1.0}
_CHUNK_ELEMENTS = 1 << 23  # temporaries of the brute-force line pass, in elements
_LEAF_SIZE = 32  # MONAI's choice: one batched query per tree
_LISTED_ROWS = {2: 24, 3: 8}  # radius, in rows, of the row search's sorted offsets (beyond it: growing boxes)


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
    ``image * key_base + class``, sorted on both sides. ``spacing`` has D entries.
    ``formula`` is the arithmetic by which the row search ranks points at one exact distance
    (the KD-tree ranks by MONAI's); ``key_base`` is kept for callers.
    """
    nearest = np.full(query.shape, -1, dtype=np.int64)
    if len(query) == 0 or len(features) == 0:
        return nearest
    spacing = tuple(map(float, spacing))
    if backend == "search" and row_search_available() and query.shape[1] in (3, 4):
        found = _nearest_in_rows(query, query_keys, features, feature_keys, metric, spacing, formula)[0]
        nearest[found >= 0] = features[found[found >= 0]]
        return nearest
    if backend in ("kdtree", "search"):
        matched = _has_features(query_keys, feature_keys)  # points whose class has no target surface stay -1
        if matched.any():
            nearest[matched] = _nearest_in_one_tree(query[matched], query_keys[matched], features, feature_keys,
                                                    metric, spacing)
        return nearest
    query_start = _segments(query_keys)
    feature_start = _segments(feature_keys)
    for key, (low, high) in query_start.items():
        if key in feature_start:
            f_low, f_high = feature_start[key]
            found = nearest_points(query[low:high, 1:], features[f_low:f_high, 1:], metric, spacing, backend, device)
            nearest[low:high] = np.column_stack([query[low:high, 0], found])
    return nearest


def nearest_distances(
    query: np.ndarray,
    query_keys: np.ndarray,
    features: np.ndarray,
    feature_keys: np.ndarray,
    metric: str,
    spacing,
    backend: str,
    device=None,
    formula: str = "deepmind",
) -> np.ndarray:
    """Distance from each query point to the nearest feature point of its image and class (inf if none), float64.

    Arguments as :func:`nearest_by_class`; the distance is :func:`point_distances` of the
    nearest point (the row search returns the same value directly).
    """
    spacing = tuple(map(float, spacing))
    if backend == "search" and row_search_available() and query.shape[1] in (3, 4) and len(query) and len(features):
        found, values = _nearest_in_rows(query, query_keys, features, feature_keys, metric, spacing, formula)
        return np.sqrt(values) if metric == "euclidean" else values
    nearest = nearest_by_class(query, query_keys, features, feature_keys, metric, spacing, backend, device, formula)
    distances = np.full(len(query), np.inf)
    found = nearest[:, 0] >= 0
    distances[found] = point_distances(query[found, 1:], nearest[found, 1:], metric, spacing, formula)
    return distances


def row_search_available() -> bool:
    """Whether the compiled row search of the ``"search"`` backend can run (numba installed and importable)."""
    return compiled("_surface_rows") is not None


def _nearest_in_rows(query, query_keys, features, feature_keys, metric, spacing, formula) -> tuple:
    """(feature index of each query's nearest same-key feature or -1, its value), by the compiled row search."""
    rows = compiled("_surface_rows")
    steps = np.asarray(spacing, dtype=np.float64) if metric == "euclidean" else np.ones(len(spacing))
    axis = len(steps) - 1 - int(np.argmin(steps[::-1]))  # the smallest spacing, the last axis among equals
    unit = min(float(steps[a]) for a in range(len(steps)) if a != axis)
    offsets, values, listed = rows.row_offsets(steps, axis, _METRIC_IDS[metric], _LISTED_ROWS[len(steps)] * unit)
    # int64 column views (the image column left out, no copy) and contiguous keys: one compiled specialisation
    query_points, feature_points = (np.asarray(points, dtype=np.int64)[:, 1:] for points in (query, features))
    query_keys, feature_keys = (np.ascontiguousarray(keys, dtype=np.int64) for keys in (query_keys, feature_keys))
    return rows.nearest_in_rows(query_points, query_keys, feature_points, feature_keys, steps, _METRIC_IDS[metric],
                                1 if formula == "monai" else 0, axis, offsets, values, listed)


def _segments(sorted_labels: np.ndarray) -> dict[int, tuple[int, int]]:
    labels, starts = np.unique(sorted_labels, return_index=True)
    ends = np.append(starts[1:], len(sorted_labels))
    return {int(label): (int(low), int(high)) for label, low, high in zip(labels, starts, ends)}


def _has_features(query_keys: np.ndarray, feature_keys: np.ndarray) -> np.ndarray:
    """Which query keys occur among the (sorted) feature keys."""
    at = np.minimum(np.searchsorted(feature_keys, query_keys), len(feature_keys) - 1)
    return feature_keys[at] == query_keys


def _scaled(points: np.ndarray, metric: str, spacing: tuple[float, ...]) -> np.ndarray:
    """Grid indices as float64 in the metric's unit (MONAI's ``coords.astype(float64) * spacing``)."""
    scaled = points.astype(np.float64)
    if metric == "euclidean":
        scaled *= np.asarray(spacing, dtype=np.float64)
    return scaled


def _key_separation(low: np.ndarray, high: np.ndarray) -> float:
    """Distance between neighbouring keys in the tree: more than any L1 (hence L2, L-inf) distance in the box."""
    return 2.0 * float(np.sum(high - low)) + 1.0


def _nearest_in_one_tree(query, query_keys, features, feature_keys, metric, spacing) -> np.ndarray:
    """:func:`nearest_by_class` for queries whose key has features: one KD-tree, keys as a far-apart coordinate."""
    tree_module = scipy_module("spatial")
    keys, feature_rank = np.unique(feature_keys, return_inverse=True)
    query_rank = np.searchsorted(keys, query_keys)
    scaled_query, scaled_features = _scaled(query[:, 1:], metric, spacing), _scaled(features[:, 1:], metric, spacing)
    low = np.minimum(scaled_query.min(0), scaled_features.min(0))
    high = np.maximum(scaled_query.max(0), scaled_features.max(0))
    separation = _key_separation(low, high)
    tree = tree_module.cKDTree(np.column_stack([feature_rank * separation, scaled_features]), leafsize=_LEAF_SIZE,
                               balanced_tree=False, compact_nodes=False)
    index = tree.query(np.column_stack([query_rank * separation, scaled_query]), k=1, p=_MINKOWSKI_P[metric],
                       workers=max(1, torch.get_num_threads()))[1]
    nearest = features[index]
    stray = np.flatnonzero(feature_keys[index] != query_keys)
    if len(stray):  # the separation rules this out; checked, and answered by one tree per key if it happens
        for key in np.unique(query_keys[stray]):
            rows = stray[query_keys[stray] == key]
            own = feature_keys == key
            nearest[rows] = features[own][_nearest_kdtree(query[rows, 1:], features[own, 1:], metric, spacing)]
    return nearest


def nearest_points(query: np.ndarray, features: np.ndarray, metric: str, spacing, backend: str,
                   device=None) -> np.ndarray:
    """Coordinates ``(m, D)`` of the feature point nearest to each query point (both int64 ``(., D)``).

    ``device`` is where the ``"torch"`` backend runs its transform (default CPU).
    """
    if backend in ("kdtree", "search"):
        return features[_nearest_kdtree(query, features, metric, spacing)]
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
    """Index of the nearest feature of each query point (one class; ``(., D)`` grid indices)."""
    spacing = tuple(map(float, spacing))
    tree = scipy_module("spatial").cKDTree(_scaled(features, metric, spacing), leafsize=_LEAF_SIZE)
    return tree.query(_scaled(query, metric, spacing), k=1, p=_MINKOWSKI_P[metric])[1]


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
