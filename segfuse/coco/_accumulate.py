"""Precision / recall arrays of pycocotools' accumulate, vectorised over categories and areas.

Convention (pycocotools): for category k, area range a and cap m, the detections of rank
< m in their image are sorted by descending score (stable: ties keep image order, then
rank); a detection matched to a non-ignored ground truth is a TP, an unmatched one a FP,
and one matched to an ignored ground truth - or unmatched with its area outside the range -
counts as neither (but stays in the ranking). Recall = TP / #non-ignored GT, precision =
TP / (TP + FP + eps) made non-increasing from the right, sampled at the first detection
reaching each of the 101 recall thresholds (0 past the last). Categories without a
non-ignored ground truth get -1 (precision and recall). As pycocotools, a match to a
ground truth whose id is 0 counts as unmatched.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from segfuse.coco._ragged import offsets_from_lengths

CHUNK_ELEMENTS = 1 << 19


def accumulate(tp: np.ndarray, fp: np.ndarray, dt_category: np.ndarray, order: np.ndarray, dt_rank: np.ndarray,
               scores: np.ndarray, n_positive: np.ndarray, max_dets, recall_thresholds: np.ndarray):
    """Precision (T, R, K, A, M), recall (T, K, A, M) and scores (T, R, K, A, M) arrays.

    Args:
        tp, fp: (A, T, D) bool per detection.
        dt_category: (D,) category index; order: (D,) detections sorted by (category,
            -score, image, rank); dt_rank: (D,); scores: (D,).
        n_positive: (K, A) number of non-ignored ground truths.

    The arrays are transposed views of contiguous (M, A, T, R, K) / (M, A, T, K) blocks.
    """
    n_areas, n_thr, _ = tp.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    precision = np.empty((len(max_dets), n_areas, n_thr, n_rec, n_cat))
    score_at = np.empty_like(precision)
    recall = np.empty((len(max_dets), n_areas, n_thr, n_cat))
    need = np.ascontiguousarray(_counts_needed(np.maximum(n_positive, 1).T, recall_thresholds).transpose(0, 2, 1))
    for m, max_det in enumerate(max_dets):
        chosen = order[dt_rank[order] < max_det]
        precision[m], score_at[m], recall[m] = _curves(tp[:, :, chosen], fp[:, :, chosen], dt_category[chosen],
                                                       scores[chosen], n_positive, need)
    for a, absent in enumerate((n_positive == 0).T):
        precision[:, a, ..., absent] = -1
        score_at[:, a, ..., absent] = -1
        recall[:, a, ..., absent] = -1
    return precision.transpose(2, 3, 4, 1, 0), recall.transpose(2, 3, 1, 0), score_at.transpose(2, 3, 4, 1, 0)


def _curves(tp, fp, category, scores, n_positive, need):
    """One cap: q, s (A, T, R, K) and recall (A, T, K) for detections sorted by category.

    ``need`` (A, K, R): TP counts reaching each recall threshold (``_counts_needed``).
    Rows (area, threshold) are handled in blocks of about ``CHUNK_ELEMENTS`` flags.
    """
    n_areas, n_thr, n = tp.shape
    n_cat, n_rec = n_positive.shape[0], need.shape[2]
    rows = n_areas * n_thr
    offsets = offsets_from_lengths(np.bincount(category, minlength=n_cat))
    positives = np.repeat(np.maximum(n_positive, 1).T[:, None, :], n_thr, axis=1).reshape(rows, n_cat)
    q, s = np.empty((rows, n_rec, n_cat)), np.empty((rows, n_rec, n_cat))
    recall = np.empty((rows, n_cat))
    tp, fp = tp.reshape(rows, n), fp.reshape(rows, n)
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for a in range(0, rows, step):
        b = min(a + step, rows)
        flags = Flags(tp[a:b], _segment_cumsum(tp[a:b], offsets), _segment_cumsum(fp[a:b], offsets))
        _row_block(flags, category, offsets, scores, positives[a:b], need[np.arange(a, b) // n_thr],
                   q[a:b], s[a:b], recall[a:b])
    shape = (n_areas, n_thr, n_rec, n_cat)
    return q.reshape(shape), s.reshape(shape), recall.reshape(n_areas, n_thr, n_cat)


def _counts_needed(positives: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray:
    """(B, R, K) smallest integer c with the float ``c / positives`` (B, K) >= each recall threshold.

    So the first detection with recall >= r (pycocotools' searchsorted(rc, r, "left")) is
    the first whose TP count reaches c, found exactly on integers.
    """
    p = positives[:, None, :].astype(np.float64)
    c = np.ceil(recall_thresholds[None, :, None] * p).astype(np.int64)
    while True:
        lower = (c > 0) & ((c - 1) / p >= recall_thresholds[None, :, None])
        higher = c / p < recall_thresholds[None, :, None]
        if not (lower.any() or higher.any()):
            return c
        c = c - lower + higher


class Flags(NamedTuple):
    """B rows of n detections: TP flags (bool) and per-category running TP / FP counts (int)."""

    tp: np.ndarray
    tp_sum: np.ndarray
    fp_sum: np.ndarray


def _row_block(flags: Flags, category, offsets, scores, positives, need, q, s, recall) -> None:
    """Fill q, s (B, R, K) and recall (B, K) of B rows; ``need`` is (B, K, R).

    Sample points: the first detection of each (row, category) whose TP count reaches
    ``need``: the segment's start for 0, else its need-th TP; only the first threshold of
    each run of equal needs is sampled, the others copy it. Precision is made
    non-increasing only at those points: the maximum of each piece between consecutive
    points, then a suffix maximum over the few pieces of each segment.
    """
    n_rows, n = flags.tp_sum.shape
    n_cat, n_rec = len(offsets) - 1, need.shape[2]
    has = np.diff(offsets) > 0
    tp_total = np.zeros((n_rows, n_cat), dtype=np.int64)
    tp_total[:, has] = flags.tp_sum[:, offsets[1:][has] - 1]
    reached = (need <= tp_total[:, :, None]) & has[None, :, None]
    fresh = reached.copy()
    fresh[:, :, 1:] &= need[:, :, 1:] != need[:, :, :-1]
    first = np.flatnonzero(fresh)
    segment = first // n_rec
    row, cat = segment // n_cat, segment % n_cat
    at = _sample_points(flags.tp, tp_total, need.reshape(-1)[first], row * n + offsets[cat], segment)  # ascending
    precision = (flags.tp_sum / (flags.fp_sum + flags.tp_sum + np.spacing(1))).reshape(-1)
    starts = (np.arange(n_rows)[:, None] * n + offsets[:-1][None, :])[:, has].reshape(-1)
    cuts = np.sort(np.r_[starts, at], kind="stable")  # two ascending runs
    cuts = cuts[np.r_[True, cuts[1:] != cuts[:-1]]] if len(cuts) else cuts
    pieces = np.maximum.reduceat(precision, cuts) if len(cuts) else precision[:0]
    piece_segment = np.searchsorted(starts, cuts, side="right") - 1
    envelope = _suffix_max(pieces[None, :], offsets_from_lengths(np.bincount(piece_segment, minlength=len(starts))))[0]
    run_start, from_sample = _runs_of_equal_samples(need, reached)
    length = np.diff(np.r_[run_start, need.size])
    q.transpose(0, 2, 1)[...] = np.repeat(np.r_[envelope[np.searchsorted(cuts, at)], 0.0][from_sample], length).reshape(need.shape)
    s.transpose(0, 2, 1)[...] = np.repeat(np.r_[scores[at % n] if n else at * 0.0, 0.0][from_sample], length).reshape(need.shape)
    recall[...] = 0
    recall[:, has] = tp_total[:, has] / positives[:, has]


def _runs_of_equal_samples(need, reached):
    """Split the flat (B, K, R) thresholds into runs that share one sample (or are unreached).

    Returns each run's first flat index and the index of its sample among the fresh
    (reached, new need) entries in flat order, -1 for an unreached run.
    """
    change = np.ones(need.shape, dtype=bool)
    change[:, :, 1:] = (reached[:, :, 1:] & (need[:, :, 1:] != need[:, :, :-1])) | (reached[:, :, 1:] != reached[:, :, :-1])
    run_start = np.flatnonzero(change)
    hit = reached.reshape(-1)[run_start]
    return run_start, np.where(hit, np.cumsum(hit) - 1, -1)


def _sample_points(tp, tp_total, count, segment_start, segment):
    """Flat index of the ``count``-th TP of each segment (its start where count is 0)."""
    at = segment_start.copy()
    nth = np.flatnonzero(count > 0)
    before = offsets_from_lengths(tp_total.reshape(-1))[:-1]
    at[nth] = np.flatnonzero(tp)[before[segment[nth]] + count[nth] - 1]
    return at


def _segment_cumsum(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative count along the last axis restarting at each segment (int32, int64 for huge rows)."""
    total = flags.astype(np.int32 if flags.shape[-1] < 2**31 else np.int64)
    np.cumsum(total, axis=-1, out=total)  # cast first: a casting cumsum is several times slower
    lengths = np.diff(offsets)
    base = np.zeros(flags.shape[:-1] + (len(lengths),), dtype=total.dtype)
    starts = offsets[:-1][lengths > 0]
    base[..., lengths > 0] = total[..., starts] - flags[..., starts]
    total -= np.repeat(base, lengths, axis=-1)
    return total


def _suffix_max(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(B, n) running maximum from the right within each segment of the last axis (exact).

    Few long segments use a padded (B, S, longest) block; otherwise values are replaced by
    their rank among all values and offset per segment, so one integer accumulate suffices.
    """
    lengths = np.diff(offsets)
    n_rows, n = values.shape
    n_seg, longest = len(lengths), int(lengths.max()) if len(lengths) else 0
    owner = np.repeat(np.arange(n_seg), lengths)
    if n_seg * longest <= 2 * n + 1024:
        local = np.arange(n) - offsets[:-1][owner]
        padded = np.zeros((n_rows, n_seg, longest))
        padded[:, owner, local] = values
        padded = np.maximum.accumulate(padded[:, :, ::-1], axis=-1)[:, :, ::-1]
        return padded[:, owner, local]
    unique, rank = np.unique(values, return_inverse=True)
    segment = np.arange(n_rows)[:, None] * n_seg + owner[None, :]
    key = (n_rows * n_seg - 1 - segment) * len(unique) + rank.reshape(n_rows, n)
    suffix = np.maximum.accumulate(key.reshape(-1)[::-1])[::-1]
    return unique[suffix % len(unique)].reshape(n_rows, n)
