"""Exact nearest same-class surface point by row search, compiled with numba (an optional accelerator).

Used by the ``"search"`` backend of :mod:`segfuse.metrics._edt` when numba is installed
(``pip install numba``); without it that backend is the KD-tree. Same answers either way:
the distance to the nearest point, exactly.

Per key (image and class) the feature points are bucketed by row: all coordinates but one
axis (the one of smallest spacing), sorted along that axis by a stable counting sort. In a
row, the nearest point to a query is one of the two either side of it along the axis (a
binary search). A query visits the rows by growing value of their offset and stops at the
first row whose offset alone exceeds the best value found: every row after it is farther.
In 2D the rows are the non-empty ones either side, nearest first (empty rows cost nothing);
in 3D a sorted list of offsets up to a radius, then boxes of growing physical radius. A row
whose extent along the axis is, with its offset, farther than the best is passed over
without a search. The previous query's answer, when that query is a neighbour, is the first
best value.

Convention:
    Values are the metric of :func:`segfuse.metrics._edt.point_distances` with its
    ``formula`` arithmetic (squared for euclidean), so among points at the same exact
    distance the one of smallest formula value is kept, as a KD-tree on MONAI's scaled
    coordinates does. ``metric``: 0 euclidean, 1 chessboard, 2 taxicab; ``formula``: 0
    deepmind, 1 monai.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SLACK = 1e-12  # relative margin on bounds, so that float rounding never prunes a nearer point


@njit(cache=True, nogil=True, inline="always")
def _term(q, f, step, metric, formula):
    """One axis's part of the metric: squared scaled gap (euclidean, the formula's arithmetic) or the gap."""
    if metric == 0:
        if formula == 1:
            gap = q * step - f * step
        else:
            gap = (q - f) * step
        return gap * gap
    return float(abs(q - f))


@njit(cache=True, nogil=True, inline="always")
def _value(query, i, features, j, steps, metric, formula):
    """The metric between query i and feature j (squared for euclidean), axes summed in order."""
    value = 0.0
    for a in range(query.shape[1]):
        term = _term(query[i, a], features[j, a], steps[a], metric, formula)
        value = max(value, term) if metric == 1 else value + term
    return value


@njit(cache=True, nogil=True, inline="always")
def _gap_value(gap, step, metric):
    """A row offset's part of the metric along one axis (a lower bound of the points' values)."""
    if metric == 0:
        g = gap * step
        return g * g
    return float(gap)


@njit(cache=True, nogil=True, inline="always")
def _combine(lower, part, metric):
    """Two axes' parts of the metric together (max for chessboard, sum otherwise)."""
    if metric == 1:
        return max(lower, part)
    return lower + part


@njit(cache=True, nogil=True, inline="always")
def _scan_row(query, i, row, v0, v1, a0, a1, start, position, axis, steps, metric, formula, best, best_slot, lower):
    """Best value and slot after the row's two points either side of query i along ``axis``.

    ``lower``: the row offset's value (a lower bound of the row's points' values); with the gap from
    the query to the row's extent along ``axis`` it passes over rows that cannot hold a nearer point.
    """
    low_index = start[row]
    high_index = start[row + 1]
    if high_index == low_index:
        return best, best_slot
    target = query[i, axis]
    outside = max(position[low_index] - target, target - position[high_index - 1])
    if outside > 0 and _combine(lower, _gap_value(outside, steps[axis], metric), metric) > best * (1.0 + _SLACK):
        return best, best_slot
    left = low_index
    right = high_index
    while left < right:
        middle = (left + right) >> 1
        if position[middle] < target:
            left = middle + 1
        else:
            right = middle
    dims = query.shape[1]
    for t in (left - 1, left):
        if low_index <= t < high_index:
            value = 0.0
            for a in range(dims):
                f = position[t] if a == axis else (v0 if a == a0 else v1)
                term = _term(query[i, a], f, steps[a], metric, formula)
                value = max(value, term) if metric == 1 else value + term
            if value < best:
                best = value
                best_slot = t
    return best, best_slot


