"""Masks as runs of set pixels: area, box, union and pairwise intersection for a batch.

Convention: mask i of height h and width w is the union of half-open runs
``[starts[r], ends[r])`` of column-major pixel indices (``x * h + y``), sorted, disjoint,
non-empty, for r in ``[offsets[i], offsets[i + 1])``. This is the evaluation's working
form: the intersection of two masks is the sum over one mask's runs of the other mask's
coverage, found with ``searchsorted`` over chunks of many pairs at once, so no mask is
ever decoded to pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segfuse.coco._counts import Counts
from segfuse.coco._ragged import (
    chunk_bounds,
    gather_segments,
    local_index,
    offsets_from_lengths,
    segment_ids,
    segment_sums,
)

CHUNK_RUNS = 1 << 18


class Runs(NamedTuple):
    """N masks as runs of 1s: starts, ends (R,) int64 (or int32 when every h*w < 2^31); offsets (N + 1,) int64;
    heights, widths (N,) int64."""

    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray
    heights: np.ndarray
    widths: np.ndarray

    def __len__(self) -> int:
        return len(self.heights)


def from_counts(counts: Counts) -> Runs:
    """Runs of the odd-position (set) counts; empty runs are dropped."""
    first = counts.offsets[:-1]
    ends = np.cumsum(counts.counts)
    odd = np.zeros(len(ends), dtype=bool)
    odd[1::2] = True
    odd ^= np.repeat((first & 1).astype(bool), np.diff(counts.offsets))
    keep = np.flatnonzero(odd & (counts.counts > 0))
    offsets = np.searchsorted(keep, counts.offsets)
    before = np.r_[0, ends][first]
    run_ends = ends[keep] - np.repeat(before, np.diff(offsets))
    return Runs(run_ends - counts.counts[keep], run_ends, offsets, counts.heights, counts.widths)


def to_counts(runs: Runs) -> Counts:
    """Canonical counts: alternating 0-run, 1-run, ..., no empty run except a leading 0."""
    n_runs = np.diff(runs.offsets)
    total = runs.heights * runs.widths
    owner = segment_ids(runs.offsets)
    last_end = np.zeros(len(runs), dtype=np.int64)
    has = n_runs > 0
    last_end[has] = runs.ends[runs.offsets[1:][has] - 1]
    tail = (~has) | (last_end < total)
    per_mask = 2 * n_runs + tail
    offsets = offsets_from_lengths(per_mask)
    out = np.zeros(offsets[-1], dtype=np.int64)
    slot = offsets[owner] + 2 * local_index(runs.offsets)
    previous_end = np.zeros(len(runs.starts), dtype=np.int64)
    previous_end[1:] = runs.ends[:-1]
    previous_end[runs.offsets[:-1][has]] = 0
    out[slot] = runs.starts - previous_end
    out[slot + 1] = runs.ends - runs.starts
    out[offsets[1:][tail] - 1] = (total - last_end)[tail]
    return Counts(out, offsets, runs.heights, runs.widths)


def concatenate(parts: list, heights: np.ndarray, widths: np.ndarray) -> Runs:
    """Runs of the masks of ``parts`` in order, with the given (N,) heights and widths."""
    if not parts:
        return Runs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64), heights, widths)
    if len(parts) == 1:
        return Runs(parts[0].starts, parts[0].ends, parts[0].offsets, heights, widths)
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    return Runs(np.concatenate([p.starts for p in parts]), np.concatenate([p.ends for p in parts]),
                offsets_from_lengths(lengths), heights, widths)


def areas(runs: Runs) -> np.ndarray:
    """(N,) int64 number of set pixels."""
    return segment_sums(runs.ends - runs.starts, runs.offsets)


def boxes(runs: Runs) -> np.ndarray:
    """(N, 4) float64 tight [x, y, w, h] boxes (a run crossing columns spans all rows, as in
    pycocotools); [0, 0, 0, 0] for an empty mask. Computed ``CHUNK_RUNS`` runs at a time."""
    out = np.zeros((len(runs), 4), dtype=np.float64)
    bounds = chunk_bounds(np.diff(runs.offsets), CHUNK_RUNS)
    for a, b in zip(bounds[:-1], bounds[1:]):
        first, stop = runs.offsets[a], runs.offsets[b]
        out[a:b] = _chunk_boxes(runs.starts[first:stop], runs.ends[first:stop], runs.offsets[a : b + 1] - first,
                                runs.heights[a:b])
    return out


def _chunk_boxes(starts, ends, offsets, heights) -> np.ndarray:
    """Boxes of one chunk; columns by float division, exact as floor(a / h) = a // h for a + h < 2^53.

    A run starting in column x0 at row y0 ends at row y0 + length - 1 of that column unless
    it crosses into the next one, which is exactly when that row is >= h; so the largest
    such row over a mask's runs both gives its bottom and tells whether it spans all rows.
    """
    out = np.zeros((len(heights), 4), dtype=np.float64)
    lengths = np.diff(offsets)
    has = lengths > 0
    if not has.any():
        return out
    h = np.repeat(heights.astype(np.float64), lengths)
    x0 = np.floor(starts / h)
    top = starts - x0 * h
    bottom = top + (ends - starts - 1)
    first, last = offsets[:-1][has], offsets[1:][has] - 1
    mask_h = heights[has].astype(np.float64)
    ys, ye = np.minimum.reduceat(top, first), np.maximum.reduceat(bottom, first)
    spans = ye >= mask_h
    ys, ye = np.where(spans, 0, ys), np.where(spans, mask_h - 1, ye)
    xs, xe = x0[first], np.floor((ends[last] - 1) / mask_h)
    out[has] = np.stack([xs, ys, xe - xs + 1, ye - ys + 1], axis=1)
    return out


def union(runs: Runs, group: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> Runs:
    """Union of the masks of each group (``group`` (N,) sorted ids in [0, G)); masks of a group
    share the group's (h, w). Adjacent runs merge, so the result is canonical."""
    n_groups = len(heights)
    block = offsets_from_lengths(heights * widths + 1)[:-1]
    mask_owner = segment_ids(runs.offsets)
    shift = block[group[mask_owner]]
    starts, ends = runs.starts + shift, runs.ends + shift
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends) if len(ends) else ends
    new = np.ones(len(starts), dtype=bool)
    if len(starts):
        new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(starts))[: len(first)] - 1
    merged_group = np.searchsorted(block, starts[first], side="right") - 1
    offsets = offsets_from_lengths(np.bincount(merged_group, minlength=n_groups))
    shift = block[merged_group]
    return Runs(starts[first] - shift, reach[last] - shift, offsets, heights, widths)


