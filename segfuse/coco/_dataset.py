"""COCO ground truth and results (JSON paths, dicts, result lists) -> flat per-instance arrays.

Convention (pycocotools' COCO and loadRes, without mutating the caller's dicts): images
are evaluated in ascending id order and categories in ascending id order; ground-truth
``area`` is read from the JSON, ``iscrowd`` defaults to 0 and crowd regions are ignored.
Results are loaded as ``loadRes`` does: if the first result has a non-empty "bbox", every
result's area is its box's w*h and a missing segmentation becomes the box polygon;
otherwise the area is the mask's pixel count and a missing bbox is the mask's box;
detection ids are 1..n in input order and ``iscrowd`` is 0. Stricter than pycocotools:
results on images absent from the ground truth ("wrong dataset"), unknown category ids,
duplicate image or annotation ids, missing fields and malformed segmentations raise
ValueError naming the offending entry; an empty result list is allowed (no detections).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segfuse.coco import _runs
from segfuse.coco._segmentation import to_runs


@dataclass
class Instances:
    """n ground truths or detections: image, category (indices), area, crowd, ids, scores, boxes, masks."""

    image: np.ndarray
    category: np.ndarray
    area: np.ndarray
    crowd: np.ndarray
    ids: np.ndarray
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None
    masks: _runs.Runs | None = None

    def __len__(self) -> int:
        return len(self.image)


@dataclass
class Catalog:
    """Images (I,) ids / heights / widths and categories (K,) ids / names, ascending ids."""

    image_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    category_ids: np.ndarray
    category_names: list


def read_json(source, what: str):
    """A path (str / Path) is read as JSON; anything else is returned as is."""
    if isinstance(source, (str, Path)):
        try:
            with open(source, encoding="utf-8") as handle:
                return json.load(handle)
        except OSError as error:
            raise ValueError(f"cannot read {what} file {source}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{what} file {source} is not valid JSON: {error}") from None
    return source


def load_ground_truth(source, iou_type: str) -> tuple[Catalog, Instances]:
    data = read_json(source, "ground truth")
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise ValueError("ground truth must be a COCO dict with 'images', 'annotations' and 'categories'")
    catalog = _catalog(data["images"], data["categories"])
    anns = data["annotations"]
    _require_each(anns, ("id", "image_id", "category_id", "area"), "ground-truth annotation #{}")
    ids = np.array([a["id"] for a in anns], dtype=np.int64)
    _unique(ids, "ground-truth annotation ids")
    name = lambda i: f"ground-truth annotation id={anns[i]['id']}"  # noqa: E731
    image, category = _indices(anns, catalog, name, "ground truth")
    gt = Instances(image, category, np.array([a["area"] for a in anns], dtype=np.float64),
                   np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool), ids)
    _add_geometry(gt, anns, catalog, iou_type, name)
    return catalog, gt


def load_results(source, catalog: Catalog, iou_type: str) -> Instances:
    anns = read_json(source, "results")
    if isinstance(anns, dict) and "annotations" in anns:
        anns = anns["annotations"]
    if not isinstance(anns, list):
        raise ValueError("results must be a list of result dicts (or a COCO dict with 'annotations')")
    _require_each(anns, ("image_id", "category_id", "score"), "result #{}")  # also: each is a dict
    name = lambda i: f"result #{i} (image_id={anns[i]['image_id']})"  # noqa: E731
    image, category = _indices(anns, catalog, name, "results")
    n = len(anns)
    dt = Instances(image, category, np.zeros(n), np.zeros(n, dtype=bool), np.arange(1, n + 1, dtype=np.int64),
                   scores=_scores(anns))
    box_mode = n > 0 and "bbox" in anns[0] and anns[0]["bbox"] != []
    if box_mode:
        boxes = _boxes(anns, name)
        dt.area = boxes[:, 2] * boxes[:, 3]
        if iou_type == "bbox":
            dt.boxes = boxes
        else:
            segms = [a["segmentation"] if "segmentation" in a else _box_polygon(boxes[i].tolist())
                     for i, a in enumerate(anns)]
            dt.masks = to_runs(segms, catalog.heights[image], catalog.widths[image], name)
        return dt
    if n and "segmentation" not in anns[0]:
        raise ValueError("results need a 'bbox' or a 'segmentation' (result #0 has neither)")
    _require_all(anns, "segmentation", name)
    dt.masks = to_runs([a["segmentation"] for a in anns], catalog.heights[image], catalog.widths[image], name)
    dt.area = _runs.areas(dt.masks).astype(np.float64)
    if iou_type == "bbox":
        dt.boxes = _boxes(anns, name, fallback=_runs.boxes(dt.masks))
    return dt


def _catalog(images, categories) -> Catalog:
    for i, img in enumerate(images):
        _require(img, ("id",), f"image #{i}")
    image_ids = np.array([img["id"] for img in images], dtype=np.int64)
    _unique(image_ids, "image ids")
    order = np.argsort(image_ids)
    size = lambda img, key: int(img.get(key, 0))  # noqa: E731
    heights = np.array([size(images[i], "height") for i in order], dtype=np.int64)
    widths = np.array([size(images[i], "width") for i in order], dtype=np.int64)
    for i, cat in enumerate(categories):
        _require(cat, ("id",), f"category #{i}")
    category_ids = np.array([c["id"] for c in categories], dtype=np.int64)
    _unique(category_ids, "category ids")
    by_id = {c["id"]: c.get("name", str(c["id"])) for c in categories}
    ordered = np.sort(category_ids)
    return Catalog(image_ids[order], heights, widths, ordered, [by_id[int(c)] for c in ordered])


def _indices(anns, catalog: Catalog, name, what: str) -> tuple[np.ndarray, np.ndarray]:
    image_ids = np.array([a["image_id"] for a in anns], dtype=np.int64)
    category_ids = np.array([a["category_id"] for a in anns], dtype=np.int64)
    image = _lookup(catalog.image_ids, image_ids)
    missing = np.flatnonzero(image < 0)
    if len(missing):
        unknown = sorted(set(image_ids[missing].tolist()))[:5]
        hint = " (wrong dataset?)" if what == "results" else ""
        raise ValueError(f"{what} refer to image ids not in the ground truth{hint}: {unknown}; first is {name(missing[0])}")
    category = _lookup(catalog.category_ids, category_ids)
    missing = np.flatnonzero(category < 0)
    if len(missing):
        unknown = sorted(set(category_ids[missing].tolist()))[:5]
        raise ValueError(f"{what} use category ids not in the ground truth's categories: {unknown}; first is {name(missing[0])}")
    return image, category


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in sorted_ids, -1 where absent."""
    position = np.searchsorted(sorted_ids, ids)
    found = position < len(sorted_ids)
    found[found] = sorted_ids[position[found]] == ids[found]
    return np.where(found, position, -1)


