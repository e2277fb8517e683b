"""COCO AP from dense masks: per image bool masks, labels and scores, no JSON needed.

Convention: image i of ``targets`` and ``predictions`` is one COCO image of the masks'
(H, W); ground-truth area is the mask's pixel count (COCO's JSON areas come from
polygons and differ slightly); categories are the labels that occur; ground-truth ids
are 1..G (never 0). Everything else is ``evaluate``'s convention (pycocotools').
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segfuse.coco import _counts, _progress, _runs
from segfuse.coco._dataset import Catalog, Instances
from segfuse.coco._params import make_params
from segfuse.coco._pipeline import match_instances
from segfuse.coco._ragged import offsets_from_lengths
from segfuse.coco.evaluation import CocoEvaluation, finish


def evaluate_masks(predictions: Sequence[dict], targets: Sequence[dict], iou_thresholds=None,
                   max_dets=(1, 10, 100), area_ranges=None, *, iou_type: str = "segm", use_cats: bool = True,
                   dilation_ratio: float = 0.02, progress=None) -> CocoEvaluation:
    """Mask AP of dense predictions against dense targets (``evaluate``'s numbers).

    Args:
        predictions: per image {"masks": (D, H, W) bool, "scores": (D,), "labels": (D,) int}
            (numpy arrays or torch tensors).
        targets: per image {"masks": (G, H, W) bool, "labels": (G,) int, optional
            "iscrowd": (G,) bool}.
        iou_thresholds, max_dets, area_ranges, use_cats, dilation_ratio, progress: as in ``evaluate``.
        iou_type: "segm" or "boundary".

    Example:
        >>> import numpy as np
        >>> m = np.zeros((1, 4, 4), bool); m[0, :2, :2] = True
        >>> r = evaluate_masks([{"masks": m, "scores": [0.9], "labels": [1]}], [{"masks": m, "labels": [1]}])
        >>> round(r.stats["AP50"], 6)  # precision is tp / (tp + fp + eps), as pycocotools
        1.0
    """
    if iou_type not in ("segm", "boundary"):
        raise ValueError(f"iou_type must be one of ('segm', 'boundary') for dense masks, got {iou_type!r}")
    params = make_params(iou_type, iou_thresholds, max_dets, area_ranges, use_cats=use_cats,
                         dilation_ratio=dilation_ratio)
    if len(predictions) != len(targets):
        raise ValueError(f"predictions and targets must have one entry per image, got {len(predictions)} and {len(targets)}")
    gts = [_image(t, i, "targets", ("masks", "labels")) for i, t in enumerate(targets)]
    dts = [_image(p, i, "predictions", ("masks", "labels", "scores")) for i, p in enumerate(predictions)]
    for i, (g, d) in enumerate(zip(gts, dts)):
        if g["masks"].shape[1:] != d["masks"].shape[1:]:
            raise ValueError(f"image {i}: prediction masks are {d['masks'].shape[1:]} but target masks are {g['masks'].shape[1:]}")
    labels = np.unique(np.concatenate([x["labels"] for x in gts + dts] + [np.zeros(0, np.int64)]))
    sizes = np.array([g["masks"].shape[1:] for g in gts], dtype=np.int64).reshape(-1, 2)
    catalog = Catalog(np.arange(len(gts)), sizes[:, 0], sizes[:, 1], labels, [str(c) for c in labels])
    gt, dt = _instances(gts, labels), _instances(dts, labels)
    gt.crowd = np.concatenate([g["iscrowd"] for g in gts] + [np.zeros(0, bool)])
    gt.ignore = gt.crowd.copy()
    dt.scores = np.concatenate([d["scores"] for d in dts] + [np.zeros(0)])
    show = _progress.wanted(progress, len(gts))
    matched = match_instances(catalog, gt, dt, params, show)
    return finish(catalog, matched, params, (catalog.image_ids[dt.image], labels[dt.category], dt.scores))


def _image(entry: dict, i: int, what: str, keys) -> dict:
    if not isinstance(entry, dict) or any(k not in entry for k in keys):
        raise ValueError(f"{what}[{i}] must be a dict with keys {list(keys)}")
    masks = _numpy(entry["masks"])
    if masks.ndim != 3:
        raise ValueError(f"{what}[{i}]['masks'] must have shape (K, H, W), got {masks.shape}")
    out = {"masks": masks.astype(bool, copy=False), "labels": _numpy(entry["labels"]).astype(np.int64).reshape(-1)}
    if "scores" in keys:
        out["scores"] = _numpy(entry["scores"]).astype(np.float64).reshape(-1)
        if not np.isfinite(out["scores"]).all():
            raise ValueError(f"{what}[{i}]['scores'] must be finite")
    out["iscrowd"] = _numpy(entry.get("iscrowd", np.zeros(len(masks)))).astype(bool).reshape(-1)
    for key in ("labels", "scores", "iscrowd"):
        if key in out and len(out[key]) != len(masks):
            raise ValueError(f"{what}[{i}]['{key}'] must have one entry per mask ({len(masks)}), got {len(out[key])}")
    return out


def _instances(images: list, labels: np.ndarray) -> Instances:
    counts = [_counts.encode_dense(x["masks"].view(np.uint8)) for x in images]
    lengths = np.concatenate([np.diff(c.offsets) for c in counts] + [np.zeros(0, np.int64)])
    batch = _counts.Counts(
        np.concatenate([c.counts for c in counts] + [np.zeros(0, np.int64)]),
        offsets_from_lengths(lengths),
        np.concatenate([c.heights for c in counts] + [np.zeros(0, np.int64)]),
        np.concatenate([c.widths for c in counts] + [np.zeros(0, np.int64)]),
    )
    masks = _runs.from_counts(batch)
    image = np.repeat(np.arange(len(images)), [len(x["masks"]) for x in images]).astype(np.int64)
    category = np.searchsorted(labels, np.concatenate([x["labels"] for x in images] + [np.zeros(0, np.int64)]))
    n = len(image)
    return Instances(image, category, _runs.areas(masks).astype(np.float64), np.zeros(n, bool), np.zeros(n, bool),
                     np.arange(1, n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), masks=masks)


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