@njit(cache=True, nogil=True, inline="always")
def _nearest_in_plane(query, i, features, first_feature, out, first_query, row, low0, rows, above, below, start,
                      position, slot_of, a0, axis, steps, metric, formula):
    """2D: best value and slot of query i, in row ``row`` of its key's rows (the first at ``low0``).

    The non-empty rows by growing distance (``above`` / ``below``: the nearest non-empty row at or
    before / at or after each row; the row above first among equals), from the previous query's
    answer where it is a neighbour, while a row's offset alone does not exceed the best: empty rows
    cost nothing, which matters for queries far from their class's other surface.
    """
    best = np.inf
    best_slot = -1
    neighbour = i > first_query and out[i - 1] >= 0
    if neighbour and abs(query[i, 0] - query[i - 1, 0]) <= 1 and abs(query[i, 1] - query[i - 1, 1]) <= 1:
        best = _value(query, i, features, out[i - 1], steps, metric, formula)
        best_slot = slot_of[out[i - 1] - first_feature]
    up = above[min(row, rows - 1)] if row >= 0 else -1  # rows <= row
    down = below[row + 1] if 0 <= row + 1 < rows else (below[0] if row + 1 < 0 else rows)  # rows > row
    while up >= 0 or down < rows:
        if up >= 0 and (down >= rows or row - up <= down - row):  # the row above first among equals
            current = up
            up = above[up - 1] if up > 0 else -1
        else:
            current = down
            down = below[down + 1] if down + 1 < rows else rows
        lower = _gap_value(abs(current - row), steps[a0], metric)
        if lower > best * (1.0 + _SLACK):
            break  # every row left is at least as far
        best, best_slot = _scan_row(query, i, current, current + low0, current + low0, a0, a0, start, position, axis,
                                    steps, metric, formula, best, best_slot, lower)
    return best, best_slot


