"""COCO-style AP / AR of instance masks ("segm"), boxes ("bbox") or mask boundaries ("boundary"), and LVIS.

Convention: the numbers are those of ``COCOeval(gt, loadRes(dt), iou_type)`` with
``params.iouThrs = iou_thresholds``, ``params.maxDets = max_dets``, the given area ranges,
``params.useCats = use_cats`` and ``params.imgIds`` / ``params.catIds`` set to the subsets,
after ``evaluate(); accumulate(); summarize()``: the 12 ``stats`` keys equal
``COCOeval.stats[0..11]`` (with its -1 for undefined values and its use of maxDets=100
and ``max_dets[2]``, see ``_summary``), ``precision`` (T, R, K, A, M), ``recall``
(T, K, A, M) and ``scores`` (T, R, K, A, M) equal ``COCOeval.eval`` element-wise.
"boundary" equals faster-coco-eval 1.8.0's ``iouType="boundary"``. ``mode="lvis"``
equals the ``lvis`` package 0.5.3's ``LVISEval`` (its precision (T, R, K, A) is ours with
M = 1). Loading rules are in ``_dataset``, the per-image stage in ``_pipeline``, matching
in ``_matching``, accumulation in ``_accumulate``, the analysis in ``_analysis``; from a
process's second evaluation on (or for a large first one), matching and accumulation run
compiled where numba is installed (``_compiled``, chosen by ``_pipeline.kernels``), with the
same numbers to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segfuse.coco import _pipeline, _progress
from segfuse.coco._accumulate import CompiledCurves, accumulate
from segfuse.coco._analysis import Analysis, analyse
from segfuse.coco._dataset import (
    Catalog,
    ground_truth_dict,
    ground_truth_table,
    load_catalog,
    read_json,
    restrict,
    read_results,
    result_table,
)
from segfuse.coco._params import EvalParams, make_params, recall_thresholds
from segfuse.coco._pipeline import (
    Matched,
    area_outside,
    ground_truth_ignore,
    match_in_processes,
    resolve_workers,
)
from segfuse.coco._summary import coco_stats, lvis_stats, per_category_ap, summary_lines

AGNOSTIC_ID = -1  # per_category key when use_cats=False (pycocotools' catIds = [-1])


@dataclass
class CocoEvaluation:
    """Result of ``evaluate``: ``stats`` dict, pycocotools' arrays, per-category AP, the analysis.

    stats: COCO's 12 keys "AP" ... "ARl", "AP@{largest cap}", then "AP{t}" per IoU
        threshold (LVIS: its 13 keys, then "AP{t}"), floats with -1 where undefined.
    precision: (T, R, K, A, M) float64; recall: (T, K, A, M); scores: (T, R, K, A, M), computed on
        first use (-1 where a category has no non-ignored ground truth).
    per_category: category id -> {"name", "AP", "AP{t}"...} (NaN where undefined); with
        ``use_cats=False`` one entry, id -1.
    analysis(iou=0.5): per-class precision / recall / F1 at the best-F1 score threshold,
        TP / FP / FN flags, matched pairs and curves (see ``_analysis``).
    """

    stats: dict
    recall: np.ndarray
    params: EvalParams = field(repr=False)
    _catalog: Catalog = field(default=None, repr=False)
    _matched: Matched = field(default=None, repr=False)
    _n_results: int = field(default=0, repr=False)
    _results: tuple = field(default=None, repr=False)
    _analyses: dict = field(default_factory=dict, repr=False)
    _curves: object = field(default=None, repr=False)
    _arrays: dict = field(default_factory=dict, repr=False)

    @property
    def per_category(self) -> dict:
        """Category id -> {"name", "AP", "AP{t}"...}; built on first use."""
        if "per_category" not in self._arrays:
            self._arrays["per_category"] = _per_category(self._curves, self._catalog, self.params)
        return self._arrays["per_category"]

    @property
    def precision(self) -> np.ndarray:
        """(T, R, K, A, M) interpolated precision (pycocotools' eval["precision"]); built on first use."""
        if "precision" not in self._arrays:
            self._arrays["precision"] = self._curves.precision()
        return self._arrays["precision"]

    @property
    def scores(self) -> np.ndarray:
        """(T, R, K, A, M) score at each sampled precision (pycocotools' eval["scores"]); built on first use."""
        if "scores" not in self._arrays:
            self._arrays["scores"] = self._curves.scores()
        return self._arrays["scores"]

    def summary(self) -> str:
        """pycocotools' (or lvis') printed lines, then a line per extra IoU threshold."""
        return "\n".join(summary_lines(self.stats, self.params))

    def analysis(self, iou: float | None = None) -> Analysis:
        """The extended analysis at IoU threshold ``iou`` (one of the evaluated thresholds; default 0.5 if
        evaluated, else the smallest one), area "all", the largest cap."""
        thresholds = self.params.iou_thresholds
        if iou is None:
            iou = 0.5 if np.any(thresholds == 0.5) else float(thresholds.min())
        hits = np.flatnonzero(np.isclose(thresholds, float(iou), rtol=0, atol=1e-12))
        if not len(hits):
            raise ValueError(f"iou must be one of the evaluated iou_thresholds {thresholds.tolist()}, got {iou!r}")
        t = int(hits[0])
        if t not in self._analyses:
            self._analyses[t] = analyse(self, t)
        return self._analyses[t]

    def to_dict(self, arrays: bool = False) -> dict:
        """JSON-ready dict: stats, per-category AP (NaN -> None), parameters, arrays on request."""
        clean = lambda v: None if isinstance(v, float) and np.isnan(v) else v  # noqa: E731
        out = {
            "iou_type": self.params.iou_type,
            "mode": self.params.mode,
            "use_cats": self.params.use_cats,
            "iou_thresholds": [float(t) for t in self.params.iou_thresholds],
            "max_dets": list(self.params.max_dets),
            "area_ranges": {k: [float(a), float(b)] for k, (a, b) in zip(self.params.area_labels, self.params.area_ranges)},
            "stats": dict(self.stats),
            "per_category": {str(k): {n: clean(v) for n, v in row.items()} for k, row in self.per_category.items()},
        }
        if self.params.image_ids is not None:
            out["image_ids"] = self.params.image_ids.tolist()
        if self.params.category_ids is not None:
            out["category_ids"] = self.params.category_ids.tolist()
        if self.params.min_score is not None:
            out["min_score"] = self.params.min_score
        if self.params.iou_type == "boundary":
            out["dilation_ratio"] = self.params.dilation_ratio
        if arrays:
            out.update(precision=self.precision.tolist(), recall=self.recall.tolist(), scores=self.scores.tolist())
        return out


def evaluate(gt, dt, iou_type: str = "segm", iou_thresholds=None, max_dets=None, area_ranges=None, *,
             mode: str = "coco", use_cats: bool = True, image_ids=None, category_ids=None, min_score=None,
             dilation_ratio: float = 0.02, workers: int | None = None, progress=None) -> CocoEvaluation:
    """COCO (or LVIS) AP / AR of results ``dt`` against ground truth ``gt``.

    Args:
        gt: COCO ground truth: a JSON path or the loaded dict (images, annotations, categories).
        dt: results: a JSON path, a list of result dicts (as ``COCO.loadRes`` takes) or a
            COCO dict whose "annotations" are results.
        iou_type: "segm" (mask IoU), "bbox" or "boundary" (Boundary AP: min(mask IoU, boundary IoU)).
        iou_thresholds: IoU thresholds in [0, 1] (default 0.50:0.05:0.95), any order.
        max_dets: detection caps per image and category (default (1, 10, 100)); in
            ``mode="lvis"`` one cap per image over all categories (default 300).
        area_ranges: {label: (low, high)} in pixels (default all / small / medium / large).
        mode: "coco" (pycocotools' rules) or "lvis" (the lvis package's federated rules).
        use_cats: False evaluates class-agnostically (pycocotools' ``useCats=0``).
        image_ids, category_ids: evaluate only these ground-truth ids (default all).
        min_score: drop results scored below it before evaluating (default keep all).
        dilation_ratio: Boundary IoU band width as a fraction of the image diagonal (0.02).
        workers: processes over image shards (None, 0 or 1: this process; n > 1 forks n
            workers where fork exists). The numbers do not depend on it.
        progress: show a progress bar (None: when stdout is a terminal and there are many images).

    Returns:
        CocoEvaluation with ``stats`` (e.g. ``stats["AP"]``, ``stats["AP10"]``), ``precision``,
        ``recall``, ``scores``, ``per_category``, ``analysis()`` and ``to_dict()``.

    Example:
        >>> result = evaluate("instances_val.json", "segm_results.json")  # doctest: +SKIP
        >>> result.stats["AP"], result.stats["AP50"]  # doctest: +SKIP
    """
    params = make_params(iou_type, iou_thresholds, max_dets, area_ranges, mode=mode, use_cats=use_cats,
                         image_ids=image_ids, category_ids=category_ids, min_score=min_score,
                         dilation_ratio=dilation_ratio)
    gt_data = ground_truth_dict(read_json(gt, "ground truth"))
    dt_anns = read_results(dt, params.iou_type)
    full = load_catalog(gt_data, params)
    gt_table = ground_truth_table(gt_data["annotations"], full, params)
    dt_table, box_mode = result_table(dt_anns, full, params)
    dt_table_all = dt_table
    gt_table, dt_table, catalog = restrict(gt_table, dt_table, full, params)
    show = _progress.wanted(progress, len(catalog.image_ids))
    n_workers = resolve_workers(workers)
    matched = match_in_processes(catalog, gt_table, dt_table, params, gt_data["annotations"], dt_anns, box_mode,
                                 _pipeline.backend_for(params.iou_type), n_workers, show)
    results = (full.image_ids[dt_table_all.image], full.category_ids[dt_table_all.category], dt_table_all.scores)
    return finish(catalog, matched, params, results)


def finish(catalog: Catalog, matched: Matched, params: EvalParams, results: tuple) -> CocoEvaluation:
    """Accumulation and summary of matched detections; ``results``: (image ids, category ids, scores)
    of every input result, for the analysis."""
    curves = _accumulate_matches(catalog, matched, params)
    if params.mode == "lvis":
        stats = lvis_stats(curves, params, catalog.frequency)
    else:
        stats = coco_stats(curves, params)
    _pipeline.evaluated()
    return CocoEvaluation(stats, curves.recall, params, catalog, matched, len(results[0]), results, _curves=curves)


def _accumulate_matches(catalog: Catalog, matched: Matched, params: EvalParams):
    gt, dt = matched.gt, matched.dt
    n_cats = len(catalog.category_ids) if params.use_cats else 1
    gt_ignore = ground_truth_ignore(gt, params)
    category = dt.category if params.use_cats else np.zeros(len(dt), dtype=np.int64)
    gt_category = gt.category if params.use_cats else np.zeros(len(gt), dtype=np.int64)
    order = np.lexsort((matched.rank, dt.image, -dt.scores, category))
    area, counted = (~gt_ignore).nonzero()
    n_areas = len(gt_ignore)
    n_positive = np.bincount(gt_category[counted] * n_areas + area, minlength=n_cats * n_areas).reshape(n_cats, n_areas)
    dt_outside = area_outside(dt.area, params) | matched.not_exhaustive[None, :]
    compiled = _pipeline.kernels()
    if compiled is not None:
        arguments = (matched.matched, gt_ignore, gt.ids, dt_outside, category, order, matched.rank, dt.scores,
                     n_positive, np.asarray(params.max_dets, dtype=np.int64), recall_thresholds())
        return CompiledCurves(compiled.accumulate, arguments, n_positive > 0)
    return accumulate(matched.matched, gt_ignore, gt.ids, dt_outside, category, order, matched.rank, dt.scores,
                      n_positive, params.max_dets, recall_thresholds())


def _per_category(curves, catalog: Catalog, params: EvalParams) -> dict:
    table = per_category_ap(curves, params)
    keys = ["AP"] + params.threshold_keys
    if not params.use_cats:
        return {AGNOSTIC_ID: {"name": "all categories", **{k: float(v) for k, v in zip(keys, table[0])}}}
    out = {}
    for k, (cat, name, row) in enumerate(zip(catalog.category_ids, catalog.category_names, table)):
        entry = {"name": name, **{key: float(v) for key, v in zip(keys, row)}}
        if catalog.frequency is not None:
            entry["frequency"] = catalog.frequency[k]
        out[int(cat)] = entry
    return out
