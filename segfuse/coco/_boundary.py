"""Mask boundaries for Boundary IoU (Cheng et al., CVPR 2021), dense and run-length, in numpy.

Convention (boundary-iou-api's ``mask_to_boundary``, as faster-coco-eval 1.8.0 computes
it): the boundary of a mask is the mask minus its erosion by a (2d + 1) x (2d + 1) square,
the image padded with background, so a pixel stays interior only if every pixel within
Chebyshev distance d is inside the image and in the mask. The band width is
``d = max(1, round(dilation_ratio * sqrt(h^2 + w^2)))`` with h, w the image size, rounded
as faster-coco-eval's C++ does (``std::round(x - 1e-10)``: halves round down, so a diagonal
of 175 px gives d = 3 at ratio 0.02 where the Python reference's banker's ``round`` gives
4; the two agree everywhere else). An empty mask has an empty boundary.

``mask_to_boundary`` works on dense arrays (any caller: COCO Boundary AP, semantic Boundary
IoU). ``boundary_runs`` computes the same sets on run-length masks without decoding them:
the erosion is separable, so runs are cut per column and shrunk by d (the vertical
erosion), and the horizontal erosion intersects each column with its 2d neighbours by
O(log d) intersections of shifted run sets (windows of 1, 2, 4, ... columns).
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._ragged import local_index, offsets_from_lengths, segment_ids
from segfuse.coco._runs import Runs


def boundary_dilation(heights, widths, dilation_ratio: float = 0.02) -> np.ndarray:
    """Band width d in pixels for images of size (heights, widths): max(1, round(ratio * diagonal))."""
    h = np.asarray(heights, dtype=np.int64)
    w = np.asarray(widths, dtype=np.int64)
    x = dilation_ratio * np.sqrt((h * h + w * w).astype(np.float64)) - 1e-10
    rounded = np.floor(x)
    rounded += (x - rounded) >= 0.5  # round half away from zero (x - floor(x) is exact)
    return np.maximum(rounded, 1).astype(np.int64)


def mask_to_boundary(mask, dilation_ratio: float = 0.02, dilation: int | None = None) -> np.ndarray:
    """Boundary band of binary masks: the pixels of the mask within distance d of its outside.

    Args:
        mask: (H, W) or (N, H, W) array, nonzero = inside.
        dilation_ratio: d as a fraction of the image diagonal (default 0.02, Boundary IoU's).
        dilation: d in pixels; overrides ``dilation_ratio`` when given (>= 1).

    Returns:
        bool array of the input's shape: mask minus its erosion by a (2d+1)^2 square, with
        everything outside the image counted as background (see the module's Convention).

    Example:
        >>> m = np.zeros((8, 8), bool); m[1:7, 1:7] = True
        >>> mask_to_boundary(m, dilation=1).sum()  # a 6x6 square keeps a 4x4 interior
        20
    """
    array = np.asarray(mask)
    if array.ndim not in (2, 3):
        raise ValueError(f"mask must have shape (H, W) or (N, H, W), got {array.shape}")
    stack = (array[None] if array.ndim == 2 else array).astype(bool, copy=False)
    n, h, w = stack.shape
    if dilation is None:
        d = int(boundary_dilation(h, w, dilation_ratio))
    elif isinstance(dilation, bool) or not isinstance(dilation, (int, np.integer)) or dilation < 1:
        raise ValueError(f"dilation must be an int >= 1, got {dilation!r}")
    else:
        d = int(dilation)
    k = 2 * d + 1
    eroded = np.zeros_like(stack)
    if h >= k and w >= k:
        rows = np.zeros((n, h + 1, w), dtype=np.int32)
        np.cumsum(stack, axis=1, out=rows[:, 1:])
        full_rows = (rows[:, k:] - rows[:, :-k]) == k  # (n, h - 2d, w): column windows all inside
        cols = np.zeros((n, h - k + 1, w + 1), dtype=np.int32)
        np.cumsum(full_rows, axis=2, out=cols[:, :, 1:])
        eroded[:, d : h - d, d : w - d] = (cols[:, :, k:] - cols[:, :, :-k]) == k
    boundary = stack & ~eroded
    return boundary[0] if array.ndim == 2 else boundary


def boundary_runs(runs: Runs, dilation: np.ndarray) -> Runs:
    """Boundaries of N run-length masks with band widths ``dilation`` (N,) int >= 1, as Runs."""
    n = len(runs)
    heights, widths = runs.heights.astype(np.int64), runs.widths.astype(np.int64)
    block = offsets_from_lengths(heights * widths + 1)[:-1]
    owner = segment_ids(runs.offsets)
    starts, ends = runs.starts.astype(np.int64), runs.ends.astype(np.int64)
    seg_start, seg_end, seg_owner = _column_segments(starts, ends, owner, heights)
    d = dilation.astype(np.int64)
    low, high = seg_start + d[seg_owner], seg_end - d[seg_owner]  # vertical erosion inside each column
    keep = low < high
    s, e, o = low[keep] + block[seg_owner[keep]], high[keep] + block[seg_owner[keep]], seg_owner[keep]
    s, e, o = _horizontal_erosion(s, e, o, heights, d, block)
    mask_s, mask_e = starts + block[owner], ends + block[owner]
    b_s, b_e = _difference(mask_s, mask_e, s, e)
    b_owner = np.searchsorted(block, b_s, side="right") - 1
    offsets = offsets_from_lengths(np.bincount(b_owner, minlength=n))
    dtype = runs.starts.dtype
    return Runs((b_s - block[b_owner]).astype(dtype), (b_e - block[b_owner]).astype(dtype), offsets,
                runs.heights, runs.widths)


def _column_segments(starts, ends, owner, heights):
    """Split runs at column boundaries: (start, end, mask) per piece, flat column-major positions."""
    h = heights[owner]
    first, last = starts // h, (ends - 1) // h
    count = last - first + 1
    piece_owner = np.repeat(owner, count)
    column = np.repeat(first, count) + local_index(offsets_from_lengths(count))
    ph = heights[piece_owner]
    return (np.maximum(np.repeat(starts, count), column * ph), np.minimum(np.repeat(ends, count), (column + 1) * ph),
            piece_owner)


def _horizontal_erosion(s, e, o, heights, d, block):
    """Keep the pixels whose 2d + 1 columns centred on them are all set: intersections of shifted copies.

    W_j(x) = V(x) & ... & V(x + j - 1); W_2j = W_j & W_j shifted left by j columns; the
    window of L = 2d + 1 is W_P & W_P shifted by L - P (P the largest power of 2 <= L),
    and the result is that window moved right by d columns.
    """
    length = 2 * d + 1
    power = np.left_shift(1, np.floor(np.log2(length)).astype(np.int64))
    j = 1
    while len(s) and 2 * j <= int(power[o].max()):
        active = power[o] >= 2 * j
        s, e, o = _with_shifted(s, e, o, active, j * heights, block)
        j *= 2
    rest = length - power
    if len(s):
        active = rest[o] > 0
        if active.any():
            s, e, o = _with_shifted(s, e, o, active, rest * heights, block)
    move = d[o] * heights[o]
    return s + move, e + move, o


def _with_shifted(s, e, o, active, shift_per_mask, block):
    """Replace the active runs by their intersection with themselves moved left by ``shift_per_mask`` pixels."""
    sa, ea, oa = s[active], e[active], o[active]
    shift = shift_per_mask[oa]
    moved = sa - shift >= block[oa]  # whole runs: each lies inside one column
    inter_s, inter_e, inter_o = _intersect(sa, ea, oa, sa[moved] - shift[moved], ea[moved] - shift[moved])
    keep = ~active
    s = np.concatenate([s[keep], inter_s])
    e = np.concatenate([e[keep], inter_e])
    o = np.concatenate([o[keep], inter_o])
    order = np.argsort(s, kind="stable")
    return s[order], e[order], o[order]


def _intersect(s1, e1, o1, s2, e2):
    """Intersection of two sorted lists of disjoint intervals (the first with owners ``o1``)."""
    low = np.searchsorted(e2, s1, side="right")
    high = np.searchsorted(s2, e1, side="left")
    count = np.maximum(high - low, 0)
    i = np.repeat(np.arange(len(s1)), count)
    j = np.repeat(low, count) + local_index(offsets_from_lengths(count))
    s, e = np.maximum(s1[i], s2[j]), np.minimum(e1[i], e2[j])
    keep = s < e
    return s[keep], e[keep], o1[i[keep]]


def _difference(s1, e1, s2, e2):
    """Intervals of the first sorted disjoint list minus those of the second (both global positions)."""
    if not len(s2):
        return s1, e1
    gap_s = np.r_[np.iinfo(np.int64).min, e2]
    gap_e = np.r_[s2, np.iinfo(np.int64).max]
    s, e, _ = _intersect(gap_s, gap_e, np.zeros(len(gap_s), np.int64), s1, e1)
    order = np.argsort(s, kind="stable")
    return s[order], e[order]
