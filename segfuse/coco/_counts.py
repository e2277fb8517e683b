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
    wrong = segment_sums(counts.counts, counts.offsets) != counts.heights * counts.widths
    if len(counts.counts) and counts.counts.min() < 0:
        wrong |= segment_sums((counts.counts < 0).astype(np.int64), counts.offsets) > 0
    return np.flatnonzero(wrong)


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
    """Decode pycocotools' compressed count strings (bytes) into a Counts batch.

    One pass over all strings' bytes at once: a count ends at every character below
    ``'P'`` (continuation bit 0x20 clear), so counts and strings line up without a loop.
    """
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    return decode_joined(np.frombuffer(b"".join(strings), dtype=np.uint8), lengths, heights, widths)


def decode_joined(chars: np.ndarray, lengths: np.ndarray, heights, widths) -> Counts:
    """``decode_strings`` of the strings laid end to end in ``chars`` (uint8) with (N,) ``lengths``."""
    if len(chars) and (chars.min() < 48 or chars.max() > 111):
        raise ValueError("malformed compressed RLE: characters must be in '0'..'o' (48..111)")
    string_offsets = offsets_from_lengths(lengths)
    last = np.flatnonzero(chars < 48 + 0x20)
    if (chars[string_offsets[1:][lengths > 0] - 1] >= 48 + 0x20).any():
        raise ValueError("malformed compressed RLE: string ends in the middle of a count")
    offsets = np.searchsorted(last, string_offsets)
    return Counts(_undo_deltas(_decode_values(chars, last), offsets), offsets, _as_int(heights), _as_int(widths))


def _decode_values(chars: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Signed values of the character groups ending at ``last`` (Horner over the few long groups)."""
    n_chars = np.diff(last, prepend=-1)
    if len(n_chars) and n_chars.max() > _MAX_CHARS:
        raise ValueError(f"malformed compressed RLE: a count longer than {_MAX_CHARS} characters")
    values = chars[last].astype(np.int64) - 48
    values ^= 0x10  # sign-extend the most significant 5-bit group: (v ^ 16) - 16
    values -= 0x10
    long = np.flatnonzero(n_chars > 1)
    for k in range(1, int(n_chars.max(initial=1))):
        long = long[n_chars[long] > k]
        values[long] = (values[long] << 5) | ((chars[last[long] - k] - 48) & 0x1F)
    return values


def _undo_deltas(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """counts[m] = values[m] + counts[m - 2] for m > 2 (pycocotools' quirk: not for m = 2).

    ``chain[i] = values[i] + chain[i - 2]`` over the flat array (two strided cumsums); count
    m > 0 of a mask starting at o is ``chain[i]`` minus the chain just before its own run
    of same-parity counts: ``chain[o - 1]`` for odd m, ``chain[o]`` for even m.
    """
    chain = np.empty(len(values) + 2, dtype=np.int64)
    chain[:2] = 0
    np.cumsum(values[0::2], out=chain[2::2])
    np.cumsum(values[1::2], out=chain[3::2])
    first, stop = offsets[:-1], offsets[1:]
    padded = np.r_[chain, 0]  # chain[i + 2] is the chain at i; padded also serves o = len(values)
    odd_start = (first & 1) == 1
    even_base = np.where(odd_start, padded[first + 1], padded[first + 2])
    odd_base = np.where(odd_start, padded[first + 2], padded[first + 1])
    counts = np.empty_like(values)
    counts[0::2] = chain[2::2] - np.repeat(even_base, (stop + 1) // 2 - (first + 1) // 2)
    counts[1::2] = chain[3::2] - np.repeat(odd_base, stop // 2 - first // 2)
    nonempty = first[stop > first]
    counts[nonempty] = values[nonempty]
    return counts


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
