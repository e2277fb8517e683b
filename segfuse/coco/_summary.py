"""Summary numbers (COCO's 12, LVIS' 13), "AP{t}" per threshold, per-category AP and the printed summary.

Convention (COCO): the 12 keys follow pycocotools' ``summarize`` exactly: "AP" averages
precision over every threshold at area "all" and maxDets=100 (the literal 100, as
pycocotools); "AP50", "AP75", "APs", "APm", "APl" and "ARs", "ARm", "ARl" use
``max_dets[2]``; "AR1", "AR10", "AR100" are recall at ``max_dets[0]``, ``[1]``, ``[2]`` (so
with max_dets (1, 5, 20) "AR100" is recall at 20 detections). ``max_dets`` is sorted
first; with fewer than 3 entries, index i falls back to the last one (pycocotools raises
instead). A value with no defined entry (no such threshold, area label or cap, or no
ground truth at all) is -1, pycocotools' convention, kept in these keys only for equality
with it. "AP@{m}" is the AP at the largest cap m (area "all"), defined whatever the caps:
the summary prints it as its first line when 100 is not a cap (where pycocotools prints
-1). Each threshold t adds "AP{round(100 t)}" at area "all" and ``max_dets[2]``.

Convention (LVIS, the ``lvis`` package's ``summarize``): "AP", "AP50", "AP75", "APs", "APm",
"APl", "APr", "APc", "APf" (the rare / common / frequent categories) and "AR@{m}",
"ARs@{m}", "ARm@{m}", "ARl@{m}" at the cap m per image, -1 where undefined.

Per-category AP (area "all", the largest cap) is NaN where the category has no ground truth.
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._params import EvalParams, recall_thresholds

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
LVIS_AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
FREQUENCY_KEYS = {"APr": "r", "APc": "c", "APf": "f"}
_LINES = (  # (ap, iou threshold, area label, index into max_dets or None for the literal 100)
    (1, None, "all", None), (1, 0.5, "all", 2), (1, 0.75, "all", 2), (1, None, "small", 2),
    (1, None, "medium", 2), (1, None, "large", 2), (0, None, "all", 0), (0, None, "all", 1),
    (0, None, "all", 2), (0, None, "small", 2), (0, None, "medium", 2), (0, None, "large", 2),
)
_LVIS_AP = ((None, "all"), (0.5, "all"), (0.75, "all"), (None, "small"), (None, "medium"), (None, "large"))


def headline_key(params: EvalParams) -> str:
    """The stats key of the AP at the largest cap: "AP@100" by default."""
    return f"AP@{params.max_dets[-1]}"


def coco_stats(curves, params: EvalParams) -> dict[str, float]:
    """The 12 standard keys, "AP@{largest cap}", then "AP{t}" for every IoU threshold, as floats."""
    plan = _memo(params, "coco_plan", _coco_plan)
    if plan is not None:
        return plan.stats(curves)
    means = _Means(curves, params)
    return {key: means.get(*query) for key, query in _memo(params, "coco_queries", _coco_queries)}


class _Plan:
    """Every COCO stat as one weighted sum over the (T, A, M) sums of precision and of recall.

    Stat q = sum of its (threshold, area, cap) entries / (its number of thresholds x the
    values per category (R for AP, 1 for AR) x the categories with ground truth in its area).
    For parameters where no area label or cap is repeated (a stat naming a missing one is -1).
    """

    def __init__(self, keys: list, weights: np.ndarray, area: np.ndarray, factor: np.ndarray):
        self.keys, self.weights, self.area, self.factor = keys, weights, area, factor

    def stats(self, curves) -> dict[str, float]:
        ap = curves.precision_sums().sum(axis=3)  # (T, A, M); absent categories add 0
        ar = np.maximum(curves.recall, 0.0).sum(axis=1)  # (T, A, M); absent categories (-1) add 0
        totals = self.weights @ np.concatenate((ar.reshape(-1), ap.reshape(-1)))
        count = self.factor * curves.present.sum(axis=0)[self.area]
        values = totals / np.maximum(count, 1)
        values[count == 0] = -1.0
        return dict(zip(self.keys, values.tolist()))


def _coco_plan(params: EvalParams) -> _Plan | None:
    rows, areas, caps = params.positions
    queries = _coco_queries(params)
    n_thr, n_areas, n_caps = len(params.iou_thresholds), len(params.area_labels), len(params.max_dets)
    weights = np.zeros((len(queries), 2, n_thr, n_areas, n_caps))
    area, factor = np.zeros(len(queries), np.int64), np.zeros(len(queries), np.int64)
    for q, (_, (ap, thr, label, cap)) in enumerate(queries):
        aind, mind = areas.get(label, ()), caps.get(cap, ())
        if len(aind) > 1 or len(mind) > 1:
            return None  # a repeated label / cap: _Means' literal path
        if not aind or not mind:
            continue  # no such area range or cap: count 0, the stat is -1
        chosen = list(range(n_thr)) if thr is None else rows.get(thr, [])
        weights[q, ap, chosen, aind[0], mind[0]] = 1.0
        area[q], factor[q] = aind[0], len(chosen) * (len(recall_thresholds()) if ap else 1)
    return _Plan([key for key, _ in queries], weights.reshape(len(queries), -1), area, factor)


def _coco_queries(params: EvalParams) -> list[tuple[str, tuple]]:
    """(stats key, (ap, threshold, area, cap)) of every COCO stat."""
    queries = [(key, (ap, thr, area, _cap(params, which))) for key, (ap, thr, area, which) in zip(STAT_KEYS, _LINES)]
    queries.append((headline_key(params), (1, None, "all", params.max_dets[-1])))
    cap = _cap(params, 2)
    queries += [(key, (1, thr, "all", cap)) for thr, key in zip(params.iou_thresholds.tolist(), params.threshold_keys)]
    return queries


def _memo(params: EvalParams, name: str, build):
    """``build(params)``, computed once per (immutable) params."""
    if name not in params.memo:
        params.memo[name] = build(params)
    return params.memo[name]


def lvis_stats(curves, params: EvalParams, frequency: list) -> dict[str, float]:
    """The lvis package's 13 keys, then "AP{t}" for every IoU threshold."""
    means = _Means(curves, params)
    cap = params.max_dets[-1]
    stats = {}
    for key, (thr, area) in zip(LVIS_AP_KEYS, _LVIS_AP):
        stats[key] = means.get(1, thr, area, cap)
    for key, group in FREQUENCY_KEYS.items():
        stats[key] = means.get(1, None, "all", cap, np.array([f == group for f in frequency], dtype=bool))
    for area, key in (("all", f"AR@{cap}"), ("small", f"ARs@{cap}"), ("medium", f"ARm@{cap}"), ("large", f"ARl@{cap}")):
        stats[key] = means.get(0, None, area, cap)
    for thr, key in zip(params.iou_thresholds.tolist(), params.threshold_keys):
        stats[key] = means.get(1, thr, "all", cap)
    return stats


