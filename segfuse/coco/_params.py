"""Parameters of a COCO evaluation: IoU and recall thresholds, detection caps, area ranges.

Convention: the defaults are pycocotools' ``Params`` for "segm" / "bbox": IoU thresholds
``linspace(0.5, 0.95, 10)``, recall thresholds ``linspace(0, 1, 101)``, ``max_dets`` (1, 10,
100) sorted ascending (pycocotools sorts them too), area ranges all [0, 1e10], small
[0, 32^2], medium [32^2, 96^2], large [96^2, 1e10] (both ends inclusive). Thresholds keep
the order given; each one is reported as "AP{round(100 * t)}".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from segfuse._validate import check_choice

IOU_TYPES = ("segm", "bbox")
DEFAULT_AREA_RANGES = {"all": (0, 1e5**2), "small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, 1e5**2)}


def default_iou_thresholds() -> np.ndarray:
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def recall_thresholds() -> np.ndarray:
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass(frozen=True)
class EvalParams:
    """Validated parameters. iou_thresholds (T,), max_dets (M,) ascending, area_ranges (A, 2)."""

    iou_type: str
    iou_thresholds: np.ndarray
    max_dets: tuple
    area_labels: tuple
    area_ranges: np.ndarray

    @property
    def threshold_keys(self) -> list[str]:
        return [threshold_key(t) for t in self.iou_thresholds]


def threshold_key(threshold: float) -> str:
    """0.1 -> "AP10", 0.5 -> "AP50" (round(100 * t))."""
    return f"AP{int(round(100 * float(threshold)))}"


def make_params(iou_type="segm", iou_thresholds=None, max_dets=(1, 10, 100), area_ranges=None) -> EvalParams:
    """Validate the public arguments of ``evaluate``; raise ValueError / TypeError naming the bad one."""
    check_choice("iou_type", iou_type, IOU_TYPES)
    thresholds = default_iou_thresholds() if iou_thresholds is None else _thresholds(iou_thresholds)
    return EvalParams(iou_type, thresholds, _max_dets(max_dets), *_area_ranges(area_ranges))


def _thresholds(values) -> np.ndarray:
    if isinstance(values, (int, float)):
        values = [values]
    thresholds = np.asarray(values, dtype=np.float64).reshape(-1)
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
    if isinstance(values, int):
        values = [values]
    values = list(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in values):
        raise ValueError(f"max_dets must be a non-empty sequence of ints >= 1, got {values}")
    return tuple(sorted(int(v) for v in values))


def _area_ranges(ranges) -> tuple[tuple, np.ndarray]:
    ranges = DEFAULT_AREA_RANGES if ranges is None else ranges
    if not isinstance(ranges, Mapping) or not ranges:
        raise TypeError(f"area_ranges must be a non-empty mapping label -> (low, high), got {type(ranges).__name__}")
    array = np.asarray([tuple(v) for v in ranges.values()], dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or (array[:, 0] > array[:, 1]).any():
        raise ValueError(f"area_ranges values must be (low, high) with low <= high, got {dict(ranges)}")
    return tuple(str(k) for k in ranges), array
