"""Index helpers for ragged arrays: many variable-length segments stored flat with offsets.

Convention: segment ``i`` of a flat array occupies ``[offsets[i], offsets[i + 1])``;
``offsets`` is int64 of length ``n + 1`` starting at 0. Empty segments are allowed.
"""

from __future__ import annotations

import numpy as np


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """(n,) lengths -> (n + 1,) int64 offsets."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """(total,) int64: the segment each flat element belongs to."""
    lengths = np.diff(offsets)
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def local_index(offsets: np.ndarray) -> np.ndarray:
    """(total,) int64: each element's position inside its own segment."""
    lengths = np.diff(offsets)
    return np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)


def gather_segments(offsets: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat element indices of segments ``which`` (in that order) and, per element, its slot in ``which``."""
    which = np.asarray(which, dtype=np.int64)
    begin = offsets[which]
    return spans(begin, offsets[which + 1] - begin)


def spans(begin: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``begin[i] .. begin[i] + lengths[i] - 1`` of every span laid end to end, and each one's span i."""
    owner = np.arange(len(begin), dtype=np.int64).repeat(lengths)
    ends = lengths.cumsum()
    flat = np.arange(ends[-1] if len(ends) else 0, dtype=np.int64) + (begin - ends + lengths).repeat(lengths)
    return flat, owner


def segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n,) sums of each segment of ``values`` (exact for integers, 0 for empty segments)."""
    cumulative = np.zeros(len(values) + 1, dtype=np.result_type(values.dtype, np.int64))
    np.cumsum(values, out=cumulative[1:])
    return cumulative[offsets[1:]] - cumulative[offsets[:-1]]


def segmented_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum that restarts where ``segment`` (sorted ids) changes."""
    return restart_cumsum(values, *run_starts(segment))


def chunk_bounds(weights: np.ndarray, size: int) -> np.ndarray:
    """Boundaries ``b`` (ascending, from 0 to n) splitting n items into consecutive groups
    ``[b[j], b[j + 1])`` of about ``size`` total weight (an item heavier than ``size`` stands alone)."""
    total = np.cumsum(weights)
    last = int(total[-1]) if len(total) else 0
    cuts = np.searchsorted(total, np.arange(1, last // size + 1) * size, side="right")
    return np.unique(np.r_[0, cuts, len(weights)]).astype(np.int64)


def run_starts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal consecutive values."""
    if not len(values):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.empty(len(values), dtype=bool)
    new[0] = True
    np.not_equal(values[1:], values[:-1], out=new[1:])
    first = new.nonzero()[0]
    ends = np.empty_like(first)
    ends[:-1] = first[1:]
    ends[-1] = len(values)
    return first, ends - first


def run_bounds(values: np.ndarray) -> np.ndarray:
    """Start of each run of equal consecutive values, then ``len(values)``."""
    return np.concatenate((run_starts(values)[0], [len(values)]))


def restart_cumsum(values: np.ndarray, first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum that restarts at each run (``run_starts``' ``first`` and ``length``)."""
    total = values.cumsum()
    if len(total):
        total -= (total[first] - values[first]).repeat(length)
    return total
