"""segfuse.coco.evaluate vs pycocotools COCOeval (evaluate + accumulate), same input, same numbers.

Times, in one run and interleaved, (a) pycocotools: ``COCOeval(gt, loadRes(dt), type)``
then ``evaluate(); accumulate()`` with stdout silenced (building COCO / loadRes is
outside the timing and redone for every repeat, because COCOeval rewrites the
segmentations in place), and (b) ``segfuse.coco.evaluate(gt_dict, dt_list, type)``, whose
time includes parsing the dicts and rasterising every polygon. Median of the repeats.
Datasets: the shared 100-image COCO val2014 subset with the COCO API's fake segm results,
and a generated set (seeded; generation outside the timing) of 2,000 images with 20
objects and 50 detections each. Every run asserts equal stats (1e-9) and equal
precision / recall arrays. Writes benchmarks/results/coco.md.

Usage: python benchmarks/bench_coco.py [--repeats 5] [--big-repeats 3] [--images 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pycocotools  # noqa: E402
from pycocotools import mask as coco_mask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from segfuse.coco import evaluate  # noqa: E402
from segfuse.coco._summary import STAT_KEYS  # noqa: E402

SHARED = ROOT / ".." / "shared" / "data" / "coco-val2014-100"


def time_pycocotools(gt: dict, dt: list, iou_type: str):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        start = time.perf_counter()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        elapsed = time.perf_counter() - start
        evaluator.summarize()
    return elapsed, evaluator


def time_segfuse(gt: dict, dt: list, iou_type: str):
    start = time.perf_counter()
    result = evaluate(gt, dt, iou_type, progress=False)
    return time.perf_counter() - start, result


def check_equal(result, reference, label: str) -> None:
    stats = np.array([result.stats[k] for k in STAT_KEYS])
    worst = float(np.max(np.abs(stats - reference.stats)))
    assert worst <= 1e-9, f"{label}: stats differ by {worst}"
    assert np.array_equal(result.precision, reference.eval["precision"]), f"{label}: precision differs"
    assert np.array_equal(result.recall, reference.eval["recall"]), f"{label}: recall differs"


def bench(label: str, gt: dict, dt: list, iou_type: str, repeats: int) -> dict:
    ours, theirs = [], []
    for _ in range(repeats):
        elapsed, reference = time_pycocotools(gt, dt, iou_type)
        theirs.append(elapsed)
        elapsed, result = time_segfuse(gt, dt, iou_type)
        ours.append(elapsed)
        check_equal(result, reference, label)
    row = {
        "dataset": label, "iou_type": iou_type, "images": len(gt["images"]), "gt": len(gt["annotations"]),
        "dt": len(dt), "pycocotools_s": statistics.median(theirs), "segfuse_s": statistics.median(ours),
        "repeats": repeats,
    }
    row["speedup"] = row["pycocotools_s"] / row["segfuse_s"]
    print(f"{label:>24} {iou_type:>4}: pycocotools {row['pycocotools_s']:.3f} s, segfuse {row['segfuse_s']:.3f} s, "
          f"{row['speedup']:.1f}x (stats equal)", flush=True)
    return row


def generated_set(seed: int, n_images: int, n_objects: int = 20, n_detections: int = 50, n_cats: int = 10):
    """COCO-like set: polygon ground truth (some crowd RLEs), compressed-RLE detections with ties."""
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for image_id in range(1, n_images + 1):
        h, w = int(rng.integers(240, 481)), int(rng.integers(320, 641))
        images.append({"id": image_id, "height": h, "width": w})
        polys = [_blob(rng, h, w) for _ in range(n_objects)]
        cats = rng.integers(1, n_cats + 1, n_objects)
        rles = coco_mask.frPyObjects(polys, h, w)
        areas = coco_mask.area(rles)
        boxes = coco_mask.toBbox(rles)
        for poly, cat, rle, area, box in zip(polys, cats, rles, areas, boxes):
            crowd = rng.random() < 0.03
            segm = {"size": [h, w], "counts": _uncompressed(coco_mask.decode(rle))} if crowd else [poly]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(cat), "segmentation": segm,
                         "area": float(area), "bbox": box.tolist(), "iscrowd": int(crowd)})
        source = rng.integers(0, n_objects, n_detections)
        matched = rng.random(n_detections) < 0.6
        det_polys = [_jitter(rng, polys[s]) if m else _blob(rng, h, w) for s, m in zip(source, matched)]
        det_cats = np.where(matched & (rng.random(n_detections) < 0.9), cats[source], rng.integers(1, n_cats + 1, n_detections))
        scores = np.where(rng.random(n_detections) < 0.2, rng.integers(1, 10, n_detections) / 10, rng.random(n_detections))
        det_rles = coco_mask.frPyObjects(det_polys, h, w)
        det_boxes = coco_mask.toBbox(det_rles)
        for rle, cat, score, box in zip(det_rles, det_cats, scores, det_boxes):
            results.append({"image_id": image_id, "category_id": int(cat), "score": float(score),
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                            "bbox": box.tolist()})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, n_cats + 1)]
    return {"images": images, "annotations": anns, "categories": categories}, results


def _blob(rng, h, w) -> list:
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    radius = rng.uniform(5, min(h, w) / 4)
    k = int(rng.integers(5, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.6, 1.0, k)
    return np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1), 2).tolist()


def _jitter(rng, poly) -> list:
    xy = np.asarray(poly) + rng.normal(0, rng.choice([0.5, 2.0, 6.0]), len(poly))
    return np.round(xy, 2).tolist()


def _uncompressed(mask) -> list:
    flat = np.asarray(mask, dtype=np.uint8).reshape(-1, order="F")
    bounds = np.r_[0, np.flatnonzero(np.diff(np.r_[0, flat]) != 0), len(flat)]
    return np.diff(bounds).tolist()


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    return (f"{model}, {os.cpu_count()} cores; {platform.platform()}; Python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {torch.__version__}, pycocotools {pycocotools.__version__ if hasattr(pycocotools, '__version__') else _dist_version('pycocotools')}")


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def write_results(rows, path: Path, load: str) -> None:
    lines = [
        "# COCO evaluation: segfuse.coco.evaluate vs pycocotools COCOeval",
        "",
        f"Machine: {machine()}.",
        f"Load average during the run: {load} (the 2-core machine was shared with other jobs; both tools were timed",
        "interleaved in the same process, so the ratio is fairer than the absolute times).",
        "",
        "pycocotools time = `COCOeval(...)` + `evaluate()` + `accumulate()` (COCO / loadRes built outside the timing);",
        "segfuse time = `segfuse.coco.evaluate(gt_dict, results_list)` including parsing and polygon rasterisation.",
        "Median of the repeats; every repeat asserted equal stats (1e-9) and equal precision / recall arrays.",
        "",
        "| dataset | iou type | images | gt | dt | repeats | pycocotools (s) | segfuse (s) | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['iou_type']} | {r['images']} | {r['gt']} | {r['dt']} | {r['repeats']} | "
                     f"{r['pycocotools_s']:.3f} | {r['segfuse_s']:.3f} | {r['speedup']:.1f}x |")
    lines += ["", "Reproduce: `python benchmarks/bench_coco.py`", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big-repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coco.md")
    args = parser.parse_args()
    rows = []
    if (SHARED / "instances_val2014_100.json").is_file():
        gt = json.loads((SHARED / "instances_val2014_100.json").read_text())
        dt = json.loads((SHARED / "instances_val2014_fakesegm100_results.json").read_text())
        for iou_type in ("segm", "bbox"):
            rows.append(bench("COCO val2014 100 images", gt, dt, iou_type, args.repeats))
    else:
        print(f"skipping the real subset: {SHARED} not found")
    gt, dt = generated_set(0, args.images)
    for iou_type in ("segm", "bbox"):
        rows.append(bench(f"generated {args.images} images", gt, dt, iou_type, args.big_repeats))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    write_results(rows, args.out, load)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
