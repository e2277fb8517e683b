"""pycocotools' matching and accumulation loops, compiled (numba, an optional accelerator).

The numpy code (``_matching``, ``_accumulate``) vectorises these loops over cells, areas and
thresholds; its fixed cost is a few hundred numpy calls, which dominates small evaluations.
Here the loops are written as pycocotools writes them, once per (area, threshold) and per
(category, area, cap, threshold), and compiled: the same matches, and the precision,
recall and scores arrays to the bit (the arithmetic is pycocotools' own: integer TP / FP
counts made float, ``tp / npig``, ``tp / (fp + tp + eps)``, the right-to-left maximum, the
left binary search of the recall thresholds). ``tests/coco`` runs every pycocotools /
lvis equality case on both paths and checks the two give identical arrays.

Loaded by :func:`segfuse.coco._pipeline.kernels`, only where numba imports (see its convention).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EPS = np.spacing(1)  # pycocotools' np.spacing(1)


@njit(cache=True, nogil=True)
def greedy_match(pair_dt, pair_gt, pair_iou, n_dt, gt_ignore, gt_crowd, thresholds):  # pragma: no cover (compiled)
    """(A, T, D) int32 index of the ground truth each detection matches, -1 if none.

    pair_dt / pair_gt / pair_iou (P,): the candidate pairs, sorted by detection; the
    detections ``0 .. n_dt - 1`` are in per-cell rank order (a cell's detections by
    descending score). Per (area, threshold) each detection takes, among free ground truths
    (crowd ones always free) with IoU >= min(t, 1 - 1e-10), the non-ignored one of highest
    IoU, else the ignored one; on equal IoU the later one (pycocotools' ``>=`` walk).
    """
    n_areas, n_gt = gt_ignore.shape
    n_thr = len(thresholds)
    matched = np.full((n_areas, n_thr, n_dt), -1, np.int32)
    bounds = np.zeros(n_dt + 1, np.int64)
    for p in range(len(pair_dt)):
        bounds[pair_dt[p] + 1] += 1
    for d in range(n_dt):
        bounds[d + 1] += bounds[d]
    taken = np.zeros(n_gt, np.bool_)
    for a in range(n_areas):
        for t in range(n_thr):
            floor = min(thresholds[t], 1 - 1e-10)
            taken[:] = False
            for d in range(n_dt):
                best, best_iou, other, other_iou = -1, floor, -1, floor
                for p in range(bounds[d], bounds[d + 1]):
                    g = pair_gt[p]
                    if taken[g] and not gt_crowd[g]:
                        continue
                    iou = pair_iou[p]
                    if not gt_ignore[a, g]:
                        if iou >= best_iou:
                            best, best_iou = g, iou
                    elif iou >= other_iou:
                        other, other_iou = g, iou
                if best < 0:
                    best = other
                if best >= 0:
                    taken[best] = True
                    matched[a, t, d] = best
    return matched


@njit(cache=True, nogil=True)
def accumulate(matched, gt_ignore, gt_ids, dt_outside, category, order, dt_rank, scores, n_positive, max_dets,
               recall_thresholds, dense):  # pragma: no cover (compiled)
    """pycocotools' accumulate: recall (T, K, A, M), the precision summed over R per (T, A, M, K) (0 where a
    category has no ground truth) and, if ``dense``, precision (T, R, K, A, M) and scores (T, R, K, A, M)
    (else empty: those two are large and rarely read, and allocating them costs more than the loops).

    ``order`` (D,): the detections by (category, -score, image, rank in image); the rest as
    :func:`segfuse.coco._accumulate.accumulate`. A detection matched to a ground truth is
    ignored when that ground truth is; one matched to a ground truth whose id is 0 counts as
    unmatched, ignored when the ground truth is or its area is outside (pycocotools'
    ``dtIg | (dtm == 0) & outside``); an unmatched one is ignored when outside.
    """
    n_areas, n_thr, n_dt = matched.shape
    n_cat, n_caps, n_rec = n_positive.shape[0], len(max_dets), len(recall_thresholds)
    shape = (n_thr, n_rec, n_cat, n_areas, n_caps) if dense else (0, 0, 0, 0, 0)
    precision = np.full(shape, -1.0)
    score_at = np.full(shape, -1.0)
    recall = np.full((n_thr, n_cat, n_areas, n_caps), -1.0)
    sums = np.zeros((n_thr, n_areas, n_caps, n_cat))
    bounds = np.zeros(n_cat + 1, np.int64)
    for i in range(n_dt):
        bounds[category[i] + 1] += 1
    for k in range(n_cat):
        bounds[k + 1] += bounds[k]
    listed = np.empty(n_dt, np.int64)
    rc = np.empty(n_dt)
    pr = np.empty(n_dt)
    tps = np.empty(n_dt, np.int64)
    for k in range(n_cat):
        segment = order[bounds[k] : bounds[k + 1]]
        for m in range(n_caps):
            n = 0
            for det in segment:
                if dt_rank[det] < max_dets[m]:
                    listed[n] = det
                    n += 1
            for a in range(n_areas):
                npig = n_positive[k, a]
                if npig == 0:
                    continue
                for t in range(n_thr):
                    tp, fp = 0, 0
                    for i in range(n):
                        det = listed[i]
                        g = matched[a, t, det]
                        if g >= 0:
                            hit = gt_ids[g] != 0
                            ignored = gt_ignore[a, g] or (not hit and dt_outside[a, det])
                        else:
                            hit, ignored = False, dt_outside[a, det]
                        if not ignored:
                            if hit:
                                tp += 1
                            else:
                                fp += 1
                        tps[i] = tp
                        rc[i] = float(tp) / npig
                        pr[i] = float(tp) / (float(fp) + float(tp) + _EPS)
                    recall[t, k, a, m] = rc[n - 1] if n else 0.0
                    for i in range(n - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    sums[t, a, m, k] = _precision_sum(pr, tps, n, npig, recall_thresholds)
                    if dense:
                        _read_recall_thresholds(rc, pr, n, recall_thresholds, scores, listed,
                                                precision[t, :, k, a, m], score_at[t, :, k, a, m])
    return precision, recall, score_at, sums


@njit(cache=True, nogil=True)
def _read_recall_thresholds(rc, pr, n, recall_thresholds, scores, listed, precision,
                            score_at):  # pragma: no cover (compiled)
    """Precision and score at each recall threshold: at the first of the ``n`` listed detections whose
    recall reaches it (pycocotools' left ``searchsorted``), 0 past the last."""
    i = 0
    for r in range(len(recall_thresholds)):
        while i < n and rc[i] < recall_thresholds[r]:
            i += 1
        precision[r] = pr[i] if i < n else 0.0
        score_at[r] = scores[listed[i]] if i < n else 0.0


@njit(cache=True, nogil=True)
def _precision_sum(pr, tps, n, npig, recall_thresholds):  # pragma: no cover (compiled)
    """The sum of the precision read at every recall threshold, without visiting each threshold.

    Threshold r reads the precision where the TP count first reaches its need c (the least
    c with c / npig >= r; c = 0 reads the first detection), and nothing past the last TP.
    The thresholds needing at most c are those <= c / npig: a binary search per TP count.
    The sum runs as the numpy path's (``_accumulate.Curves.precision_sums``) does, so both
    give the same bits: one term per TP count c in ascending order, the precision there
    times the number of thresholds needing exactly c.
    """
    n_rec = len(recall_thresholds)
    below = np.searchsorted(recall_thresholds, 0.0, side="right")  # the thresholds needing c = 0
    total = pr[0] * below if n > 0 and below > 0 else 0.0
    for i in range(n):
        if below == n_rec:
            break
        if tps[i] > (tps[i - 1] if i > 0 else 0):  # the tps[i]-th TP
            reached = below + np.searchsorted(recall_thresholds[below:], float(tps[i]) / npig, side="right")
            if reached > below:
                total += pr[i] * (reached - below)
                below = reached
    return total
