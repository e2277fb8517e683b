"""Greedy detection-to-ground-truth matching of pycocotools' evaluateImg, for all cells at once.

Convention (pycocotools): per (image, category, area range, IoU threshold t) the detections
are visited by descending score; each takes, among ground truths still free (crowd ones
are always free) with IoU >= min(t, 1 - 1e-10), a non-ignored one if any, else an ignored
one, the highest IoU, and on ties the later one in annotation order. A ground truth is
ignored when it is a crowd region or its area is outside the range.

Vectorised: candidate (pair, t, area range) triples are sorted once by (detection rank,
problem, non-ignored, IoU, gt index), so at each rank the choice of every problem is the
last still-free candidate of its block; the Python loop runs over ranks (<= max_dets), not
over images, categories, thresholds or pairs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from segfuse.coco._overlap import Pairs


def greedy_match(pairs: Pairs, dt_rank: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                 thresholds: np.ndarray, advance: Callable[[int], None]) -> np.ndarray:
    """(A, T, D) int64: index of the ground truth each detection matches, -1 if none.

    Args:
        pairs: IoU of the (dt, gt) pairs of each cell.
        dt_rank: (D,) rank of each detection in its cell by descending score.
        gt_ignore: (A, G) bool, ground truth ignored in each area range.
        gt_crowd: (G,) bool.
        thresholds: (T,) IoU thresholds.
    """
    n_areas, n_gt = gt_ignore.shape
    n_thr, n_dt = len(thresholds), len(dt_rank)
    matched_gt = np.full(n_areas * n_thr * n_dt, -1, dtype=np.int64)
    pair, thr, area = _candidates(pairs.iou, np.minimum(thresholds, 1 - 1e-10), n_areas)
    d, g, iou = pairs.dt[pair], pairs.gt[pair], pairs.iou[pair]
    problem = area * n_thr + thr
    slot = problem * n_dt + d
    state = problem * n_gt + g
    rank = dt_rank[d]
    block = (rank * (n_areas * n_thr * n_dt) + slot) * 2 + ~gt_ignore[area, g]
    order = np.lexsort((g, iou, block))
    slot, state, g, crowd, rank = slot[order], state[order], g[order], gt_crowd[g[order]], rank[order]
    taken = np.zeros(n_areas * n_thr * n_gt, dtype=bool)
    bounds = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1], True]) if len(rank) else [0]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        free = start + np.flatnonzero(~taken[state[start:stop]] | crowd[start:stop])
        block = slot[free]
        chosen = free[np.r_[block[1:] != block[:-1], True]] if len(free) else free
        taken[state[chosen]] = True
        matched_gt[slot[chosen]] = g[chosen]
        advance(1)
    return matched_gt.reshape(n_areas, n_thr, n_dt)


def _candidates(iou: np.ndarray, thresholds: np.ndarray, n_areas: int):
    """(pair, threshold, area) index triples with iou[pair] >= thresholds[threshold]."""
    maybe = np.flatnonzero(iou >= thresholds.min())
    pair, thr = np.nonzero(iou[maybe, None] >= thresholds[None, :])
    pair = maybe[pair]
    area = np.repeat(np.arange(n_areas), len(pair))
    return np.tile(pair, n_areas), np.tile(thr, n_areas), area
