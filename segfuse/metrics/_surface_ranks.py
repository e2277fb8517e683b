"""DeepMind's per-run surface statistics of a direction in one compiled loop (numba, an optional accelerator).

``surface_distance.compute_robust_hausdorff`` takes, per direction, the first distance whose
``np.cumsum(areas) / np.sum(areas)`` reaches p / 100 (``np.searchsorted``, the areas in the
order of the sorted distances). :func:`deepmind_ranks` does this for every run of a sorted
direction in one loop, with the reference's arithmetic: a sequential cumulative sum, and
NumPy's pairwise summation for the total (:func:`numpy_sum`, the algorithm of NumPy's
``pairwise_sum`` for contiguous float64: blocks of up to 128 summed in 8 interleaved
partial sums, longer runs split in two at a multiple of 8). :func:`deepmind_statistics` adds
the sizes, distance sums and tolerance sums with ``np.add.reduceat``'s arithmetic (the first
value plus the pairwise sum of the rest: :func:`reduceat_sum`). The numpy code in
:mod:`segfuse.metrics._surface_stats` gives the same numbers to the bit
(``tests/metrics/test_surface.py`` checks them, and the sums against ``np.sum`` and
``np.add.reduceat``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BLOCK = 128  # NumPy's PW_BLOCKSIZE


@njit(cache=True, nogil=True)
def numpy_sum(values, start, count):
    """``np.sum(values[start : start + count])`` to the bit (NumPy's pairwise summation of float64)."""
    if count < 8:
        total = 0.0
        for i in range(start, start + count):
            total += values[i]
        return total
    if count <= _BLOCK:
        r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
        r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
        i = 8
        whole = count - count % 8
        while i < whole:
            j = start + i
            r0 += values[j]
            r1 += values[j + 1]
            r2 += values[j + 2]
            r3 += values[j + 3]
            r4 += values[j + 4]
            r5 += values[j + 5]
            r6 += values[j + 6]
            r7 += values[j + 7]
            i += 8
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < count:
            total += values[start + i]
            i += 1
        return total
    half = count // 2
    half -= half % 8
    return numpy_sum(values, start, half) + numpy_sum(values, start + half, count - half)


@njit(cache=True, nogil=True)
def reduceat_sum(values, start, count):
    """``np.add.reduceat``'s sum of ``values[start : start + count]`` to the bit: the first value plus NumPy's
    pairwise sum of the others."""
    return values[start] + numpy_sum(values, start + 1, count - 1)


@njit(cache=True, nogil=True)
def deepmind_ranks(weights, starts, counts, targets):
    """Index (into ``weights``) per run and target: ``start + searchsorted(cumsum(run) / sum(run), target)``.

    ``weights`` (m,) float64 > 0 in each run's sorted order; ``starts``, ``counts`` (k,) the runs;
    ``targets`` (P,) the fractions p / 100. Returns (k, P) int64.
    """
    out = np.empty((starts.shape[0], targets.shape[0]), np.int64)
    for row in range(starts.shape[0]):
        start = starts[row]
        count = counts[row]
        total = 0.0 + numpy_sum(weights, start, count)
        for p in range(targets.shape[0]):
            target = targets[p]
            cumulative = 0.0
            index = count  # searchsorted past the end
            for i in range(count):
                cumulative += weights[start + i]
                if cumulative / total >= target:
                    index = i
                    break
            out[row, p] = start + index
    return out


@njit(cache=True, nogil=True)
def deepmind_statistics(distances, weights, order, starts, counts, targets, tolerances):
    """Per-run statistics of one direction in DeepMind's order, with numpy's arithmetic, in one pass.

    ``order`` puts the points in (run, distance, weight) order; ``starts``, ``counts`` (k,) the runs
    in that order; ``targets`` (P,) percentile fractions (the first 1.0: the Hausdorff value);
    ``tolerances`` (T,). Returns ``size``, ``distance_sum`` (k,), ``values`` (k, P) (the distance at
    each percentile index) and ``within`` (k, T): the sums (``np.add.reduceat``'s) of the
    weights, of distance * weight and of the weights within each tolerance (:func:`reduceat_sum`).
    """
    m = order.shape[0]
    runs = starts.shape[0]
    ordered = np.empty(m)
    ordered_weights = np.empty(m)
    scratch = np.empty(m)
    for j in range(m):
        ordered[j] = distances[order[j]]
        ordered_weights[j] = weights[order[j]]
        scratch[j] = ordered[j] * ordered_weights[j]
    size = np.empty(runs)
    distance_sum = np.empty(runs)
    for row in range(runs):
        size[row] = reduceat_sum(ordered_weights, starts[row], counts[row])
        distance_sum[row] = reduceat_sum(scratch, starts[row], counts[row])
    at = deepmind_ranks(ordered_weights, starts, counts, targets)
    values = np.empty((runs, targets.shape[0]))
    for row in range(runs):
        last = starts[row] + counts[row] - 1
        for p in range(targets.shape[0]):
            values[row, p] = ordered[min(at[row, p], last)]
    within = np.empty((runs, tolerances.shape[0]))
    for t in range(tolerances.shape[0]):
        tolerance = tolerances[t]
        for j in range(m):
            scratch[j] = ordered_weights[j] if ordered[j] <= tolerance else 0.0
        for row in range(runs):
            within[row, t] = reduceat_sum(scratch, starts[row], counts[row])
    return size, distance_sum, values, within
