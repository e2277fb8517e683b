"""The per-image stage of an evaluation: geometry, pair IoUs and greedy matching, in one or many processes.

Convention: everything here is decided per image (pycocotools' evaluateImg works per
(image, category) cell), so splitting the images into shards and evaluating each shard in
its own process gives exactly the single-process arrays. Detections are ranked per cell
by (-score, category, input order) and cut to ``params.cell_cap``; ground truths are
ordered per cell by (category, annotation order): pycocotools' orders, also when
``use_cats=False`` merges the categories of an image into one cell.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

import numpy as np

from segfuse import _accelerate
from segfuse.coco import _cmask, _progress
from segfuse.coco._dataset import (
    Catalog,
    Instances,
    add_ground_truth_geometry,
    add_result_geometry,
    lvis_filter,
    not_exhaustive,
)
from segfuse.coco._matching import greedy_match
from segfuse.coco._overlap import Pairs, cell_pairs, pair_ious
from segfuse.coco._params import EvalParams

@dataclass
class Matched:
    """Matches of one or more shards.

    gt: evaluated ground truths (no geometry) in per-cell order; dt: kept detections (no
    geometry); rank (D,): rank of each detection in its cell; matched (A, T, D) int32:
    index into ``gt`` of the match per area range and IoU threshold, -1 if none;
    pairs: the (dt, gt, IoU) pairs that reached the smallest threshold, sorted by (dt, gt);
    not_exhaustive (D,): LVIS' flag.
    """

    gt: Instances
    dt: Instances
    rank: np.ndarray
    matched: np.ndarray
    pairs: Pairs
    not_exhaustive: np.ndarray


_EVALUATED = []  # one entry once this process has finished an evaluation
FIRST_CALL_WORK = 16_000_000  # detections x area ranges x IoU thresholds that repay the kernels' load at once


def kernels(work: int = 0):
    """``segfuse.coco._compiled`` (numba), or None for the numpy matching and accumulation (the same numbers).

    Convention: a process's first evaluation runs on numpy unless numba is already loaded or
    its ``work`` (kept detections x area ranges x IoU thresholds) reaches ``FIRST_CALL_WORK``
    (400k detections at the defaults); the later ones load the compiled kernels. They load
    once per process (numba's import and its cached machine code, about 0.55 s; the first run
    after installing compiles them into numba's cache, about 4 s) and make a 9-object
    evaluation 1.6x (segm) to 2.2x (bbox) cheaper, a set of 500k detections 0.8-1.1 s
    cheaper (benchmarks/RESULTS.md section 3). So a
    one-shot ``segfuse coco`` keeps its 0.2 s start on small sets, a large one gains at once,
    and repeated evaluations (validation every epoch) get the compiled path. None where numba
    is not installed or its JIT is disabled.
    """
    if not _EVALUATED and "numba" not in sys.modules and work < FIRST_CALL_WORK:
        return None
    return _accelerate.compiled("segfuse.coco._compiled")


def evaluated() -> None:
    """Record a finished evaluation: later ones may load the compiled kernels."""
    if not _EVALUATED:
        _EVALUATED.append(True)


def backend_for(iou_type: str) -> str:
    """"pycocotools" (C rleIou) for "segm" when it is installed, else "numpy" (always for "boundary")."""
    return "pycocotools" if iou_type == "segm" and _cmask.available() else "numpy"


def match_images(catalog: Catalog, gt: Instances, dt: Instances, params: EvalParams, gt_anns: list, dt_anns: list,
                 box_mode: bool, backend: str, show: bool = False) -> Matched:
    """Geometry, IoU and matching for the ground truths ``gt`` and results ``dt`` (tables of one shard)."""
    add_ground_truth_geometry(gt, gt_anns, catalog, params.iou_type, backend)
    add_result_geometry(dt, dt_anns, catalog, params.iou_type, box_mode, backend)
    if params.mode == "lvis":
        dt = lvis_filter(gt, dt, catalog)
    return match_instances(catalog, gt, dt, params, show)


def match_instances(catalog: Catalog, gt: Instances, dt: Instances, params: EvalParams, show: bool = False) -> Matched:
    """IoU and greedy matching of instances that carry their geometry."""
    n_images = len(catalog.image_ids)
    dt_cell = _cells(dt, n_images, params.use_cats)
    gt_cell = _cells(gt, n_images, params.use_cats)
    kept, rank = _kept_detections(dt, dt_cell, params.cell_cap)
    gt_order = np.lexsort((gt.index, gt.category, gt_cell))
    d, g = cell_pairs(dt_cell[kept], gt_cell[gt_order])
    floor = min(float(params.iou_thresholds.min()), 1 - 1e-10)
    with _progress.bar(show, "COCO overlaps", len(d)) as advance:
        iou = pair_ious(dt, gt, kept[d], gt_order[g], params.iou_type, advance, floor, params.dilation_ratio)
    sorted_gt = gt.take(gt_order, geometry=False)
    gt_ignore = ground_truth_ignore(sorted_gt, params)
    matched = _match(Pairs(d, g, iou), rank, gt_ignore, sorted_gt.crowd, params.iou_thresholds, show)
    kept_dt = dt.take(kept, geometry=False)
    reached = iou >= floor
    return Matched(sorted_gt, kept_dt, rank, matched, Pairs(d[reached], g[reached], iou[reached]),
                   not_exhaustive(kept_dt, catalog))


def _match(pairs: Pairs, rank: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray,
           show: bool) -> np.ndarray:
    """``greedy_match``, compiled where numba imports (the same matches)."""
    compiled = kernels(len(rank) * gt_ignore.shape[0] * len(thresholds))
    if compiled is not None:
        return compiled.greedy_match(pairs.dt, pairs.gt, pairs.iou, len(rank), gt_ignore, gt_crowd,
                                     thresholds.astype(np.float64, copy=False))
    with _progress.bar(show, "COCO matching", int(rank.max(initial=-1)) + 1) as advance:
        return greedy_match(pairs, rank, gt_ignore, gt_crowd, thresholds, advance)


def ground_truth_ignore(gt: Instances, params: EvalParams) -> np.ndarray:
    """(A, G) ignored ground truths: crowd / LVIS "ignore", or area outside the range."""
    return gt.ignore[None, :] | area_outside(gt.area, params)


def area_outside(area: np.ndarray, params: EvalParams) -> np.ndarray:
    """(A, n) area < low or area > high."""
    low, high = params.area_bounds
    return (area < low) | (area > high)


def _cells(inst: Instances, n_images: int, use_cats: bool) -> np.ndarray:
    return inst.category * n_images + inst.image if use_cats else inst.image.copy()


def _kept_detections(dt: Instances, cell: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Detections sorted by (cell, -score, category, input order) and cut to ``cap`` per cell; their ranks."""
    order = np.lexsort((dt.index, dt.category, -dt.scores, cell))
    sorted_cell = cell[order]
    first = np.searchsorted(sorted_cell, sorted_cell, side="left")
    rank = np.arange(len(order)) - first
    keep = rank < cap
    return order[keep], rank[keep]


# ----------------------------------------------------------------------------------------------- processes

_SOURCES: tuple | None = None  # (gt_anns, dt_anns), inherited by forked workers


def resolve_workers(workers) -> int:
    """None (the default) and 0 evaluate in this process; an int n >= 1 uses n processes.

    Convention: the default is one process. On the 2-core machine of the benchmarks two
    processes were slower than one (forking, copy-on-write of the loaded JSON, merging the
    shards' arrays outweigh the halved per-image stage; benchmarks/results/coco.md), so
    several processes are opt-in, for machines with many free cores.
    """
    if workers is None:
        return 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(f"workers must be an int >= 0 or None, got {workers!r}")
    return max(int(workers), 1)


def match_in_processes(catalog: Catalog, gt: Instances, dt: Instances, params: EvalParams, gt_anns: list,
                       dt_anns: list, box_mode: bool, backend: str, workers: int, show: bool) -> Matched:
    """``match_images`` over image shards in ``workers`` forked processes (one process: in place)."""
    if workers <= 1 or not _fork_available() or len(catalog.image_ids) < 2:
        return match_images(catalog, gt, dt, params, gt_anns, dt_anns, box_mode, backend, show)
    import multiprocessing

    global _SOURCES
    bounds = _image_shards(gt.image, dt.image, len(catalog.image_ids), 2 * workers)
    jobs = [(catalog, gt.take((gt.image >= a) & (gt.image < b)), dt.take((dt.image >= a) & (dt.image < b)), params,
             box_mode, backend) for a, b in zip(bounds[:-1], bounds[1:])]
    _SOURCES = (gt_anns, dt_anns)
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs)), initializer=_ignore_interrupts) as pool:
            with _progress.bar(show, "COCO images", len(catalog.image_ids)) as advance:
                parts = []
                for a, b, part in zip(bounds[:-1], bounds[1:], pool.imap(_shard_job, jobs)):
                    parts.append(part)
                    advance(int(b - a))
    finally:
        _SOURCES = None
    return merge(parts)


