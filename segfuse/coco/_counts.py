"""pycocotools' run-length counts for a batch of masks: string codec, dense codec, area, box.

Convention: a mask of height h and width w is flattened column-major (pixel (y, x) sits at
``x * h + y``); its counts alternate runs of 0s and 1s and start with a run of 0s (a mask
whose first pixel is set starts with a count of 0). The compressed string is pycocotools'
LEB128-like code: 5 data bits per character, bit 0x20 = "more follows", characters
48..111, and count i > 2 stored as its difference to count i - 2. Every function here
handles the whole batch with numpy; none loops over masks in Python except to split bytes.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from segfuse.coco._ragged import local_index, offsets_from_lengths, segment_ids, segment_sums, segmented_cumsum

_MAX_CHARS = 12


class Counts(NamedTuple):
    """A batch of N masks as run-length counts.

    counts: (C,) int64 flat counts; offsets: (N + 1,) int64 (mask i owns
    ``counts[offsets[i]:offsets[i + 1]]``); heights, widths: (N,) int64.
    """

    counts: np.ndarray
    offsets: np.ndarray
    heights: np.ndarray
    widths: np.ndarray

    def __len__(self) -> int:
        return len(self.heights)


def bad_totals(counts: Counts) -> np.ndarray:
    """Indices of masks whose counts have a negative entry or do not sum to h * w."""
    totals = segment_sums(counts.counts, counts.offsets)
    negative = segment_sums((counts.counts < 0).astype(np.int64), counts.offsets) > 0
    return np.flatnonzero((totals != counts.heights * counts.widths) | negative)


def check_totals(counts: Counts, what: str = "RLE") -> None:
    """Raise ValueError unless every mask's counts are >= 0 and sum to h * w."""
    bad = bad_totals(counts)
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"malformed {what} #{i}: {total_message(counts, i)}")


def total_message(counts: Counts, i: int) -> str:
    h, w = int(counts.heights[i]), int(counts.widths[i])
    own = counts.counts[counts.offsets[i] : counts.offsets[i + 1]]
    return f"run lengths must be >= 0 and sum to h*w = {h}*{w} = {h * w}, got sum {int(own.sum())}"


def decode_strings(strings: Sequence[bytes], heights, widths) -> Counts:
    """Decode pycocotools' compressed count strings (bytes) into a Counts batch."""
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=len(strings))
    chars = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - 48
    if len(chars) and (chars.min() < 0 or chars.max() > 63):
        raise ValueError("malformed compressed RLE: characters must be in '0'..'o' (48..111)")
    value_end = (chars & 0x20) == 0
    string_last = offsets_from_lengths(lengths)[1:][lengths > 0] - 1
    if not value_end[string_last].all():
        raise ValueError("malformed compressed RLE: string ends in the middle of a count")
    values = _decode_values(chars, value_end)
    ends_before = np.r_[0, np.cumsum(value_end)]
    string_offsets = offsets_from_lengths(lengths)
    per_string = ends_before[string_offsets[1:]] - ends_before[string_offsets[:-1]]
    offsets = offsets_from_lengths(per_string)
    return Counts(_undo_deltas(values, offsets), offsets, _as_int(heights), _as_int(widths))


def _decode_values(chars: np.ndarray, value_end: np.ndarray) -> np.ndarray:
    last = np.flatnonzero(value_end)
    first = np.r_[0, last[:-1] + 1].astype(np.int64)[: len(last)]
    n_chars = last - first + 1
    if len(n_chars) and n_chars.max() > _MAX_CHARS:
        raise ValueError(f"malformed compressed RLE: a count longer than {_MAX_CHARS} characters")
    shift = 5 * (np.arange(len(chars), dtype=np.int64) - np.repeat(first, n_chars))
    parts = (chars & 0x1F) << shift
    values = np.add.reduceat(parts, first) if len(first) else np.zeros(0, dtype=np.int64)
    negative = (chars[last] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * n_chars[negative])
    return values


