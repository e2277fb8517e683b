"""The Cityscapes benchmark's pixel-level scores: class IoU and iIoU, category IoU and iIoU.

These are the numbers of ``cityscapesscripts``' ``evalPixelLevelSemanticLabeling`` (the
official evaluation, version 2.3.0), computed from the same sufficient statistics: a
confusion matrix over the 34 label ids and, per ground-truth instance, how many of its
pixels were predicted as its label (and as its category). numpy only, no torch.

Per class c of the 19 evaluated labels, with the label-id confusion matrix M (rows = truth):
TP = M[c, c], FN = row sum - TP (a prediction of any other id, evaluated or not, is a
miss), FP = sum of column c over the rows of evaluated labels other than c (predictions on
ignored ground truth do not count). IoU = TP / (TP + FP + FN). iIoU replaces TP and FN by
their instance-weighted sums: each instance of a class with instances (person, rider, car,
truck, bus, train, motorcycle, bicycle) weighs ``AVERAGE_INSTANCE_SIZE[class] / its size``,
so large and small instances count alike. Categories pool their labels: TP counts a
prediction of any evaluated label of the category, FP sums the category's columns over the
evaluated rows outside it; category iIoU (human, vehicle) takes the category's labels with
instances, caravan and trailer included, as the script does.

Convention:
    Inputs are label ids (``*_gtFine_labelIds.png``: 0..33) and instance ids
    (``*_gtFine_instanceIds.png``: ``label_id * 1000 + k`` for instances, the label id
    elsewhere; ids above 1000 are instances, as in the script). Predictions are label ids
    (the official submission format); train-id predictions (0..18, 255 = no prediction) are
    converted with :data:`TRAIN_ID_TO_LABEL_ID` (``pred_ids="train"``), where 255 becomes
    label 0 ('unlabeled'), a miss. A score whose denominator is 0 is NaN and means skip NaN,
    as in the script. Ids outside 0..33 raise ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool


def _label(name, id, train_id, category, has_instances, ignore):  # noqa: A002
    return CityscapesLabel(name, id, train_id, category, bool(has_instances), bool(ignore))


# cityscapesscripts.helpers.labels (name, id, trainId, category, hasInstances, ignoreInEval)
LABELS: tuple[CityscapesLabel, ...] = (
    _label("unlabeled", 0, 255, "void", 0, 1),
    _label("ego vehicle", 1, 255, "void", 0, 1),
    _label("rectification border", 2, 255, "void", 0, 1),
    _label("out of roi", 3, 255, "void", 0, 1),
    _label("static", 4, 255, "void", 0, 1),
    _label("dynamic", 5, 255, "void", 0, 1),
    _label("ground", 6, 255, "void", 0, 1),
    _label("road", 7, 0, "flat", 0, 0),
    _label("sidewalk", 8, 1, "flat", 0, 0),
    _label("parking", 9, 255, "flat", 0, 1),
    _label("rail track", 10, 255, "flat", 0, 1),
    _label("building", 11, 2, "construction", 0, 0),
    _label("wall", 12, 3, "construction", 0, 0),
    _label("fence", 13, 4, "construction", 0, 0),
    _label("guard rail", 14, 255, "construction", 0, 1),
    _label("bridge", 15, 255, "construction", 0, 1),
    _label("tunnel", 16, 255, "construction", 0, 1),
    _label("pole", 17, 5, "object", 0, 0),
    _label("polegroup", 18, 255, "object", 0, 1),
    _label("traffic light", 19, 6, "object", 0, 0),
    _label("traffic sign", 20, 7, "object", 0, 0),
    _label("vegetation", 21, 8, "nature", 0, 0),
    _label("terrain", 22, 9, "nature", 0, 0),
    _label("sky", 23, 10, "sky", 0, 0),
    _label("person", 24, 11, "human", 1, 0),
    _label("rider", 25, 12, "human", 1, 0),
    _label("car", 26, 13, "vehicle", 1, 0),
    _label("truck", 27, 14, "vehicle", 1, 0),
    _label("bus", 28, 15, "vehicle", 1, 0),
    _label("caravan", 29, 255, "vehicle", 1, 1),
    _label("trailer", 30, 255, "vehicle", 1, 1),
    _label("train", 31, 16, "vehicle", 1, 0),
    _label("motorcycle", 32, 17, "vehicle", 1, 0),
    _label("bicycle", 33, 18, "vehicle", 1, 0),
)
NUM_LABEL_IDS = 34

# evalPixelLevelSemanticLabeling's args.avgClassSize (pixels), the iIoU weights.
AVERAGE_INSTANCE_SIZE = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

EVALUATED = tuple(label for label in LABELS if not label.ignore_in_eval)  # the 19 classes, train-id order
CLASS_NAMES = tuple(label.name for label in EVALUATED)
CATEGORIES = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
INSTANCE_CATEGORIES = ("human", "vehicle")  # every label of the category has instances

LABEL_ID_TO_TRAIN_ID = np.full(256, 255, dtype=np.uint8)
TRAIN_ID_TO_LABEL_ID = np.zeros(256, dtype=np.uint8)  # 255 and unknown train ids -> 0 'unlabeled'
for _label_entry in LABELS:
    LABEL_ID_TO_TRAIN_ID[_label_entry.id] = _label_entry.train_id
    if _label_entry.train_id != 255:
        TRAIN_ID_TO_LABEL_ID[_label_entry.train_id] = _label_entry.id

_EVALUATED_IDS = np.array([label.id for label in EVALUATED])
_CATEGORY_OF_ID = np.array([label.category for label in LABELS])
_WEIGHT_NUMERATOR = np.array([AVERAGE_INSTANCE_SIZE.get(label.name, np.nan) for label in LABELS])
_INSTANCE_CATEGORY_OF_ID = np.array(
    [INSTANCE_CATEGORIES.index(label.category) if label.category in INSTANCE_CATEGORIES else -1 for label in LABELS]
)


def _as_ids(array, name: str) -> np.ndarray:
    ids = np.asarray(array)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must hold integer ids, got dtype {ids.dtype}")
    return ids


def _check_label_ids(ids: np.ndarray, name: str) -> None:
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= NUM_LABEL_IDS):
        bad = np.unique(ids[(ids < 0) | (ids >= NUM_LABEL_IDS)])[:5].tolist()
        raise ValueError(f"{name} must hold Cityscapes label ids in [0, {NUM_LABEL_IDS}), got {bad}")


def to_label_ids(pred, pred_ids: str = "label") -> np.ndarray:
    """Predictions as label ids: unchanged for ``pred_ids="label"``, mapped from train ids for ``"train"``."""
    pred = _as_ids(pred, "pred")
    if pred_ids == "label":
        return pred
    if pred_ids != "train":
        raise ValueError(f"pred_ids must be 'label' or 'train', got {pred_ids!r}")
    if pred.size and (int(pred.min()) < 0 or int(pred.max()) > 255):
        raise ValueError(f"pred must hold train ids in [0, 19) or 255, got values in [{pred.min()}, {pred.max()}]")
    return TRAIN_ID_TO_LABEL_ID[pred]


def label_id_confusion(pred_label_ids, gt_label_ids) -> np.ndarray:
    """Confusion matrix (34, 34) int64 over label ids, rows = ground truth (the script's confMatrix)."""
    pred, gt = _as_ids(pred_label_ids, "pred"), _as_ids(gt_label_ids, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape, got {pred.shape} and {gt.shape}")
    _check_label_ids(gt, "gt")
    _check_label_ids(pred, "pred")
    code = gt.astype(np.intp).ravel() * NUM_LABEL_IDS + pred.astype(np.intp).ravel()
    return np.bincount(code, minlength=NUM_LABEL_IDS**2).reshape(NUM_LABEL_IDS, NUM_LABEL_IDS).astype(np.int64)


@dataclass(frozen=True)
class InstanceHistogram:
    """For each ground-truth instance (id > 1000), how many of its pixels hold each prediction value."""

    instance_ids: np.ndarray  # (K,)
    pred_values: np.ndarray  # (M,)
    counts: np.ndarray  # (K, M) int64


def instance_histogram(pred, gt_instance_ids) -> InstanceHistogram:
    """Instances of one image and the prediction values inside them (any integer predictions)."""
    pred, instances = _as_ids(pred, "pred"), _as_ids(gt_instance_ids, "gt_instance_ids")
    if pred.shape != instances.shape:
        raise ValueError(f"pred and gt_instance_ids must have the same shape, got {pred.shape} and {instances.shape}")
    inside = instances > 1000
    instance_pixels, pred_pixels = instances[inside].astype(np.intp), pred[inside]
    if not instance_pixels.size:
        return InstanceHistogram(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.int64))
    ids = np.flatnonzero(np.bincount(instance_pixels))  # linear-time unique of the instance ids
    which = np.zeros(int(ids[-1]) + 1, dtype=np.intp)
    which[ids] = np.arange(len(ids))
    low, high = int(pred_pixels.min()), int(pred_pixels.max())
    if len(ids) * (high - low + 1) > 1 << 24:  # wide prediction values: compact them first
        values, value_index = np.unique(pred_pixels, return_inverse=True)
        code = which[instance_pixels] * len(values) + value_index.reshape(-1)
        counts = np.bincount(code, minlength=len(ids) * len(values)).reshape(len(ids), len(values))
        return InstanceHistogram(ids.astype(np.int64), values.astype(np.int64), counts.astype(np.int64))
    code = which[instance_pixels] * (high - low + 1) + (pred_pixels.astype(np.intp) - low)
    counts = np.bincount(code, minlength=len(ids) * (high - low + 1)).reshape(len(ids), high - low + 1)
    present = np.flatnonzero(counts.any(0))
    values, counts = present + low, counts[:, present]
    return InstanceHistogram(ids.astype(np.int64), values.astype(np.int64), counts.astype(np.int64))


@dataclass
class InstanceStatistics:
    """Instance-weighted TP and FN per label id (34,) and per instance category (2,), summable over images."""

    class_tp: np.ndarray = field(default_factory=lambda: np.zeros(NUM_LABEL_IDS))
    class_fn: np.ndarray = field(default_factory=lambda: np.zeros(NUM_LABEL_IDS))
    category_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(INSTANCE_CATEGORIES)))
    category_fn: np.ndarray = field(default_factory=lambda: np.zeros(len(INSTANCE_CATEGORIES)))

    def __add__(self, other: "InstanceStatistics") -> "InstanceStatistics":
        return InstanceStatistics(*(a + b for a, b in zip(self._arrays(), other._arrays())))

    def _arrays(self):
        return self.class_tp, self.class_fn, self.category_tp, self.category_fn


