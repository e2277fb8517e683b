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
    """
    n_areas, n_thr, _ = tp.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    shape = (n_thr, n_rec, n_cat, n_areas, len(max_dets))
    precision, score_at = np.zeros(shape), np.zeros(shape)
    recall = np.zeros((n_thr, n_cat, n_areas, len(max_dets)))
    for m, max_det in enumerate(max_dets):
        chosen = order[dt_rank[order] < max_det]
        q, s, r = _curves(tp[:, :, chosen], fp[:, :, chosen], dt_category[chosen], scores[chosen], n_positive,
                          recall_thresholds)
        precision[..., m], score_at[..., m], recall[..., m] = q, s, r
    absent = (n_positive == 0)[None, None, :, :, None]
    precision[np.broadcast_to(absent, shape)] = -1
    score_at[np.broadcast_to(absent, shape)] = -1
    recall[np.broadcast_to(absent[:, 0], recall.shape)] = -1
    return precision, recall, score_at


def _curves(tp, fp, category, scores, n_positive, recall_thresholds):
    """One cap: q, s (T, R, K, A) and recall (T, K, A) for detections sorted by category."""
    n_areas, n_thr, n = tp.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    offsets = offsets_from_lengths(np.bincount(category, minlength=n_cat))
    tp_sum, fp_sum = _segment_cumsum(tp, offsets), _segment_cumsum(fp, offsets)
    positives = np.maximum(n_positive, 1).T[:, None, category]
    rc = tp_sum / positives
    pr = _suffix_max(tp_sum / (fp_sum + tp_sum + np.spacing(1)), offsets)
    segment = (np.arange(n_areas * n_thr)[:, None] * n_cat + category[None, :]).reshape(-1)
    key = segment * (n_rec + 1) + np.searchsorted(recall_thresholds, rc.reshape(-1), side="right")
    wanted = np.arange(n_areas * n_thr * n_cat)[:, None] * (n_rec + 1) + np.arange(n_rec)[None, :]
    first = np.searchsorted(key, wanted.reshape(-1), side="right")
    hit = first < len(key)
    hit[hit] = segment[first[hit]] == np.repeat(np.arange(n_areas * n_thr * n_cat), n_rec)[hit]
    q = np.where(hit, pr.reshape(-1)[np.minimum(first, len(key) - 1)], 0.0) if len(key) else np.zeros(len(first))
    s = np.where(hit, np.tile(scores, n_areas * n_thr)[np.minimum(first, len(key) - 1)], 0.0) if len(key) else q
    q = q.reshape(n_areas, n_thr, n_cat, n_rec).transpose(1, 3, 2, 0)
    s = s.reshape(n_areas, n_thr, n_cat, n_rec).transpose(1, 3, 2, 0)
    last = offsets[1:] - 1
    has = np.diff(offsets) > 0
    recall = np.zeros((n_areas, n_thr, n_cat))
    recall[:, :, has] = rc[:, :, last[has]]
    return q, s, recall.transpose(1, 2, 0)


def _segment_cumsum(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Cumulative count along the last axis restarting at each segment, as float64."""
    total = np.cumsum(flags, axis=-1, dtype=np.int64)
    lengths = np.diff(offsets)
    base = np.zeros(flags.shape[:-1] + (len(lengths),), dtype=np.int64)
    starts = offsets[:-1][lengths > 0]
    base[..., lengths > 0] = (total - flags)[..., starts]
    return (total - np.repeat(base, lengths, axis=-1)).astype(np.float64)


def _suffix_max(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running maximum from the right within each segment of the last axis (exact)."""
    lengths = np.diff(offsets)
    n_seg, longest = len(lengths), int(lengths.max()) if len(lengths) else 0
    if n_seg * longest <= 4 * values.shape[-1] + 65536:
        padded = np.zeros(values.shape[:-1] + (n_seg, longest))
        owner = np.repeat(np.arange(n_seg), lengths)
        local = np.arange(values.shape[-1]) - offsets[:-1][owner]
        padded[..., owner, local] = values
        padded = np.maximum.accumulate(padded[..., ::-1], axis=-1)[..., ::-1]
        return padded[..., owner, local]
    out = np.empty_like(values)
    for start, stop in zip(offsets[:-1], offsets[1:]):
        out[..., start:stop] = np.maximum.accumulate(values[..., start:stop][..., ::-1], axis=-1)[..., ::-1]
    return out
