"""IoU of every (detection, ground truth) pair that shares an image and a category.

Convention: as pycocotools' computeIoU: per (image, category) cell the detections are
sorted by descending score (stable) and cut to the largest ``max_dets``; "segm" IoU is
mask IoU from exact pixel counts (crowd ground truths divide by the detection's area),
"bbox" IoU is pycocotools' box IoU. Pairs whose boxes miss are 0 without touching the
masks, and so are pairs whose IoU is provably below ``floor`` (the matching never looks
below the smallest threshold); the rest are counted in chunks of pairs over run-length masks.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from segfuse.coco import _boxes, _runs
from segfuse.coco._dataset import Instances
from segfuse.coco._ragged import gather_segments, offsets_from_lengths

CHUNK_PAIRS = 200_000


class Pairs(NamedTuple):
    """P pairs: dt (P,) index into the kept detections, gt (P,) index into the sorted ground truths, iou (P,)."""

    dt: np.ndarray
    gt: np.ndarray
    iou: np.ndarray


def cell_pairs(dt_cell: np.ndarray, gt_cell: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """All (dt, gt) index pairs within each cell; both inputs sorted by cell."""
    gt_offsets = offsets_from_lengths(np.bincount(gt_cell, minlength=n_cells))
    gt_index, owner = gather_segments(gt_offsets, dt_cell)
    return owner, gt_index


def pair_ious(dt: Instances, gt: Instances, d: np.ndarray, g: np.ndarray, iou_type: str,
              advance: Callable[[int], None], floor: float = 0.0) -> np.ndarray:
    """(P,) IoU of pairs (dt[d[p]], gt[g[p]]), computed chunk by chunk (``advance`` reports pairs done).

    "segm" pairs whose IoU bound (``_boxes.mask_iou_bound``) is below ``floor`` get 0.
    """
    out = np.zeros(len(d), dtype=np.float64)
    if iou_type == "segm":
        dt_boxes, gt_boxes = _runs.boxes(dt.masks), _runs.boxes(gt.masks)
        dt_area, gt_area = _runs.areas(dt.masks), _runs.areas(gt.masks)
    for start in range(0, len(d), CHUNK_PAIRS):
        dc, gc = d[start : start + CHUNK_PAIRS], g[start : start + CHUNK_PAIRS]
        crowd = gt.crowd[gc]
        if iou_type == "bbox":
            out[start : start + len(dc)] = _boxes.pair_iou(dt.boxes[dc], gt.boxes[gc], crowd)
        else:
            bound = _boxes.mask_iou_bound(dt_boxes[dc], gt_boxes[gc], dt_area[dc], gt_area[gc], crowd)
            hit = np.flatnonzero((bound > 0) & (bound >= floor))
            inter = _runs.pair_intersections(dt.masks, dc[hit], gt.masks, gc[hit])
            out[start + hit] = _boxes.iou_from_areas(inter, dt_area[dc[hit]], gt_area[gc[hit]], crowd[hit])
        advance(len(dc))
    return out
