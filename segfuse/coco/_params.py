"""Parameters of a COCO / LVIS evaluation: IoU and recall thresholds, detection caps, area ranges, subsets.

Convention: the defaults are pycocotools' ``Params`` for "segm" / "bbox" (and "boundary"):
IoU thresholds ``linspace(0.5, 0.95, 10)``, recall thresholds ``linspace(0, 1, 101)``,
``max_dets`` (1, 10, 100) sorted ascending (pycocotools sorts them too), area ranges all
[0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10] (both ends inclusive).
In ``mode="lvis"`` ``max_dets`` is one number, the cap of detections per image over all
categories (the ``lvis`` package's 300), and there is no cap per (image, category).
Thresholds keep the order given; each one is reported as "AP{round(100 * t)}".
Only numpy is imported here (``segfuse.coco`` never imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np

IOU_TYPES = ("segm", "bbox", "boundary")
MODES = ("coco", "lvis")
DEFAULT_AREA_RANGES = {"all": (0, 1e5**2), "small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}
DEFAULT_MAX_DETS = {"coco": (1, 10, 100), "lvis": (300,)}


_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
_IOU_THRESHOLDS.flags.writeable = False
_RECALL_THRESHOLDS.flags.writeable = False


def default_iou_thresholds() -> np.ndarray:
    """pycocotools' linspace(0.5, 0.95, 10) (read-only, shared)."""
    return _IOU_THRESHOLDS


def recall_thresholds() -> np.ndarray:
    """pycocotools' linspace(0, 1, 101) (read-only, shared)."""
    return _RECALL_THRESHOLDS


