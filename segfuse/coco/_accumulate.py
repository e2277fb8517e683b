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
    for m, max_det in enumerate(max_dets):
        chosen = order[dt_rank[order] < max_det]
        precision[m], score_at[m], recall[m] = _curves(tp[:, :, chosen], fp[:, :, chosen], dt_category[chosen],
                                                       scores[chosen], n_positive, recall_thresholds)
    absent = (n_positive == 0).T
    precision[:, absent[:, None, None, :].repeat(n_thr, 1).repeat(n_rec, 2)] = -1
    score_at[:, absent[:, None, None, :].repeat(n_thr, 1).repeat(n_rec, 2)] = -1
    recall[:, absent[:, None, :].repeat(n_thr, 1)] = -1
    return precision.transpose(2, 3, 4, 1, 0), recall.transpose(2, 3, 1, 0), score_at.transpose(2, 3, 4, 1, 0)


def _curves(tp, fp, category, scores, n_positive, recall_thresholds):
    """One cap: q, s (A, T, R, K) and recall (A, T, K) for detections sorted by category.

    Rows (area, threshold) are handled in blocks of about ``CHUNK_ELEMENTS`` flags.
    """
    n_areas, n_thr, n = tp.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    rows = n_areas * n_thr
    offsets = offsets_from_lengths(np.bincount(category, minlength=n_cat))
    positives = np.repeat(np.maximum(n_positive, 1).T[:, None, :], n_thr, axis=1).reshape(rows, n_cat)
    need = _counts_needed(positives, recall_thresholds)
    q, s = np.zeros((rows, n_rec, n_cat)), np.zeros((rows, n_rec, n_cat))
    recall = np.zeros((rows, n_cat))
    tp, fp = tp.reshape(rows, n), fp.reshape(rows, n)
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for a in range(0, rows, step):
        b = min(a + step, rows)
        q[a:b], s[a:b], recall[a:b] = _row_block(_segment_cumsum(tp[a:b], offsets), _segment_cumsum(fp[a:b], offsets),
                                                 category, offsets, scores, positives[a:b], need[a:b])
    shape = (n_areas, n_thr, n_rec, n_cat)
    return q.reshape(shape), s.reshape(shape), recall.reshape(n_areas, n_thr, n_cat)


def _counts_needed(positives: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray:
    """(B, R, K) smallest integer c with the float ``c / positives`` >= each recall threshold.

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


def _row_block(tp_sum, fp_sum, category, offsets, scores, positives, need):
    """q, s (B, R, K) and recall (B, K) of B rows from their per-category TP / FP counts (B, n).

    Sample points: the first detection of each (row, category) whose TP count reaches
    ``need`` (one searchsorted over a key increasing along the flattened rows). Precision
    is made non-increasing only at those points: the maximum of each piece between
    consecutive points, then a suffix maximum over the few pieces of each segment.
    """
    n_rows, n = tp_sum.shape
    n_cat = len(offsets) - 1
    segment = np.arange(n_rows)[:, None] * n_cat + np.arange(n_cat)[None, :]
    key = (np.arange(n_rows)[:, None] * n_cat + category[None, :]) * (n + 1) + tp_sum
    query = segment[:, None, :] * (n + 1) + np.minimum(need, n + 1)
    at = np.searchsorted(key.reshape(-1), query.reshape(-1)).reshape(query.shape)
    row_start = np.arange(n_rows)[:, None, None] * n
    hit = at < row_start + offsets[1:][None, None, :]
    precision = (tp_sum / (fp_sum + tp_sum + np.spacing(1))).reshape(-1)
    nonempty = (np.arange(n_rows)[:, None] * n + offsets[:-1][None, :])[:, np.diff(offsets) > 0].reshape(-1)
    cuts = np.unique(np.r_[nonempty, at[hit]])
    piece_segment = np.searchsorted(nonempty, cuts, side="right") - 1
    pieces = np.maximum.reduceat(precision, cuts) if len(cuts) else precision[:0]
    envelope = _suffix_max(pieces[None, :], offsets_from_lengths(np.bincount(piece_segment, minlength=len(nonempty))))[0]
    q, s = np.zeros(at.shape), np.zeros(at.shape)
    q[hit] = envelope[np.searchsorted(cuts, at[hit])]
    s[hit] = scores[at[hit] % n] if n else 0
    recall = np.zeros((n_rows, n_cat))
    has = np.diff(offsets) > 0
    recall[:, has] = tp_sum[:, offsets[1:][has] - 1] / positives[:, has]
    return q, s, recall


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