def instance_statistics(histogram: InstanceHistogram, pred_label_id_of=None) -> InstanceStatistics:
    """Weighted TP / FN of one image's instances; ``pred_label_id_of`` maps prediction values to label ids."""
    stats = InstanceStatistics()
    if not len(histogram.instance_ids):
        return stats
    values = histogram.pred_values if pred_label_id_of is None else np.asarray(pred_label_id_of)[histogram.pred_values]
    _check_label_ids(np.asarray(values), "pred")
    label_ids = histogram.instance_ids // 1000
    if int(label_ids.max()) >= NUM_LABEL_IDS:
        raise ValueError(f"gt_instance_ids holds instance ids of unknown labels: {histogram.instance_ids[label_ids >= NUM_LABEL_IDS][:5].tolist()}")
    keep = np.array([not LABELS[i].ignore_in_eval for i in label_ids], dtype=bool)
    missing = [LABELS[i].name for i in label_ids[keep] if not LABELS[i].has_instances]
    if missing:
        raise ValueError(f"gt_instance_ids holds instances of {sorted(set(missing))}, which have no instances in Cityscapes")
    counts, label_ids = histogram.counts[keep], label_ids[keep]
    sizes = counts.sum(1)
    weights = _WEIGHT_NUMERATOR[label_ids] / sizes
    tp = (counts * (values[None, :] == label_ids[:, None])).sum(1)
    categories = _INSTANCE_CATEGORY_OF_ID[label_ids]
    in_category = _INSTANCE_CATEGORY_OF_ID[values][None, :] == categories[:, None]
    category_tp = (counts * in_category).sum(1)
    np.add.at(stats.class_tp, label_ids, tp * weights)
    np.add.at(stats.class_fn, label_ids, (sizes - tp) * weights)
    rows = categories >= 0
    np.add.at(stats.category_tp, categories[rows], (category_tp * weights)[rows])
    np.add.at(stats.category_fn, categories[rows], ((sizes - category_tp) * weights)[rows])
    return stats


