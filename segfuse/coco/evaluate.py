"""COCO-style AP / AR of instance masks ("segm") or boxes ("bbox"), equal to pycocotools' COCOeval.

Convention: the numbers are those of ``COCOeval(gt, loadRes(dt), iou_type)`` with
``params.iouThrs = iou_thresholds``, ``params.maxDets = max_dets`` and the given area
ranges, after ``evaluate(); accumulate(); summarize()``: the 12 ``stats`` keys equal
``COCOeval.stats[0..11]`` (with its -1 for undefined values and its use of maxDets=100
and ``max_dets[2]``, see ``_summary``), ``precision`` (T, R, K, A, M), ``recall``
(T, K, A, M) and ``scores`` (T, R, K, A, M) equal ``COCOeval.eval`` element-wise. Loading
rules are in ``_dataset``, matching in ``_matching``, accumulation in ``_accumulate``.
Nothing is computed per image in Python: masks stay run-length encoded and every step is
vectorised over all images and categories.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segfuse.coco import _progress
from segfuse.coco._accumulate import accumulate
from segfuse.coco._dataset import Catalog, Instances, load_ground_truth, load_results
from segfuse.coco._matching import greedy_match
from segfuse.coco._overlap import Pairs, cell_pairs, pair_ious
from segfuse.coco._params import EvalParams, make_params, recall_thresholds
from segfuse.coco._summary import coco_stats, per_category_ap, summary_lines


@dataclass
class CocoEvaluation:
    """Result of ``evaluate``: ``stats`` dict, pycocotools' arrays, per-category AP.

    stats: the 12 keys "AP" ... "ARl" then "AP{t}" per IoU threshold (floats).
    precision: (T, R, K, A, M) float64; recall: (T, K, A, M); scores: (T, R, K, A, M)
    (-1 where a category has no non-ignored ground truth).
    per_category: category id -> {"name", "AP", "AP{t}"...} (NaN where undefined).
    """

    stats: dict
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    per_category: dict
    params: EvalParams = field(repr=False)

    def summary(self) -> str:
        """pycocotools' 12 printed lines, then a line per extra IoU threshold."""
        return "\n".join(summary_lines(self.stats, self.params))

    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-ready dict: stats, per-category AP (NaN -> None), parameters, arrays on request."""
        clean = lambda v: None if isinstance(v, float) and np.isnan(v) else v  # noqa: E731
        out = {
            "iou_type": self.params.iou_type,
            "iou_thresholds": [float(t) for t in self.params.iou_thresholds],
            "max_dets": list(self.params.max_dets),
            "area_ranges": {k: [float(a), float(b)] for k, (a, b) in zip(self.params.area_labels, self.params.area_ranges)},
            "stats": dict(self.stats),
            "per_category": {str(k): {n: clean(v) for n, v in row.items()} for k, row in self.per_category.items()},
        }
        if arrays:
            out.update(precision=self.precision.tolist(), recall=self.recall.tolist(), scores=self.scores.tolist())
        return out


def evaluate(gt, dt, iou_type: str = "segm", iou_thresholds=None, max_dets=(1, 10, 100), area_ranges=None,
             progress=None) -> CocoEvaluation:
    """COCO AP / AR of results ``dt`` against ground truth ``gt``.

    Args:
        gt: COCO ground truth: a JSON path or the loaded dict (images, annotations, categories).
        dt: results: a JSON path, a list of result dicts (as ``COCO.loadRes`` takes) or a
            COCO dict whose "annotations" are results.
        iou_type: "segm" (mask IoU) or "bbox".
        iou_thresholds: IoU thresholds in [0, 1] (default 0.50:0.05:0.95), any order.
        max_dets: detection caps per image and category (default (1, 10, 100)).
        area_ranges: {label: (low, high)} in pixels (default all / small / medium / large).
        progress: show a progress bar (None: when stdout is a terminal and there are many images).

    Returns:
        CocoEvaluation with ``stats`` (e.g. ``stats["AP"]``, ``stats["AP10"]``), ``precision``,
        ``recall``, ``scores``, ``per_category`` and ``to_dict()``.

    Example:
        >>> result = evaluate("instances_val.json", "segm_results.json")  # doctest: +SKIP
        >>> result.stats["AP"], result.stats["AP50"]  # doctest: +SKIP
    """
    params = make_params(iou_type, iou_thresholds, max_dets, area_ranges)
    catalog, ground_truth = load_ground_truth(gt, params.iou_type)
    detections = load_results(dt, catalog, params.iou_type)
    return evaluate_instances(catalog, ground_truth, detections, params, progress)


def evaluate_instances(catalog: Catalog, gt: Instances, dt: Instances, params: EvalParams,
                       progress=None) -> CocoEvaluation:
    """The evaluator behind ``evaluate`` and ``evaluate_masks``, on loaded instances."""
    n_images, n_cats = len(catalog.image_ids), len(catalog.category_ids)
    show = _progress.wanted(progress, n_images)
    kept, rank = _kept_detections(dt, n_images, params.max_dets[-1])
    gt_order = np.argsort(gt.category * n_images + gt.image, kind="stable")
    d, g = cell_pairs((dt.category * n_images + dt.image)[kept], (gt.category * n_images + gt.image)[gt_order],
                      n_cats * n_images)
    with _progress.bar(show, "COCO overlaps", len(d)) as advance:
        floor = min(float(params.iou_thresholds.min()), 1 - 1e-10)
        iou = pair_ious(dt, gt, kept[d], gt_order[g], params.iou_type, advance, floor)
    gt_ignore = _gt_ignore(gt, params)[:, gt_order]
    with _progress.bar(show, "COCO matching", int(rank.max(initial=-1)) + 1) as advance:
        matched = greedy_match(Pairs(d, g, iou), rank, gt_ignore, gt.crowd[gt_order], params.iou_thresholds, advance)
    tp, fp = _outcomes(matched, gt.ids[gt_order], gt_ignore, _outside(dt.area[kept], params))
    category, scores = dt.category[kept], dt.scores[kept]
    order = np.lexsort((rank, dt.image[kept], -scores, category))
    n_positive = np.stack([np.bincount(gt.category[~ig], minlength=n_cats) for ig in _gt_ignore(gt, params)], axis=1)
    precision, recall, score_at = accumulate(tp, fp, category, order, rank, scores, n_positive, params.max_dets,
                                             recall_thresholds())
    return CocoEvaluation(coco_stats(precision, recall, params), precision, recall, score_at,
                          _per_category(precision, catalog, params), params)


def _kept_detections(dt: Instances, n_images: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Detections sorted by (cell, -score, input order) and cut to ``cap`` per cell; their ranks."""
    cell = dt.category * n_images + dt.image
    order = np.lexsort((np.arange(len(dt)), -dt.scores, cell))
    sorted_cell = cell[order]
    first = np.searchsorted(sorted_cell, sorted_cell, side="left")
    rank = np.arange(len(order)) - first
    keep = rank < cap
    return order[keep], rank[keep]