def _shard_job(job) -> Matched:
    catalog, gt, dt, params, box_mode, backend = job
    return match_images(catalog, gt, dt, params, _SOURCES[0], _SOURCES[1], box_mode, backend)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (one line, exit 130)


def merge(parts: list) -> Matched:
    """Concatenate shard results; ground-truth indices are offset by the shards before."""
    offsets = np.cumsum([0] + [len(p.gt) for p in parts])
    dt_offsets = np.cumsum([0] + [len(p.dt) for p in parts])
    matched = np.concatenate([np.where(p.matched >= 0, p.matched + o, -1) for p, o in zip(parts, offsets)], axis=2)
    pairs = Pairs(np.concatenate([p.pairs.dt + o for p, o in zip(parts, dt_offsets)]),
                  np.concatenate([p.pairs.gt + o for p, o in zip(parts, offsets)]),
                  np.concatenate([p.pairs.iou for p in parts]))
    return Matched(_concat([p.gt for p in parts]), _concat([p.dt for p in parts]),
                   np.concatenate([p.rank for p in parts]), matched.astype(np.int32), pairs,
                   np.concatenate([p.not_exhaustive for p in parts]))


def _concat(parts: list) -> Instances:
    names = ("image", "category", "area", "crowd", "ignore", "ids", "index", "scores")
    values = {}
    for n in names:
        arrays = [getattr(p, n) for p in parts]
        values[n] = None if any(a is None for a in arrays) else np.concatenate(arrays)
    return Instances(**values)


def _image_shards(gt_image, dt_image, n_images: int, n_shards: int) -> np.ndarray:
    """Image index bounds of ``n_shards`` contiguous shards of about equal annotation counts."""
    weight = np.bincount(gt_image, minlength=n_images) + np.bincount(dt_image, minlength=n_images) + 1
    total = np.cumsum(weight)
    cuts = np.searchsorted(total, total[-1] * np.arange(1, n_shards) / n_shards)
    return np.unique(np.r_[0, cuts, n_images])


def _fork_available() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
