"""COCO / LVIS ground truth and results (JSON paths, dicts, result lists) -> flat per-instance arrays.

Convention (pycocotools' COCO and loadRes, without mutating the caller's dicts): images
are evaluated in ascending id order and categories in ascending id order; ground-truth
``area`` is read from the JSON, ``iscrowd`` defaults to 0 and crowd regions are ignored.
Results are loaded as ``loadRes`` does: if the first result has a non-empty "bbox", every
result's area is its box's w*h and a missing segmentation becomes the box polygon;
otherwise the area is the mask's pixel count and a missing bbox is the mask's box;
detections keep their position in the input list (``index``; pycocotools' id is index + 1)
and ``iscrowd`` is 0.

Ids: image, category and annotation ids are integers. A float with an integral value
(2299.0) is read as that integer, as Python and pycocotools compare 2299.0 == 2299; a
string ("2299"), a bool or a fractional number is a ValueError naming the entry, so a
file whose ids are strings is never silently merged with one whose ids are integers.

Stricter than pycocotools: results on images absent from the ground truth ("wrong
dataset"), unknown category ids, duplicate image, category or annotation ids, NaN scores,
missing fields and malformed segmentations raise ValueError naming the offending entry;
an empty result list is allowed (no detections).

Subsets and filters: ``image_ids`` / ``category_ids`` restrict the evaluation to those ids
(pycocotools' ``params.imgIds`` / ``params.catIds``; they must exist in the ground truth);
results below ``min_score`` are dropped before anything else (faster-coco-eval's
``loadRes(min_score=...)``).

LVIS mode (the ``lvis`` package 0.5.3): ground truth keeps its "ignore" flag (default 0)
and ``iscrowd`` plays no role; results are capped to the ``max_dets`` highest scores per
image (ties keep input order) before the subsets apply; ground truths and results with
area <= 0 are dropped (``get_ann_ids``' area filter); a result is kept only if its category
is in its image's ``neg_category_ids`` or has a ground truth there; an unmatched result
in a category of the image's ``not_exhaustive_category_ids`` is ignored. Missing
``neg_category_ids`` / ``not_exhaustive_category_ids`` read as empty (faster-coco-eval's
rule; the lvis package raises); a category's "frequency" must be "r", "c" or "f" if
present (a category without one is in no APr / APc / APf group).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import numpy as np

from segfuse.coco import _cmask, _runs
from segfuse.coco._params import EvalParams
from segfuse.coco._segmentation import to_rles, to_runs

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    _orjson = None
try:
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - exercised where msgspec is absent
    _msgspec = None

FREQUENCIES = ("r", "c", "f")


@dataclass
class Instances:
    """n ground truths or detections.

    image, category: (n,) int64 indices into the catalog; area (n,) float64; crowd (n,)
    bool (crowd regions: ignored and matchable many times); ignore (n,) bool (crowd, or
    LVIS "ignore"); ids (n,) int64 (annotation ids; index + 1 for results); index (n,)
    int64 position in the source list; scores (n,) for results; boxes (n, 4) and masks
    (``_runs.Runs`` or a list of RLE dicts for the pycocotools backend) once geometry is added.
    """

    image: np.ndarray
    category: np.ndarray
    area: np.ndarray
    crowd: np.ndarray
    ignore: np.ndarray
    ids: np.ndarray
    index: np.ndarray
    scores: np.ndarray | None = None
    boxes: np.ndarray | None = None
    masks: object = None

    def __len__(self) -> int:
        return len(self.image)

    def take(self, which: np.ndarray, geometry: bool = True) -> "Instances":
        """The instances ``which`` (indices or a bool mask), with their geometry unless ``geometry=False``."""
        arrays = [None if v is None else v[which] for v in (self.image, self.category, self.area, self.crowd,
                                                            self.ignore, self.ids, self.index, self.scores)]
        if not geometry:
            return Instances(*arrays)
        boxes = None if self.boxes is None else self.boxes[which]
        masks = None if self.masks is None else _take_masks(self.masks, which)
        return Instances(*arrays, boxes=boxes, masks=masks)


def _take_masks(masks, which):
    which = np.flatnonzero(which) if np.asarray(which).dtype == bool else np.asarray(which, np.int64)
    if isinstance(masks, list):
        return [masks[i] for i in which.tolist()]
    return _runs.take(masks, which)


@dataclass
class Catalog:
    """Images (I,) ids / heights / widths and categories (K,) ids / names, ascending ids.

    frequency: (K,) "r" / "c" / "f" / "" per category (LVIS); neg, not_exhaustive: sorted
    int64 keys ``image * K + category`` of the LVIS per-image category lists.
    """

    image_ids: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    category_ids: np.ndarray
    category_names: list
    frequency: list | None = None
    neg: np.ndarray | None = None
    not_exhaustive: np.ndarray | None = None

    def pair_keys(self, image: np.ndarray, category: np.ndarray) -> np.ndarray:
        return image.astype(np.int64) * len(self.category_ids) + category


def read_json(source, what: str):
    """A path (str / Path) is read as JSON (orjson when installed, else json); anything else is returned as is."""
    if not isinstance(source, (str, Path)):
        return source
    return _parse(_read_bytes(source, what), source, what)


def _read_bytes(source, what: str) -> bytes:
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ValueError(f"cannot read {what} file {source}: {error.strerror}") from None


def _parse(raw: bytes, source, what: str):
    try:
        return _orjson.loads(raw) if _orjson is not None else json.loads(raw)
    except ValueError as error:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        raise ValueError(f"{what} file {source} is not valid JSON: {error}") from None


def read_results(source, iou_type: str) -> list:
    """Results from a path, a list or a COCO dict (see ``result_list``).

    A path to a JSON list is decoded by msgspec when installed into light records that skip
    the fields the evaluation never reads ("segmentation" for "bbox" when results carry
    boxes): several times faster than building dicts. Any surprise (a dict at the top, a
    missing field) falls back to the plain reader, whose errors name the entry.
    """
    if not isinstance(source, (str, Path)):
        return result_list(source)
    raw = _read_bytes(source, "results")
    if _msgspec is not None:
        record = _BoxResult if iou_type == "bbox" else _MaskResult
        try:
            records = _msgspec.json.decode(raw, type=list[record])
            if record is _BoxResult and records and records[0].bbox in (None, []):
                records = _msgspec.json.decode(raw, type=list[_MaskResult])  # boxes come from the masks
            return records
        except (_msgspec.DecodeError, _msgspec.ValidationError):
            pass
    return result_list(_parse(raw, source, "results"))


if _msgspec is not None:

    class _Record(_msgspec.Struct):
        """A result read by msgspec that answers the few dict operations the loader uses."""

        def __getitem__(self, key):
            value = getattr(self, key, None)
            if value is None:
                raise KeyError(key)
            return value

        def __contains__(self, key) -> bool:
            return getattr(self, key, None) is not None

        def get(self, key, default=None):
            value = getattr(self, key, None)
            return default if value is None else value

        def keys(self):
            return {f for f in self.__struct_fields__ if getattr(self, f) is not None}

    class _BoxResult(_Record):
        image_id: object
        category_id: object
        score: object
        bbox: object = None

    class _MaskResult(_Record):
        image_id: object
        category_id: object
        score: object
        segmentation: object = None
        bbox: object = None

    _RECORDS = (dict, _Record)
else:  # pragma: no cover
    _RECORDS = (dict,)


def ground_truth_dict(data) -> dict:
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise ValueError("ground truth must be a COCO dict with 'images', 'annotations' and 'categories'")
    return data


def result_list(data) -> list:
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    if not isinstance(data, list):
        raise ValueError("results must be a list of result dicts (or a COCO dict with 'annotations')")
    return data


# ----------------------------------------------------------------------------------------------- catalog


def load_catalog(data: dict, params: EvalParams) -> Catalog:
    """Images and categories of a ground-truth dict, restricted to ``params``' subsets."""
    images, categories = data["images"], data["categories"]
    _require_each(images, ("id",), "image #{}")
    image_ids = int_ids([img["id"] for img in images], lambda i: f"image #{i}", "id")
    order = _sorted_unique(image_ids, "image ids")
    heights, widths = _sizes(images, order)
    _require_each(categories, ("id",), "category #{}")
    category_ids = int_ids([c["id"] for c in categories], lambda i: f"category #{i}", "id")
    cat_order = _sorted_unique(category_ids, "category ids")
    names = [str(categories[i].get("name", category_ids[i])) for i in cat_order.tolist()]
    catalog = Catalog(image_ids[order], heights, widths, category_ids[cat_order], names)
    if params.mode == "lvis":
        catalog.frequency = _frequencies([categories[i] for i in cat_order.tolist()])
        catalog.neg = _image_category_keys([images[i] for i in order.tolist()], "neg_category_ids", catalog)
        catalog.not_exhaustive = _image_category_keys([images[i] for i in order.tolist()],
                                                      "not_exhaustive_category_ids", catalog)
    return catalog