class _Means:
    """Means of the defined (> -1) entries per (threshold, area, cap), from per-category sums.

    The precision sums over the recall thresholds come from the accumulated tables without
    building pycocotools' (T, R, K, A, M) array; they run in another order than pycocotools'
    ``np.mean`` of the selection, so a key can differ from it in the last bits (below 1e-15
    relative). Odd parameters (repeated area labels or caps) take ``_summarize``'s literal
    path on the built arrays.
    """

    def __init__(self, curves, params: EvalParams):
        self.params, self.curves = params, curves
        self.per_category = curves.precision_sums()  # (T, A, M, K)
        self.present = curves.present  # (K, A)
        ap = self.per_category.sum(axis=3)  # (T, A, M); absent categories add 0
        ar = np.maximum(curves.recall, 0.0).sum(axis=1)  # (T, A, M); absent categories (-1) add 0
        self.sums = {1: (ap.tolist(), ap.sum(axis=0).tolist()), 0: (ar.tolist(), ar.sum(axis=0).tolist())}
        # every value of a category with ground truth is defined (R per precision, one per recall)
        self.n_present = self.present.sum(axis=0).tolist()  # [A]
        self.n_values = {1: len(recall_thresholds()), 0: 1}
        self.rows, self.areas, self.caps = params.positions
        self.n_thr = len(params.iou_thresholds)

    def get(self, ap: int, thr, area: str, cap: int, categories=None) -> float:
        aind, mind = self.areas.get(area, ()), self.caps.get(cap, ())
        if len(aind) != 1 or len(mind) != 1:
            values = self.curves.precision() if ap else self.curves.recall
            return _summarize(values, self.params, ap, thr, area, cap, categories)
        a, m = aind[0], mind[0]
        rows = None if thr is None else self.rows.get(thr, ())
        n_rows = self.n_thr if rows is None else len(rows)
        if ap and categories is not None:
            chosen = self.present[:, a] & categories
            picked = self.per_category[:, a, m] if rows is None else self.per_category[rows, a, m]
            total, count = float(picked[:, chosen].sum()), n_rows * self.n_values[1] * int(chosen.sum())
        else:
            by_row, overall = self.sums[ap]
            total = overall[a][m] if rows is None else sum(by_row[t][a][m] for t in rows)
            count = n_rows * self.n_present[a] * self.n_values[ap]
        return -1.0 if count == 0 else total / count


