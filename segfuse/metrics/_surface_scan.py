"""Surface points of every class of 2D maps in one compiled pass (numba, optional).

:mod:`segfuse.metrics._surface_points` calls :func:`corner_points` (DeepMind's surfels) and
:func:`edge_points` (MONAI's edge voxels) for 2D maps where numba is installed; its numpy code
computes the same arrays (``tests/metrics/test_surface.py`` checks that they are equal).

The corners are visited row by row: corner row ``i`` of an image lies between the voxel rows
``i - 1`` and ``i``. The two rows are read as 8-byte words; per word,
a few integer operations give the mask of its mixed corners (the labels of the two rows
differ at k or k - 1, or a row's labels at k - 1 and k differ), so most of an image, uniform,
is passed over without looking at its labels. At a mixed corner, one point per kept label
with its neighbour code. Points come out sorted by (image, class), then position, by a
stable counting sort. Edge voxels are found the same way, row by row: per word, the mask of
the labels that differ from the row above, the row below, or the label before or after them.

Convention:
    As :mod:`segfuse.metrics._surface_points`: corner ``k`` of a row sits between voxels
    ``k - 1`` and ``k``; the block's slots are (row i - 1: k - 1, k; row i: k - 1, k); voxels
    outside the image hold ``fill``, a label that is no kept class; the code sums
    ``2 ** (3 - s)`` over the slots s holding the point's label. The rows may be padded to
    ``line_length`` (a whole number of words) with ``fill``; ``width`` is their true length.
    Edge voxels: a voxel of a kept label with a face neighbour of another label, ``fill``
    outside the image (so every kept voxel on the border). Words are read little-endian (the
    caller checks the byte order).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from segfuse.metrics._surface_sparse import _grown, _stable_slots

_FIELDS = 5  # a point's record: image, row, column, label, code


@njit(cache=True, nogil=True, inline="always")
def _label(flat, offset, k, width, fill):
    """The label of voxel k of the row starting at ``offset`` (-1: outside), ``fill`` outside the image."""
    if offset < 0 or k < 0 or k >= width:
        return fill
    return flat[offset + k]


@njit(cache=True, nogil=True, inline="always")
def _shifted(word, previous, bits):
    """The word moved up by one label (``bits`` wide), the previous word's last label in its first place."""
    return ((word << (bits - 1)) << 1) | (previous >> (64 - bits))