def select(catalog: Catalog, params: EvalParams) -> tuple[Catalog, np.ndarray, np.ndarray]:
    """The catalog restricted to the subsets, with old -> new index maps (-1 where dropped)."""
    keep_images = _subset_mask(catalog.image_ids, params.image_ids, "image_ids", "images")
    keep_cats = _subset_mask(catalog.category_ids, params.category_ids, "category_ids", "categories")
    image_map = np.where(keep_images, np.cumsum(keep_images) - 1, -1)
    cat_map = np.where(keep_cats, np.cumsum(keep_cats) - 1, -1)
    if keep_images.all() and keep_cats.all():
        return catalog, image_map, cat_map
    selected = Catalog(catalog.image_ids[keep_images], catalog.heights[keep_images], catalog.widths[keep_images],
                       catalog.category_ids[keep_cats], [n for n, k in zip(catalog.category_names, keep_cats) if k])
    if catalog.frequency is not None:
        selected.frequency = [f for f, k in zip(catalog.frequency, keep_cats) if k]
        selected.neg = _remap_keys(catalog.neg, catalog, image_map, cat_map, selected)
        selected.not_exhaustive = _remap_keys(catalog.not_exhaustive, catalog, image_map, cat_map, selected)
    return selected, image_map, cat_map


def _subset_mask(ids: np.ndarray, subset, argument: str, what: str) -> np.ndarray:
    if subset is None:
        return np.ones(len(ids), dtype=bool)
    missing = np.setdiff1d(subset, ids)
    if len(missing):
        raise ValueError(f"{argument} holds ids that are not ground-truth {what}: {missing[:5].tolist()}")
    return np.isin(ids, subset)


