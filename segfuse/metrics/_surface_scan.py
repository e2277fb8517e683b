"""DeepMind's surface elements of every class in one compiled pass over the class maps (numba, optional).

:mod:`segfuse.metrics._surface_points` calls :func:`corner_points` where numba is installed;
its numpy code computes the same arrays (``tests/metrics/test_surface.py`` checks that they
are equal). The corners are visited line by line along the last axis: a corner line of
``(image, i)`` (2D) or ``(image, i, j)`` (3D) lies between the 2 (4) voxel lines ``i - 1, i``
(times ``j - 1, j``). The lines are read as 8-byte words: where the words of all of them
are equal and hold one label, the corners inside the word are uniform and skipped without
looking at their labels; the others get their labels, and a point per kept label with its
neighbour code. Points come out sorted by (image, class), then position, by a stable
counting sort.

Convention:
    As :mod:`segfuse.metrics._surface_points`: corner ``k`` of a line sits between voxels
    ``k - 1`` and ``k``; slot s of its block (C order over ``{0, 1}**D``) is the voxel at the
    corner index minus ``1 - offset`` per axis; voxels outside the image hold ``fill``, a label
    that is no kept class; the code sums ``2 ** (2**D - 1 - s)`` over the slots holding the
    point's label. The map's last axis may be padded to ``line_length`` (a whole number of
    words) with ``fill``; ``width`` is its true length.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from segfuse.metrics._surface_sparse import _grown, _sorted_by_key


@njit(cache=True, nogil=True, inline="always")
def _label(flat, offset, k, width, fill):
    """The label of voxel k of the line starting at ``offset`` (-1: outside), ``fill`` outside the image."""
    if offset < 0 or k < 0 or k >= width:
        return fill
    return flat[offset + k]


@njit(cache=True, nogil=True, inline="always")
def _corner(flat, offsets, k, width, fill, keep, block, seen, seen_codes, coords, labels, codes, count, image, i, j,
            dims, inside):
    """Points of corner k of the current line (none where its block is uniform); returns the new count.

    ``inside``: all the line's voxel lines lie in the image (then only k decides what is outside).
    """
    lines = offsets.shape[0]
    slots = 2 * lines
    if inside and 0 < k < width:
        for line in range(lines):
            block[2 * line] = flat[offsets[line] + k - 1]
            block[2 * line + 1] = flat[offsets[line] + k]
    else:
        for line in range(lines):
            block[2 * line] = _label(flat, offsets[line], k - 1, width, fill)
            block[2 * line + 1] = _label(flat, offsets[line], k, width, fill)
    distinct = 0  # the labels of the block in order of first slot, and their codes
    for s in range(slots):
        label = block[s]
        bit = 1 << (slots - 1 - s)
        found = False
        for t in range(distinct):
            if seen[t] == label:
                seen_codes[t] |= bit
                found = True
                break
        if not found:
            seen[distinct] = label
            seen_codes[distinct] = bit
            distinct += 1
    if distinct == 1:
        return count
    for t in range(distinct):
        label = seen[t]
        if label < 0 or label >= keep.shape[0]:
            raise IndexError("a label outside [0, num_classes]: validate the maps (validate_args=True)")
        if not keep[label]:
            continue
        coords[count, 0] = image
        coords[count, 1] = i
        if dims == 3:
            coords[count, 2] = j
        coords[count, dims] = k
        labels[count] = label
        codes[count] = seen_codes[t]
        count += 1
    return count


@njit(cache=True, nogil=True, inline="always")
def _shifted(word, previous, bits):
    """The word moved up by one label (``bits`` wide), the previous word's last label in its first place."""
    return ((word << (bits - 1)) << 1) | (previous >> (64 - bits))


