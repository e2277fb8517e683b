"""Precision / recall arrays of pycocotools' accumulate, vectorised over caps, areas, thresholds and categories.

Convention (pycocotools): for category k, area range a and cap m, the detections of rank
< m in their image are sorted by descending score (stable: ties keep image order, then
rank); a detection matched to a non-ignored ground truth is a TP, an unmatched one a FP,
and one matched to an ignored ground truth - or unmatched with its area outside the range -
counts as neither (but stays in the ranking). Recall = TP / #non-ignored GT, precision =
TP / (TP + FP + eps) made non-increasing from the right, sampled at the first detection
reaching each of the 101 recall thresholds (0 past the last). Categories without a
non-ignored ground truth get -1 (precision and recall). As pycocotools, a match to a
ground truth whose id is 0 counts as unmatched.

How: the precision made non-increasing, read at the c-th TP of a sequence, is the maximum
of j / (j + f_j + eps) over its TPs j >= c (f_j: FPs before TP j), and at recall 0 (c = 0)
it is the same maximum over all TPs; the score read is the c-th TP's (the first
detection's for c = 0). So only matched detections are visited per (area, threshold)
row: f_j = (detections up to TP j) - j - (ignored ones up to it), and the ignored ones are
the detections outside the area range (a prefix count per area, shared by every
threshold) corrected by the few matched ones (outside but matched: not ignored; matched
to an ignored ground truth: ignored). Each (cap, row, category) then gets a table [value
at c = 0, suffix maxima at c = 1..n, 0] read at the integer TP counts ``need`` that reach
each recall threshold exactly as pycocotools' float ``searchsorted`` does. Caps whose
capped lists coincide are computed once.
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._ragged import offsets_from_lengths

CHUNK_ELEMENTS = 1 << 22  # (row, detection) cells scanned for matches at a time


def accumulate(matched: np.ndarray, gt_ignore: np.ndarray, gt_ids: np.ndarray, dt_outside: np.ndarray,
               dt_category: np.ndarray, order: np.ndarray, dt_rank: np.ndarray, scores: np.ndarray,
               n_positive: np.ndarray, max_dets, recall_thresholds: np.ndarray, with_scores: bool = True):
    """Precision (T, R, K, A, M), recall (T, K, A, M) and scores (T, R, K, A, M, or None) arrays.

    Args:
        matched: (A, T, D) index of the ground truth each detection matched, -1 if none.
        gt_ignore: (A, G) bool; gt_ids: (G,) annotation ids (a match to id 0 is no match).
        dt_outside: (A, D) bool: unmatched detections there are ignored (area outside the
            range, or LVIS' not-exhaustive category).
        dt_category: (D,) category index; order: (D,) detections sorted by (category,
            -score, image, rank); dt_rank: (D,); scores: (D,).
        n_positive: (K, A) number of non-ignored ground truths.
        with_scores: False skips the scores array.

    The arrays are transposed views of contiguous (A, T, M, K, R) / (A, T, M, K) blocks.
    """
    n_areas, n_thr, n_dt = matched.shape
    n_cat, n_rec = n_positive.shape[0], len(recall_thresholds)
    n_rows = n_areas * n_thr
    lists, source = _capped_lists(dt_rank[order], max_dets)
    n_unique = len(lists)
    n_seg = n_unique * n_cat
    category = dt_category[order]
    seg_len = np.concatenate([np.bincount(category[keep], minlength=n_cat) for keep in lists])
    seg_start = offsets_from_lengths(seg_len)[:-1]  # in the lists laid end to end
    first_score = np.zeros(n_seg)
    has = seg_len > 0
    first_score[has] = scores[order[np.concatenate([np.flatnonzero(keep) for keep in lists])[seg_start[has]]]]
    out_prefix = _outside_prefix(dt_outside[:, order], lists)  # (A, L + 1)
    entries = _matched_entries(matched, gt_ignore, gt_ids, dt_outside, order, n_thr)
    tp = _true_positives(entries, lists, category, dt_rank[order], seg_start, out_prefix, n_rows, n_thr, n_cat)
    positives = np.maximum(n_positive, 1).T  # (A, K)
    need = np.tile(counts_needed(positives, recall_thresholds), (1, n_unique, 1))  # (A, S, R), s = u * K + k
    q = np.empty((n_rows, n_seg, n_rec))
    s = np.empty((n_rows, n_seg, n_rec)) if with_scores else None
    recall = np.empty((n_rows, n_seg))
    _fill(tp, scores[order], first_score, need[np.arange(n_rows) // n_thr], seg_len,
          np.tile(positives, (1, n_unique))[np.arange(n_rows) // n_thr], q, s, recall)
    area, seg = np.nonzero(np.tile(n_positive.T == 0, (1, n_unique)))  # (a, u * K + k) without ground truth
    for array in (q, s):
        if array is not None:
            array.reshape(n_areas, n_thr, n_seg, n_rec)[area, :, seg, :] = -1
    recall.reshape(n_areas, n_thr, n_seg)[area, :, seg] = -1
    shape = (n_areas, n_thr, n_unique, n_cat, n_rec)
    pick = (lambda x: x) if n_unique == len(max_dets) else (lambda x: x[:, :, np.asarray(source)])
    q = pick(q.reshape(shape)).transpose(1, 4, 3, 0, 2)
    recall = pick(recall.reshape(shape[:4])).transpose(1, 3, 0, 2)
    if s is not None:
        s = pick(s.reshape(shape)).transpose(1, 4, 3, 0, 2)
    return q, recall, s


def _capped_lists(rank_in_order, max_dets):
    """Distinct capped lists as bool masks over ``order``, and for each cap the index of its list."""
    top = int(rank_in_order.max(initial=-1))
    lists, source, seen = [], [], {}
    for cap in max_dets:
        key = min(cap, top + 1)  # caps above every rank give the same list
        if key not in seen:
            seen[key] = len(lists)
            lists.append(rank_in_order < cap)
        source.append(seen[key])
    return lists, source


def _outside_prefix(outside_in_order: np.ndarray, lists) -> np.ndarray:
    """(A, L + 1) running count of outside detections over the capped lists laid end to end (0 first)."""
    parts = [outside_in_order[:, keep] for keep in lists]
    flags = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    prefix = np.zeros((flags.shape[0], flags.shape[1] + 1), dtype=np.int64)
    np.cumsum(flags, axis=1, out=prefix[:, 1:])
    return prefix


def _matched_entries(matched, gt_ignore, gt_ids, dt_outside, order, n_thr) -> dict:
    """Every real match as (row, position in ``order``, tp, weight), by row then position.

    weight = matched to an ignored ground truth - outside: the correction turning the
    outside count into the ignored count.
    """
    n_areas, _, n_dt = matched.shape
    n_rows = n_areas * n_thr
    flat = matched.reshape(n_rows, n_dt)
    step = max(1, CHUNK_ELEMENTS // max(n_dt, 1))
    rows, positions, gts = [], [], []
    for a in range(0, n_rows, step):
        block = flat[a : a + step][:, order]
        row, position = np.nonzero(block >= 0)
        rows.append(row + a)
        positions.append(position)
        gts.append(block[row, position])
    row, position, gt = np.concatenate(rows), np.concatenate(positions), np.concatenate(gts).astype(np.int64)
    if len(gt_ids) and (gt_ids == 0).any():  # pycocotools reads a match to id 0 as no match
        real = gt_ids[gt] != 0
        row, position, gt = row[real], position[real], gt[real]
    area = row // n_thr
    ignored = gt_ignore[area, gt]
    outside = dt_outside[area, order[position]]
    return {"row": row, "position": position, "tp": ~ignored,
            "weight": ignored.astype(np.int64) - outside.astype(np.int64)}


def _true_positives(entries, lists, category, rank_in_order, seg_start, out_prefix, n_rows, n_thr, n_cat) -> dict:
    """The TPs of every (list, row, category) group, in order: group id, value j / (j + f_j + eps), position."""
    groups, values, where = [], [], []
    offset = 0
    for u, keep in enumerate(lists):
        mine = keep[entries["position"]]
        row = entries["row"][mine]
        position = entries["position"][mine]
        place = np.cumsum(keep) - 1  # position in this list
        at = place[position] + offset  # position in the lists laid end to end
        seg = u * n_cat + category[position]
        group = (u * n_rows + row) * n_cat + category[position]
        is_tp = entries["tp"][mine]
        weight = np.cumsum(entries["weight"][mine])  # running over the group: subtract its value before the group
        new = np.ones(len(group), dtype=bool)
        new[1:] = group[1:] != group[:-1]
        first = np.flatnonzero(new)
        weight -= np.repeat(weight[first] - entries["weight"][mine][first], np.diff(np.append(first, len(group))))
        tp_rank = np.cumsum(is_tp)
        tp_rank -= np.repeat(tp_rank[first] - is_tp[first], np.diff(np.append(first, len(group))))
        area = row // n_thr
        start = seg_start[seg]
        outside = out_prefix[area, at + 1] - out_prefix[area, start]
        j = tp_rank[is_tp].astype(np.float64)
        seen = (at - start + 1)[is_tp]
        fp = seen - j - (outside + weight)[is_tp]
        groups.append(group[is_tp])
        values.append(j / (j + fp + np.spacing(1)))
        where.append(position[is_tp])
        offset += int(keep.sum())
    return {"group": np.concatenate(groups), "value": np.concatenate(values), "position": np.concatenate(where),
            "n_cat": n_cat}


def _fill(tp, scores_in_order, first_score, need, seg_len, positives, q, s, recall) -> None:
    """q, s (B, S, R) and recall (B, S) from the TP tables; TP groups are numbered (u * B + row) * K + k
    and output cells (row, s = u * K + k)."""
    n_rows, n_seg, _ = q.shape
    group = tp["group"]
    n_groups = n_rows * n_seg
    n_tp = np.bincount(group, minlength=n_groups)
    tp_offsets = offsets_from_lengths(n_tp)
    table_start = tp_offsets[:-1] + 2 * np.arange(n_groups)  # [c = 0, TP 1, ..., TP n, 0] per group
    slot = np.arange(len(group)) + 2 * group + 1
    size = int(table_start[-1] + n_tp[-1] + 2) if n_groups else 1
    nonempty = n_tp > 0
    q_table = np.zeros(size)
    q_table[slot] = _group_suffix_max(tp["value"], tp_offsets)
    q_table[table_start[nonempty]] = q_table[table_start[nonempty] + 1]  # recall 0: the maximum over all TPs
    cell_group = _cell_groups(n_rows, n_seg, tp["n_cat"])  # (B, S)
    n_tp_cell = n_tp[cell_group]
    index = np.minimum(need, (n_tp_cell + 1)[:, :, None])
    index += table_start[cell_group][:, :, None]
    np.take(q_table, index, out=q)
    if s is not None:
        s_table = np.zeros(size)
        s_table[slot] = scores_in_order[tp["position"]]
        s_table[table_start[cell_group]] = first_score[None, :]  # recall 0: the first detection's score (0 if none)
        np.take(s_table, index, out=s)
    recall[...] = n_tp_cell / positives


def _cell_groups(n_rows: int, n_seg: int, n_cat: int) -> np.ndarray:
    """(B, S) group id (u * B + row) * K + k of output cell (row, u * K + k)."""
    seg = np.arange(n_seg)
    return ((seg // n_cat)[None, :] * n_rows + np.arange(n_rows)[:, None]) * n_cat + (seg % n_cat)[None, :]


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
