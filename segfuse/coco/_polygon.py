"""Polygon rasterisation bit-identical to pycocotools' ``rleFrPoly``, for many polygons at once.

pycocotools scales the vertices by 5 (``int(5 * v + 0.5)``, truncated toward zero), walks
every edge pixel by pixel on that fine grid (x-major edges step in x, y-major in y, with
``int(a + s * t + 0.5)`` for the other coordinate), and keeps a boundary point wherever the
fine x crosses from ``5n + 2`` to ``5n + 3``: pixel column n toggles at row
``ceil((min(v) + 0.5) / 5 - 0.5)`` clamped to [0, h]. Toggles at the same pixel cancel in
pairs.

Convention: we compute only those crossings, not every fine point: on an x-major edge the
crossing step is known in closed form; on a y-major edge the fine x is monotone in the step,
so the crossing step is estimated and then corrected with the exact same floating-point
expression. The output equals pycocotools' bit for bit (pinned by tests against it).
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._ragged import offsets_from_lengths, segment_ids
from segfuse.coco._runs import Runs, concatenate

_SCALE = 5
CHUNK_POLYGONS = 4096


def rasterize(coords: np.ndarray, offsets: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> Runs:
    """Rasterise N polygons into Runs.

    Args:
        coords: (2V,) float64 flat x0, y0, x1, y1, ... of all polygons.
        offsets: (N + 1,) int64 offsets into ``coords`` (pycocotools uses the first
            ``2 * (len // 2)`` numbers of each polygon).
        heights, widths: (N,) int64 image size of each polygon.

    Polygons are processed ``CHUNK_POLYGONS`` at a time, which keeps the temporaries small.
    """
    heights, widths = np.asarray(heights, np.int64), np.asarray(widths, np.int64)
    parts = []
    for a in range(0, len(heights), CHUNK_POLYGONS):
        b = min(a + CHUNK_POLYGONS, len(heights))
        own = coords[offsets[a] : offsets[b]]
        parts.append(_rasterize_chunk(own, offsets[a : b + 1] - offsets[a], heights[a:b], widths[a:b]))
    return concatenate(parts, heights, widths)


def _rasterize_chunk(coords: np.ndarray, offsets: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> Runs:
    n = len(heights)
    n_points = np.diff(offsets) // 2
    x, y, poly = _fine_vertices(coords, offsets, n_points)
    point_offsets = offsets_from_lengths(n_points)
    nxt = np.arange(len(x)) + 1
    last = point_offsets[1:][n_points > 0] - 1
    nxt[last] = point_offsets[:-1][n_points > 0]
    column, row_fine = _crossings(x, y, x[nxt], y[nxt], widths[poly])
    owner = poly[column[1]]
    h = heights[owner]
    row = (row_fine + 0.5) / _SCALE - 0.5
    row = np.ceil(np.clip(row, 0, h)).astype(np.int64)
    return _toggles_to_runs(column[0] * h + row, owner, heights, widths, n)


def _fine_vertices(coords, offsets, n_points):
    poly = segment_ids(offsets_from_lengths(n_points))
    start = np.repeat(offsets[:-1], n_points)
    step = 2 * (np.arange(len(poly)) - np.repeat(offsets_from_lengths(n_points)[:-1], n_points))
    fine = lambda v: (_SCALE * v + 0.5).astype(np.int64)  # noqa: E731  C's (int) truncates toward 0
    return fine(coords[start + step]), fine(coords[start + step + 1]), poly


def _crossings(xs, ys, xe, ye, widths):
    """Per crossing: ((column n, edge index), min fine y of the crossing step)."""
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    x_major = dx >= dy
    flip = np.where(x_major, xs > xe, ys > ye)
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    cols_x, rows_x = _x_major(xs, ys, ye, dx, widths, np.flatnonzero(x_major & (dx > 0)))
    cols_y, rows_y = _y_major(xs, xe, ys, dy, widths, np.flatnonzero(~x_major))
    column = np.concatenate([cols_x, cols_y], axis=1)
    return column, np.concatenate([rows_x, rows_y])


def _columns(u_low, u_high, widths, edges):
    """Expand each edge into the columns n with 5n+2 >= u_low and 5n+3 <= u_high, n in [0, w)."""
    first = np.maximum(-((2 - u_low) // _SCALE), 0)
    last = np.minimum((u_high - 3) // _SCALE, widths[edges] - 1)
    count = np.maximum(last - first + 1, 0)
    owner = np.repeat(np.arange(len(edges)), count)
    n = np.repeat(first, count) + np.arange(count.sum()) - np.repeat(offsets_from_lengths(count)[:-1], count)
    return n, owner


def _x_major(xs, ys, ye, dx, widths, edges):
    xs, ys, ye, dx = xs[edges], ys[edges], ye[edges], dx[edges]
    n, k = _columns(xs, xs + dx, widths, edges)
    slope = (ye - ys)[k] / dx[k]
    t = _SCALE * n + 2 - xs[k]
    start = ys[k].astype(np.float64)
    v0 = (start + slope * t + 0.5).astype(np.int64)
    v1 = (start + slope * (t + 1) + 0.5).astype(np.int64)
    return np.stack([n, edges[k]]), np.minimum(v0, v1)


def _y_major(xs, xe, ys, dy, widths, edges):
    xs, xe, ys, dy = xs[edges], xe[edges], ys[edges], dy[edges]
    slope = (xe - xs) / dy
    start = xs.astype(np.float64)
    u0 = (start + 0.5).astype(np.int64)
    u1 = (start + slope * dy + 0.5).astype(np.int64)
    n, k = _columns(np.minimum(u0, u1), np.maximum(u0, u1), widths, edges)
    slope, start, dy, rising = slope[k], start[k], dy[k], (u1 > u0)[k]
    target = np.where(rising, _SCALE * n + 3, _SCALE * n + 2)

    def reached(t):
        u = (start + slope * t + 0.5).astype(np.int64)
        return np.where(rising, u >= target, u <= target)

    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.where(rising, np.ceil((target - 0.5 - start) / slope), np.floor((target + 0.5 - start) / slope) + 1)
    t = np.clip(np.nan_to_num(guess), 1, dy).astype(np.int64)
    while True:
        back = (t > 1) & reached(t - 1)
        ahead = ~reached(t) & (t < dy)
        if not (back.any() or ahead.any()):
            break
        t = t - back + ahead
    return np.stack([n, edges[k]]), ys[k] + t - 1


def _toggles_to_runs(position, owner, heights, widths, n):
    """Pixel toggles -> Runs: toggles at one pixel cancel in pairs; the last run ends at h*w."""
    total = heights * widths
    block = offsets_from_lengths(total + 1)[:-1]
    key = np.sort(position + block[owner], kind="stable")  # timsort: ascending runs along each edge
    new = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    first = np.flatnonzero(new)
    odd = (np.diff(np.r_[first, len(key)]) % 2) == 1
    key = key[first[odd]]
    owner = np.repeat(np.arange(n), np.diff(np.r_[np.searchsorted(key, block), len(key)]))  # key is sorted
    position = key - block[owner]
    inside = position < total[owner]
    position, owner = position[inside], owner[inside]
    per_mask = np.bincount(owner, minlength=n)
    rank = np.arange(len(owner)) - np.repeat(offsets_from_lengths(per_mask)[:-1], per_mask)
    opening = np.flatnonzero(rank % 2 == 0)
    closing = np.minimum(opening + 1, max(len(owner) - 1, 0))
    paired = (opening + 1 < len(owner)) & (owner[closing] == owner[opening])
    ends = np.where(paired, position[closing], total[owner[opening]])
    offsets = offsets_from_lengths(np.bincount(owner[opening], minlength=n))
    return Runs(position[opening], ends, offsets, heights, widths)