@dataclass(frozen=True)
class CityscapesScores:
    """The benchmark's four tables: per class (19) and per category (7) IoU and iIoU, with their means.

    NaN marks an undefined score (iIoU of a class without instances, a class absent from
    both truth and prediction); the means skip NaN.
    """

    class_iou: dict[str, float]
    class_iiou: dict[str, float]
    category_iou: dict[str, float]
    category_iiou: dict[str, float]

    @property
    def miou(self) -> float:
        return _nanmean(self.class_iou)

    @property
    def miiou(self) -> float:
        return _nanmean(self.class_iiou)

    @property
    def category_miou(self) -> float:
        return _nanmean(self.category_iou)

    @property
    def category_miiou(self) -> float:
        return _nanmean(self.category_iiou)

    def to_dict(self) -> dict:
        """Plain numbers (NaN stays float('nan')): the four tables and their four means."""
        return {
            "class_iou": dict(self.class_iou), "class_iiou": dict(self.class_iiou),
            "category_iou": dict(self.category_iou), "category_iiou": dict(self.category_iiou),
            "miou": self.miou, "miiou": self.miiou, "category_miou": self.category_miou,
            "category_miiou": self.category_miiou,
        }


def _nanmean(scores: dict[str, float]) -> float:
    values = [value for value in scores.values() if value == value]
    return sum(values) / len(values) if values else float("nan")


