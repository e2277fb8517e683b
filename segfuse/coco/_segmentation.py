"""COCO ``segmentation`` fields -> one mask (Runs) per annotation, as pycocotools' annToRLE.

Convention: a list is polygons (rasterised and united), except that a list whose first
entry has exactly 4 numbers is a list of [x, y, w, h] boxes (pycocotools' frPyObjects
rule); a dict with list counts is an uncompressed RLE, with str / bytes counts a compressed
one. Polygons use the image's (h, w); an RLE must carry the image's size. Anything else is
a ValueError naming the annotation.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Callable, Sequence

import numpy as np

from segfuse.coco import _cmask, _counts, _runs
from segfuse.coco._boxes import box_polygons
from segfuse.coco._polygon import rasterize
from segfuse.coco._ragged import chunk_bounds, offsets_from_lengths

CHUNK_CHARS = 1 << 20


def to_runs(segmentations: Sequence, heights: np.ndarray, widths: np.ndarray, name: Callable[[int], str]) -> _runs.Runs:
    """N segmentation objects of images of size (heights[i], widths[i]) -> Runs of N masks."""
    kinds = _classify(segmentations, heights, widths, name)
    polygons, poly_owner, uncompressed, compressed = kinds
    parts = [
        _polygon_runs(polygons, np.asarray(poly_owner, np.int64), heights, widths, name),
        _uncompressed_runs([segmentations[i] for i in uncompressed], uncompressed, heights[uncompressed], widths[uncompressed], name),
        _compressed_runs([segmentations[i] for i in compressed], compressed, heights[compressed], widths[compressed], name),
    ]
    owners = [np.unique(np.asarray(poly_owner, np.int64)), np.asarray(uncompressed, np.int64), np.asarray(compressed, np.int64)]
    return _assemble(parts, owners, heights, widths)


def to_rles(segmentations: Sequence, heights: np.ndarray, widths: np.ndarray, name: Callable[[int], str]) -> list:
    """N segmentation objects -> N compressed RLE dicts through pycocotools' C routines (``_cmask``).

    The same checks as ``to_runs`` on types, polygons, sizes and characters; compressed RLEs
    are passed through unchanged (pycocotools reads str or bytes counts).
    """
    polygons, poly_owner, uncompressed, compressed = _classify(segmentations, heights, widths, name)
    out = [None] * len(segmentations)
    if polygons:
        owner = np.asarray(poly_owner, np.int64)
        arrays = _check_coordinates(polygons, owner, name)
        for i, rle in zip(np.unique(owner).tolist(), _cmask.rasterize(arrays, owner, heights, widths)):
            out[i] = rle
    if uncompressed:
        rles = [segmentations[i] for i in uncompressed]
        _uncompressed_runs(rles, uncompressed, heights[uncompressed], widths[uncompressed], name)  # validates totals
        for i, rle in zip(uncompressed, _cmask.from_uncompressed(rles)):
            out[i] = rle
    if compressed:
        _check_characters([segmentations[i]["counts"] for i in compressed], compressed, name)
        for i in compressed:
            out[i] = segmentations[i]
    return out


def _classify(segmentations: Sequence, heights, widths, name) -> tuple[list, list, list, list]:
    """Polygons (with their annotation index), uncompressed and compressed RLE indices; checks RLE sizes."""
    if _all_compressed(segmentations):  # detector output: one pass per field instead of one per object
        every = list(range(len(segmentations)))
        _check_sizes(segmentations, every, heights, widths, name)
        return [], [], [], every
    polygons, poly_owner, uncompressed, compressed = [], [], [], []
    for i, segm in enumerate(segmentations):
        if isinstance(segm, dict) and "counts" in segm and "size" in segm:
            (compressed if isinstance(segm["counts"], (str, bytes)) else uncompressed).append(i)
        elif isinstance(segm, list):
            shapes = _polygons(segm, name, i)
            polygons.extend(shapes)
            poly_owner.extend([i] * len(shapes))
        else:
            raise ValueError(f"{name(i)}: segmentation must be polygons or an RLE dict, got {_describe(segm)}")
    _check_sizes(segmentations, uncompressed + compressed, heights, widths, name)
    return polygons, poly_owner, uncompressed, compressed


def _all_compressed(segmentations) -> bool:
    """Every segmentation is a dict with "size" and str / bytes "counts"."""
    if not segmentations or set(map(type, segmentations)) != {dict}:
        return False
    try:
        kinds = set(map(type, map(itemgetter("counts"), segmentations)))
        list(map(itemgetter("size"), segmentations))
    except KeyError:
        return False
    return kinds <= {str, bytes}


def _check_coordinates(polygons, owner, name) -> list:
    """The polygons as float64 arrays (one conversion for all); ValueError naming the annotation if not numbers."""
    lengths = np.fromiter(map(len, polygons), dtype=np.int64, count=len(polygons))
    try:
        coords = np.fromiter(chain.from_iterable(polygons), dtype=np.float64, count=int(lengths.sum()))
    except (TypeError, ValueError):
        bad = next(i for i, p in zip(owner.tolist(), polygons) if not all(isinstance(v, (int, float)) for v in p))
        raise ValueError(f"{name(bad)}: polygon coordinates must be numbers") from None
    offsets = offsets_from_lengths(lengths).tolist()
    return [coords[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def _check_characters(fields, index, name) -> None:
    """Compressed counts use characters '0'..'o' and each string ends on a final character (< 'P')."""
    try:
        joined = "".join(fields).encode("ascii", "replace")
    except TypeError:
        joined = b"".join(f.encode("ascii", "replace") if isinstance(f, str) else f for f in fields)
    chars = np.frombuffer(joined, dtype=np.uint8)
    lengths = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    ends = np.cumsum(lengths)
    bad = np.zeros(len(fields), bool)
    bad_char = (chars < 48) | (chars > 111)
    if bad_char.any():
        total = np.r_[0, np.cumsum(bad_char)]
        bad |= total[ends] > total[ends - lengths]
    nonempty = lengths > 0
    bad[nonempty] |= chars[ends[nonempty] - 1] >= 48 + 0x20
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name(index[i])}: malformed compressed RLE (characters must be in '0'..'o' and the "
                         f"string must end with a complete count)")


def _polygons(segm: list, name: Callable[[int], str], i: int) -> list:
    """The polygons of annotation ``i`` (boxes [x, y, w, h] become box polygons); ValueError if malformed."""
    if not segm:
        raise ValueError(f"{name(i)}: segmentation is an empty polygon list")
    if not (len(segm) == 1 and isinstance(segm[0], list) and len(segm[0]) >= 2) and \
            not all(isinstance(p, (list, tuple)) and len(p) >= 2 for p in segm):
        raise ValueError(f"{name(i)}: polygons must be lists of at least one (x, y) point [x0, y0, x1, y1, ...]")
    if len(segm[0]) == 4:
        try:
            boxes = np.asarray(segm, dtype=np.float64).reshape(-1, 4)
        except (TypeError, ValueError):
            raise ValueError(f"{name(i)}: a list whose first entry has 4 numbers must be [x, y, w, h] boxes") from None
        return [list(p) for p in box_polygons(boxes)]
    return segm


def _polygon_runs(polygons, owner, heights, widths, name) -> _runs.Runs:
    lengths = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
    try:
        coords = np.fromiter(chain.from_iterable(polygons), dtype=np.float64, count=int(lengths.sum()))
    except (TypeError, ValueError):
        bad = next(i for i, p in zip(owner, polygons) if not all(isinstance(v, (int, float)) for v in p))
        raise ValueError(f"{name(bad)}: polygon coordinates must be numbers") from None
    runs = rasterize(coords, offsets_from_lengths(lengths), heights[owner], widths[owner])
    groups, first, count = np.unique(owner, return_index=True, return_counts=True)
    if (count == 1).all():
        return runs
    group = np.searchsorted(groups, owner)
    return _runs.union(runs, group, heights[groups], widths[groups])


def _uncompressed_runs(rles, index, heights, widths, name) -> _runs.Runs:
    for i, rle in zip(index, rles):
        if not isinstance(rle["counts"], list) or not all(isinstance(c, int) and c >= 0 for c in rle["counts"]):
            raise ValueError(f"{name(i)}: uncompressed RLE counts must be a list of ints >= 0")
    lengths = np.fromiter((len(r["counts"]) for r in rles), dtype=np.int64, count=len(rles))
    flat = np.fromiter(chain.from_iterable(r["counts"] for r in rles), dtype=np.int64, count=int(lengths.sum()))
    return _checked(_counts.Counts(flat, offsets_from_lengths(lengths), heights, widths), index, name)


def _compressed_runs(rles, index, heights, widths, name) -> _runs.Runs:
    """Decode compressed RLEs in chunks of about ``CHUNK_CHARS`` characters (bounded temporaries).

    Runs go straight into one buffer sized by the bound runs <= characters / 2, int32 when
    every mask has fewer than 2^31 pixels: half the memory, and no concatenation of parts.
    """
    fields = [r["counts"] for r in rles]
    lengths = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    try:
        joined = "".join(fields).encode("ascii", "replace")  # str counts: one encode for all
    except TypeError:
        joined = b"".join(f.encode("ascii", "replace") if isinstance(f, str) else f for f in fields)
    chars = np.frombuffer(joined, dtype=np.uint8)
    offsets = offsets_from_lengths(lengths)
    small = not len(heights) or int((heights * widths).max()) < 2**31
    starts, ends = (np.empty(len(chars) // 2 + 1, dtype=np.int32 if small else np.int64) for _ in range(2))
    per_mask, used = np.zeros(len(rles), dtype=np.int64), 0
    cuts = chunk_bounds(lengths, CHUNK_CHARS)
    for a, b in zip(cuts[:-1], cuts[1:]):
        part = _decoded(chars[offsets[a] : offsets[b]], lengths[a:b], index[a:b], heights[a:b], widths[a:b], name)
        n_runs = len(part.starts)
        starts[used : used + n_runs], ends[used : used + n_runs] = part.starts, part.ends
        per_mask[a:b], used = np.diff(part.offsets), used + n_runs
    return _runs.Runs(starts[:used], ends[:used], offsets_from_lengths(per_mask), heights, widths)


def _decoded(chars, lengths, index, heights, widths, name) -> _runs.Runs:
    try:
        counts = _counts.decode_joined(chars, lengths, heights, widths)
    except ValueError:
        offsets = offsets_from_lengths(lengths)
        for j, i in enumerate(index):
            try:
                _counts.decode_strings([chars[offsets[j] : offsets[j + 1]].tobytes()], [1], [1])
            except ValueError as error:
                raise ValueError(f"{name(i)}: {error}") from None
        raise
    return _checked(counts, index, name)


def _checked(counts: _counts.Counts, index, name) -> _runs.Runs:
    bad = _counts.bad_totals(counts)
    if len(bad):
        raise ValueError(f"{name(index[bad[0]])}: malformed RLE, {_counts.total_message(counts, int(bad[0]))}")
    return _runs.from_counts(counts)


def _assemble(parts, owners, heights, widths) -> _runs.Runs:
    """Concatenate Runs parts whose masks belong to annotations ``owners`` into annotation order."""
    owner = np.concatenate(owners)
    if np.array_equal(owner, np.arange(len(heights))):  # already in order: no gather
        return _runs.concatenate([p for p, o in zip(parts, owners) if len(o)], heights, widths)
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    starts = np.concatenate([p.starts for p in parts])
    ends = np.concatenate([p.ends for p in parts])
    order = np.empty(len(heights), dtype=np.int64)
    order[owner] = np.arange(len(owner))
    source = offsets_from_lengths(lengths)[:-1][order]
    offsets = offsets_from_lengths(lengths[order])
    flat = np.repeat(source - offsets[:-1], lengths[order]) + np.arange(offsets[-1])  # run j of the output
    return _runs.Runs(starts[flat], ends[flat], offsets, heights, widths)


def _check_sizes(segmentations, index: list, heights, widths, name) -> None:
    """Every RLE's "size" equals its image's [h, w]."""
    try:
        sizes = np.array([segmentations[i]["size"] for i in index], dtype=np.int64).reshape(len(index), 2)
    except (TypeError, ValueError):
        sizes = np.full((len(index), 2), -1, dtype=np.int64)
    index = np.asarray(index, dtype=np.int64)
    bad = np.flatnonzero((sizes[:, 0] != heights[index]) | (sizes[:, 1] != widths[index]))
    if len(bad):
        i = int(index[bad[0]])
        raise ValueError(f"{name(i)}: RLE size {segmentations[i]['size']} does not match its image's "
                         f"[h, w] = [{int(heights[i])}, {int(widths[i])}]")


def _describe(value) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value)}"
    return type(value).__name__