@njit(cache=True, nogil=True)
def nearest_in_rows(query, query_keys, features, feature_keys, steps, metric, formula, axis, offsets, offset_values,
                    listed):
    """The nearest same-key feature of each query point, 2D or 3D: its index (-1 where the key has none) and value.

    ``query`` (m, D) and ``features`` (n, D) int64 grid indices, their keys (m,), (n,) sorted;
    ``steps`` (D,) float64 (the spacing for euclidean, ones otherwise); ``axis``: the rows'
    axis. The value is the metric (squared for euclidean) with ``formula``'s arithmetic.
    ``offsets`` (k, 2): row offsets along the other axes (the second 0 in 2D) sorted by their
    value ``offset_values``, every offset of value <= ``listed`` included (:func:`row_offsets`).
    """
    m, dims = query.shape
    n = features.shape[0]
    out = np.full(m, -1, np.int64)
    values = np.full(m, np.inf)
    other = [a for a in range(dims) if a != axis]
    a0 = other[0]
    a1 = other[-1]
    s0 = steps[a0]
    s1 = steps[a1]
    unit = min(s0, s1)
    low = np.empty(dims, np.int64)
    high = np.empty(dims, np.int64)
    first_query = 0
    first_feature = 0
    while first_query < m:
        key = query_keys[first_query]
        end_query = first_query
        while end_query < m and query_keys[end_query] == key:
            end_query += 1
        while first_feature < n and feature_keys[first_feature] < key:
            first_feature += 1
        end_feature = first_feature
        while end_feature < n and feature_keys[end_feature] == key:
            end_feature += 1
        count = end_feature - first_feature
        if count == 0:
            first_query = end_query
            continue
        for a in range(dims):
            low[a] = features[first_feature, a]
            high[a] = features[first_feature, a]
        for j in range(first_feature, end_feature):
            for a in range(dims):
                low[a] = min(low[a], features[j, a])
                high[a] = max(high[a], features[j, a])
        size0 = high[a0] - low[a0] + 1
        size1 = high[a1] - low[a1] + 1 if dims == 3 else 1
        rows = size0 * size1
        start = np.zeros(rows + 1, np.int64)
        row_of = np.empty(count, np.int64)
        for j in range(count):
            r = features[first_feature + j, a0] - low[a0]
            if dims == 3:
                r = r * size1 + features[first_feature + j, a1] - low[a1]
            row_of[j] = r
            start[r + 1] += 1
        for r in range(rows):
            start[r + 1] += start[r]
        fill = start[:rows].copy()
        order = np.empty(count, np.int64)
        position = np.empty(count, np.int64)
        slot_of = np.empty(count, np.int64)
        for j in range(count):
            r = row_of[j]
            order[fill[r]] = first_feature + j
            position[fill[r]] = features[first_feature + j, axis]
            slot_of[j] = fill[r]
            fill[r] += 1
        if dims == 2:  # the nearest non-empty rows either side of each row
            above = np.empty(rows, np.int64)
            below = np.empty(rows, np.int64)
            nearest = -1
            for r in range(rows):
                if start[r + 1] > start[r]:
                    nearest = r
                above[r] = nearest
            nearest = rows
            for r in range(rows - 1, -1, -1):
                if start[r + 1] > start[r]:
                    nearest = r
                below[r] = nearest
        for i in range(first_query, end_query):
            q0 = query[i, a0]
            q1 = query[i, a1]
            if dims == 2:
                best, best_slot = _nearest_in_plane(query, i, features, first_feature, out, first_query, q0 - low[a0],
                                                    low[a0], rows, above, below, start, position, slot_of, a0, axis,
                                                    steps, metric, formula)
                out[i] = order[best_slot]
                values[i] = best
                continue
            gap0 = max(low[a0] - q0, q0 - high[a0], 0)
            gap1 = max(low[a1] - q1, q1 - high[a1], 0) if dims == 3 else 0
            step = int(max(gap0 * s0, gap1 * s1) / unit)  # boxes of smaller radius hold no row
            best = np.inf
            best_slot = -1
            previous0 = -1
            previous1 = -1
            if i > first_query and out[i - 1] >= 0:
                near = True
                for a in range(dims):
                    if abs(query[i, a] - query[i - 1, a]) > 1:
                        near = False
                if near:  # the neighbour's answer bounds this one's
                    best = _value(query, i, features, out[i - 1], steps, metric, formula)
                    best_slot = slot_of[out[i - 1] - first_feature]
            # rows by growing offset value, while it does not exceed the best; rows past the list lie beyond `listed`
            finished = False
            for t in range(offsets.shape[0]):
                if offset_values[t] > best * (1.0 + _SLACK):
                    finished = True
                    break
                v0 = q0 + offsets[t, 0]
                v1 = q1 + offsets[t, 1]
                if v0 < low[a0] or v0 > high[a0] or (dims == 3 and (v1 < low[a1] or v1 > high[a1])):
                    continue
                row = (v0 - low[a0]) * size1 + (v1 - low[a1] if dims == 3 else 0)
                best, best_slot = _scan_row(query, i, row, v0, v1, a0, a1, start, position, axis, steps, metric,
                                            formula, best, best_slot, offset_values[t])
            if best_slot >= 0 and best <= listed * (1.0 - _SLACK):
                finished = True
            if not finished:
                step = max(step, int(np.sqrt(listed) / unit) if metric == 0 else int(listed / unit))
            while not finished:
                radius = step * unit
                reach0 = int(radius / s0 + 1e-9)
                reach1 = int(radius / s1 + 1e-9) if dims == 3 else 0
                v0 = max(q0 - reach0, low[a0])
                end0 = min(q0 + reach0, high[a0])
                while v0 <= end0:
                    d0 = abs(v0 - q0)
                    if dims == 2 and d0 <= previous0:
                        v0 = q0 + previous0 + 1  # rows of the previous box: already visited
                        continue
                    lower0 = _gap_value(d0, s0, metric)
                    if lower0 > best * (1.0 + _SLACK):
                        v0 += 1
                        continue
                    if dims == 2:
                        best, best_slot = _scan_row(query, i, v0 - low[a0], v0, v0, a0, a1, start, position,
                                                    axis, steps, metric, formula, best, best_slot, lower0)
                        v0 += 1
                        continue
                    first = max(q1 - reach1, low[a1])
                    last = min(q1 + reach1, high[a1])
                    inner = d0 <= previous0
                    v1 = first
                    while v1 <= last:
                        d1 = abs(v1 - q1)
                        if inner and d1 <= previous1:
                            v1 = q1 + previous1 + 1  # rows of the previous box: already visited
                            continue
                        lower = _combine(lower0, _gap_value(d1, s1, metric), metric)
                        if lower <= best * (1.0 + _SLACK):
                            best, best_slot = _scan_row(query, i, (v0 - low[a0]) * size1 + v1 - low[a1], v0, v1, a0, a1,
                                                        start, position, axis, steps, metric, formula, best,
                                                        best_slot, lower)
                        v1 += 1
                    v0 += 1
                previous0 = reach0
                previous1 = reach1
                covered = radius * radius if metric == 0 else radius
                if best_slot >= 0 and best <= covered * (1.0 - _SLACK):
                    break  # every row outside the box is farther than `radius`
                if q0 - reach0 <= low[a0] and q0 + reach0 >= high[a0] and (
                    dims == 2 or (q1 - reach1 <= low[a1] and q1 + reach1 >= high[a1])
                ):
                    break  # every row visited
                step += 1
            out[i] = order[best_slot]
            values[i] = best
        first_query = end_query
        first_feature = end_feature
    return out, values


def row_offsets(steps: np.ndarray, axis: int, metric: int, radius: float) -> tuple:
    """Row offsets (k, 2) along the axes other than ``axis``, sorted by value, all of value <= the returned bound.

    Returns ``(offsets, values, listed)``; values are squared for euclidean (``metric`` 0).
    """
    other = [a for a in range(len(steps)) if a != axis]
    reach = [int(radius / steps[a]) for a in other]
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], 1).astype(np.int64)
    scaled = np.abs(offsets) * np.asarray([steps[a] for a in other])
    if metric == 0:
        values = np.zeros(len(offsets))
        for column in range(scaled.shape[1]):
            values += scaled[:, column] ** 2
        listed = radius * radius
    else:
        values = scaled.max(1) if metric == 1 else scaled.sum(1)
        listed = float(radius)
    keep = values <= listed
    order = np.argsort(values[keep], kind="stable")
    offsets, values = offsets[keep][order], values[keep][order]
    if offsets.shape[1] == 1:
        offsets = np.column_stack([offsets[:, 0], np.zeros(len(offsets), dtype=np.int64)])
    return np.ascontiguousarray(offsets), values, listed