def pair_intersections(a: Runs, ia: np.ndarray, b: Runs, ib: np.ndarray) -> np.ndarray:
    """(P,) int64 |A[ia[p]] & B[ib[p]]| for P pairs of masks of equal size.

    Each pair is walked over the runs of whichever mask has fewer of them.
    """
    out = np.zeros(len(ia), dtype=np.int64)
    walk_b = np.diff(b.offsets)[ib] <= np.diff(a.offsets)[ia]
    out[walk_b] = _covered(a, ia[walk_b], b, ib[walk_b])
    out[~walk_b] = _covered(b, ib[~walk_b], a, ia[~walk_b])
    return out


def _covered(ref: Runs, iref: np.ndarray, walk: Runs, iwalk: np.ndarray) -> np.ndarray:
    """Sum over the runs of walk[iwalk[p]] of the pixels ref[iref[p]] sets inside them.

    Pairs are taken in ascending ``iref`` (so searchsorted queries ascend) and in chunks of
    about ``CHUNK_RUNS`` runs, each against a table of only the ref masks it needs.
    """
    out = np.zeros(len(iref), dtype=np.int64)
    order = np.argsort(iref, kind="stable")
    weight = np.diff(walk.offsets)[iwalk[order]] + np.diff(ref.offsets)[iref[order]]
    bounds = chunk_bounds(weight, CHUNK_RUNS)
    for a, b in zip(bounds[:-1], bounds[1:]):
        out[order[a:b]] = _covered_chunk(ref, iref[order[a:b]], walk, iwalk[order[a:b]])
    return out


def _covered_chunk(ref: Runs, iref: np.ndarray, walk: Runs, iwalk: np.ndarray) -> np.ndarray:
    """``_covered`` for pairs sorted by ``iref``: ref masks are laid end to end (gaps of one pixel)."""
    new = np.r_[True, iref[1:] != iref[:-1]]
    masks, local = iref[new], np.cumsum(new) - 1
    flat, owner = gather_segments(ref.offsets, masks)
    block = offsets_from_lengths(ref.heights[masks] * ref.widths[masks] + 1)[:-1]
    starts = np.r_[-1, ref.starts[flat] + block[owner]]
    lengths = np.r_[0, ref.ends[flat] - ref.starts[flat]]
    before = np.cumsum(lengths) - lengths
    runs, pair = gather_segments(walk.offsets, iwalk)
    shift = block[local[pair]]

    def coverage(position):
        k = np.searchsorted(starts, position, side="right") - 1
        return before[k] + np.minimum(position - starts[k], lengths[k])

    inside = coverage(walk.ends[runs] + shift) - coverage(walk.starts[runs] + shift)
    return np.bincount(pair, weights=inside, minlength=len(iref)).astype(np.int64)


def take(runs: Runs, which: np.ndarray) -> Runs:
    """The masks ``which`` (int indices, any order, repeats allowed) as a new Runs."""
    flat, _ = gather_segments(runs.offsets, which)
    lengths = runs.offsets[which + 1] - runs.offsets[which]
    return Runs(runs.starts[flat], runs.ends[flat], offsets_from_lengths(lengths), runs.heights[which], runs.widths[which])