def _undo_deltas(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """counts[m] = values[m] + counts[m - 2] for m > 2 (pycocotools' quirk: not for m = 2)."""
    local = local_index(offsets)
    owner = segment_ids(offsets)
    odd = (local & 1) == 1
    chained = odd | (local >= 2)
    out = values.copy()
    for chain in (odd, chained & ~odd):
        part = np.cumsum(np.where(chain, values, 0))
        base = np.zeros(len(offsets) - 1, dtype=np.int64)
        nonempty = offsets[1:] > offsets[:-1]
        base[nonempty] = (part - np.where(chain, values, 0))[offsets[:-1][nonempty]]
        out = np.where(chain, part - base[owner], out)
    return out


def encode_strings(counts: Counts) -> list[bytes]:
    """Encode a Counts batch as pycocotools' compressed strings (one bytes object per mask)."""
    values = counts.counts.copy()
    local = local_index(counts.offsets)
    delta = local > 2
    values[delta] -= counts.counts[np.flatnonzero(delta) - 2]
    chars, n_chars = _encode_values(values)
    flat = chars[np.arange(chars.shape[1]) < n_chars[:, None]].tobytes()
    ends = offsets_from_lengths(segment_sums(n_chars, counts.offsets))
    return [flat[ends[i] : ends[i + 1]] for i in range(len(counts))]


def _encode_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chars = np.zeros((len(values), _MAX_CHARS), dtype=np.uint8)
    n_chars = np.zeros(len(values), dtype=np.int64)
    active = np.arange(len(values))
    rest = values.copy()
    for k in range(_MAX_CHARS):
        if not len(active):
            break
        c = rest[active] & 0x1F
        rest[active] >>= 5
        more = np.where((c & 0x10) != 0, rest[active] != -1, rest[active] != 0)
        chars[active, k] = (c | (more.astype(np.int64) << 5)) + 48
        n_chars[active] += 1
        active = active[more]
    return chars, n_chars


def encode_dense(masks: np.ndarray) -> Counts:
    """(N, h, w) integer masks -> Counts; a run ends wherever the value changes (as pycocotools)."""
    n, h, w = masks.shape
    flat = np.ascontiguousarray(masks.transpose(0, 2, 1)).reshape(n, h * w)
    change = np.empty(flat.shape, dtype=bool)
    if h * w:
        change[:, 0] = flat[:, 0] != 0
        np.not_equal(flat[:, 1:], flat[:, :-1], out=change[:, 1:])
    rows, cols = np.nonzero(change)
    per_mask = np.bincount(rows, minlength=n) + 1
    offsets = offsets_from_lengths(per_mask)
    ends = np.full(offsets[-1], h * w, dtype=np.int64)
    ends[np.arange(len(rows)) + rows] = cols
    starts = np.zeros_like(ends)
    starts[1:] = ends[:-1]
    starts[offsets[:-1]] = 0
    return Counts(ends - starts, offsets, np.full(n, h, dtype=np.int64), np.full(n, w, dtype=np.int64))


def decode_dense(counts: Counts) -> np.ndarray:
    """Counts of N masks of one size -> (h, w, N) uint8 Fortran-ordered array (pycocotools' layout)."""
    check_totals(counts)
    n = len(counts)
    h, w = (int(counts.heights[0]), int(counts.widths[0])) if n else (0, 0)
    if n and ((counts.heights != h).any() or (counts.widths != w).any()):
        raise ValueError("decode needs masks of one size, got several (h, w)")
    bits = (local_index(counts.offsets) % 2).astype(np.uint8)
    flat = np.repeat(bits, counts.counts)
    return flat.reshape(n, w, h).transpose(2, 1, 0)


def areas(counts: Counts) -> np.ndarray:
    """(N,) int64 number of set pixels: the sum of the odd-position counts."""
    odd = np.where(local_index(counts.offsets) % 2 == 1, counts.counts, 0)
    return segment_sums(odd, counts.offsets)


def boxes(counts: Counts) -> np.ndarray:
    """(N, 4) float64 [x, y, w, h] boxes exactly as pycocotools' rleToBbox computes them.

    Convention: a run of 1s that crosses a column boundary makes the box span all rows
    (rows 0..h-1), and a mask with fewer than two counts gets [0, 0, 0, 0].
    """
    n = len(counts)
    out = np.zeros((n, 4), dtype=np.float64)
    local = local_index(counts.offsets)
    owner = segment_ids(counts.offsets)
    used_len = (np.diff(counts.offsets) // 2) * 2
    keep = local < used_len[owner]
    if not keep.any():
        return out
    local, owner = local[keep], owner[keep]
    cumulative = segmented_cumsum(counts.counts[keep], owner)
    h = counts.heights[owner]
    t = (cumulative - local % 2) & 0xFFFFFFFF
    y, x = t % h, t // h
    even = np.flatnonzero(local % 2 == 0)
    spans = np.zeros(n, dtype=bool)
    crossing = x[even + 1] > x[even]
    np.logical_or.at(spans, owner[even], crossing)
    has = used_len > 0
    first = offsets_from_lengths(used_len[has])[:-1]
    xs = np.minimum(np.minimum.reduceat(x, first), counts.widths[has])
    xe = np.maximum(np.maximum.reduceat(x, first), 0)
    ys = np.minimum(np.minimum.reduceat(y, first), counts.heights[has])
    ye = np.maximum(np.maximum.reduceat(y, first), 0)
    ys = np.where(spans[has], 0, ys)
    ye = np.where(spans[has], counts.heights[has] - 1, ye)
    out[has] = np.stack([xs, ys, xe - xs + 1, ye - ys + 1], axis=1)
    return out


def _as_int(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)