def _add_geometry(gt: Instances, anns, catalog: Catalog, iou_type: str, name) -> None:
    if iou_type == "bbox":
        _require_all(anns, "bbox", name)
        gt.boxes = _boxes(anns, name)
    else:
        _require_all(anns, "segmentation", name)
        gt.masks = to_runs([a["segmentation"] for a in anns], catalog.heights[gt.image], catalog.widths[gt.image], name)


def _boxes(anns, name, fallback=None) -> np.ndarray:
    """(n, 4) float64 "bbox" fields; one array conversion unless some entry needs a fallback or a message."""
    try:
        boxes = np.array([ann.get("bbox") for ann in anns], dtype=np.float64)
        if boxes.shape == (len(anns), 4):
            return boxes
    except (TypeError, ValueError):
        pass
    boxes = np.zeros((len(anns), 4), dtype=np.float64)
    for i, ann in enumerate(anns):
        box = ann.get("bbox")
        if box is None and fallback is not None:
            boxes[i] = fallback[i]
            continue
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError(f"{name(i)}: bbox must be [x, y, w, h], got {box!r}")
        boxes[i] = box
    return boxes


def _scores(anns) -> np.ndarray:
    try:
        return np.array([a["score"] for a in anns], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("every result's 'score' must be a number") from None


def _box_polygon(box) -> list:
    x1, y1 = box[0], box[1]
    x2, y2 = box[0] + box[2], box[1] + box[3]
    return [[x1, y1, x1, y2, x2, y2, x2, y1]]


def _require_each(objs, keys, what: str) -> None:
    """``_require`` for every object (``what`` formatted with its index), with one cheap pass when all are fine."""
    needed = set(keys)
    for i, obj in enumerate(objs):
        if not isinstance(obj, dict) or not needed <= obj.keys():
            _require(obj, keys, what.format(i))


def _require(obj, keys, what: str) -> None:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a dict, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{what} lacks required field(s) {missing}")


def _require_all(anns, key: str, name) -> None:
    for i, ann in enumerate(anns):
        if key not in ann:
            raise ValueError(f"{name(i)} lacks required field '{key}'")


def _unique(ids: np.ndarray, what: str) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"duplicate {what}: {values[counts > 1][:5].tolist()}")
