"""pycocotools' C RLE routines, used when pycocotools is installed: rasterisation, area, box and IoU.

Convention: the same C functions pycocotools' COCOeval calls (``rleFrPoly``, ``rleArea``,
``rleToBbox``, ``rleIou``), so the numbers are pycocotools' by construction. They are
called per image, never per annotation: polygons of one image are rasterised in one
call, and the IoU of every kept detection of an image with every ground truth of that
image is one call (pairs of other categories are computed and not read; the box check
in C makes them cheap). Without pycocotools the pure-numpy path (``_runs``) is used; the
tests compare both with pycocotools' Python API. RLE strings are trusted here as
pycocotools trusts them (characters are checked; run totals are not, since that would
need a decode in numpy).
"""

from __future__ import annotations

import numpy as np

from segfuse.coco._ragged import run_bounds

try:
    from pycocotools import _mask as _c
except ImportError:  # pragma: no cover - exercised where pycocotools is absent
    _c = None

_AREA_CHUNK = 255  # pycocotools 2.0.x ``_mask.area`` fails for 256 or more RLEs under numpy 2
SMALL_PAIRS = 256  # up to this many pairs, ``pair_ious`` groups them in plain Python


def available() -> bool:
    return _c is not None


def rasterize(polygons: list, owner: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> list:
    """Polygons (flat xy lists) of annotations ``owner`` -> one RLE dict per annotation in ``np.unique(owner)``.

    heights, widths: (N,) image size of each annotation (``owner`` indexes them; polygons of one
    annotation are consecutive). Polygons of annotations whose images share (h, w) go through
    one ``frPoly`` call; an annotation with several polygons is their union (``merge``), as
    pycocotools' annToRLE.
    """
    owners = owner.tolist()
    groups: dict = {}
    for i, size in enumerate(zip(heights[owner].tolist(), widths[owner].tolist())):
        groups.setdefault(size, []).append(i)
    rles = [None] * len(polygons)
    for (h, w), members in groups.items():
        for i, rle in zip(members, _c.frPoly([polygons[i] for i in members], h, w)):
            rles[i] = rle
    if len(set(owners)) == len(owners):
        return rles
    out, start = [], 0
    for i in range(1, len(owners) + 1):
        if i == len(owners) or owners[i] != owners[start]:
            out.append(rles[start] if i - start == 1 else _c.merge(rles[start:i], 0))
            start = i
    return out


def from_uncompressed(rles: list) -> list:
    """RLE dicts with list counts -> compressed RLE dicts."""
    return [_c.frUncompressedRLE([r], int(r["size"][0]), int(r["size"][1]))[0] for r in rles]


def areas(rles: list) -> np.ndarray:
    """(n,) int64 pixel counts."""
    if not rles:
        return np.zeros(0, np.int64)
    parts = [_c.area(rles[i : i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
    return np.concatenate(parts).astype(np.int64)


def boxes(rles: list) -> np.ndarray:
    """(n, 4) float64 [x, y, w, h] (pycocotools' toBbox)."""
    if not rles:
        return np.zeros((0, 4))
    return np.asarray(_c.toBbox(rles), dtype=np.float64).reshape(-1, 4)


def pair_ious(dt_rles: list, gt_rles: list, gt_crowd: np.ndarray, d: np.ndarray, g: np.ndarray,
              image: np.ndarray, advance) -> np.ndarray:
    """(P,) IoU of pairs (dt_rles[d[p]], gt_rles[g[p]]); ``image`` (P,) groups the pairs by image.

    The detections and ground truths of each image and every pair's place in that image's
    (detections x ground truths) matrix are found for all images at once; the loop only
    slices them and calls C.
    """
    out = np.zeros(len(d), dtype=np.float64)
    if not len(d):
        return out
    if len(d) <= SMALL_PAIRS:
        return _few_pair_ious(dt_rles, gt_rles, gt_crowd, d, g, image, out, advance)
    by_dt = np.lexsort((d, image))
    by_gt = np.lexsort((g, image))
    pair_bounds = run_bounds(image[by_dt])
    dts, row, dt_bounds = _members(d[by_dt], image[by_dt], pair_bounds)
    gts, col, gt_bounds = _members(g[by_gt], image[by_gt], pair_bounds)
    flat = np.empty(len(d), dtype=np.int64)
    flat[by_dt] = row * np.repeat(np.diff(gt_bounds), np.diff(pair_bounds))
    flat[by_gt] += col
    crowd = gt_crowd[gts].astype(np.uint8)
    dts, gts = dts.tolist(), gts.tolist()
    for i in range(len(pair_bounds) - 1):
        a, b, c0, c1 = int(dt_bounds[i]), int(dt_bounds[i + 1]), int(gt_bounds[i]), int(gt_bounds[i + 1])
        matrix = _c.iou([dt_rles[k] for k in dts[a:b]], [gt_rles[k] for k in gts[c0:c1]], crowd[c0:c1].tolist())
        pairs = by_dt[pair_bounds[i] : pair_bounds[i + 1]]
        out[pairs] = np.asarray(matrix, dtype=np.float64).reshape(-1)[flat[pairs]]
        advance(len(pairs))
    return out


def _few_pair_ious(dt_rles, gt_rles, gt_crowd, d, g, image, out, advance) -> np.ndarray:
    """``pair_ious`` for a few pairs: plain Python grouping costs less than the array bookkeeping."""
    images: dict = {}
    for p, (i, a, b) in enumerate(zip(image.tolist(), d.tolist(), g.tolist())):
        images.setdefault(i, []).append((p, a, b))
    crowd = gt_crowd.tolist()
    for pairs in images.values():
        dts = sorted({a for _, a, _ in pairs})
        gts = sorted({b for _, _, b in pairs})
        matrix = _c.iou([dt_rles[a] for a in dts], [gt_rles[b] for b in gts], [int(crowd[b]) for b in gts])
        row, col = {a: i for i, a in enumerate(dts)}, {b: i for i, b in enumerate(gts)}
        for p, a, b in pairs:
            out[p] = matrix[row[a], col[b]]
        advance(len(pairs))
    return out


def _members(member: np.ndarray, image: np.ndarray, pair_bounds: np.ndarray):
    """For pairs sorted by (image, member): the distinct members of every image laid end to end, each
    pair's index among its image's members, and the member bounds per image."""
    new = np.ones(len(member), dtype=bool)
    new[1:] = (member[1:] != member[:-1]) | (image[1:] != image[:-1])
    index = np.cumsum(new) - 1  # among all distinct (image, member)
    first = index[pair_bounds[:-1]]
    local = index - np.repeat(first, np.diff(pair_bounds))
    return member[new], local, np.concatenate((first, [int(new.sum())]))
