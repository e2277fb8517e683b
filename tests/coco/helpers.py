"""Shared oracles and generators for the COCO tests (pycocotools is imported here, in tests only)."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import numpy as np
import pytest

pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as coco_mask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
COCO100 = SHARED / "data" / "coco-val2014-100"
COCO100_GT = COCO100 / "instances_val2014_100.json"
COCO100_DT = COCO100 / "instances_val2014_fakesegm100_results.json"
needs_coco100 = pytest.mark.skipif(not COCO100_GT.is_file(), reason=f"shared COCO subset not found at {COCO100}")


def reference_eval(gt: dict, dt: list, iou_type: str, iou_thresholds=None, max_dets=None, area_ranges=None,
                   use_cats=True, image_ids=None, category_ids=None):
    """pycocotools COCOeval after evaluate + accumulate + summarize (stdout silenced)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_thresholds is not None:
            evaluator.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        if max_dets is not None:
            evaluator.params.maxDets = list(max_dets)
        if area_ranges is not None:
            evaluator.params.areaRng = [list(v) for v in area_ranges.values()]
            evaluator.params.areaRngLbl = list(area_ranges)
        evaluator.params.useCats = int(use_cats)
        if image_ids is not None:
            evaluator.params.imgIds = list(image_ids)
        if category_ids is not None:
            evaluator.params.catIds = list(category_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        if len(evaluator.params.maxDets) >= 3:  # pycocotools' summarize needs three caps
            evaluator.summarize()
    return evaluator


def random_blob(rng, h: int, w: int) -> list:
    """A random polygon (flat xy list) inside an (h, w) image, sometimes poking outside."""
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    radius = rng.uniform(2, max(3, min(h, w) / 2))
    k = int(rng.integers(3, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.5, 1.0, k)
    xy = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
    return [round(float(v), 2) for v in xy.reshape(-1)]


def polygon_box(poly: list) -> list:
    xy = np.asarray(poly).reshape(-1, 2)
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def make_dataset(seed: int, n_images: int = 12, n_cats: int = 4, max_gt: int = 6, max_dt: int = 12,
                 crowd_rate: float = 0.1, empty_rate: float = 0.15, tie_rate: float = 0.3, min_size: int = 20):
    """A generated COCO ground truth and results with ties, crowds, empty images, absent categories.

    Category n_cats + 1 has ground truth but never detections; category n_cats + 2 has
    detections only (no ground truth)."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    cat_ids = list(range(1, n_cats + 3))
    for image_id in range(1, n_images + 1):
        h, w = int(rng.integers(min_size, 200)), int(rng.integers(min_size, 200))
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.jpg"})
        if rng.random() < empty_rate:
            continue
        for _ in range(int(rng.integers(0, max_gt + 1))):
            cat = int(rng.integers(1, n_cats + 2))
            poly = random_blob(rng, h, w)
            crowd = rng.random() < crowd_rate
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat, "iscrowd": int(crowd),
                   "bbox": polygon_box(poly), "area": float(rng.uniform(10, 2000) if crowd else _area(poly, h, w))}
            if crowd:
                rle = coco_mask.frPyObjects([poly], h, w)[0]
                ann["segmentation"] = {"size": [h, w], "counts": _uncompressed(coco_mask.decode(rle))}
            else:
                ann["segmentation"] = [poly] if rng.random() < 0.8 else [poly, random_blob(rng, h, w)]
            anns.append(ann)
        own = [a for a in anns if a["image_id"] == image_id and a["category_id"] <= n_cats]
        for _ in range(int(rng.integers(0, max_dt + 1))):
            if own and rng.random() < 0.6:
                base = own[int(rng.integers(len(own)))]
                poly = _jitter(rng, base, h, w)
                cat = base["category_id"] if rng.random() < 0.9 else int(rng.integers(1, n_cats + 1))
            else:
                poly = random_blob(rng, h, w)
                cat = int(rng.integers(1, n_cats + 1)) if rng.random() < 0.9 else n_cats + 2
            score = round(float(rng.integers(1, 5)) / 5, 2) if rng.random() < tie_rate else float(rng.random())
            rle = coco_mask.frPyObjects([poly], h, w)[0]
            rle["counts"] = rle["counts"].decode("ascii")
            results.append({"image_id": image_id, "category_id": cat, "segmentation": rle,
                            "bbox": polygon_box(poly), "score": score})
    categories = [{"id": c, "name": f"c{c}", "supercategory": "x"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": categories}, results


def _area(poly, h, w) -> float:
    return float(coco_mask.area(coco_mask.frPyObjects([poly], h, w)[0]))


def _jitter(rng, ann, h, w) -> list:
    source = ann["segmentation"][0] if isinstance(ann["segmentation"], list) else random_blob(rng, h, w)
    xy = np.asarray(source, dtype=np.float64)
    xy = xy + rng.normal(0, rng.choice([0.3, 1.5, 4.0]), xy.shape)
    return [round(float(v), 2) for v in xy]


def _uncompressed(mask: np.ndarray) -> list:
    flat = np.asarray(mask, dtype=np.uint8).reshape(-1, order="F")
    bounds = np.r_[0, np.flatnonzero(np.diff(np.r_[0, flat]) != 0), len(flat)]
    return [int(c) for c in np.diff(bounds)]


DATA = Path(__file__).resolve().parent / "data"
FCE_GT = DATA / "fce_gt_dataset.json"
FCE_DT = DATA / "fce_dt_dataset.json"


def coco100():
    """The shared real 100-image COCO subset (ground truth dict, fake segm results list), or skip."""
    import json

    if not COCO100_GT.is_file():
        pytest.skip(f"shared COCO subset not found at {COCO100}")
    return json.loads(COCO100_GT.read_text()), json.loads(COCO100_DT.read_text())


def fce_eval(gt: dict, dt: list, iou_type: str, **options):
    """faster-coco-eval 1.8.0 COCOeval_faster after evaluate + accumulate + summarize.

    ``options``: constructor keywords (extra_calc, lvis_style, ranges...) plus ``iouThrs`` /
    ``maxDets`` / ``useCats`` set on its params.
    """
    fce = pytest.importorskip("faster_coco_eval")
    from faster_coco_eval import COCO as FasterCOCO
    from faster_coco_eval import COCOeval_faster

    assert fce.__version__ == "1.8.0", fce.__version__
    params = {k: options.pop(k) for k in ("iouThrs", "maxDets", "useCats") if k in options}
    coco_gt = FasterCOCO(copy.deepcopy(gt))
    coco_dt = coco_gt.loadRes(copy.deepcopy(dt), min_score=options.pop("min_score", 0.0))
    evaluator = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=lambda *a, **k: None, **options)
    for key, value in params.items():
        setattr(evaluator.params, key, np.asarray(value, dtype=np.float64) if key == "iouThrs" else value)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def lvis_eval(gt: dict, dt: list, iou_type: str, tmp_path, max_dets: int = 300):
    """The lvis package 0.5.3's LVISEval.run() (numpy 2 needs its removed ``np.float`` alias back)."""
    import json
    import logging

    pytest.importorskip("lvis")
    if not hasattr(np, "float"):
        np.float = float  # lvis 0.5.3 calls np.float, removed in numpy 1.24
    from lvis import LVIS, LVISEval, LVISResults

    logging.getLogger("lvis").setLevel(logging.ERROR)
    path = tmp_path / "lvis_gt.json"
    path.write_text(json.dumps(gt))
    lvis_gt = LVIS(str(path))
    evaluator = LVISEval(lvis_gt, LVISResults(lvis_gt, copy.deepcopy(dt), max_dets=max_dets), iou_type)
    evaluator.params.max_dets = max_dets  # only names the AR keys; the cap is LVISResults'
    evaluator.run()
    return evaluator


def make_lvis_dataset(seed: int, n_images: int = 10, n_cats: int = 12, max_gt: int = 6, max_dt: int = 30,
                      tie_rate: float = 0.3):
    """A generated LVIS-style set: federated per-image category lists, r / c / f frequencies.

    Images list negative categories (absent ones) and not-exhaustive ones (present ones);
    results fall in positive, negative, not-exhaustive and unlabelled categories, some
    have an empty mask or box (area 0, which lvis drops), scores tie."""
    rng = np.random.default_rng(seed)
    gt, _ = make_dataset(seed, n_images=n_images, n_cats=n_cats, max_gt=max_gt, max_dt=0, crowd_rate=0.0,
                         empty_rate=0.1)
    for ann in gt["annotations"]:
        ann.pop("iscrowd", None)
    present: dict = {}
    for ann in gt["annotations"]:
        present.setdefault(ann["image_id"], set()).add(ann["category_id"])
    cat_ids = [c["id"] for c in gt["categories"]]
    for cat in gt["categories"]:
        cat["frequency"] = "rcf"[int(rng.integers(0, 3))]
    results = []
    for img in gt["images"]:
        pos = sorted(present.get(img["id"], set()))
        absent = [c for c in cat_ids if c not in pos]
        img["neg_category_ids"] = sorted(int(c) for c in rng.choice(absent, size=int(rng.integers(0, len(absent) + 1)),
                                                                    replace=False))
        img["not_exhaustive_category_ids"] = [c for c in pos if rng.random() < 0.35]
        h, w = img["height"], img["width"]
        own = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
        for _ in range(int(rng.integers(0, max_dt + 1))):
            if own and rng.random() < 0.6:
                base = own[int(rng.integers(len(own)))]
                poly = _jitter(rng, base, h, w)
                cat = base["category_id"] if rng.random() < 0.85 else int(rng.choice(cat_ids))
            else:
                poly = random_blob(rng, h, w)
                cat = int(rng.choice(cat_ids))
            if rng.random() < 0.05:
                poly = [poly[0], poly[1], poly[0], poly[1], poly[0], poly[1]]  # a degenerate polygon: area 0
            score = round(float(rng.integers(1, 5)) / 5, 2) if rng.random() < tie_rate else float(rng.random())
            rle = coco_mask.frPyObjects([poly], h, w)[0]
            rle["counts"] = rle["counts"].decode("ascii")
            box = polygon_box(poly)
            results.append({"image_id": img["id"], "category_id": cat, "segmentation": rle, "bbox": box, "score": score})
    return gt, results


def without_crowd(gt: dict) -> dict:
    gt = copy.deepcopy(gt)
    gt["annotations"] = [a for a in gt["annotations"] if not a.get("iscrowd", 0)]
    return gt