def summary_lines(stats: dict, params: EvalParams) -> list[str]:
    """pycocotools' (or lvis') printed lines, then one line per extra threshold."""
    build = _lvis_layout if params.mode == "lvis" else _coco_layout
    return [text if key is None else f"{text}{stats[key]:0.3f}" for text, key in _memo(params, "layout", build)]


def _coco_layout(params: EvalParams) -> list[tuple[str, str | None]]:
    """(label, stats key) of each printed line; (text, None) for a plain line."""
    layout = [(_label(ap, thr, area, _cap(params, which), params), key)
              for key, (ap, thr, area, which) in zip(STAT_KEYS, _LINES)]
    top = params.max_dets[-1]
    if 100 not in params.max_dets:
        layout[0] = (_label(1, None, "all", top, params), headline_key(params))
        layout.append((f" (the first line is AP at maxDets={top}: pycocotools' summarize hard-codes maxDets=100 "
                       f"there and prints -1; stats['AP'] keeps that -1, stats['{headline_key(params)}'] holds this "
                       "value)", None))
    for thr, key in zip(params.iou_thresholds, params.threshold_keys):
        if key not in ("AP50", "AP75"):
            layout.append((_label(1, thr, "all", _cap(params, 2), params), key))
    return layout


def per_category_ap(curves, params: EvalParams) -> np.ndarray:
    """(K, 1 + T) AP per category (area "all", the largest cap): over all thresholds, then per
    threshold; NaN where the category has no ground truth."""
    sums = curves.precision_sums()[:, params.all_area, -1, :]  # (T, K)
    present = curves.present[:, params.all_area]
    n_rec = len(recall_thresholds())
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(present, sums.sum(axis=0) / (sums.shape[0] * n_rec), np.nan)
        each = np.where(present[None, :], sums / n_rec, np.nan)
    return np.column_stack([overall, each.T])


def _cap(params: EvalParams, which) -> int:
    if which is None:
        return 100
    return params.max_dets[min(which, len(params.max_dets) - 1)]


def _summarize(values, params: EvalParams, ap: int, thr, area: str, cap: int, categories=None) -> float:
    aind = [i for i, label in enumerate(params.area_labels) if label == area]
    mind = [i for i, m in enumerate(params.max_dets) if m == cap]
    if thr is not None:
        values = values[np.where(thr == params.iou_thresholds)[0]]
    if categories is not None:
        values = values[:, :, np.asarray(categories, dtype=bool)] if ap else values[:, np.asarray(categories, dtype=bool)]
    if len(aind) == 1 and len(mind) == 1:
        values = values[..., aind[0], mind[0]]
    else:
        values = values[:, :, :, aind, mind] if ap else values[:, :, aind, mind]
    defined = values[values > -1]
    return -1.0 if len(defined) == 0 else float(np.mean(defined))


_TITLES = {1: " Average Precision  (AP)", 0: " Average Recall     (AR)"}


def _label(ap, thr, area, cap, params: EvalParams, categories: str = "") -> str:
    """A summary line up to its value."""
    iou = params.iou_range_label if thr is None else f"{float(thr):0.2f}"
    return f"{_TITLES[ap]} @[ IoU={iou:<9} | area={area:>6s} | maxDets={cap:>3d}{categories} ] = "


def _lvis_layout(params: EvalParams) -> list[tuple[str, str]]:
    cap = params.max_dets[-1]
    rows = [(1, thr, area, "all", key) for key, (thr, area) in zip(LVIS_AP_KEYS, _LVIS_AP)]
    rows += [(1, None, "all", group, key) for key, group in FREQUENCY_KEYS.items()]
    rows += [(0, None, area, "all", key) for area, key in (("all", f"AR@{cap}"), ("small", f"ARs@{cap}"),
                                                             ("medium", f"ARm@{cap}"), ("large", f"ARl@{cap}"))]
    layout = [(_label(ap, thr, area, cap, params, f" catIds={group:>3s}"), key) for ap, thr, area, group, key in rows]
    for thr, key in zip(params.iou_thresholds, params.threshold_keys):
        if key not in ("AP50", "AP75"):
            layout.append((_label(1, thr, "all", cap, params, " catIds=all"), key))
    return layout