def _remap_keys(keys, catalog, image_map, cat_map, selected) -> np.ndarray:
    n_cats = len(catalog.category_ids)
    image, cat = image_map[keys // n_cats], cat_map[keys % n_cats]
    keep = (image >= 0) & (cat >= 0)
    return np.sort(selected.pair_keys(image[keep], cat[keep]))


def _sizes(images, order) -> tuple[np.ndarray, np.ndarray]:
    """(heights, widths) of the images in ``order``, int64 (0 where absent)."""
    sizes = []
    for key in ("height", "width"):
        try:
            sizes.append(np.array([images[i].get(key, 0) for i in order.tolist()], dtype=np.float64))
        except (TypeError, ValueError):
            sizes.append(np.full(len(order), np.nan))
    values = np.array(sizes).reshape(2, len(order))
    bad = ~((values >= 0) & (values < 2.0**53) & (values == values.round()))  # NaN fails every comparison
    if bad.any():
        which, at = np.argwhere(bad)[0]
        i, key = int(order[at]), ("height", "width")[which]
        raise ValueError(f"image id={images[i]['id']}: {key} must be an integer >= 0, got {images[i].get(key)!r}")
    ints = values.astype(np.int64)
    return ints[0], ints[1]


def _frequencies(categories) -> list:
    out = []
    for cat in categories:
        value = cat.get("frequency", "")
        if value not in FREQUENCIES + ("",):
            raise ValueError(f"category id={cat['id']}: frequency must be one of {FREQUENCIES}, got {value!r}")
        out.append(value)
    return out


def _image_category_keys(images, field: str, catalog: Catalog) -> np.ndarray:
    """Sorted keys image * K + category of an LVIS per-image category list (unknown categories are skipped)."""
    lists = [img.get(field, []) or [] for img in images]
    for img, values in zip(images, lists):
        if not isinstance(values, list):
            raise ValueError(f"image id={img['id']}: {field} must be a list of category ids, got {values!r}")
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = [c for values in lists for c in values]
    cats = int_ids(flat, lambda i: f"{field} entry #{i}", "category id") if flat else np.zeros(0, np.int64)
    image = np.repeat(np.arange(len(images)), lengths)
    cat = _lookup(catalog.category_ids, cats)
    keep = cat >= 0
    return np.unique(catalog.pair_keys(image[keep], cat[keep]))


# ----------------------------------------------------------------------------------------------- tables


def ground_truth_table(anns: list, catalog: Catalog, params: EvalParams) -> Instances:
    """Every ground-truth annotation as arrays (no geometry yet), against the full catalog."""
    _require_each(anns, ("id", "image_id", "category_id", "area"), "ground-truth annotation #{}")
    ids = int_ids([a["id"] for a in anns], lambda i: f"ground-truth annotation #{i}", "id")
    _sorted_unique(ids, "ground-truth annotation ids")
    name = lambda i: f"ground-truth annotation id={anns[i]['id']}"  # noqa: E731
    image, category = _indices(anns, catalog, name, "ground truth")
    area = _numbers([a["area"] for a in anns], name, "area")
    if params.mode == "lvis":
        crowd = np.zeros(len(anns), dtype=bool)
        ignore = np.array([bool(a.get("ignore", 0)) for a in anns], dtype=bool)
    else:
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
        ignore = crowd.copy()
    return Instances(image, category, area, crowd, ignore, ids, np.arange(len(anns), dtype=np.int64))


def result_table(anns: list, catalog: Catalog, params: EvalParams) -> tuple[Instances, bool]:
    """Every result as arrays (no geometry yet) and whether results are boxes ("bbox" in the first one)."""
    _require_each(anns, ("image_id", "category_id", "score"), "result #{}")  # also: each is a dict
    name = lambda i: f"result #{i} (image_id={anns[i]['image_id']})"  # noqa: E731
    image, category = _indices(anns, catalog, name, "results")
    scores = _numbers(_values(anns, "score"), name, "score")
    n = len(anns)
    dt = Instances(image, category, np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                   np.arange(1, n + 1, dtype=np.int64), np.arange(n, dtype=np.int64), scores=scores)
    box_mode = n > 0 and "bbox" in anns[0] and anns[0]["bbox"] != []
    return dt, box_mode


def restrict(gt: Instances, dt: Instances, catalog: Catalog, params: EvalParams):
    """Apply min_score, the LVIS per-image cap and the subsets; map indices to the selected catalog."""
    if params.min_score is not None:
        dt = dt.take(dt.scores >= params.min_score)
    if params.mode == "lvis":
        dt = dt.take(_top_per_image(dt, params.max_dets[-1]))
        gt = gt.take(gt.area > 0)
    if params.image_ids is None and params.category_ids is None:
        return gt, dt, catalog  # every image and category: indices already match
    selected, image_map, cat_map = select(catalog, params)
    gt = _remapped(gt, image_map, cat_map)
    dt = _remapped(dt, image_map, cat_map)
    return gt, dt, selected


def _remapped(inst: Instances, image_map, cat_map) -> Instances:
    image, category = image_map[inst.image], cat_map[inst.category]
    keep = (image >= 0) & (category >= 0)
    inst = inst.take(keep)
    inst.image, inst.category = image[keep], category[keep]
    return inst


def _top_per_image(dt: Instances, cap: int) -> np.ndarray:
    """Bool mask of the ``cap`` highest-scored results of each image (ties: input order), as LVISResults."""
    order = np.lexsort((dt.index, -dt.scores, dt.image))
    image = dt.image[order]
    first = np.searchsorted(image, image, side="left")
    keep = np.zeros(len(dt), dtype=bool)
    keep[order] = (np.arange(len(order)) - first) < cap
    return keep


def lvis_filter(gt: Instances, dt: Instances, catalog: Catalog) -> Instances:
    """Results with area > 0 whose category is in their image's neg list or has a ground truth there."""
    keys = catalog.pair_keys(dt.image, dt.category)
    positive = np.unique(catalog.pair_keys(gt.image, gt.category))
    known = _is_in(keys, catalog.neg) | _is_in(keys, positive)
    return dt.take(known & (dt.area > 0))


def not_exhaustive(dt: Instances, catalog: Catalog) -> np.ndarray:
    """(n,) bool: the result's category is not exhaustively annotated in its image (LVIS)."""
    if catalog.not_exhaustive is None:
        return np.zeros(len(dt), dtype=bool)
    return _is_in(catalog.pair_keys(dt.image, dt.category), catalog.not_exhaustive)


def _is_in(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


# ----------------------------------------------------------------------------------------------- geometry


def add_ground_truth_geometry(gt: Instances, anns: list, catalog: Catalog, iou_type: str, backend: str) -> None:
    """Boxes ("bbox") or masks (other types) of the ground truths, read from ``anns[gt.index]``."""
    source = [anns[i] for i in gt.index.tolist()]
    name = lambda i: f"ground-truth annotation id={source[i]['id']}"  # noqa: E731
    if iou_type == "bbox":
        _require_all(source, "bbox", name)
        gt.boxes = _boxes(source, name)
    else:
        _require_all(source, "segmentation", name)
        gt.masks = _masks([a["segmentation"] for a in source], catalog.heights[gt.image], catalog.widths[gt.image],
                          name, backend)


def add_result_geometry(dt: Instances, anns: list, catalog: Catalog, iou_type: str, box_mode: bool,
                        backend: str) -> None:
    """Areas and the boxes or masks of results ``anns[dt.index]`` (loadRes' rules, see the module doc)."""
    source = [anns[i] for i in dt.index.tolist()]
    name = lambda i: f"result #{int(dt.index[i])} (image_id={source[i]['image_id']})"  # noqa: E731
    heights, widths = catalog.heights[dt.image], catalog.widths[dt.image]
    if box_mode:
        boxes = _boxes(source, name)
        dt.area = boxes[:, 2] * boxes[:, 3]
        if iou_type == "bbox":
            dt.boxes = boxes
        else:
            segms = [s if s is not None else _box_polygon(boxes[i].tolist())
                     for i, s in enumerate(_values(source, "segmentation", None))]
            dt.masks = _masks(segms, heights, widths, name, backend)
        return
    if source and "segmentation" not in source[0]:
        raise ValueError("results need a 'bbox' or a 'segmentation' (the first result has neither)")
    _require_all(source, "segmentation", name)
    masks = _masks(_values(source, "segmentation"), heights, widths, name, backend)
    if isinstance(masks, list):
        dt.area = _cmask.areas(masks).astype(np.float64)
        mask_boxes = _cmask.boxes(masks) if iou_type == "bbox" else None
    else:
        dt.area = _runs.areas(masks).astype(np.float64)
        mask_boxes = _runs.boxes(masks) if iou_type == "bbox" else None
    if iou_type == "bbox":
        dt.boxes = _boxes(source, name, fallback=mask_boxes)
    else:
        dt.masks = masks


def _masks(segmentations, heights, widths, name, backend: str):
    if backend == "pycocotools":
        return to_rles(segmentations, heights, widths, name)
    return to_runs(segmentations, heights, widths, name)


# ----------------------------------------------------------------------------------------------- fields


def int_ids(values: list, name, what: str) -> np.ndarray:
    """(n,) int64 ids; integral floats are accepted, strings / bools / fractions raise naming ``name(i)``."""
    array = np.array(values) if values else np.zeros(0, np.int64)
    plain = array.ndim == 1 and bool not in set(map(type, values))  # numpy reads True as 1
    if plain and array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False)
    if plain and array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
        return array.astype(np.int64)
    for i, v in enumerate(values):
        integral = isinstance(v, int) or (isinstance(v, float) and np.isfinite(v) and v == int(v))
        if isinstance(v, bool) or not integral:
            hint = " (ids are integers: a string id is never the same id as an integer one)" if isinstance(v, str) else ""
            raise ValueError(f"{name(i)}: {what} must be an integer, got {v!r} ({type(v).__name__}){hint}")
    return np.array(values, dtype=np.int64)


def _numbers(values: list, name, what: str) -> np.ndarray:
    try:
        array = np.array(values, dtype=np.float64) if values else np.zeros(0)
        if array.ndim == 1 and not np.isnan(array).any():
            return array
    except (TypeError, ValueError):
        pass
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ValueError(f"{name(i)}: {what} must be a number, got {v!r}")
    raise ValueError(f"every {what} must be a number")


def _indices(anns, catalog: Catalog, name, what: str) -> tuple[np.ndarray, np.ndarray]:
    image_ids = int_ids(_values(anns, "image_id"), name, "image_id")
    category_ids = int_ids(_values(anns, "category_id"), name, "category_id")
    image = _lookup(catalog.image_ids, image_ids)
    missing = (image < 0).nonzero()[0]
    if len(missing):
        unknown = sorted(set(image_ids[missing].tolist()))[:5]
        hint = " (wrong dataset?)" if what == "results" else ""
        raise ValueError(f"{what} refer to image ids not in the ground truth{hint}: {unknown}; first is {name(missing[0])}")
    category = _lookup(catalog.category_ids, category_ids)
    missing = (category < 0).nonzero()[0]
    if len(missing):
        unknown = sorted(set(category_ids[missing].tolist()))[:5]
        raise ValueError(f"{what} use category ids not in the ground truth's categories: {unknown}; first is {name(missing[0])}")
    return image, category


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in sorted_ids, -1 where absent."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    position = np.minimum(sorted_ids.searchsorted(ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[position] == ids, position, -1)


def _boxes(anns, name, fallback=None) -> np.ndarray:
    """(n, 4) float64 "bbox" fields; one array conversion unless some entry needs a fallback or a message."""
    try:
        boxes = np.array(_values(anns, "bbox", None), dtype=np.float64)
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
        try:
            boxes[i] = box
        except (TypeError, ValueError):
            raise ValueError(f"{name(i)}: bbox must be four numbers, got {box!r}") from None
    return boxes


def _box_polygon(box) -> list:
    x1, y1 = box[0], box[1]
    x2, y2 = box[0] + box[2], box[1] + box[3]
    return [[x1, y1, x1, y2, x2, y2, x2, y1]]


def _values(anns, key: str, missing=KeyError):
    """``anns[i][key]`` for every entry (``missing`` for absent keys unless it is KeyError); msgspec
    records are read by attribute, which is several times faster than their dict-like methods."""
    if anns and _msgspec is not None and isinstance(anns[0], _Record):
        values = list(map(attrgetter(key), anns))
        if missing is KeyError and None in values:
            raise KeyError(key)
        return values
    if missing is KeyError:
        return [a[key] for a in anns]
    return [a.get(key, missing) for a in anns]


def _require_each(objs, keys, what: str) -> None:
    """``_require`` for every object (``what`` formatted with its index), with one cheap pass when all are fine."""
    if objs and _msgspec is not None and isinstance(objs[0], _Record) and \
            all(k in objs[0].__struct_fields__ for k in keys):
        return  # msgspec checked every record's required fields while decoding
    needed = set(keys)
    for i, obj in enumerate(objs):
        if not isinstance(obj, _RECORDS) or not needed <= obj.keys():
            _require(obj, keys, what.format(i))


def _require(obj, keys, what: str) -> None:
    if not isinstance(obj, _RECORDS):
        raise ValueError(f"{what} must be a dict, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{what} lacks required field(s) {missing}")


def _require_all(anns, key: str, name) -> None:
    values = _values(anns, key, None)
    if None in values:
        raise ValueError(f"{name(values.index(None))} lacks required field '{key}'")


def _sorted_unique(ids: np.ndarray, what: str) -> np.ndarray:
    """The order sorting ``ids`` (stable); ValueError naming the first repeated ids."""
    order = ids.argsort(kind="stable")
    ordered = ids[order]
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if len(repeated):
        raise ValueError(f"duplicate {what}: {np.unique(repeated)[:5].tolist()}")
    return order