def _gt_ignore(gt: Instances, params: EvalParams) -> np.ndarray:
    """(A, G) crowd or area outside the range."""
    return gt.crowd[None, :] | _outside(gt.area, params)


def _outside(area: np.ndarray, params: EvalParams) -> np.ndarray:
    """(A, n) area < low or area > high."""
    low, high = params.area_ranges[:, :1], params.area_ranges[:, 1:]
    return (area[None, :] < low) | (area[None, :] > high)


def _outcomes(matched, gt_ids, gt_ignore, dt_outside):
    """(A, T, D) TP and FP flags from matches (pycocotools' dtMatches / dtIgnore rules).

    Index -1 (no match) reads an appended id 0 / not-ignored entry, so no masking pass is needed.
    """
    dtm = np.r_[gt_ids, 0][matched]
    unmatched = dtm == 0
    ignore = np.concatenate([gt_ignore, np.zeros((len(gt_ignore), 1), bool)], axis=1)
    ignored = np.take_along_axis(ignore[:, None, :], matched, axis=2)
    ignored |= unmatched & dt_outside[:, None, :]
    ignored = ~ignored
    return ~unmatched & ignored, unmatched & ignored


def _per_category(precision: np.ndarray, catalog: Catalog, params: EvalParams) -> dict:
    table = per_category_ap(precision, params)
    keys = ["AP"] + params.threshold_keys
    return {
        int(cat): {"name": name, **{k: float(v) for k, v in zip(keys, row)}}
        for cat, name, row in zip(catalog.category_ids, catalog.category_names, table)
    }