@njit(cache=True, nogil=True, inline="always")
def _mixed_corners(upper, o0, lower, o1, words_per_line, per_word, width, low, splat, fill_word, out):
    """The mixed corners of one row (0 .. width), in increasing order, into ``out``; returns their count.

    ``upper[o0 + w]`` and ``lower[o1 + w]`` are word w of the voxel rows above and below (the
    maps' words, or a row of ``fill``). Corner k is mixed iff the rows differ at k or k - 1,
    or a row's labels at k - 1 and k differ: per word, the labels not zero in those differences.
    """
    bits = 64 // per_word
    found = 0
    previous = fill_word
    previous_difference = np.uint64(0)
    full = width == per_word * words_per_line  # no padding: corner `width` lies after the last word
    for w in range(words_per_line + 1):
        if w < words_per_line:
            word = upper[o0 + w]
            difference = word ^ lower[o1 + w]
        elif full:
            word = fill_word
            difference = np.uint64(0)
        else:
            break
        if (difference | previous_difference | (word ^ previous)) == 0 and word == (word & low) * splat:
            continue  # both rows hold this word's label here and in the previous word: no mixed corner
        mixed = difference | _shifted(difference, previous_difference, bits) | (word ^ _shifted(word, previous, bits))
        if mixed:
            step = np.uint64(bits // 2)
            while step:  # every label's bits ored into its lowest
                mixed |= mixed >> step
                step >>= np.uint64(1)
            mixed &= splat
            for t in range(per_word):
                if (mixed >> np.uint64(t * bits)) & np.uint64(1):
                    k = w * per_word + t
                    if k <= width:
                        out[found] = k
                        found += 1
        previous = word
        previous_difference = difference
    return found


@njit(cache=True, nogil=True, inline="always")
def _emit(records, count, image, i, k, label, code, keep):
    """Append the point of ``label`` (if kept) at (i, k) of ``image`` to ``records``; returns the new count."""
    if label < 0 or label >= keep.shape[0]:
        raise IndexError("a label outside [0, num_classes]: validate the maps (validate_args=True)")
    if keep[label]:
        at = _FIELDS * count
        records[at] = image
        records[at + 1] = i
        records[at + 2] = k
        records[at + 3] = label
        records[at + 4] = code
        count += 1
    return count


@njit(cache=True, nogil=True)
def _sorted_records(records, count, base, keys):
    """``(coords (m, 3), labels, codes)`` of the first ``count`` records, stably sorted by ``image * base + label``.

    One flat array of records while scanning (several arrays grown in the loop cost twice the scan)."""
    key = np.empty(count, np.int64)
    for p in range(count):
        key[p] = records[_FIELDS * p] * base + records[_FIELDS * p + 3]
    slots = _stable_slots(key, keys)
    coords = np.empty((count, 3), np.int64)
    labels = np.empty(count, np.int64)
    codes = np.empty(count, np.int64)
    for p in range(count):
        at = _FIELDS * p
        j = slots[p]
        coords[j, 0] = records[at]
        coords[j, 1] = records[at + 1]
        coords[j, 2] = records[at + 2]
        labels[j] = records[at + 3]
        codes[j] = records[at + 4]
    return coords, labels, codes


@njit(cache=True, nogil=True)
def corner_points(flat, words, shape, line_length, per_word, low, splat, fill, keep, base):
    """Surfels of the kept labels of a batch of 2D maps, sorted by (image, class), then position.

    ``flat``: the maps ``shape`` = (N, H, W) in C order, rows padded to ``line_length`` (a
    multiple of ``per_word``) with ``fill``; ``words``: the same memory as uint64, ``per_word``
    labels per word; ``low`` masks a word's first label, ``splat`` (uint64) repeats it over the
    word; ``keep`` (num_classes + 1,) bool; ``base`` = num_classes + 1.
    Returns ``(coords (m, 3), labels (m,), codes (m,))``, int64.
    """
    images = shape[0]
    height = shape[1]
    width = shape[2]
    capacity = 1024
    records = np.empty(_FIELDS * capacity, np.int64)
    count = 0
    words_per_line = line_length // per_word
    fill_word = (np.uint64(fill) & low) * splat
    fill_words = np.full(words_per_line, fill_word, np.uint64)
    candidates = np.empty(width + 2, np.int64)
    for image in range(images):
        for i in range(height + 1):
            top = (image * height + i - 1) * line_length if i > 0 else -1
            bottom = (image * height + i) * line_length if i < height else -1
            if top >= 0 and bottom >= 0:
                found = _mixed_corners(words, top // per_word, words, bottom // per_word, words_per_line, per_word,
                                       width, low, splat, fill_word, candidates)
            else:
                upper, o0 = (words, top // per_word) if top >= 0 else (fill_words, 0)
                lower, o1 = (words, bottom // per_word) if bottom >= 0 else (fill_words, 0)
                found = _mixed_corners(upper, o0, lower, o1, words_per_line, per_word, width, low, splat, fill_word,
                                       candidates)
            if count + 4 * found > capacity:
                capacity = 2 * capacity + 4 * found
                records = _grown(records, _FIELDS * capacity)
            for t in range(found):
                k = candidates[t]
                if top >= 0 and bottom >= 0 and 0 < k < width:
                    b0 = np.int64(flat[top + k - 1])
                    b1 = np.int64(flat[top + k])
                    b2 = np.int64(flat[bottom + k - 1])
                    b3 = np.int64(flat[bottom + k])
                else:
                    b0 = np.int64(_label(flat, top, k - 1, width, fill))
                    b1 = np.int64(_label(flat, top, k, width, fill))
                    b2 = np.int64(_label(flat, bottom, k - 1, width, fill))
                    b3 = np.int64(_label(flat, bottom, k, width, fill))
                # one point per label, in order of its first slot, with the slots holding it as bits 8, 4, 2, 1
                count = _emit(records, count, image, i, k, b0,
                              8 | (4 if b1 == b0 else 0) | (2 if b2 == b0 else 0) | (1 if b3 == b0 else 0), keep)
                if b1 != b0:
                    count = _emit(records, count, image, i, k, b1,
                                  4 | (2 if b2 == b1 else 0) | (1 if b3 == b1 else 0), keep)
                if b2 != b0 and b2 != b1:
                    count = _emit(records, count, image, i, k, b2, 2 | (1 if b3 == b2 else 0), keep)
                if b3 != b0 and b3 != b1 and b3 != b2:
                    count = _emit(records, count, image, i, k, b3, 1, keep)
    return _sorted_records(records, count, base, images * base)


@njit(cache=True, nogil=True, inline="always")
def _shifted_down(word, following, bits):
    """The word moved down by one label (``bits`` wide), the following word's first label in its last place."""
    return ((word >> (bits - 1)) >> 1) | (following << (64 - bits))


@njit(cache=True, nogil=True, inline="always")
def _edge_voxels(row, o, upper, o0, lower, o1, words_per_line, per_word, width, low, splat, fill_word, out):
    """The edge voxels of one row (0 .. width - 1), in increasing order, into ``out``; returns their count.

    ``row[o + w]``, ``upper[o0 + w]`` and ``lower[o1 + w]``: word w of the row and of the rows
    above and below (the maps' words, or a row of ``fill``).
    """
    bits = 64 // per_word
    found = 0
    previous = fill_word
    word = row[o]
    for w in range(words_per_line):
        following = row[o + w + 1] if w + 1 < words_per_line else fill_word
        vertical = (word ^ upper[o0 + w]) | (word ^ lower[o1 + w])
        if vertical == 0 and word == previous and word == following and word == (word & low) * splat:
            previous = word
            word = following
            continue  # one label here, above, below and in the words either side: no edge
        mixed = (vertical | (word ^ _shifted(word, previous, bits)) | (word ^ _shifted_down(word, following, bits)))
        if mixed:
            step = np.uint64(bits // 2)
            while step:  # every label's bits ored into its lowest
                mixed |= mixed >> step
                step >>= np.uint64(1)
            mixed &= splat
            for t in range(per_word):
                if (mixed >> np.uint64(t * bits)) & np.uint64(1):
                    k = w * per_word + t
                    if k < width:
                        out[found] = k
                        found += 1
        previous = word
        word = following
    return found


@njit(cache=True, nogil=True)
def edge_points(flat, words, shape, line_length, per_word, low, splat, fill, keep, base):
    """MONAI's edge voxels of the kept labels of a batch of 2D maps, sorted by (image, class), then position.

    Arguments as :func:`corner_points`. Returns ``(coords (m, 3), labels (m,), zeros (m,))``, int64.
    """
    images = shape[0]
    height = shape[1]
    width = shape[2]
    capacity = 1024
    records = np.empty(_FIELDS * capacity, np.int64)
    count = 0
    words_per_line = line_length // per_word
    fill_word = (np.uint64(fill) & low) * splat
    fill_words = np.full(words_per_line, fill_word, np.uint64)
    candidates = np.empty(width + 1, np.int64)
    for image in range(images):
        for i in range(height):
            middle = (image * height + i) * line_length
            top = middle - line_length if i > 0 else -1
            bottom = middle + line_length if i < height - 1 else -1
            if top >= 0 and bottom >= 0:
                found = _edge_voxels(words, middle // per_word, words, top // per_word, words, bottom // per_word,
                                     words_per_line, per_word, width, low, splat, fill_word, candidates)
            else:
                upper, o0 = (words, top // per_word) if top >= 0 else (fill_words, 0)
                lower, o1 = (words, bottom // per_word) if bottom >= 0 else (fill_words, 0)
                found = _edge_voxels(words, middle // per_word, upper, o0, lower, o1, words_per_line, per_word, width,
                                     low, splat, fill_word, candidates)
            if count + found > capacity:
                capacity = 2 * capacity + found
                records = _grown(records, _FIELDS * capacity)
            for t in range(found):
                k = candidates[t]
                label = np.int64(flat[middle + k])
                count = _emit(records, count, image, i, k, label, 0, keep)
    return _sorted_records(records, count, base, images * base)
