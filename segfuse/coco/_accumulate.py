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
    """One cap: q, s (A, T, R, K) and recall (A, T, K) for detections sorted by category."""
    n_areas, n_thr, n = tp.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    rows = n_areas * n_thr
    offsets = offsets_from_lengths(np.bincount(category, minlength=n_cat))
    tp_sum = _segment_cumsum(tp.reshape(rows, n), offsets)
    fp_sum = _segment_cumsum(fp.reshape(rows, n), offsets)
    positives = np.repeat(np.maximum(n_positive, 1).T[:, None, :], n_thr, axis=1).reshape(rows, n_cat)
    rc = tp_sum / positives[:, category]
    envelope = _suffix_max(tp_sum / (fp_sum + tp_sum + np.spacing(1)), offsets)
    reached = np.searchsorted(recall_thresholds, rc.reshape(-1), side="right").reshape(rows, n)
    before = np.zeros_like(reached)
    before[:, 1:] = reached[:, :-1]
    before[:, offsets[:-1][np.diff(offsets) > 0]] = 0
    row, col = np.nonzero(reached > before)
    gain = (reached - before)[row, col]
    step = np.arange(gain.sum()) - np.repeat(offsets_from_lengths(gain)[:-1], gain)
    slot = (np.repeat(row * n_rec + before[row, col], gain) + step) * n_cat + np.repeat(category[col], gain)
    q, s = np.zeros(rows * n_rec * n_cat), np.zeros(rows * n_rec * n_cat)
    q[slot] = np.repeat(envelope[row, col], gain)
    s[slot] = np.repeat(scores[col], gain)
    recall = np.zeros((rows, n_cat))
    has = np.diff(offsets) > 0
    recall[:, has] = rc[:, offsets[1:][has] - 1]
    shape = (n_areas, n_thr, n_rec, n_cat)
    return q.reshape(shape), s.reshape(shape), recall.reshape(n_areas, n_thr, n_cat)


def _segment_cumsum(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative count along the last axis restarting at each segment, as float64."""
    total = np.cumsum(flags, axis=-1, dtype=np.int32 if flags.shape[-1] < 2**31 else np.int64)
    lengths = np.diff(offsets)
    base = np.zeros(flags.shape[:-1] + (len(lengths),), dtype=total.dtype)
    starts = offsets[:-1][lengths > 0]
    base[..., lengths > 0] = total[..., starts] - flags[..., starts]
    total -= np.repeat(base, lengths, axis=-1)
    return total.astype(np.float64)


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
