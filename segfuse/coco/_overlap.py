"""IoU of every (detection, ground truth) pair that shares an image and a category.

Convention: as pycocotools' computeIoU: per (image, category) cell the detections are
sorted by descending score (stable) and cut to the largest ``max_dets``; "segm" IoU is
mask IoU from exact pixel counts (crowd ground truths divide by the detection's area),
"bbox" IoU is pycocotools' box IoU, "boundary" IoU is faster-coco-eval's / boundary-iou-api's
``min(mask IoU, boundary IoU)`` for ordinary ground truths and the mask IoU for crowd ones
(boundary bands from ``_boundary``). On the numpy path pairs whose boxes miss are 0 without
touching the masks, and so are pairs whose IoU is provably below ``floor`` (the matching
never looks below the smallest threshold); the rest are counted in chunks of pairs over
run-length masks. With pycocotools installed, "segm" IoU comes from its C ``rleIou``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from segfuse.coco import _boxes, _cmask, _runs
from segfuse.coco._boundary import boundary_dilation, boundary_runs
from segfuse.coco._dataset import Instances
from segfuse.coco._ragged import spans

CHUNK_PAIRS = 200_000


class Pairs(NamedTuple):
    """P pairs: dt (P,) index into the kept detections, gt (P,) index into the sorted ground truths, iou (P,)."""

    dt: np.ndarray
    gt: np.ndarray
    iou: np.ndarray


def cell_pairs(dt_cell: np.ndarray, gt_cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (dt, gt) index pairs within each cell; both inputs sorted by cell."""
    begin = gt_cell.searchsorted(dt_cell, side="left")
    gt_index, owner = spans(begin, gt_cell.searchsorted(dt_cell, side="right") - begin)
    return owner, gt_index


def pair_ious(dt: Instances, gt: Instances, d: np.ndarray, g: np.ndarray, iou_type: str,
              advance: Callable[[int], None], floor: float = 0.0, dilation_ratio: float = 0.02) -> np.ndarray:
    """(P,) IoU of pairs (dt[d[p]], gt[g[p]]), computed chunk by chunk (``advance`` reports pairs done)."""
    if iou_type == "bbox":
        out = np.zeros(len(d), dtype=np.float64)
        for start in range(0, len(d), CHUNK_PAIRS):
            dc, gc = d[start : start + CHUNK_PAIRS], g[start : start + CHUNK_PAIRS]
            out[start : start + len(dc)] = _boxes.pair_iou(dt.boxes[dc], gt.boxes[gc], gt.crowd[gc])
            advance(len(dc))
        return out
    if isinstance(dt.masks, list):
        return _cmask.pair_ious(dt.masks, gt.masks, gt.crowd, d, g, dt.image[d], advance)
    out = _mask_ious(dt.masks, gt.masks, gt.crowd, d, g, advance if iou_type == "segm" else _quiet, floor)
    if iou_type == "boundary":
        out = _boundary_ious(dt, gt, d, g, out, floor, dilation_ratio, advance)
    return out


def _quiet(n: int) -> None:
    return None


def _mask_ious(dt_masks, gt_masks, gt_crowd, d, g, advance, floor) -> np.ndarray:
    """Mask IoU on Runs; pairs whose IoU bound (``_boxes.mask_iou_bound``) is below ``floor`` get 0."""
    out = np.zeros(len(d), dtype=np.float64)
    dt_boxes, gt_boxes = _runs.boxes(dt_masks), _runs.boxes(gt_masks)
    dt_area, gt_area = _runs.areas(dt_masks), _runs.areas(gt_masks)
    for start in range(0, len(d), CHUNK_PAIRS):
        dc, gc = d[start : start + CHUNK_PAIRS], g[start : start + CHUNK_PAIRS]
        crowd = gt_crowd[gc]
        bound = _boxes.mask_iou_bound(dt_boxes[dc], gt_boxes[gc], dt_area[dc], gt_area[gc], crowd)
        hit = np.flatnonzero((bound > 0) & (bound >= floor))
        inter = _runs.pair_intersections(dt_masks, dc[hit], gt_masks, gc[hit])
        out[start + hit] = _boxes.iou_from_areas(inter, dt_area[dc[hit]], gt_area[gc[hit]], crowd[hit])
        advance(len(dc))
    return out


def _boundary_ious(dt: Instances, gt: Instances, d, g, mask_iou, floor, dilation_ratio, advance) -> np.ndarray:
    """min(mask IoU, boundary IoU) for non-crowd pairs whose mask IoU reaches ``floor``; mask IoU otherwise."""
    out = mask_iou.copy()
    work = np.flatnonzero(~gt.crowd[g] & (mask_iou > 0) & (mask_iou >= floor))
    dts, d_local = np.unique(d[work], return_inverse=True)
    gts, g_local = np.unique(g[work], return_inverse=True)
    dt_band = _bands(_runs.take(dt.masks, dts), dilation_ratio)
    gt_band = _bands(_runs.take(gt.masks, gts), dilation_ratio)
    no_crowd = np.zeros(len(gts), dtype=bool)
    band_iou = _mask_ious(dt_band, gt_band, no_crowd, d_local.reshape(-1), g_local.reshape(-1), _quiet, 0.0)
    out[work] = np.minimum(mask_iou[work], band_iou)
    advance(len(d))
    return out


def _bands(masks: _runs.Runs, dilation_ratio: float) -> _runs.Runs:
    return boundary_runs(masks, boundary_dilation(masks.heights, masks.widths, dilation_ratio))
