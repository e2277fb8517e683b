"""The 12 COCO summary numbers, "AP{t}" per threshold, per-category AP and the printed summary.

Convention: the 12 keys follow pycocotools' ``summarize`` exactly: "AP" averages precision
over every threshold at area "all" and maxDets=100 (the literal 100, as pycocotools);
"AP50", "AP75", "APs", "APm", "APl" and "ARs", "ARm", "ARl" use ``max_dets[2]``; "AR1",
"AR10", "AR100" are recall at ``max_dets[0]``, ``[1]``, ``[2]`` (so with max_dets
(1, 5, 20) "AR100" is recall at 20 detections). ``max_dets`` is sorted first; with fewer
than 3 entries, index i falls back to the last one (pycocotools raises instead). A value
with no defined entry (no such threshold, area label or cap, or no ground truth at all) is
-1, pycocotools' convention, kept in these 12 keys only for equality with it. Each
threshold t adds "AP{round(100 t)}" at area "all" and ``max_dets[2]``. Per-category AP
(area "all", the largest cap) is NaN where the category has no ground truth.
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._params import EvalParams

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_LINES = (  # (ap, iou threshold, area label, index into max_dets or None for the literal 100)
    (1, None, "all", None), (1, 0.5, "all", 2), (1, 0.75, "all", 2), (1, None, "small", 2),
    (1, None, "medium", 2), (1, None, "large", 2), (0, None, "all", 0), (0, None, "all", 1),
    (0, None, "all", 2), (0, None, "small", 2), (0, None, "medium", 2), (0, None, "large", 2),
)


def coco_stats(precision: np.ndarray, recall: np.ndarray, params: EvalParams) -> dict[str, float]:
    """The 12 standard keys, then "AP{t}" for every IoU threshold, as floats."""
    stats = {}
    for key, (ap, thr, area, which) in zip(STAT_KEYS, _LINES):
        stats[key] = _summarize(precision if ap else recall, params, ap, thr, area, _cap(params, which))
    for thr, key in zip(params.iou_thresholds, params.threshold_keys):
        stats[key] = _summarize(precision, params, 1, thr, "all", _cap(params, 2))
    return stats


def summary_lines(stats: dict, params: EvalParams) -> list[str]:
    """pycocotools' printed lines for the 12 keys, then one line per extra threshold."""
    lines = [_line(ap, thr, area, _cap(params, which), stats[key], params)
             for key, (ap, thr, area, which) in zip(STAT_KEYS, _LINES)]
    for thr, key in zip(params.iou_thresholds, params.threshold_keys):
        if key not in ("AP50", "AP75"):
            lines.append(_line(1, thr, "all", _cap(params, 2), stats[key], params))
    return lines


def per_category_ap(precision: np.ndarray, params: EvalParams) -> np.ndarray:
    """(K, 1 + T) AP per category: over all thresholds, then per threshold; NaN if undefined."""
    area = params.area_labels.index("all") if "all" in params.area_labels else 0
    block = precision[:, :, :, area, -1]  # (T, R, K)
    valid = block > -1
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(valid, block, 0).sum(axis=(0, 1)) / valid.sum(axis=(0, 1))
        each = np.where(valid, block, 0).sum(axis=1) / valid.sum(axis=1)
    return np.column_stack([overall, each.T])


def _cap(params: EvalParams, which) -> int:
    if which is None:
        return 100
    return params.max_dets[min(which, len(params.max_dets) - 1)]


def _summarize(values, params: EvalParams, ap: int, thr, area: str, cap: int) -> float:
    aind = [i for i, label in enumerate(params.area_labels) if label == area]
    mind = [i for i, m in enumerate(params.max_dets) if m == cap]
    if thr is not None:
        values = values[np.where(thr == params.iou_thresholds)[0]]
    if len(aind) == 1 and len(mind) == 1:
        values = values[..., aind[0], mind[0]]
    else:
        values = values[:, :, :, aind, mind] if ap else values[:, :, aind, mind]
    defined = values[values > -1]
    return -1.0 if len(defined) == 0 else float(np.mean(defined))


def _line(ap, thr, area, cap, value, params: EvalParams) -> str:
    title = "Average Precision" if ap else "Average Recall"
    kind = "(AP)" if ap else "(AR)"
    thresholds = params.iou_thresholds
    iou = f"{thresholds[0]:0.2f}:{thresholds[-1]:0.2f}" if thr is None else f"{thr:0.2f}"
    return f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={cap:>3d} ] = {value:0.3f}"
