"""The sparse half of the surface extraction, compiled with numba (an optional accelerator).

:mod:`segfuse.metrics._surface_points` finds, with dense numpy comparisons, the flat
positions of the padded map where corners are mixed (3D volumes) or voxels have a
differing neighbour; these kernels turn those positions into sorted surface points in one
loop: the labels around each corner, one point per kept label with its neighbour code, the
grid coordinates, and a stable counting sort by (image, class) (:func:`_stable_slots`,
also used by the corner scan of :mod:`segfuse.metrics._surface_scan`, which serves 2D
maps). The numpy code beside them computes the same arrays (``tests/metrics/test_surface.py``
checks that they are equal).

Convention:
    As :mod:`segfuse.metrics._surface_points`: a corner is named by its block's far voxel
    (padded index = corner index + 1), slot k of its block is the voxel ``p - shifts[k]``,
    and the code sums ``2 ** (2**D - 1 - k)`` over the slots holding the point's label.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _coordinates(position, shape, starts, out, row):
    """Write the image index and the grid indices (padded index - 1 + box start) of ``position`` to ``out[row]``."""
    dims = shape.shape[0] - 1
    rest = position
    for axis in range(dims, 0, -1):
        out[row, axis] = rest % shape[axis] - 1 + starts[axis - 1]
        rest //= shape[axis]
    out[row, 0] = rest


@njit(cache=True, nogil=True)
def _stable_slots(keys, n_keys):
    """Where a stable counting sort by ``keys`` (values in ``[0, n_keys)``) puts each item."""
    start = np.zeros(n_keys + 1, np.int64)
    for i in range(keys.shape[0]):
        start[keys[i] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    slots = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        slots[i] = start[keys[i]]
        start[keys[i]] += 1
    return slots


@njit(cache=True, nogil=True)
def _sorted_by_key(coords, labels, codes, count, base, keys):
    """Stable counting sort of the first ``count`` points by ``image * base + label``."""
    key = np.empty(count, np.int64)
    for i in range(count):
        key[i] = coords[i, 0] * base + labels[i]
    slots = _stable_slots(key, keys)
    out_coords = np.empty((count, coords.shape[1]), np.int64)
    out_labels = np.empty(count, np.int64)
    out_codes = np.empty(count, np.int64)
    for i in range(count):
        j = slots[i]
        out_coords[j] = coords[i]
        out_labels[j] = labels[i]
        out_codes[j] = codes[i]
    return out_coords, out_labels, out_codes


@njit(cache=True, nogil=True)
def corner_points(flat, position, shifts, keep, shape, starts, base):
    """Surfels of the kept labels at the mixed corners ``position`` (flat padded indices of their far voxels).

    ``shape``: the padded batch's shape; ``starts``: the box's start per spatial axis;
    ``base``: ``num_classes + 1``. Returns ``(coords (m, 1 + D), labels (m,), codes (m,))``
    sorted by (image, class), then position.
    """
    slots = shifts.shape[0]
    capacity = position.shape[0] * 2 + 16
    records = np.empty(3 * capacity, np.int64)  # (position, label, code) per point: one array grown in the loop
    block = np.empty(slots, np.int64)
    count = 0
    for i in range(position.shape[0]):
        p = position[i]
        for k in range(slots):
            block[k] = flat[p - shifts[k]]
        for j in range(slots):
            label = block[j]
            if label < 0 or label >= keep.shape[0]:
                raise IndexError("a label outside [0, num_classes]: validate the maps (validate_args=True)")
            if not keep[label]:
                continue
            first = True
            for k in range(j):
                if block[k] == label:
                    first = False
                    break
            if not first:
                continue
            code = 0
            for k in range(slots):
                code = (code << 1) | (1 if block[k] == label else 0)
            if count == capacity:  # more than two kept labels at many corners: grow
                capacity *= 2
                records = _grown(records, 3 * capacity)
            records[3 * count] = p
            records[3 * count + 1] = label
            records[3 * count + 2] = code
            count += 1
    # stable counting sort by image * base + label, the coordinates computed on the way
    per_image = 1
    for axis in range(1, shape.shape[0]):
        per_image *= shape[axis]
    key = np.empty(count, np.int64)
    for i in range(count):
        key[i] = (records[3 * i] // per_image) * base + records[3 * i + 1]
    slots = _stable_slots(key, shape[0] * base)
    coords = np.empty((count, shape.shape[0]), np.int64)
    labels = np.empty(count, np.int64)
    codes = np.empty(count, np.int64)
    for i in range(count):
        j = slots[i]
        _coordinates(records[3 * i], shape, starts, coords, j)
        labels[j] = records[3 * i + 1]
        codes[j] = records[3 * i + 2]
    return coords, labels, codes


@njit(cache=True, nogil=True)
def edge_points(flat, position, keep, shape, starts, base):
    """Edge voxels of the kept labels among ``position`` (flat padded indices), sorted as :func:`corner_points`."""
    count = 0
    for i in range(position.shape[0]):
        label = flat[position[i]]
        if label < 0 or label >= keep.shape[0]:
            raise IndexError("a label outside [0, num_classes]: validate the maps (validate_args=True)")
        if keep[label]:
            count += 1
    coords = np.empty((count, shape.shape[0]), np.int64)
    labels = np.empty(count, np.int64)
    codes = np.zeros(count, np.int64)
    row = 0
    for i in range(position.shape[0]):
        label = flat[position[i]]
        if keep[label]:
            _coordinates(position[i], shape, starts, coords, row)
            labels[row] = label
            row += 1
    return _sorted_by_key(coords, labels, codes, count, base, shape[0] * base)


@njit(cache=True, nogil=True)
def _grown(array, capacity):
    shape = (capacity,) + array.shape[1:]
    out = np.empty(shape, array.dtype)
    out[: array.shape[0]] = array
    return out
