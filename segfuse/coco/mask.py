"""pycocotools.mask in numpy: RLE encode, decode, area, toBbox, iou, merge, frPyObjects.

Same names, arguments and outputs as ``pycocotools.mask`` and bit-identical results, with
no pycocotools import. An RLE is ``{"size": [h, w], "counts": bytes}``.

Convention: masks are column-major (pixel (y, x) at ``x * h + y``); ``encode`` takes an
(h, w) or (h, w, n) uint8 / bool array (any memory order; pycocotools insists on Fortran
order) and ``decode`` returns (h, w) or (h, w, n) uint8 in Fortran order. Polygons are
rasterised exactly as pycocotools' ``rleFrPoly`` (see ``_polygon``). ``iou(dt, gt,
iscrowd)`` is (len(dt), len(gt)); a crowd ground truth divides by the detection's area;
masks of different sizes give -1 where their boxes overlap; an empty side gives ``[]``.
Extensions: ``frPyObjects`` also accepts compressed RLEs (returned with bytes counts), and
malformed RLEs raise ValueError instead of reading out of bounds.

Example:
    >>> import numpy as np
    >>> rle = encode(np.asfortranarray(np.eye(3, dtype=np.uint8)))
    >>> rle["counts"], int(area(rle))
    (b'013000', 3)
"""

from __future__ import annotations

import numpy as np

from segfuse.coco import _boxes, _counts, _runs
from segfuse.coco._polygon import rasterize
from segfuse.coco._ragged import offsets_from_lengths

__all__ = ["encode", "decode", "area", "toBbox", "iou", "merge", "frPyObjects", "frPoly", "frBbox", "frUncompressedRLE"]


def encode(bimask: np.ndarray):
    """(h, w) -> RLE, or (h, w, n) -> list of n RLEs."""
    array = np.asarray(bimask)
    if array.dtype not in (np.uint8, np.bool_):
        raise TypeError(f"bimask must be a uint8 or bool array, got {array.dtype}")
    if array.ndim not in (2, 3):
        raise ValueError(f"bimask must have shape (h, w) or (h, w, n), got {array.shape}")
    stack = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    rles = _to_rles(_counts.encode_dense(stack.view(np.uint8)))
    return rles[0] if array.ndim == 2 else rles


def decode(rleObjs):
    """RLE -> (h, w) uint8, or list of RLEs -> (h, w, n) uint8, Fortran order."""
    if isinstance(rleObjs, dict):
        return _counts.decode_dense(_from_rles([rleObjs]))[:, :, 0]
    return _counts.decode_dense(_from_rles(rleObjs))


def area(rleObjs):
    """Number of set pixels: np.uint32 for one RLE, (n,) uint32 array for a list."""
    if isinstance(rleObjs, dict):
        return area([rleObjs])[0]
    return _counts.areas(_from_rles(rleObjs)).astype(np.uint32)


def toBbox(rleObjs):  # noqa: N802  pycocotools' name
    """[x, y, w, h] float64: (4,) for one RLE, (n, 4) for a list."""
    if isinstance(rleObjs, dict):
        return toBbox([rleObjs])[0]
    return _counts.boxes(_from_rles(rleObjs))


def merge(rleObjs, intersect: bool = False):
    """Union (or intersection) of a list of RLEs of one size -> one RLE."""
    counts = _from_rles(rleObjs)
    if len(counts) == 0:
        return {"size": [0, 0], "counts": b""}
    if len(counts) == 1:
        return _to_rles(counts)[0]
    if (counts.heights != counts.heights[0]).any() or (counts.widths != counts.widths[0]).any():
        return {"size": [0, 0], "counts": b""}
    runs = _runs.from_counts(counts)
    if intersect:
        merged = _intersect_all(runs)
    else:
        merged = _runs.union(runs, np.zeros(len(counts), np.int64), counts.heights[:1], counts.widths[:1])
    return _to_rles(_runs.to_counts(merged))[0]


def iou(dt, gt, pyiscrowd):
    """(len(dt), len(gt)) float64 IoU of RLEs or of [x, y, w, h] boxes; [] if either is empty."""
    dt, gt = _iou_operand(dt, "dt"), _iou_operand(gt, "gt")
    if len(dt) == 0 or len(gt) == 0:
        return []
    if isinstance(dt, np.ndarray) != isinstance(gt, np.ndarray):
        raise ValueError("dt and gt must both be boxes or both be RLEs")
    crowd = np.asarray(pyiscrowd, dtype=np.uint8).reshape(-1)
    if len(crowd) != len(gt):
        raise ValueError(f"iscrowd must have one entry per gt ({len(gt)}), got {len(crowd)}")
    d, g = np.meshgrid(np.arange(len(dt)), np.arange(len(gt)), indexing="ij")
    d, g = d.ravel(), g.ravel()
    if isinstance(dt, np.ndarray):
        return _boxes.pair_iou(dt[d], gt[g], crowd[g].astype(bool)).reshape(len(dt), len(gt))
    return _mask_iou(dt, gt, d, g, crowd[g].astype(bool)).reshape(len(dt), len(gt))


def frPyObjects(pyobj, h: int, w: int):  # noqa: N802
    """Polygons, boxes, uncompressed or compressed RLEs -> RLE (one object) or list of RLEs."""
    if isinstance(pyobj, np.ndarray):
        return frBbox(pyobj, h, w)
    if isinstance(pyobj, dict):
        return _from_rle_object(pyobj)
    if not isinstance(pyobj, list) or not pyobj:
        raise ValueError("frPyObjects takes polygons, boxes or RLE dicts (a non-empty list or one object)")
    first = pyobj[0]
    if isinstance(first, dict):
        return [_from_rle_object(o) for o in pyobj]
    if isinstance(first, (list, tuple, np.ndarray)):
        return frBbox(pyobj, h, w) if len(first) == 4 else frPoly(pyobj, h, w)
    if len(pyobj) == 4:
        return frBbox([pyobj], h, w)[0]
    return frPoly([pyobj], h, w)[0]


