"""Precision / recall arrays of pycocotools' accumulate, vectorised over caps, areas, thresholds and categories.

Convention (pycocotools): for category k, area range a and cap m, the detections of rank
< m in their image are sorted by descending score (stable: ties keep image order, then
rank); a detection matched to a non-ignored ground truth is a TP, an unmatched one a FP,
and one matched to an ignored ground truth - or unmatched with its area outside the range -
counts as neither (but stays in the ranking). Recall = TP / #non-ignored GT, precision =
TP / (TP + FP + eps) made non-increasing from the right, sampled at the first detection
reaching each of the 101 recall thresholds (0 past the last). Categories without a
non-ignored ground truth get -1 (precision and recall).

How: the precision made non-increasing, read at the c-th TP of a sequence, is the maximum
of j / (j + f_j + eps) over its TPs j >= c (f_j: FPs before TP j), and at recall 0 (c = 0)
it is the same maximum over all TPs; the score read is the c-th TP's (the first
detection's for c = 0). So each (area, threshold) row needs only its TPs: one table per
(row, cap, category) of [value at c = 0, suffix maxima at c = 1..n], read at the integer
TP counts ``need`` that reach each recall threshold exactly as pycocotools' float
``searchsorted`` does (a closing 0 per table answers needs beyond the last TP). All caps are one sequence (the caps' detection lists laid end to
end), so a whole evaluation is one pass of a few dozen numpy calls.
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._ragged import offsets_from_lengths

CHUNK_ELEMENTS = 1 << 20


def accumulate(tp: np.ndarray, fp: np.ndarray, dt_category: np.ndarray, order: np.ndarray, dt_rank: np.ndarray,
               scores: np.ndarray, n_positive: np.ndarray, max_dets, recall_thresholds: np.ndarray,
               with_scores: bool = True):
    """Precision (T, R, K, A, M), recall (T, K, A, M) and scores (T, R, K, A, M) arrays.

    Args:
        tp, fp: (A, T, D) bool per detection.
        dt_category: (D,) category index; order: (D,) detections sorted by (category,
            -score, image, rank); dt_rank: (D,); scores: (D,).
        n_positive: (K, A) number of non-ignored ground truths.
        with_scores: False skips the scores array (returned as None).

    The arrays are transposed views of contiguous (A, T, M, K, R) / (A, T, M, K) blocks.
    Caps whose capped lists are all the same (no cell reaches the smaller cap) are computed once.
    """
    n_areas, n_thr, n_dt = tp.shape
    n_cat, n_rec, n_caps = n_positive.shape[0], len(recall_thresholds), len(max_dets)
    columns, segment, source = _sequences(order, dt_rank[order], dt_category[order], max_dets, n_cat)
    n_unique = max(source) + 1
    n_seg = n_unique * n_cat
    seg_len = np.bincount(segment, minlength=n_seg)
    seg_start = offsets_from_lengths(seg_len)[:-1]
    positives = np.maximum(n_positive, 1).T  # (A, K)
    need = np.tile(counts_needed(positives, recall_thresholds), (1, n_unique, 1))  # (A, S, R), s = u * K + k
    first_score = np.zeros(n_seg)
    has = seg_len > 0
    first_score[has] = scores[columns[seg_start[has]]]
    n_rows = n_areas * n_thr
    q = np.empty((n_rows, n_seg, n_rec))
    s = np.empty((n_rows, n_seg, n_rec)) if with_scores else None
    recall = np.empty((n_rows, n_seg))
    flat_tp, flat_fp = tp.reshape(n_rows, n_dt), fp.reshape(n_rows, n_dt)
    tiled_positives = np.tile(positives, (1, n_unique))
    step = max(1, CHUNK_ELEMENTS // max(len(columns), 1))
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        area = np.arange(a, b) // n_thr
        _rows(flat_tp[a:b][:, columns], flat_fp[a:b][:, columns], columns, segment, seg_start, seg_len, scores,
              first_score, need[area], tiled_positives[area], q[a:b], None if s is None else s[a:b], recall[a:b])
    area, seg = np.nonzero(np.tile(n_positive.T == 0, (1, n_unique)))  # (a, u * K + k) without ground truth
    for array in (q, s):
        if array is not None:
            array.reshape(n_areas, n_thr, n_seg, n_rec)[area, :, seg, :] = -1
    recall.reshape(n_areas, n_thr, n_seg)[area, :, seg] = -1
    shape = (n_areas, n_thr, n_unique, n_cat, n_rec)
    caps = np.asarray(source)
    pick = lambda x: x if n_unique == n_caps else x[:, :, caps]  # noqa: E731  repeat shared caps
    q = pick(q.reshape(shape)).transpose(1, 4, 3, 0, 2)
    recall = pick(recall.reshape(shape[:4])).transpose(1, 3, 0, 2)
    if s is not None:
        s = pick(s.reshape(shape)).transpose(1, 4, 3, 0, 2)
    return q, recall, s


def _sequences(order, rank, category, max_dets, n_cat):
    """The distinct capped detection lists laid end to end, each one's segment u * K + category
    (ascending), and for each cap the index u of its list."""
    top = int(rank.max(initial=-1))
    parts, cats, source, seen = [], [], [], {}
    for cap in max_dets:
        key = min(cap, top + 1)  # caps above every rank give the same list
        if key not in seen:
            seen[key] = len(parts)
            keep = rank < cap
            parts.append(order if cap > top else order[keep])
            cats.append(category if cap > top else category[keep])
        source.append(seen[key])
    columns = np.concatenate(parts) if len(parts) > 1 else parts[0]
    segment = np.concatenate([u * n_cat + c for u, c in enumerate(cats)]) if len(cats) > 1 else cats[0].copy()
    return columns, segment, source


def _rows(tp, fp, columns, segment, seg_start, seg_len, scores, first_score, need, positives, q, s, recall) -> None:
    """Fill q, s (B, S, R) and recall (B, S) for B rows of flags over the capped lists (B, L).

    At TP j (1-based in its (row, segment)) at position p, the FPs before it are the row's
    running FP count at p minus the count before the segment's start.
    """
    n_rows, length = tp.shape
    n_seg = len(seg_len)
    fp_count = fp.astype(np.int32 if length < 2**31 else np.int64)
    np.cumsum(fp_count, axis=1, out=fp_count)
    row, col = np.nonzero(tp)  # every TP, by row then position (so by segment)
    seg = segment[col]
    group = row * n_seg + seg
    n_tp = np.bincount(group, minlength=n_rows * n_seg)
    tp_offsets = offsets_from_lengths(n_tp)
    j = (np.arange(len(group)) - tp_offsets[group] + 1).astype(np.float64)
    start = seg_start[seg]
    before = np.where(start > 0, fp_count[row, np.maximum(start - 1, 0)], 0)
    value = j / (j + (fp_count[row, col] - before) + np.spacing(1))
    # per group: [c = 0, TP 1, ..., TP n, 0]; a need beyond n reads the closing 0
    table_start = tp_offsets[:-1] + 2 * np.arange(n_rows * n_seg)
    slot = np.arange(len(group)) + 2 * group + 1  # TP i of group g: table_start[g] + 1 + its rank = i + 2 g + 1
    size = int(table_start[-1] + n_tp[-1] + 2) if len(n_tp) else 0
    nonempty = n_tp > 0
    q_table = np.zeros(size)
    q_table[slot] = _group_suffix_max(value, tp_offsets)
    q_table[table_start[nonempty]] = q_table[table_start[nonempty] + 1]  # recall 0: the maximum over all TPs
    n_tp = n_tp.reshape(n_rows, n_seg)
    index = np.minimum(need, (n_tp + 1)[:, :, None])
    index += table_start.reshape(n_rows, n_seg)[:, :, None]
    np.take(q_table, index, out=q)
    if s is not None:
        s_table = np.zeros(size)
        s_table[slot] = scores[columns[col]]
        s_table[table_start] = np.tile(first_score, n_rows)  # recall 0: the first detection's score (0 if none)
        np.take(s_table, index, out=s)
    recall[...] = n_tp / positives


def counts_needed(positives: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray:
    """(..., R) smallest integer c with the float ``c / positives`` (...) >= each recall threshold.

    So the first detection with recall >= r (pycocotools' searchsorted(rc, r, "left")) is
    the first whose TP count reaches c, found exactly on integers.
    """
    p = positives[..., None].astype(np.float64)
    c = np.ceil(recall_thresholds * p).astype(np.int64)
    while True:
        lower = (c > 0) & ((c - 1) / p >= recall_thresholds)
        higher = c / p < recall_thresholds
        if not (lower.any() or higher.any()):
            return c
        c = c - lower + higher


def _group_suffix_max(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running maximum from the right within each contiguous group (exact)."""
    n = len(values)
    if not n:
        return values
    lengths = np.diff(offsets)
    if lengths.max() == 1:
        return values
    owner = np.repeat(np.arange(len(lengths)), lengths)
    unique, rank = np.unique(values, return_inverse=True)
    key = (len(lengths) - 1 - owner) * len(unique) + rank.reshape(-1)
    suffix = np.maximum.accumulate(key[::-1])[::-1]
    return unique[suffix % len(unique)]
