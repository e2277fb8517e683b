"""Greedy detection-to-ground-truth matching of pycocotools' evaluateImg, for all cells at once.

Convention (pycocotools): per (image, category, area range, IoU threshold t) the detections
are visited by descending score; each takes, among ground truths still free (crowd ones
are always free) with IoU >= min(t, 1 - 1e-10), a non-ignored one if any, else an ignored
one, the highest IoU, and on ties the later one in annotation order. A ground truth is
ignored when it is a crowd region or its area is outside the range.

Vectorised: the candidate (detection, ground truth) pairs are sorted once by (detection
rank, detection, IoU, gt index). With the thresholds ascending, the thresholds a pair passes
form a prefix, so the candidates of each (detection, threshold) block are a suffix of the
detection's pairs and the blocks are laid out without sorting the expanded triples. The
Python loop runs over ranks (<= max_dets), not over area ranges, images, categories,
thresholds or pairs; at each step every block of every area range takes its last
still-free non-ignored candidate, else its last still-free one.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from segfuse.coco._overlap import Pairs
from segfuse.coco._ragged import offsets_from_lengths, run_bounds, run_starts


class Candidates(NamedTuple):
    """C candidate triples ordered by (rank, detection, threshold, IoU, gt); ``rank_bounds`` splits ranks."""

    dt: np.ndarray
    gt: np.ndarray
    thr: np.ndarray
    block: np.ndarray
    rank_bounds: np.ndarray


def greedy_match(pairs: Pairs, dt_rank: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                 thresholds: np.ndarray, advance: Callable[[int], None]) -> np.ndarray:
    """(A, T, D) int32: index of the ground truth each detection matches, -1 if none.

    Args:
        pairs: IoU of the (dt, gt) pairs of each cell.
        dt_rank: (D,) rank of each detection in its cell by descending score.
        gt_ignore: (A, G) bool, ground truth ignored in each area range.
        gt_crowd: (G,) bool.
        thresholds: (T,) IoU thresholds, any order.
    """
    n_areas, n_gt = gt_ignore.shape
    n_thr, n_dt = len(thresholds), len(dt_rank)
    matched = np.full(n_areas * n_thr * n_dt, -1, dtype=np.int32)
    by_threshold = np.argsort(thresholds, kind="stable")
    c = _candidates(pairs, dt_rank, np.minimum(thresholds, 1 - 1e-10)[by_threshold])
    state, crowd, slot = c.thr * n_gt + c.gt, gt_crowd[c.gt], by_threshold[c.thr] * n_dt + c.dt
    taken = np.zeros(n_areas * n_thr * n_gt, dtype=bool)
    area_state = (np.arange(n_areas) * (n_thr * n_gt))[:, None]
    area_block = (np.arange(n_areas) * (int(c.block[-1]) + 1 if len(c.block) else 1))[:, None]
    area_slot = np.arange(n_areas) * (n_thr * n_dt)
    for start, stop in zip(c.rank_bounds[:-1].tolist(), c.rank_bounds[1:].tolist()):
        # every area range at once: (A, n) candidates, blocks kept apart per area
        where = (state[start:stop] + area_state).reshape(-1)
        busy = taken[where].reshape(n_areas, -1) & ~crowd[start:stop]
        chosen = _choose(busy.reshape(-1), ~gt_ignore[:, c.gt[start:stop]].reshape(-1),
                         (c.block[start:stop] + area_block).reshape(-1))
        area, local = np.divmod(chosen, stop - start)
        taken[where[chosen]] = True
        matched[area_slot[area] + slot[start + local]] = c.gt[start + local]
        advance(1)
    return matched.reshape(n_areas, n_thr, n_dt)


def _choose(busy: np.ndarray, preferred: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Per block (contiguous ids), the last free preferred position, else the last free one."""
    free = (~busy).nonzero()[0]
    if not len(free):
        return free
    heads, _ = run_starts(block[free])
    key = free + preferred[free] * len(busy)
    return np.maximum.reduceat(key, heads) % len(busy)


def _candidates(pairs: Pairs, dt_rank: np.ndarray, thresholds: np.ndarray) -> Candidates:
    """Candidate triples for ascending ``thresholds``: pair p passes thresholds [0, passed[p])."""
    keep = (pairs.iou >= thresholds[0]).nonzero()[0] if len(thresholds) else np.zeros(0, np.int64)
    d, g, iou = pairs.dt[keep], pairs.gt[keep], pairs.iou[keep]
    order = np.lexsort((g, iou, d, dt_rank[d]))
    d, g, iou = d[order], g[order], iou[order]
    passed = thresholds.searchsorted(iou, side="right")
    starts, sizes = run_starts(d)
    group = np.arange(len(starts)).repeat(sizes)
    n_thr = len(thresholds)
    key = group * (n_thr + 1) + passed
    wanted = (np.arange(len(starts))[:, None] * (n_thr + 1) + np.arange(1, n_thr + 1)[None, :]).reshape(-1)
    first = key.searchsorted(wanted, side="left")
    lengths = (starts + sizes).repeat(n_thr) - first
    block = np.arange(len(first)).repeat(lengths)
    flat = np.arange(len(block)) + (first - offsets_from_lengths(lengths)[:-1]).repeat(lengths)
    rank = dt_rank[d[flat]]
    return Candidates(d[flat], g[flat], block % max(n_thr, 1), block, run_bounds(rank))