def frPoly(poly, h: int, w: int) -> list:  # noqa: N802
    """List of flat polygons [x0, y0, x1, y1, ...] -> list of RLEs (pycocotools' rleFrPoly)."""
    arrays = [np.asarray(p, dtype=np.float64).reshape(-1) for p in poly]
    offsets = offsets_from_lengths(np.array([len(a) for a in arrays], dtype=np.int64))
    coords = np.concatenate(arrays) if arrays else np.zeros(0)
    n = len(arrays)
    runs = rasterize(coords, offsets, np.full(n, h, np.int64), np.full(n, w, np.int64))
    return _to_rles(_runs.to_counts(runs))


def frBbox(bb, h: int, w: int) -> list:  # noqa: N802
    """(n, 4) [x, y, w, h] boxes -> list of RLEs (the box as a 4-point polygon, as pycocotools)."""
    boxes = np.asarray(bb, dtype=np.float64).reshape(-1, 4)
    return frPoly(_boxes.box_polygons(boxes), h, w)


def frUncompressedRLE(ucRles, h: int = 0, w: int = 0) -> list:  # noqa: N802
    """RLEs with list counts -> RLEs with compressed bytes counts (counts kept as given)."""
    return [_from_rle_object(o) for o in ucRles]


def _from_rle_object(obj: dict) -> dict:
    if "counts" not in obj or "size" not in obj:
        raise ValueError(f"an RLE needs 'size' and 'counts', got keys {sorted(obj)}")
    if isinstance(obj["counts"], (str, bytes)):
        return _to_rles(_from_rles([obj]))[0]
    h, w = _size(obj)
    counts = np.asarray(obj["counts"], dtype=np.int64).reshape(-1)
    batch = _counts.Counts(counts, np.array([0, len(counts)]), np.array([h]), np.array([w]))
    return _to_rles(batch)[0]


def _from_rles(rles) -> _counts.Counts:
    """List of compressed RLE dicts (str or bytes counts) -> Counts batch."""
    strings, heights, widths = [], [], []
    for i, rle in enumerate(rles):
        if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
            raise ValueError(f"RLE #{i} must be a dict with 'size' and 'counts'")
        counts = rle["counts"]
        if isinstance(counts, str):
            counts = counts.encode("ascii")
        elif not isinstance(counts, bytes):
            raise ValueError(f"RLE #{i} has uncompressed counts; pass it through frPyObjects first")
        h, w = _size(rle)
        strings.append(counts), heights.append(h), widths.append(w)
    return _counts.decode_strings(strings, heights, widths)


def _to_rles(counts: _counts.Counts) -> list:
    strings = _counts.encode_strings(counts)
    return [{"size": [int(h), int(w)], "counts": s} for h, w, s in zip(counts.heights, counts.widths, strings)]


def _size(rle: dict) -> tuple[int, int]:
    size = rle["size"]
    if len(size) != 2 or min(size) < 0:
        raise ValueError(f"RLE 'size' must be [h, w] with h, w >= 0, got {size}")
    return int(size[0]), int(size[1])


def _iou_operand(objs, name: str):
    if isinstance(objs, np.ndarray):
        if objs.size and (objs.ndim != 2 or objs.shape[1] != 4):
            raise ValueError(f"{name} as an ndarray must be (n, 4) boxes, got shape {objs.shape}")
        return objs.astype(np.float64).reshape(-1, 4)
    if not isinstance(objs, (list, tuple)):
        raise ValueError(f"{name} must be a list of RLEs or boxes, or an (n, 4) array, got {type(objs).__name__}")
    if len(objs) == 0:
        return objs
    if all(isinstance(o, dict) for o in objs):
        return _from_rles(objs)
    if all(isinstance(o, (list, tuple, np.ndarray)) and len(o) == 4 for o in objs):
        return np.asarray(objs, dtype=np.float64).reshape(-1, 4)
    raise ValueError(f"{name} must be all RLE dicts or all [x, y, w, h] boxes")


def _mask_iou(dt: _counts.Counts, gt: _counts.Counts, d, g, crowd) -> np.ndarray:
    box_overlap = _boxes.pair_iou(_counts.boxes(dt)[d], _counts.boxes(gt)[g], crowd) > 0
    same_size = (dt.heights[d] == gt.heights[g]) & (dt.widths[d] == gt.widths[g])
    out = np.where(box_overlap & ~same_size, -1.0, 0.0)
    work = np.flatnonzero(box_overlap & same_size)
    _counts.check_totals(dt), _counts.check_totals(gt)
    dt_runs, gt_runs = _runs.from_counts(dt), _runs.from_counts(gt)
    out[work] = _boxes.iou_from_areas(
        _runs.pair_intersections(dt_runs, d[work], gt_runs, g[work]),
        _runs.areas(dt_runs)[d[work]],
        _runs.areas(gt_runs)[g[work]],
        crowd[work],
    )
    return out


def _intersect_all(runs: _runs.Runs) -> _runs.Runs:
    dense = _counts.decode_dense(_runs.to_counts(runs)).all(axis=2)
    return _runs.from_counts(_counts.encode_dense(dense[None].astype(np.uint8)))