@dataclass(frozen=True)
class EvalParams:
    """Validated parameters.

    iou_thresholds (T,); max_dets (M,) ascending; area_ranges (A, 2); image_ids /
    category_ids: sorted subsets (None: all); min_score: detections below it are dropped
    (None: keep all); dilation_ratio: Boundary IoU band width over the image diagonal.
    """

    iou_type: str
    iou_thresholds: np.ndarray
    max_dets: tuple
    area_labels: tuple
    area_ranges: np.ndarray
    mode: str = "coco"
    use_cats: bool = True
    image_ids: np.ndarray | None = None
    category_ids: np.ndarray | None = None
    min_score: float | None = None
    dilation_ratio: float = 0.02
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # derived values, by name

    @cached_property
    def iou_range_label(self) -> str:
        """"0.50:0.95": the first and last threshold, as the summary prints them."""
        return f"{float(self.iou_thresholds[0]):0.2f}:{float(self.iou_thresholds[-1]):0.2f}"

    @cached_property
    def area_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, 1) low and high ends of the area ranges, to compare with (n,) areas."""
        return self.area_ranges[:, :1], self.area_ranges[:, 1:]

    @cached_property
    def positions(self) -> tuple[dict, dict, dict]:
        """Where each IoU threshold (float), area label and cap sits: value -> list of indices."""
        found = ({}, {}, {})
        for index, values in zip(found, (self.iou_thresholds.tolist(), self.area_labels, self.max_dets)):
            for i, value in enumerate(values):
                index.setdefault(value, []).append(i)
        return found

    @cached_property
    def threshold_keys(self) -> list[str]:
        return [threshold_key(t) for t in self.iou_thresholds]

    @property
    def cell_cap(self) -> int:
        """Detections kept per (image, category) cell: the largest max_dets (no cap in LVIS mode)."""
        return self.max_dets[-1] if self.mode == "coco" else np.iinfo(np.int64).max

    @property
    def all_area(self) -> int:
        """Index of the area range labelled "all" (the first range if none is)."""
        return self.area_labels.index("all") if "all" in self.area_labels else 0


def threshold_key(threshold: float) -> str:
    """0.1 -> "AP10", 0.5 -> "AP50" (round(100 * t))."""
    return f"AP{int(round(100 * float(threshold)))}"


def make_params(iou_type="segm", iou_thresholds=None, max_dets=None, area_ranges=None, *, mode="coco",
                use_cats=True, image_ids=None, category_ids=None, min_score=None,
                dilation_ratio=0.02) -> EvalParams:
    """Validate the public arguments of ``evaluate``; raise ValueError / TypeError naming the bad one.

    The defaults give one shared instance per (iou_type, mode) (frozen, its arrays read-only),
    so repeated evaluations reuse its validated values and cached properties."""
    default = (iou_thresholds is None and max_dets is None and area_ranges is None and use_cats is True
               and image_ids is None and category_ids is None and min_score is None
               and type(dilation_ratio) is float and dilation_ratio == 0.02
               and type(iou_type) is str and type(mode) is str)
    if default and (iou_type, mode) in _DEFAULT_PARAMS:
        return _DEFAULT_PARAMS[iou_type, mode]
    _check_choice("iou_type", iou_type, IOU_TYPES)
    _check_choice("mode", mode, MODES)
    if not isinstance(use_cats, (bool, np.bool_)):
        raise TypeError(f"use_cats must be a bool, got {type(use_cats).__name__}")
    thresholds = default_iou_thresholds() if iou_thresholds is None else _thresholds(iou_thresholds)
    caps = DEFAULT_MAX_DETS[mode] if max_dets is None else _max_dets(max_dets)
    if mode == "lvis" and len(caps) != 1:
        raise ValueError(f"max_dets in mode='lvis' is one cap of detections per image, got {list(caps)}")
    if mode == "lvis" and not use_cats:
        raise ValueError("mode='lvis' evaluates per category; use_cats=False is not defined for it")
    params = EvalParams(iou_type, thresholds, caps, *_area_ranges(area_ranges), mode=mode, use_cats=bool(use_cats),
                        image_ids=_id_subset("image_ids", image_ids),
                        category_ids=_id_subset("category_ids", category_ids), min_score=_min_score(min_score),
                        dilation_ratio=_dilation_ratio(dilation_ratio))
    if default:
        _DEFAULT_PARAMS[iou_type, mode] = params
    return params


def _check_choice(name: str, value, choices) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _thresholds(values) -> np.ndarray:
    if isinstance(values, (int, float)):
        values = [values]
    try:
        thresholds = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"iou_thresholds must be numbers in [0, 1], got {values!r}") from None
    if thresholds.size == 0:
        raise ValueError("iou_thresholds must hold at least one value, got none")
    bad = thresholds[~((thresholds >= 0) & (thresholds <= 1))]
    if bad.size:
        raise ValueError(f"iou_thresholds must be in [0, 1], got {bad.tolist()}")
    keys = [threshold_key(t) for t in thresholds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"iou_thresholds must map to distinct keys AP{{round(100*t)}}, got {keys}")
    return thresholds


def _max_dets(values) -> tuple:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"max_dets must be a non-empty sequence of ints >= 1, got {values}")
    return tuple(sorted(int(v) for v in values))


def _area_ranges(ranges) -> tuple[tuple, np.ndarray]:
    if ranges is None:
        return _DEFAULT_AREAS
    if not isinstance(ranges, Mapping) or not ranges:
        raise TypeError(f"area_ranges must be a non-empty mapping label -> (low, high), got {type(ranges).__name__}")
    try:
        array = np.asarray([tuple(v) for v in ranges.values()], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"area_ranges values must be (low, high) pairs of numbers, got {dict(ranges)}") from None
    if array.ndim != 2 or array.shape[1] != 2 or (array[:, 0] > array[:, 1]).any():
        raise ValueError(f"area_ranges values must be (low, high) with low <= high, got {dict(ranges)}")
    return tuple(str(k) for k in ranges), array


def _id_subset(name: str, ids) -> np.ndarray | None:
    """None, or the sorted unique int64 ids (integers only: "2299" is not the id 2299)."""
    if ids is None:
        return None
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
        ids = [ids]
    ids = list(ids)
    if not ids:
        raise ValueError(f"{name} must hold at least one id (None evaluates all), got an empty list")
    bad = [v for v in ids if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer))]
    if bad:
        raise TypeError(f"{name} must be integer ids, got {bad[0]!r} ({type(bad[0]).__name__})")
    return np.unique(np.asarray(ids, dtype=np.int64))


def _min_score(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or value != value:
        raise TypeError(f"min_score must be a number or None, got {value!r}")
    return float(value)


def _dilation_ratio(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (0 <= value <= 1):
        raise ValueError(f"dilation_ratio must be a number in [0, 1], got {value!r}")
    return float(value)


_DEFAULT_AREAS = _area_ranges(DEFAULT_AREA_RANGES)
_DEFAULT_AREAS[1].flags.writeable = False
_DEFAULT_PARAMS: dict = {}