def _ratio(tp: float, fp: float, fn: float) -> float:
    denominator = float(tp) + float(fp) + float(fn)
    return float(tp) / denominator if denominator > 0 else float("nan")


def _evaluated_rows_outside(ids) -> np.ndarray:
    return np.array([i for i in _EVALUATED_IDS if i not in set(ids)], dtype=np.intp)


def cityscapes_scores(confusion, instances: InstanceStatistics | None = None) -> CityscapesScores:
    """The four tables from a label-id confusion matrix (34, 34) and the instance statistics.

    Without ``instances`` the iIoU tables are NaN.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    if confusion.shape != (NUM_LABEL_IDS, NUM_LABEL_IDS):
        raise ValueError(f"confusion must be the ({NUM_LABEL_IDS}, {NUM_LABEL_IDS}) label-id matrix, got {confusion.shape}")
    class_iou, class_iiou = {}, {}
    for label in EVALUATED:
        tp = int(confusion[label.id, label.id])
        fn = int(confusion[label.id].sum()) - tp
        fp = int(confusion[_evaluated_rows_outside([label.id]), label.id].sum())
        class_iou[label.name] = _ratio(tp, fp, fn)
        has_weights = instances is not None and label.has_instances
        class_iiou[label.name] = _ratio(instances.class_tp[label.id], fp, instances.class_fn[label.id]) if has_weights else float("nan")
    category_iou, category_iiou = {}, {}
    for category in CATEGORIES:
        ids = [label.id for label in EVALUATED if label.category == category]
        outside = _evaluated_rows_outside([label.id for label in EVALUATED if label.category == category])
        tp = int(confusion[np.ix_(ids, ids)].sum())
        fn = int(confusion[ids].sum()) - tp
        category_iou[category] = _ratio(tp, int(confusion[np.ix_(outside, ids)].sum()), fn)
        if instances is None or category not in INSTANCE_CATEGORIES:
            category_iiou[category] = float("nan")
            continue
        instance_ids = [label.id for label in LABELS if label.category == category]
        index = INSTANCE_CATEGORIES.index(category)
        fp = int(confusion[np.ix_(outside, instance_ids)].sum())
        category_iiou[category] = _ratio(instances.category_tp[index], fp, instances.category_fn[index])
    return CityscapesScores(class_iou, class_iiou, category_iou, category_iiou)


class CityscapesMetrics:
    """Streaming Cityscapes scores: ``update(pred, gt_label_ids, gt_instance_ids)`` per image, ``compute()``.

    Args:
        pred_ids: ``"label"`` (predictions hold label ids, the submission format) or
            ``"train"`` (train ids 0..18, 255 = no prediction).

    Example::

        metric = CityscapesMetrics(pred_ids="train")
        for pred, label_ids, instance_ids in images:  # (H, W) integer arrays
            metric.update(pred, label_ids, instance_ids)
        print(metric.compute().miiou)
    """

    def __init__(self, pred_ids: str = "label") -> None:
        to_label_ids(np.zeros(1, np.uint8), pred_ids)
        self.pred_ids = pred_ids
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((NUM_LABEL_IDS, NUM_LABEL_IDS), dtype=np.int64)
        self.instances: InstanceStatistics | None = None

    def update(self, pred, gt_label_ids, gt_instance_ids=None) -> None:
        pred = to_label_ids(pred, self.pred_ids)
        self.confusion += label_id_confusion(pred, gt_label_ids)
        if gt_instance_ids is not None:
            stats = instance_statistics(instance_histogram(pred, gt_instance_ids))
            self.instances = stats if self.instances is None else self.instances + stats

    def compute(self) -> CityscapesScores:
        return cityscapes_scores(self.confusion, self.instances)
