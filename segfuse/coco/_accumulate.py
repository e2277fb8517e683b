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

import functools

import numpy as np

from segfuse.coco._params import recall_thresholds as default_recall_thresholds

from segfuse.coco._ragged import offsets_from_lengths, restart_cumsum, run_starts

CHUNK_ELEMENTS = 1 << 22  # (row, detection) cells scanned for matches at a time
DENSE_READS = 8  # count the reads of each table slot densely while that costs < 8 entries per need
NEEDS_TABLE_SIZE = 2048  # positive counts whose needs at the default recall thresholds are tabled


class Curves:
    """The accumulated precision-recall curves of every (cap, area, threshold, category), arrays on demand.

    recall: (T, K, A, M) (always built; small). ``precision()`` and ``scores()`` build
    pycocotools' (T, R, K, A, M) arrays; ``precision_sums()`` gives their sums over the
    recall thresholds without building them (what the summary and the per-category AP need).
    """

    def __init__(self, tables: dict, need: np.ndarray, present: np.ndarray, source: list, shape: tuple,
                 recall: np.ndarray):
        self._tables, self._need, self.present, self._source, self._shape = tables, need, present, source, shape
        self.recall = recall
        self._sums = None

    def precision(self) -> np.ndarray:
        return self._materialize(self._tables["q"])

    def scores(self) -> np.ndarray:
        return self._materialize(self._score_table())

    def precision_sums(self) -> np.ndarray:
        """(T, A, M, K) sum over the R recall thresholds of the precision (0 where a category has no ground truth).

        A group's R values are its table read at the distinct needs c with their multiplicities,
        so only sum_c (count of c) * table[c] is computed.
        """
        if self._sums is None:
            self._sums = self._precision_sums()
        return self._sums

    def _precision_sums(self) -> np.ndarray:
        """Slot c of a group's table is read by the recall thresholds whose need is c (c <= its TP
        count; larger needs read the closing 0). Keys (area, category) * width + need count
        those reads: a dense count of the keys when it is small, else two binary searches."""
        n_areas, n_thr, n_unique, n_cat, n_rec = self._shape
        t = self._tables
        need = self._need.reshape(n_areas * n_cat, n_rec)  # ascending along R
        width = max(int(need[:, -1].max(initial=0)), int(t["n_tp"].max(initial=0))) + 2  # > every need and slot
        row_base = np.arange(n_areas * n_cat) * width
        keys = (need + row_base[:, None]).reshape(-1)  # ascending
        sizes = t["n_tp"] + 2
        group_base = np.broadcast_to(row_base.reshape(n_areas, 1, n_cat), (n_unique, n_areas, n_thr, n_cat)).reshape(-1)
        slot_key = np.arange(len(t["q"])) + (group_base - t["start"]).repeat(sizes)
        if len(row_base) * width <= DENSE_READS * len(keys):
            reads = np.bincount(keys, minlength=len(row_base) * width)[slot_key]
        else:
            reads = keys.searchsorted(slot_key, side="right") - keys.searchsorted(slot_key - 1, side="right")
        owner = np.arange(len(sizes)).repeat(sizes)
        sums = np.bincount(owner, weights=t["q"] * reads, minlength=len(sizes))
        sums = sums.reshape(n_unique, n_areas, n_thr, n_cat)[self._source]  # (M, A, T, K)
        sums *= self.present.T[None, :, None, :]
        return np.ascontiguousarray(sums.transpose(2, 1, 0, 3))  # the compiled path's layout: the same sums' bits

    def _cell_groups(self) -> np.ndarray:
        """(B, S) group id (u * B + row) * K + k of output cell (row, u * K + k)."""
        n_areas, n_thr, n_unique, n_cat, _ = self._shape
        n_rows, seg = n_areas * n_thr, np.arange(n_unique * n_cat)
        return ((seg // n_cat)[None, :] * n_rows + np.arange(n_rows)[:, None]) * n_cat + (seg % n_cat)[None, :]

    def _score_table(self) -> np.ndarray:
        t = self._tables
        table = np.zeros(len(t["q"]))
        scores = t["ordered_scores"]  # detection scores in ``order``
        table[t["slot"]] = scores[t["position"]]
        first_score = np.zeros(len(t["seg_len"]))  # recall 0: the first detection of each segment (0 if none)
        has = t["seg_len"] > 0
        in_lists = np.concatenate([keep.nonzero()[0] for keep in t["lists"]])  # the lists laid end to end
        first_score[has] = scores[in_lists[t["seg_start"][has]]]
        table[t["start"][self._cell_groups()]] = first_score[None, :]
        return table

    def _materialize(self, table: np.ndarray) -> np.ndarray:
        n_areas, n_thr, n_unique, n_cat, n_rec = self._shape
        t = self._tables
        cell = self._cell_groups()  # (B, S)
        need = np.tile(self._need, (1, n_unique, 1))[np.arange(n_areas * n_thr) // n_thr]  # (B, S, R)
        index = np.minimum(need, (t["n_tp"][cell] + 1)[:, :, None])
        index += t["start"][cell][:, :, None]
        out = np.take(table, index)
        area, seg = np.nonzero(np.tile(~self.present.T, (1, n_unique)))
        out.reshape(n_areas, n_thr, n_unique * n_cat, n_rec)[area, :, seg, :] = -1
        out = out.reshape(self._shape)
        if n_unique != len(self._source):
            out = out[:, :, np.asarray(self._source)]
        return out.transpose(1, 4, 3, 0, 2)


class CompiledCurves:
    """``Curves``' interface over the compiled accumulation (``segfuse.coco._compiled.accumulate``).

    recall and the precision sums come from one pass; pycocotools' (T, R, K, A, M) precision
    and scores arrays from a second pass with ``dense=True``, on first use.
    """

    def __init__(self, kernel, arguments: tuple, present: np.ndarray):
        self._kernel, self._arguments, self.present = kernel, arguments, present
        _, self.recall, _, self._sums = kernel(*arguments, False)
        self._dense = None

    def precision(self) -> np.ndarray:
        return self._dense_arrays()[0]

    def scores(self) -> np.ndarray:
        return self._dense_arrays()[1]

    def precision_sums(self) -> np.ndarray:
        return self._sums

    def _dense_arrays(self) -> tuple:
        if self._dense is None:
            precision, _, scores, _ = self._kernel(*self._arguments, True)
            self._dense = precision, scores
        return self._dense


def accumulate(matched: np.ndarray, gt_ignore: np.ndarray, gt_ids: np.ndarray, dt_outside: np.ndarray,
               dt_category: np.ndarray, order: np.ndarray, dt_rank: np.ndarray, scores: np.ndarray,
               n_positive: np.ndarray, max_dets, recall_thresholds: np.ndarray) -> Curves:
    """The curves of pycocotools' accumulate: precision (T, R, K, A, M), recall (T, K, A, M), scores.

    Args:
        matched: (A, T, D) index of the ground truth each detection matched, -1 if none.
        gt_ignore: (A, G) bool; gt_ids: (G,) annotation ids (a match to id 0 is no match).
        dt_outside: (A, D) bool: unmatched detections there are ignored (area outside the
            range, or LVIS' not-exhaustive category).
        dt_category: (D,) category index; order: (D,) detections sorted by (category,
            -score, image, rank); dt_rank: (D,); scores: (D,).
        n_positive: (K, A) number of non-ignored ground truths.
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
    out_prefix = _outside_prefix(dt_outside[:, order], lists)  # (A, L + 1)
    entries = _matched_entries(matched, gt_ignore, gt_ids, dt_outside, order, n_thr)
    tp = _true_positives(entries, lists, category, seg_start, out_prefix, n_rows, n_thr, n_cat)
    tables = _tables(tp, n_rows * n_seg)
    tables.update(position=tp["position"], ordered_scores=scores[order], seg_len=seg_len, seg_start=seg_start,
                  lists=lists)  # for the scores array, built on demand
    present = n_positive > 0  # (K, A)
    positives = np.maximum(n_positive, 1).T  # (A, K)
    n_tp = tables["n_tp"].reshape(n_unique, n_areas, n_thr, n_cat).transpose(1, 2, 0, 3)  # (A, T, U, K)
    recall = np.where(present.T[:, None, None, :], n_tp / positives[:, None, None, :], -1.0)
    if n_unique != len(max_dets):
        recall = recall[:, :, source]
    need = _needs(positives, recall_thresholds)  # (A, K, R)
    recall = np.ascontiguousarray(recall.transpose(1, 3, 0, 2))  # C order, as the compiled path's
    return Curves(tables, need, present, source, (n_areas, n_thr, n_unique, n_cat, n_rec), recall)


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
    flags.cumsum(axis=1, out=prefix[:, 1:])
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
    parts = []
    for a in range(0, n_rows, step):
        block = flat[a : a + step][:, order]
        row, position = (block >= 0).nonzero()
        parts.append((row + a, position, block[row, position]))
    row, position, gt = parts[0] if len(parts) == 1 else [np.concatenate(p) for p in zip(*parts)]
    if np.count_nonzero(gt_ids) != len(gt_ids):  # pycocotools reads a match to id 0 as no match
        real = gt_ids[gt] != 0
        row, position, gt = row[real], position[real], gt[real]
    area = row // n_thr
    ignored = gt_ignore[area, gt]
    outside = dt_outside[area, order[position]]
    return {"row": row, "position": position, "tp": ~ignored,
            "weight": np.subtract(ignored, outside, dtype=np.int64)}


def _true_positives(entries, lists, category, seg_start, out_prefix, n_rows, n_thr, n_cat) -> dict:
    """The TPs of every (list, row, category) group, in order: group id, value j / (j + f_j + eps), position.

    All lists at once: entry e belongs to list u if its detection is in it; entries stay
    ordered by (list, row, position), so groups (u, row, category) are contiguous.
    """
    keep = np.array(lists)  # (U, D) over ``order``
    u, e = keep[:, entries["position"]].nonzero()
    row, position = entries["row"][e], entries["position"][e]
    within = keep.cumsum(axis=1)
    offsets = within[:, -1].cumsum() - within[:, -1] if keep.shape[1] else np.zeros(len(keep), np.int64)
    at = within[u, position] - 1 + offsets[u]  # position in the lists laid end to end
    cat = category[position]
    group = (u * n_rows + row) * n_cat + cat
    is_tp, weight = entries["tp"][e], entries["weight"][e]
    first, length = run_starts(group)
    running = restart_cumsum(weight, first, length)  # over the group, this entry included
    tp_rank = restart_cumsum(is_tp, first, length)
    area = row // n_thr
    start = seg_start[u * n_cat + cat]
    outside = out_prefix[area, at + 1] - out_prefix[area, start]
    j = tp_rank[is_tp].astype(np.float64)
    fp = (at - start + 1)[is_tp] - j - (outside + running)[is_tp]
    return {"group": group[is_tp], "value": j / (j + fp + np.spacing(1)), "position": position[is_tp]}


def _tables(tp: dict, n_groups: int) -> dict:
    """Per TP group (numbered (u * B + row) * K + k): [value at c = 0, suffix maxima at c = 1..n, closing 0]."""
    group = tp["group"]
    n_tp = np.bincount(group, minlength=n_groups)
    tp_offsets = offsets_from_lengths(n_tp)
    start = tp_offsets[:-1] + 2 * np.arange(n_groups)
    slot = np.arange(len(group)) + 2 * group + 1
    size = int(start[-1] + n_tp[-1] + 2) if n_groups else 1
    q = np.zeros(size)
    q[slot] = _group_suffix_max(tp["value"], group, tp_offsets)
    nonempty = n_tp > 0
    q[start[nonempty]] = q[start[nonempty] + 1]  # recall 0: the maximum over all TPs
    return {"q": q, "start": start, "n_tp": n_tp, "slot": slot}


def _needs(positives: np.ndarray, recall_thresholds: np.ndarray) -> np.ndarray:
    """``counts_needed``; at pycocotools' default recall thresholds read from a table built once
    for positive counts up to ``NEEDS_TABLE_SIZE``."""
    if recall_thresholds is not default_recall_thresholds() or int(positives.max(initial=0)) >= NEEDS_TABLE_SIZE:
        return counts_needed(positives, recall_thresholds)
    return _needs_table()[positives]


@functools.lru_cache(maxsize=1)
def _needs_table() -> np.ndarray:
    table = counts_needed(np.maximum(np.arange(NEEDS_TABLE_SIZE), 1), default_recall_thresholds())  # row 0 unused
    table.flags.writeable = False
    return table


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


def _group_suffix_max(values: np.ndarray, owner: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Running maximum from the right within each contiguous group (exact): ``owner`` (n,) the
    ascending group of each value, ``offsets`` the groups' bounds. Values are replaced by their
    ranks (ties broken arbitrarily: tied values are equal), made comparable across groups by
    adding a group offset that later groups keep below earlier ones."""
    n = len(values)
    if n < 2 or (offsets[1:] - offsets[:-1]).max() == 1:
        return values
    order = values.argsort()
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    key = (int(owner[-1]) - owner) * n + rank
    suffix = np.maximum.accumulate(key[::-1])[::-1]
    return values[order[suffix % n]]
