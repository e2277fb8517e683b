"""COCO / LVIS evaluation: segfuse against faster-coco-eval, pycocotools and lvis, from JSON files, one process.

Every tool runs the whole job a user runs, from the two JSON paths to the printed summary:
- segfuse: ``segfuse.coco.evaluate(gt_path, dt_path, iou_type)`` then ``.summary()``;
- faster-coco-eval: ``COCO(gt_path)``, ``loadRes(dt_path)``, ``COCOeval_faster(...)``
  ``evaluate(); accumulate(); summarize()`` (``lvis_style=True, maxDets=[300]`` for LVIS);
- pycocotools: ``COCO(gt_path)``, ``loadRes(dt_path)``, ``COCOeval`` evaluate / accumulate /
  summarize (stdout silenced);
- lvis 0.5.3: ``LVISEval(LVIS(gt_path), LVISResults(.., dt_path), iou_type).run()`` (numpy 2
  needs its ``np.float`` alias back).
Tools take turns within each repeat (the order rotates); the figure is the median. The
first repeat of every case asserts equal summary numbers (1e-9; faster-coco-eval's C++
sums differ from pycocotools' in the last bits, so 1e-12 is not promised for it).
Datasets: the 3-image / 9-object test set of faster-coco-eval (tests/coco/data), the real
COCO val2014 100-image subset (../shared/data), generated COCO-like sets of 1,000 and 5,000
images, a 1,000-category set and an LVIS-style set (seeded; written once under --workdir,
generation is not timed). Writes benchmarks/results/coco.md.

Usage: python benchmarks/bench_coco.py [--repeats 7] [--big-repeats 3] [--sets tiny,coco100,...]
Wrap timing runs in ``flock /tmp/segfuse-bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segfuse.coco import evaluate  # noqa: E402

SHARED = ROOT / ".." / "shared" / "data" / "coco-val2014-100"
TINY = ROOT / "tests" / "coco" / "data"
COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
FCE_KEYS = ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "AR_all", "AR_second", "AR_third",
            "AR_small", "AR_medium", "AR_large")
LVIS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf", "AR@300", "ARs@300", "ARm@300", "ARl@300")
LVIS_FCE = ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "APr", "APc", "APf", "AR_all",
            "AR_small", "AR_medium", "AR_large")


# ----------------------------------------------------------------------------------------------- tools


def run_segfuse(gt, dt, iou_type, lvis=False, workers=None):
    result = evaluate(str(gt), str(dt), iou_type, mode="lvis" if lvis else "coco", workers=workers, progress=False)
    result.summary()
    keys = LVIS_KEYS if lvis else COCO_KEYS
    return [result.stats[k] for k in keys]


def run_fce(gt, dt, iou_type, lvis=False):
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(str(gt))
    coco_dt = coco_gt.loadRes(str(dt))
    evaluator = COCOeval_faster(coco_gt, coco_dt, iou_type, lvis_style=lvis, print_function=lambda *a, **k: None)
    if lvis:
        evaluator.params.maxDets = [300]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    named = evaluator.stats_as_dict
    return [named[k] for k in (LVIS_FCE if lvis else FCE_KEYS)]


def run_pycocotools(gt, dt, iou_type, lvis=False):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt))
        coco_dt = coco_gt.loadRes(str(dt))
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return list(evaluator.stats)


def run_lvis(gt, dt, iou_type, lvis=True):
    if not hasattr(np, "float"):
        np.float = float  # lvis 0.5.3 calls np.float, removed in numpy 1.24
    from lvis import LVIS, LVISEval, LVISResults

    lvis_gt = LVIS(str(gt))
    evaluator = LVISEval(lvis_gt, LVISResults(lvis_gt, str(dt)), iou_type)
    evaluator.run()
    return [evaluator.get_results()[k] for k in LVIS_KEYS]


TOOLS = {"segfuse": run_segfuse, "segfuse, 2 processes": lambda *a, **k: run_segfuse(*a, workers=2, **k),
         "faster-coco-eval": run_fce, "pycocotools": run_pycocotools, "lvis": run_lvis}


# ----------------------------------------------------------------------------------------------- data


def _blob(rng, h, w, scale):
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    radius = rng.uniform(4, max(5.0, scale))
    k = int(rng.integers(5, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius * rng.uniform(0.6, 1.0, k)
    return np.round(np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1), 2).tolist()


def _jitter(rng, poly):
    xy = np.asarray(poly) + rng.normal(0, rng.choice([0.5, 2.0, 6.0]), len(poly))
    return np.round(xy, 2).tolist()


def _uncompressed(mask):
    flat = np.asarray(mask, dtype=np.uint8).reshape(-1, order="F")
    bounds = np.r_[0, np.flatnonzero(np.diff(np.r_[0, flat]) != 0), len(flat)]
    return np.diff(bounds).tolist()


def generated_set(seed: int, n_images: int, n_cats: int = 80, gt_per_image: float = 7.5, dt_per_image: int = 100,
                  lvis: bool = False):
    """COCO-like: polygon ground truth (1% crowd RLEs), compressed-RLE detections with boxes, 10% tied scores.

    LVIS-like (``lvis=True``): no crowd, r / c / f categories, per-image negative and not-exhaustive
    lists, frequent categories drawn more often, no empty detection or ground truth."""
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(seed)
    weights = np.ones(n_cats)
    frequency = None
    if lvis:
        frequency = rng.choice(["r", "c", "f"], n_cats, p=[0.28, 0.38, 0.34])
        weights = np.select([frequency == "r", frequency == "c"], [0.05, 0.5], 4.0)
    weights = weights / weights.sum()
    images, anns, results = [], [], []
    for image_id in range(1, n_images + 1):
        h, w = int(rng.integers(240, 481)), int(rng.integers(320, 641))
        image = {"id": image_id, "height": h, "width": w, "file_name": f"{image_id:012d}.jpg"}
        images.append(image)
        n_gt = int(rng.poisson(gt_per_image))
        polys = [_blob(rng, h, w, min(h, w) / rng.choice([3, 6, 12])) for _ in range(n_gt)]
        cats = rng.choice(n_cats, n_gt, p=weights) + 1
        if n_gt:
            rles = coco_mask.frPyObjects(polys, h, w)
            areas, boxes = coco_mask.area(rles), coco_mask.toBbox(rles)
        for i in range(n_gt):
            if lvis and areas[i] == 0:
                continue  # lvis drops area-0 ground truth too
            crowd = not lvis and rng.random() < 0.01
            segm = {"size": [h, w], "counts": _uncompressed(coco_mask.decode(rles[i]))} if crowd else [polys[i]]
            ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": int(cats[i]), "segmentation": segm,
                   "area": float(areas[i]), "bbox": boxes[i].tolist()}
            if not lvis:
                ann["iscrowd"] = int(crowd)
            anns.append(ann)
        if lvis:
            present = set(cats.tolist())
            absent = rng.choice(n_cats, 25, replace=False) + 1
            image["neg_category_ids"] = sorted(int(c) for c in absent if c not in present)
            image["not_exhaustive_category_ids"] = sorted(int(c) for c in present if rng.random() < 0.1)
        matched = (rng.random(dt_per_image) < 0.3) & (n_gt > 0)
        source = rng.integers(0, max(n_gt, 1), dt_per_image)
        det_polys = [_jitter(rng, polys[s]) if m else _blob(rng, h, w, min(h, w) / rng.choice([3, 6, 12]))
                     for s, m in zip(source, matched)]
        own = cats[source] if n_gt else np.ones(dt_per_image, np.int64)
        det_cats = np.where(matched & (rng.random(dt_per_image) < 0.9), own, rng.choice(n_cats, dt_per_image, p=weights) + 1)
        scores = np.where(rng.random(dt_per_image) < 0.1, rng.integers(1, 10, dt_per_image) / 10,
                          np.round(rng.random(dt_per_image), 5))
        det_rles = coco_mask.frPyObjects(det_polys, h, w)
        det_boxes = coco_mask.toBbox(det_rles)
        for rle, cat, score, box in zip(det_rles, det_cats, scores, det_boxes):
            if lvis and box[2] * box[3] == 0:
                continue  # lvis drops area-0 results, faster-coco-eval keeps them: leave them out of the LVIS set
            results.append({"image_id": image_id, "category_id": int(cat), "score": float(score),
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                            "bbox": [round(v, 2) for v in box.tolist()]})
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in range(1, n_cats + 1)]
    if lvis:
        for cat, f in zip(categories, frequency):
            cat["frequency"] = str(f)
    return {"images": images, "annotations": anns, "categories": categories}, results


def dataset_files(workdir: Path, name: str):
    """(gt path, dt path) of a named set, generated into ``workdir`` on first use."""
    if name == "tiny":
        return TINY / "fce_gt_dataset.json", TINY / "fce_dt_dataset.json"
    if name == "coco100":
        return SHARED / "instances_val2014_100.json", SHARED / "instances_val2014_fakesegm100_results.json"
    spec = {"gen-1k": dict(seed=1, n_images=1000), "gen-5k": dict(seed=5, n_images=5000),
            "cat-1k": dict(seed=7, n_images=1000, n_cats=1000, gt_per_image=10.0),
            "lvis": dict(seed=11, n_images=500, n_cats=1203, gt_per_image=12.0, dt_per_image=300, lvis=True)}[name]
    gt_path, dt_path = workdir / f"{name}_gt.json", workdir / f"{name}_dt.json"
    if not (gt_path.is_file() and dt_path.is_file()):
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"generating {name} into {workdir} ...", flush=True)
        gt, dt = generated_set(**spec)
        gt_path.write_text(json.dumps(gt))
        dt_path.write_text(json.dumps(dt))
    return gt_path, dt_path


CASES = {  # name -> [(iou type, tools)]
    "tiny": [("segm", ("segfuse", "faster-coco-eval", "pycocotools")), ("bbox", ("segfuse", "faster-coco-eval", "pycocotools"))],
    "coco100": [("segm", ("segfuse", "faster-coco-eval", "pycocotools")), ("bbox", ("segfuse", "faster-coco-eval", "pycocotools")),
                ("boundary", ("segfuse", "faster-coco-eval"))],
    "gen-1k": [("segm", ("segfuse", "segfuse, 2 processes", "faster-coco-eval", "pycocotools")),
               ("bbox", ("segfuse", "segfuse, 2 processes", "faster-coco-eval", "pycocotools"))],
    "gen-5k": [("segm", ("segfuse", "segfuse, 2 processes", "faster-coco-eval", "pycocotools")),
               ("bbox", ("segfuse", "segfuse, 2 processes", "faster-coco-eval", "pycocotools"))],
    "cat-1k": [("segm", ("segfuse", "faster-coco-eval", "pycocotools")), ("bbox", ("segfuse", "faster-coco-eval", "pycocotools"))],
    "lvis": [("segm", ("segfuse", "faster-coco-eval", "lvis")), ("bbox", ("segfuse", "faster-coco-eval", "lvis"))],
}
BIG = {"gen-1k", "gen-5k", "cat-1k", "lvis"}


def bench_case(name, gt, dt, iou_type, tools, repeats, warm_up: bool):
    lvis = name == "lvis"
    times = {tool: [] for tool in tools}
    cpu = {tool: [] for tool in tools}
    values = {}
    if warm_up:  # small sets: one untimed round (first-call costs of every library)
        for tool in tools:
            values[tool] = TOOLS[tool](gt, dt, iou_type, lvis=lvis)
    for r in range(repeats):
        turn = list(tools[r % len(tools):]) + list(tools[: r % len(tools)])
        for tool in turn:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = TOOLS[tool](gt, dt, iou_type, lvis=lvis)
            times[tool].append(time.perf_counter() - start)
            cpu[tool].append(time.process_time() - start_cpu)
            values.setdefault(tool, out)
    reference = values[tools[-1]]
    worst = {tool: float(np.max(np.abs(np.asarray(v) - np.asarray(reference)))) for tool, v in values.items()}
    for tool, diff in worst.items():
        assert diff <= 1e-9, f"{name} {iou_type}: {tool} differs from {tools[-1]} by {diff}"
    medians = {tool: statistics.median(t) for tool, t in times.items()}
    cpu_medians = {tool: statistics.median(t) for tool, t in cpu.items()}
    return {"set": name, "iou_type": iou_type, "repeats": repeats, "medians": medians, "cpu": cpu_medians,
            "max_diff": worst,
            "stats": dict(zip(LVIS_KEYS if lvis else COCO_KEYS, values["segfuse"]))}


def describe(name, gt, dt) -> str:
    g = json.loads(Path(gt).read_text())
    d = json.loads(Path(dt).read_text())
    d = d["annotations"] if isinstance(d, dict) else d
    return f"{len(g['images'])} images, {len(g['categories'])} categories, {len(g['annotations'])} gt, {len(d)} dt"


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    versions = ", ".join(f"{p} {version(p)}" for p in ("numpy", "orjson", "msgspec", "pycocotools", "faster-coco-eval",
                                                        "lvis"))
    return f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}; {versions}"


def write_results(rows, described, path: Path, load: str, command: str) -> None:
    from segfuse.coco import _cmask, _pipeline

    cpus = _pipeline._cpu_count()
    compiled_state = ("compiled (numba; the process had evaluated before, so every timed call used them)"
                      if _pipeline.kernels() is not None else "numpy (numba not installed)")
    lines = [
        "# COCO / LVIS evaluation: segfuse against faster-coco-eval, pycocotools and lvis",
        "",
        f"Machine: {machine()}.",
        f"Load average (1 min) before / after the run: {load}. The 2-core machine was shared with other jobs;",
        "the tools took turns within each repeat, so the ratios are fairer than the absolute times.",
        "",
        "Each figure is the median wall time of the whole job from the two JSON paths to the summary (JSON",
        "loading, rasterisation, IoU, matching, accumulation, summary), and the median CPU time of the process",
        "(all its threads; forked workers not included), which other jobs on the machine disturb less. The first",
        "repeat asserted the same summary numbers for every tool (largest difference in the last column).",
        f"Threads and processes: faster-coco-eval runs its C++ IoU, boundary and accumulate stages on up to {cpus}",
        f"threads (its defaults: min(cpus, 8), min(cpus, 4) and the hardware concurrency, {cpus} here); segfuse",
        "runs in one process by default; the rows \"segfuse, 2 processes\" fork two over image shards (workers=2);",
        f"segfuse's \"segm\" IoU uses pycocotools' C RLE routines ({'installed' if _cmask.available() else 'absent'}), "
        "results JSON is decoded by msgspec and ground truth by orjson; pycocotools and lvis are single-threaded Python.",
        f"segfuse's matching and accumulation: {compiled_state}.",
        "",
        "| set | iou type | tool | median s | segfuse / tool | CPU s | segfuse / tool (CPU) | max stat diff |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, ours_cpu = row["medians"]["segfuse"], row["cpu"]["segfuse"]
        for tool, median in row["medians"].items():
            cpu = row["cpu"][tool]
            ratio = "" if tool == "segfuse" else f"{ours / median:.2f}"
            cpu_ratio = "" if tool == "segfuse" or tool.startswith("segfuse,") else f"{ours_cpu / cpu:.2f}"
            lines.append(f"| {row['set']} | {row['iou_type']} | {tool} | {median:.4f} | {ratio} | {cpu:.4f} | "
                         f"{cpu_ratio} | {row['max_diff'][tool]:.1e} |")
    lines += ["", "Sets:", ""]
    lines += [f"- {name}: {text}" for name, text in described.items()]
    lines += ["", f"Reproduce: `{command}`", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="repeats of the small sets (tiny, coco100)")
    parser.add_argument("--big-repeats", type=int, default=3, help="repeats of the generated sets")
    parser.add_argument("--sets", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/segfuse-bench-coco"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coco.md")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    # imports and first calls, untimed; segfuse twice: its second evaluation in a process loads the compiled
    # kernels (numba, about 0.5 s once), so every timed call runs as in a training run's repeated validation
    for tool in ("segfuse", "segfuse", "faster-coco-eval", "pycocotools"):
        TOOLS[tool](TINY / "fce_gt_dataset.json", TINY / "fce_dt_dataset.json", "segm")
    load_before = os.getloadavg()[0]
    rows, described = [], {}
    for name in args.sets.split(","):
        if name == "coco100" and not (SHARED / "instances_val2014_100.json").is_file():
            print(f"skipping coco100: {SHARED} not found")
            continue
        gt, dt = dataset_files(args.workdir, name)
        described[name] = describe(name, gt, dt)
        for iou_type, tools in CASES[name]:
            big = name in BIG
            row = bench_case(name, gt, dt, iou_type, tools, args.big_repeats if big else args.repeats, not big)
            rows.append(row)
            text = ", ".join(f"{t} {m:.4f} s" for t, m in row["medians"].items())
            print(f"{name:8s} {iou_type:8s} {text}  (load {os.getloadavg()[0]:.1f})", flush=True)
    load = f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"
    command = "flock /tmp/segfuse-bench.lock python benchmarks/bench_coco.py " + " ".join(sys.argv[1:])
    write_results(rows, described, args.out, load, command.strip())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