@njit(cache=True, nogil=True, inline="always")
def _candidates(w0, o0, w1, o1, w2, o2, w3, o3, words_per_line, per_word, width, splat, fill_word, out):
    """The mixed corners of one line (0 .. width), in increasing order; returns their count.

    ``wl[ol + w]`` is word w of line l (the maps' words, or a line of ``fill``). Corner k is
    mixed iff the labels of a line differ from line 0's at k or k - 1, or line 0's labels at
    k - 1 and k differ: per word, a mask of the labels that are not zero in those differences.
    """
    bits = 64 // per_word
    found = 0
    previous = fill_word
    previous_difference = np.uint64(0)
    for w in range(words_per_line + 1):
        if w < words_per_line:
            word = w0[o0 + w]
            difference = (word ^ w1[o1 + w]) | (word ^ w2[o2 + w]) | (word ^ w3[o3 + w])
        elif line_is_full(width, per_word, words_per_line):
            word = fill_word  # the corner at `width`, after the last word
            difference = np.uint64(0)
        else:
            break
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
def line_is_full(width, per_word, words_per_line):
    """Whether the line has no padding (its corner ``width`` lies after its last word)."""
    return width == per_word * words_per_line


@njit(cache=True, nogil=True)
def corner_points(flat, words, shape, line_length, per_word, low, splat, fill, keep, base):
    """Surfels of the kept labels of a batch of 2D or 3D maps, sorted by (image, class), then position.

    ``flat``: the maps ``shape`` = (N, *S) in C order, the last axis padded to ``line_length``
    (a multiple of ``per_word``) with ``fill``; ``words``: the same memory as uint64, ``per_word``
    labels per word; ``low`` masks a word's first label, ``splat`` (uint64) repeats it over the
    word; ``keep`` (num_classes + 1,) bool; ``base`` = num_classes + 1.
    Returns ``(coords (m, 1 + D), labels (m,), codes (m,))``, int64.
    """
    dims = shape.shape[0] - 1
    images = shape[0]
    size0 = shape[1]
    size1 = shape[2] if dims == 3 else 1
    width = shape[dims]
    lines = 2 if dims == 2 else 4
    slots = 2 * lines
    capacity = 1024
    coords = np.empty((capacity, dims + 1), np.int64)
    labels = np.empty(capacity, np.int64)
    codes = np.empty(capacity, np.int64)
    count = 0
    block = np.empty(slots, np.int64)
    seen = np.empty(slots, np.int64)
    seen_codes = np.empty(slots, np.int64)
    offsets = np.empty(lines, np.int64)
    words_per_line = line_length // per_word
    fill_word = (np.uint64(fill) & low) * splat
    fill_words = np.full(words_per_line, fill_word, np.uint64)
    candidates = np.empty(width + 2, np.int64)  # corners of one line that may be mixed
    for image in range(images):
        for i in range(size0 + 1):
            for j in range(size1 + 1 if dims == 3 else 1):
                for line in range(lines):
                    r = i - 1 + (line >> 1) if dims == 3 else i - 1 + line
                    s = j - 1 + (line & 1) if dims == 3 else 0
                    inside = 0 <= r < size0 and 0 <= s < size1
                    offsets[line] = ((image * size0 + r) * size1 + s) * line_length if inside else -1
                # the lines' words (2D: lines 2 and 3 repeat 0 and 1); one array where all lines are inside
                o0, o1 = offsets[0] // per_word, offsets[1] // per_word
                o2, o3 = (offsets[2] // per_word, offsets[3] // per_word) if dims == 3 else (o0, o1)
                if min(o0, o1, o2, o3) >= 0:
                    found = _candidates(words, o0, words, o1, words, o2, words, o3, words_per_line, per_word, width,
                                        splat, fill_word, candidates)
                else:
                    w0, o0 = (words, o0) if o0 >= 0 else (fill_words, 0)
                    w1, o1 = (words, o1) if o1 >= 0 else (fill_words, 0)
                    w2, o2 = (words, o2) if o2 >= 0 else (fill_words, 0)
                    w3, o3 = (words, o3) if o3 >= 0 else (fill_words, 0)
                    found = _candidates(w0, o0, w1, o1, w2, o2, w3, o3, words_per_line, per_word, width, splat,
                                        fill_word, candidates)
                if count + slots * found > capacity:
                    capacity = 2 * capacity + slots * found
                    coords = _grown(coords, capacity)
                    labels = _grown(labels, capacity)
                    codes = _grown(codes, capacity)
                inside = offsets.min() >= 0
                for t in range(found):
                    count = _corner(flat, offsets, candidates[t], width, fill, keep, block, seen, seen_codes, coords,
                                    labels, codes, count, image, i, j, dims, inside)
    return _sorted_by_key(coords, labels, codes, count, base, images * base)
