"""Box IoU and IoU from areas, with pycocotools' floating-point expressions.

Convention: boxes are [x, y, w, h] float64. For a crowd ground truth the union is the
detection's area alone (pycocotools' ``iscrowd``); boxes that touch or miss give 0. Mask
IoU is ``inter / union`` computed from exact integer pixel counts, 0 when they do not
intersect. The expressions follow pycocotools' C code operation by operation, so the
floats are identical, not merely close.
"""

from __future__ import annotations

import numpy as np


def pair_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(P,) IoU of box pairs dt[p], gt[p] ((P, 4) each) with crowd (P,) bool (pycocotools' bbIou)."""
    w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    dt_area, gt_area = dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]
    inter = w * h
    union = np.where(crowd, dt_area, dt_area + gt_area - inter)
    hit = (w > 0) & (h > 0)
    out = np.zeros(len(dt), dtype=np.float64)
    out[hit] = inter[hit] / union[hit]
    return out


def mask_iou_bound(dt_box: np.ndarray, gt_box: np.ndarray, dt_area: np.ndarray, gt_area: np.ndarray,
                   crowd: np.ndarray) -> np.ndarray:
    """(P,) upper bound of the float mask IoU from tight pixel boxes and int areas; 0 if the boxes miss.

    The intersection is at most u = min(areas, pixels of the box overlap), the union at least
    areas - u (the detection's area for crowd), and float division of exact integers is
    monotone, so ``iou_from_areas`` can never exceed this value.
    """
    w = np.minimum(dt_box[:, 2] + dt_box[:, 0], gt_box[:, 2] + gt_box[:, 0]) - np.maximum(dt_box[:, 0], gt_box[:, 0])
    h = np.minimum(dt_box[:, 3] + dt_box[:, 1], gt_box[:, 3] + gt_box[:, 1]) - np.maximum(dt_box[:, 1], gt_box[:, 1])
    overlap = np.where((w > 0) & (h > 0), w * h, 0).astype(np.int64)
    upper = np.minimum(np.minimum(dt_area, gt_area), overlap)
    return iou_from_areas(upper, dt_area, gt_area, crowd)


def iou_from_areas(inter: np.ndarray, dt_area: np.ndarray, gt_area: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """(P,) mask IoU from int64 intersections and areas; crowd pairs divide by the detection area."""
    union = np.where(crowd, dt_area, dt_area + gt_area - inter)
    union = np.where(inter == 0, 1, union)
    return inter.astype(np.float64) / union.astype(np.float64)


def box_polygons(boxes: np.ndarray) -> list[np.ndarray]:
    """(n, 4) boxes -> polygons [x0, y0, x0, y1, x1, y1, x1, y0] (pycocotools' rleFrBbox order)."""
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    return list(np.stack([x0, y0, x0, y1, x1, y1, x1, y0], axis=1))
