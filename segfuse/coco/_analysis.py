"""The extended analysis of an evaluation: per-class operating points, TP / FP / FN flags, curves.

Convention: everything is read at one IoU threshold t (0.5 by default), area range "all"
and the largest cap, from the same matches as the AP (pycocotools' greedy matching). A
kept detection is "tp" (matched to a non-ignored ground truth), "fp" (unmatched and not
ignored) or "ignored" (matched to a crowd / ignored ground truth, or unmatched and in an
LVIS not-exhaustive category); a result that was never evaluated (beyond the cap of its
(image, category) cell, below ``min_score``, outside the subsets, dropped by LVIS' rules)
is "not_evaluated". A non-ignored ground truth is "tp" if a "tp" detection matched it,
else "fn"; a crowd / ignored one is "ignored". As pycocotools, a match to a ground truth
whose id is 0 counts as unmatched.

Operating points use counted detections (tp or fp) only. At a score threshold s a class
keeps its counted detections with score >= s: precision = tp / (tp + fp), recall =
tp / (non-ignored ground truths), F1 = 2 P R / (P + R) (0 when P + R = 0), the expressions
faster-coco-eval's ``extended_metrics`` uses. Candidate thresholds are the scores of
counted detections. Per class, the best-F1 threshold maximises the class's F1 (ties: the
lowest such score, the most inclusive). The overall row uses one threshold for all
classes, the one maximising the macro F1 (the mean over classes with ground truth; ties:
the lowest score), as faster-coco-eval and Ultralytics choose a confidence; its
precision and recall are the means over those classes. A class without ground truth has
NaN precision / recall / F1; one with ground truth but no counted detection has 0 and a
NaN threshold. "mean_iou" is the mean IoU of the tp pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_MACRO_TIE = 1e-9  # candidates this close to the best macro F1 are re-evaluated exactly
_MAX_EXACT = 256


@dataclass
class Analysis:
    """Extended analysis at one IoU threshold (see the module's Convention).

    per_class: one dict per evaluated category: id, name, AP and AP{t} (from the
        evaluation), n_gt, n_dt (counted detections), tp, fp, fn, precision, recall, f1,
        score_threshold (at the class's best F1), mean_iou, and precision_at_overall /
        recall_at_overall / f1_at_overall (at the overall threshold).
    overall: precision, recall, f1 (macro means at the overall threshold), score_threshold,
        mean_iou (of every tp pair), tp, fp, fn, n_gt.
    detections: columns over every input result: result_index, image_id, category_id,
        score, outcome ("tp" / "fp" / "ignored" / "not_evaluated"), gt_id (-1 if none), iou
        (NaN if unmatched).
    ground_truths: columns over every evaluated ground truth: id, image_id, category_id,
        area, outcome ("tp" / "fn" / "ignored"), result_index (-1 if unmatched), iou.
    curves: category id -> {"score", "precision", "recall", "f1"} at each distinct score
        of its counted detections, descending.
    f1_curve: {"score", "f1", "precision", "recall"}: the macro values at each candidate
        threshold, descending.
    """

    iou_threshold: float
    per_class: list
    overall: dict
    detections: dict
    ground_truths: dict
    curves: dict = field(repr=False)
    f1_curve: dict = field(repr=False)


def analyse(result, t: int) -> Analysis:
    """The analysis of ``CocoEvaluation`` ``result`` at IoU threshold index ``t``."""
    params, matched, catalog = result.params, result._matched, result._catalog
    gt, dt = matched.gt, matched.dt
    area = params.all_area
    in_cap = matched.rank < params.max_dets[-1]
    index = np.where(in_cap, matched.matched[area, t], -1).astype(np.int64)
    gt_ignore = gt.ignore | _outside(gt.area, params.area_ranges[area])
    outcome_dt, match_gt = _detection_outcomes(index, gt, gt_ignore, dt, matched.not_exhaustive, in_cap,
                                               params.area_ranges[area])
    iou = _pair_iou(matched.pairs, len(gt), match_gt)
    n_cats = len(catalog.category_ids) if params.use_cats else 1
    category = dt.category if params.use_cats else np.zeros(len(dt), np.int64)
    gt_category = gt.category if params.use_cats else np.zeros(len(gt), np.int64)
    n_gt = np.bincount(gt_category[~gt_ignore], minlength=n_cats)
    counted = (outcome_dt == 1) | (outcome_dt == 2)
    order = np.lexsort((matched.rank, dt.image, -dt.scores, category))
    order = order[counted[order]]
    points = _class_points(category[order], dt.scores[order], outcome_dt[order] == 1, n_gt, n_cats)
    best = _best_per_class(points, n_gt, n_cats)
    macro = _macro_best(points, n_gt, n_cats)
    gt_outcome, gt_result = _ground_truth_outcomes(gt, gt_ignore, match_gt, outcome_dt, dt)
    tp_iou = np.where(outcome_dt == 1, iou, np.nan)
    per_class = _per_class_rows(result, catalog, params, n_gt, points, best, macro, category, outcome_dt, tp_iou, n_cats)
    overall = {
        "precision": macro["precision"], "recall": macro["recall"], "f1": macro["f1"],
        "score_threshold": macro["threshold"],
        "mean_iou": float(np.nanmean(tp_iou)) if np.any(outcome_dt == 1) else float("nan"),
        "tp": int((outcome_dt == 1).sum()), "fp": int((outcome_dt == 2).sum()),
        "fn": int(((gt_outcome == "fn")).sum()), "n_gt": int(n_gt.sum()),
    }
    return Analysis(float(params.iou_thresholds[t]), per_class, overall,
                    _detection_columns(result, dt, outcome_dt, gt, match_gt, iou),
                    _ground_truth_columns(catalog, gt, gt_outcome, gt_result, iou, match_gt),
                    _curves(points, catalog, params, n_cats), macro["curve"])


def _outside(area, bounds) -> np.ndarray:
    return (area < bounds[0]) | (area > bounds[1])


def _detection_outcomes(index, gt, gt_ignore, dt, not_exhaustive, in_cap, bounds):
    """Per kept detection: 1 tp, 2 fp, 3 ignored, 4 beyond the cap; and its matched gt index (-1)."""
    gt_id = np.r_[gt.ids, 0][index]
    unmatched = (index < 0) | (gt_id == 0)
    ignored = np.where(unmatched, _outside(dt.area, bounds) | not_exhaustive, np.r_[gt_ignore, False][index])
    outcome = np.where(ignored, 3, np.where(unmatched, 2, 1))
    outcome[~in_cap] = 4
    return outcome, np.where(in_cap, index, -1)


def _pair_iou(pairs, n_gt: int, match_gt: np.ndarray) -> np.ndarray:
    """IoU of each detection's matched pair (NaN where unmatched); pairs are sorted by (dt, gt)."""
    out = np.full(len(match_gt), np.nan)
    has = np.flatnonzero(match_gt >= 0)
    if not len(has):
        return out
    keys = pairs.dt.astype(np.int64) * max(n_gt, 1) + pairs.gt
    wanted = has * max(n_gt, 1) + match_gt[has]
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    found = keys[at] == wanted
    out[has[found]] = pairs.iou[at[found]]
    return out


def _class_points(category, scores, is_tp, n_gt, n_cats) -> dict:
    """Operating points at the end of each run of equal scores within each class (inputs sorted by class, -score)."""
    n = len(category)
    if not n:
        empty = np.zeros(0)
        return {"category": np.zeros(0, np.int64), "score": empty, "tp": empty, "n": empty, "precision": empty,
                "recall": empty, "f1": empty}
    new_class = np.r_[True, category[1:] != category[:-1]]
    start = np.flatnonzero(new_class)
    total = np.cumsum(is_tp)
    base = np.repeat(total[start] - is_tp[start], np.diff(np.r_[start, n]))
    tp = (total - base).astype(np.float64)
    seen = (np.arange(n) - np.repeat(start, np.diff(np.r_[start, n])) + 1).astype(np.float64)
    end = np.r_[(category[1:] != category[:-1]) | (scores[1:] != scores[:-1]), True]
    cat, tp, seen = category[end], tp[end], seen[end]
    precision = tp / seen
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / n_gt[cat]
    f1 = _f1(precision, recall)
    return {"category": cat, "score": scores[end], "tp": tp, "n": seen, "precision": precision, "recall": recall, "f1": f1}


def _f1(precision, recall):
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * precision * recall / np.where(total > 0, total, 1), 0.0)


def _best_per_class(points, n_gt, n_cats) -> dict:
    """Index into ``points`` of each class's best F1 (ties: the lowest score), -1 where none."""
    best = np.full(n_cats, -1, dtype=np.int64)
    if len(points["category"]):
        position = np.arange(len(points["category"]))
        f1 = np.nan_to_num(points["f1"], nan=-1.0)
        order = np.lexsort((position, f1, points["category"]))
        last = np.r_[points["category"][order][1:] != points["category"][order][:-1], True]
        best[points["category"][order][last]] = order[last]
    best[n_gt == 0] = -1
    return best


def _macro_best(points, n_gt, n_cats) -> dict:
    """The overall threshold: maximal mean F1 over classes with ground truth (ties: the lowest score)."""
    valid = n_gt > 0
    n_valid = int(valid.sum())
    nan = float("nan")
    result = {"precision": nan, "recall": nan, "f1": nan, "threshold": nan, "at": None,
              "curve": {"score": np.zeros(0), "f1": np.zeros(0), "precision": np.zeros(0), "recall": np.zeros(0)}}
    if not n_valid or not len(points["category"]):
        if n_valid:
            result.update(precision=0.0, recall=0.0, f1=0.0)
        return result
    keep = valid[points["category"]]
    cat, score = points["category"][keep], points["score"][keep]
    values = {k: points[k][keep] for k in ("precision", "recall", "f1")}
    candidates = np.unique(points["score"])[::-1]  # descending; every counted score, any class
    curve = {}
    for name, v in values.items():
        previous = np.r_[0.0, v[:-1]]
        previous[np.r_[True, cat[1:] != cat[:-1]]] = 0.0
        delta = v - previous
        by_score = np.argsort(-score, kind="stable")
        summed = np.cumsum(delta[by_score])
        last = np.searchsorted(-score[by_score], -candidates, side="right") - 1
        curve[name] = np.where(last >= 0, summed[np.maximum(last, 0)], 0.0) / n_valid
    near = np.flatnonzero(curve["f1"] >= curve["f1"].max() - _MACRO_TIE)
    if len(near) > _MAX_EXACT:  # a long plateau (e.g. no tp at all): the lowest score of it
        near = near[-1:]
    exact = [_macro_at(points, keep, valid, s) for s in candidates[near]]
    best_f1 = max(e["f1"] for e in exact)
    pick = max(i for i, e in enumerate(exact) if e["f1"] == best_f1)  # candidates descend: last = lowest score
    chosen = exact[pick]
    result.update(precision=chosen["precision"], recall=chosen["recall"], f1=chosen["f1"],
                  threshold=float(candidates[near][pick]), at=chosen["per_class"],
                  curve={"score": candidates, **curve})
    return result


def _macro_at(points, keep, valid, threshold) -> dict:
    """Per-class P / R / F1 at one threshold and their means (np.mean, as faster-coco-eval)."""
    cats = np.flatnonzero(valid)
    precision = np.zeros(len(cats))
    recall = np.zeros(len(cats))
    f1 = np.zeros(len(cats))
    cat, score = points["category"], points["score"]
    at = np.flatnonzero(keep & (score >= threshold))
    if len(at):
        last = np.r_[cat[at][1:] != cat[at][:-1], True]
        rows = np.searchsorted(cats, cat[at][last])
        precision[rows] = points["precision"][at][last]
        recall[rows] = points["recall"][at][last]
        f1[rows] = points["f1"][at][last]
    per_class = {int(c): (float(p), float(r), float(f)) for c, p, r, f in zip(cats, precision, recall, f1)}
    return {"precision": float(np.mean(precision.tolist())), "recall": float(np.mean(recall.tolist())),
            "f1": float(np.mean(f1.tolist())), "per_class": per_class}


def _ground_truth_outcomes(gt, gt_ignore, match_gt, outcome_dt, dt):
    """Per ground truth: "tp" / "fn" / "ignored" and the result index of its tp match (-1)."""
    result = np.full(len(gt), -1, dtype=np.int64)
    tp = np.flatnonzero(outcome_dt == 1)
    result[match_gt[tp]] = dt.index[tp]
    outcome = np.where(gt_ignore, "ignored", np.where(result >= 0, "tp", "fn")).astype(object)
    return outcome, result


def _per_class_rows(result, catalog, params, n_gt, points, best, macro, category, outcome_dt, tp_iou, n_cats):
    rows = []
    keys = ["AP"] + params.threshold_keys
    entries = list(result.per_category.items())
    counted = (outcome_dt == 1) | (outcome_dt == 2)
    tp_count = np.bincount(category[outcome_dt == 1], minlength=n_cats)
    fp_count = np.bincount(category[outcome_dt == 2], minlength=n_cats)
    iou_sum = np.bincount(category[outcome_dt == 1], weights=tp_iou[outcome_dt == 1], minlength=n_cats)
    for k in range(n_cats):
        cat_id, entry = entries[k]
        row = {"id": cat_id, "name": entry["name"], **{key: entry[key] for key in keys},
               "n_gt": int(n_gt[k]), "n_dt": int(np.sum(counted & (category == k))),
               "tp": int(tp_count[k]), "fp": int(fp_count[k]), "fn": int(n_gt[k] - tp_count[k])}
        nan = float("nan")
        if n_gt[k] == 0:
            row.update(precision=nan, recall=nan, f1=nan, score_threshold=nan)
        elif best[k] < 0:
            row.update(precision=0.0, recall=0.0, f1=0.0, score_threshold=nan)
        else:
            b = best[k]
            row.update(precision=float(points["precision"][b]), recall=float(points["recall"][b]),
                       f1=float(points["f1"][b]), score_threshold=float(points["score"][b]))
        row["mean_iou"] = float(iou_sum[k] / tp_count[k]) if tp_count[k] else nan
        at = (macro["at"] or {}).get(k)
        if at is None:
            at = (nan, nan, nan) if n_gt[k] == 0 else (0.0, 0.0, 0.0)
        row.update(precision_at_overall=at[0], recall_at_overall=at[1], f1_at_overall=at[2])
        if "frequency" in entry:
            row["frequency"] = entry["frequency"]
        rows.append(row)
    return rows


def _curves(points, catalog, params, n_cats) -> dict:
    ids = catalog.category_ids if params.use_cats else np.array([-1])
    out = {}
    bounds = np.searchsorted(points["category"], np.arange(n_cats + 1))
    for k in range(n_cats):
        a, b = bounds[k], bounds[k + 1]
        out[int(ids[k])] = {name: points[name][a:b] for name in ("score", "precision", "recall", "f1")}
    return out


def _detection_columns(result, dt, outcome_dt, gt, match_gt, iou) -> dict:
    n = result._n_results
    names = np.array(["tp", "fp", "ignored", "not_evaluated"], dtype=object)
    outcome = np.full(n, "not_evaluated", dtype=object)
    gt_id = np.full(n, -1, dtype=np.int64)
    pair_iou = np.full(n, np.nan)
    outcome[dt.index] = names[outcome_dt - 1]
    has = match_gt >= 0
    gt_id[dt.index[has]] = gt.ids[match_gt[has]]
    pair_iou[dt.index] = iou
    image_ids, category_ids, scores = result._results
    return {"result_index": np.arange(n), "image_id": image_ids, "category_id": category_ids, "score": scores,
            "outcome": outcome, "gt_id": gt_id, "iou": pair_iou}


def _ground_truth_columns(catalog, gt, outcome, result_index, iou, match_gt) -> dict:
    gt_iou = np.full(len(gt), np.nan)
    has = match_gt >= 0
    gt_iou[match_gt[has]] = iou[has]
    gt_iou[result_index < 0] = np.nan
    return {"id": gt.ids, "image_id": catalog.image_ids[gt.image], "category_id": catalog.category_ids[gt.category],
            "area": gt.area, "outcome": outcome, "result_index": result_index, "iou": gt_iou}
