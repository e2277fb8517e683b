"""Counting image pairs: one joint histogram per pair, read in worker processes with a progress bar.

Convention:
    A worker decodes a pair and returns its joint histogram: how many pixels hold each
    (stored ground-truth value, stored prediction value) pair, in sparse form (a few
    hundred numbers per image). For 8-bit masks that is one ``np.bincount`` of
    ``gt << 8 | pred`` over 65536 bins; wider labels take a bincount over their range.
    Label mapping (ignore index, reduce_zero_label, Cityscapes label ids -> train ids) is
    then applied to the histogram's values, never to the pixels (:class:`LabelMapping`).

    The mapped counts of a pair form a (C, C + 1) confusion matrix, rows = truth: column C
    counts pixels whose prediction holds the ignore value ("no prediction"), a miss of the
    true class as in mmseg, Hugging Face evaluate and the Cityscapes script. Pixels whose
    truth is ignored count nowhere. When C is not given it is the largest class in the
    truth or in the predictions at non-ignored pixels, + 1; the ignore value never counts.
    Workers ignore Ctrl-C; the main process stops them (see ``segfuse.cli.errors``).

    With boundary / surface metrics asked for (``CountOptions.distances``), the worker also
    maps both decoded maps pixel by pixel (the same lookup tables) and returns the pair's
    distance statistics (:mod:`segfuse.cli.eval_distances`); C must be known then.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from segfuse.cli.errors import InputError, ignore_interrupts
from segfuse.cli.io_masks import MaskPair, Palette, read_labels, read_labels_and_spacing, read_mask
from segfuse.datasets.labels import IGNORED, INVALID, LabelMapping

BYTES_PER_WORKER = 4 << 20  # PNG bytes a worker must have to read before starting one pays off


@dataclass(frozen=True)
class CountOptions:
    """How to turn a pair of files into counts.

    ``classes_from`` says where C came from, for error messages ("--num-classes 5", ...).
    """

    num_classes: int | None
    ignore_index: int | None
    reduce_zero_label: bool = False
    label_map: Mapping[int, int] | None = None
    map_pred: bool = False
    palette: Palette | None = None
    classes_from: str = "the data"
    distances: object = None  # segfuse.cli.eval_distances.DistanceOptions: boundary / surface statistics per pair

    def gt_mapping(self, num_classes: int | None = None) -> LabelMapping:
        classes = self.num_classes if num_classes is None else num_classes
        return LabelMapping(classes, self.ignore_index, self.reduce_zero_label, self.label_map)

    def pred_mapping(self, num_classes: int | None = None) -> LabelMapping:
        if self.map_pred:
            return self.gt_mapping(num_classes)
        return LabelMapping(self.num_classes if num_classes is None else num_classes, self.ignore_index)

    def decoded_mapping(self, num_classes: int | None = None) -> LabelMapping:
        """Colour masks decoded through the palette already hold class indices."""
        return LabelMapping(self.num_classes if num_classes is None else num_classes, self.ignore_index)


@dataclass(frozen=True)
class JointCounts:
    """Sparse joint histogram of one pair's stored values: ``counts[k]`` pixels hold (gt_values[k], pred_values[k])."""

    stem: str
    shape: tuple[int, ...]
    gt_values: np.ndarray
    pred_values: np.ndarray
    counts: np.ndarray
    gt_decoded: bool = False
    pred_decoded: bool = False
    instances: object = None  # segfuse.metrics.cityscapes.InstanceHistogram of the pair, when read
    distances: dict | None = None  # numpy boundary / surface statistics of the pair (eval_distances), when asked


@dataclass(frozen=True)
class PairCounts:
    """Mapped counts of one pair: ``counts[k]`` pixels of class ``rows[k]`` predicted ``cols[k]``.

    ``cols[k] == size`` means the prediction held the ignore value (a miss). ``size`` is the
    class count C used; ``joint`` keeps the stored-value histogram (Cityscapes label ids).
    """

    stem: str
    shape: tuple[int, ...]
    size: int
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray
    joint: JointCounts | None = None

    def with_misses(self, num_classes: int | None = None) -> np.ndarray:
        """Dense (C, C + 1) int64 matrix, the last column the misses."""
        size = self.size if num_classes is None else num_classes
        cols = np.where(self.cols == self.size, size, self.cols)
        flat = np.bincount(self.rows.astype(np.intp) * (size + 1) + cols, weights=self.counts,
                           minlength=size * (size + 1))  # float64 counts are exact below 2**53
        return flat.astype(np.int64).reshape(size, size + 1)

    def dense(self, num_classes: int | None = None) -> np.ndarray:
        """Dense (C, C) int64 confusion matrix without the misses (see :meth:`with_misses`)."""
        return self.with_misses(num_classes)[:, :-1]

    @property
    def unpredicted(self) -> int:
        """Pixels with a valid truth whose prediction held the ignore value."""
        return int(self.counts[self.cols == self.size].sum())


def stacked_counts(items: Sequence[PairCounts], num_classes: int, total: bool = False) -> np.ndarray:
    """Dense (N, C, C + 1) int64 matrices of many pairs (one bincount), the last column the misses.

    ``total=True`` sums them: the dataset's (C, C + 1) counts.
    """
    cells = num_classes * (num_classes + 1)
    codes = [(0 if total else index) * cells + item.rows.astype(np.intp) * (num_classes + 1)
             + np.where(item.cols == item.size, num_classes, item.cols) for index, item in enumerate(items)]
    weights = [item.counts for item in items]
    if not codes:
        return np.zeros((0, num_classes, num_classes + 1), dtype=np.int64)
    count = 1 if total else len(items)
    flat = np.bincount(np.concatenate(codes), weights=np.concatenate(weights), minlength=count * cells)
    stacked = flat.astype(np.int64).reshape(count, num_classes, num_classes + 1)  # float64 is exact below 2**53
    return stacked[0] if total else stacked


def per_image_overlaps(items: Sequence[PairCounts], num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN (N, C) float64 of many pairs straight from their sparse counts (misses are FN)."""
    size, images = num_classes, len(items)
    index = np.repeat(np.arange(images), [len(item.rows) for item in items])
    rows = np.concatenate([item.rows for item in items]).astype(np.intp) if items else np.zeros(0, np.intp)
    cols = np.concatenate([np.where(item.cols == item.size, size, item.cols) for item in items]) if items else rows
    counts = np.concatenate([item.counts for item in items]).astype(np.float64) if items else np.zeros(0)
    flat_rows, predicted, diagonal = index * size + rows, cols < size, rows == cols
    support = np.bincount(flat_rows, weights=counts, minlength=images * size)
    tp = np.bincount(flat_rows[diagonal], weights=counts[diagonal], minlength=images * size)
    columns = np.bincount((index * size + cols)[predicted], weights=counts[predicted], minlength=images * size)
    shape = (images, size)
    return tp.reshape(shape), (columns - tp).reshape(shape), (support - tp).reshape(shape)


# ---- one pair --------------------------------------------------------------------------


def _small(labels: np.ndarray) -> np.ndarray:
    """uint8 when every value fits (16-bit PNGs and .npy arrays of small labels), else as stored."""
    if labels.dtype == np.uint8 or labels.size == 0:
        return labels
    low, high = int(labels.min()), int(labels.max())
    return labels.astype(np.uint8) if 0 <= low and high < 256 else labels


def joint_histogram(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt values, pred values, counts) of every value pair present: one bincount for 8-bit labels."""
    gt, pred = _small(gt), _small(pred)
    if gt.dtype == np.uint8 and pred.dtype == np.uint8:
        code = gt.astype(np.uint16)
        code <<= 8
        code |= pred
        histogram = np.bincount(code.ravel(), minlength=1 << 16)
        present = np.flatnonzero(histogram)
        return present >> 8, present & 255, histogram[present]
    gt_flat, pred_flat = gt.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    gt_low, pred_low = int(gt_flat.min()), int(pred_flat.min())
    width = int(pred_flat.max()) - pred_low + 1
    code = (gt_flat - gt_low) * width + (pred_flat - pred_low)
    if int(code.max()) < 1 << 24:
        histogram = np.bincount(code)
        present = np.flatnonzero(histogram)
        counts = histogram[present]
    else:
        present, counts = np.unique(code, return_counts=True)
    return present // width + gt_low, present % width + pred_low, counts


def count_pair(pair: MaskPair, options: CountOptions) -> JointCounts:
    """Read, check and histogram one pair; problems raise InputError naming the file."""
    gt, gt_decoded, gt_spacing = read_labels_and_spacing(pair.gt, options.palette)
    pred, pred_decoded, pred_spacing = read_labels_and_spacing(pair.pred, options.palette)
    if gt.shape != pred.shape:
        raise InputError(f"{pair.pred}: size {pred.shape} does not match the ground truth {pair.gt} of size {gt.shape}")
    gt_values, pred_values, counts = joint_histogram(gt, pred)
    instances = _instances(pair, pred) if pair.instances is not None else None
    joint = JointCounts(pair.stem, gt.shape, gt_values, pred_values, counts, gt_decoded, pred_decoded, instances)
    if options.num_classes is not None:
        map_counts(joint, options, pair)  # fail early, naming the file
    if options.distances is not None:
        from dataclasses import replace

        from segfuse.cli.eval_distances import pair_statistics

        lookups = Lookups.build(options, options.num_classes)
        size = options.num_classes
        gt_classes = class_map(gt, lookups.decoded if gt_decoded else lookups.gt, size)
        pred_classes = class_map(pred, lookups.decoded if pred_decoded else lookups.pred, size)
        spacing = options.distances.pair_spacing(gt_spacing, pred_spacing, gt.ndim, pair)
        joint = replace(joint, distances=pair_statistics(gt_classes, pred_classes, size, spacing, options.distances))
    return joint


def _instances(pair: MaskPair, pred: np.ndarray):
    from segfuse.metrics.cityscapes import instance_histogram

    instance_ids = read_mask(pair.instances)
    if instance_ids.shape != pred.shape:
        raise InputError(f"{pair.instances}: size {instance_ids.shape} does not match the prediction {pair.pred} of size {pred.shape}")
    return instance_histogram(pred, instance_ids)


def _describe(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:5])
    return f"[{shown}{', ...' if len(values) > 5 else ''}]"


class Lookup:
    """A label mapping as a 256-entry lookup table for 8-bit values (the mapping itself beyond)."""

    def __init__(self, mapping: LabelMapping) -> None:
        self.mapping = mapping
        self.table = mapping.classes(np.arange(256))
        self.small_table = self.table.astype(np.int32)  # for whole maps: 4 bytes a pixel, not 8

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if values.dtype == np.uint8 or (values.size and 0 <= values.min() and values.max() < 256):
            return self.table[values]
        return self.mapping.classes(values)


def class_map(labels: np.ndarray, lookup: Lookup, no_class: int) -> np.ndarray:
    """Class indices of a decoded map, pixel by pixel; ignored (and invalid) values become ``no_class``.

    The smallest signed dtype that holds ``no_class`` (int16 below 32767).
    """
    dtype = np.int16 if no_class < np.iinfo(np.int16).max else np.int32
    classes = lookup.small_table.astype(dtype)[labels] if labels.dtype == np.uint8 else lookup(labels).astype(dtype)
    classes[classes < 0] = no_class
    return classes


@dataclass(frozen=True)
class Lookups:
    """The lookups of one class count: ground truth, predictions, colour-decoded masks."""

    gt: Lookup
    pred: Lookup
    decoded: Lookup

    @classmethod
    def build(cls, options: CountOptions, num_classes: int | None) -> "Lookups":
        return cls(Lookup(options.gt_mapping(num_classes)), Lookup(options.pred_mapping(num_classes)),
                   Lookup(options.decoded_mapping(num_classes)))


def map_counts(joint: JointCounts, options: CountOptions, pair: MaskPair | None = None,
               num_classes: int | None = None, lookups: Lookups | None = None) -> PairCounts:
    """Apply the label mappings to a pair's histogram; values the data may not hold raise InputError.

    ``lookups`` (``Lookups.build(options, num_classes)``) saves rebuilding the tables per pair.
    """
    size = num_classes if num_classes is not None else options.num_classes
    lookups = lookups or Lookups.build(options, size)
    gt_map = lookups.decoded if joint.gt_decoded else lookups.gt
    pred_map = lookups.decoded if joint.pred_decoded else lookups.pred
    rows, cols = gt_map(joint.gt_values), pred_map(joint.pred_values)
    expected = f"expected labels in [0, {size})" + (
        f" or the ignore index {options.ignore_index}" if options.ignore_index is not None else "")
    source = f"C = {size} from {options.classes_from}"
    if (rows == INVALID).any():
        path = pair.gt if pair else joint.stem
        bad = np.unique(joint.gt_values[rows == INVALID])
        raise InputError(f"{path}: holds labels {_describe(bad)}; {expected} ({source}, mapping: {gt_map.mapping.describe()})")
    valid = rows != IGNORED
    if (valid & (cols == INVALID)).any():
        path = pair.pred if pair else joint.stem
        bad = np.unique(joint.pred_values[valid & (cols == INVALID)])
        raise InputError(f"{path}: predicts labels {_describe(bad)} at non-ignored pixels; {expected} ({source})")
    keep = valid
    cols = np.where(cols[keep] == IGNORED, size, cols[keep])
    return PairCounts(joint.stem, joint.shape, size, rows[keep].astype(np.int32), cols.astype(np.int32),
                      joint.counts[keep].astype(np.int64), joint)


def infer_num_classes(joints: Sequence[JointCounts], options: CountOptions) -> int:
    """Largest class in the truth or in the predictions at non-ignored pixels, + 1 (never the ignore value)."""
    largest, lookups = 0, Lookups.build(options, None)
    for joint in joints:
        rows = (lookups.decoded if joint.gt_decoded else lookups.gt)(joint.gt_values)
        cols = (lookups.decoded if joint.pred_decoded else lookups.pred)(joint.pred_values)
        valid = rows >= 0
        largest = max(largest, int(rows[valid].max(initial=0)), int(cols[valid & (cols >= 0)].max(initial=0)))
    return largest + 1


# ---- many pairs ------------------------------------------------------------------------


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(world_size: int = 1, pairs: Sequence[MaskPair] = ()) -> int:
    """Reader processes that pay off: one per 4 MB of PNG to read, at most the usable cores.

    0 means: read in this process (small sets, where starting processes costs more than it saves).
    """
    cores = max(1, usable_cores() // world_size)
    if not pairs:
        return cores if cores > 1 else 0
    size = 0
    for pair in pairs:
        try:
            size += pair.gt.stat().st_size + pair.pred.stat().st_size
        except OSError:
            pass
    workers = min(cores, len(pairs), size // BYTES_PER_WORKER)
    return workers if workers > 1 else 0


def _count_job(job: tuple[MaskPair, CountOptions]) -> JointCounts:
    return count_pair(*job)


def _results(jobs: list, workers: int) -> Iterable[JointCounts]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_count_job, jobs)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    workers = min(workers, len(jobs))
    chunksize = max(1, min(16, len(jobs) // (workers * 8)))
    with _workers_ignoring_interrupts(multiprocessing.get_context(method), workers) as pool:
        yield from pool.imap(_count_job, jobs, chunksize=chunksize)


def _workers_ignoring_interrupts(context, workers: int):
    """A pool whose workers ignore SIGINT from birth (forked while it is ignored, and by their initializer)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        return context.Pool(workers, initializer=ignore_interrupts)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def advance(self, task) -> None:
        pass


def _progress(enabled: bool):
    if not (enabled and sys.stderr is not None and sys.stderr.isatty()):
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("reading masks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True)


def read_pairs(pairs: Sequence[MaskPair], options: CountOptions, workers: int | None = None,
               progress: bool = True) -> list[JointCounts]:
    """Joint histograms of every pair, in order, read by ``workers`` processes (0: in this process)."""
    workers = default_workers(pairs=pairs) if workers is None else workers
    jobs = [(pair, options) for pair in pairs]
    joints: list[JointCounts] = []
    with _progress(progress) as bar:
        task = bar.add_task("reading", total=len(jobs))
        for result in _results(jobs, workers):
            joints.append(result)
            bar.advance(task)
    return joints


def count_pairs(pairs: Sequence[MaskPair], options: CountOptions, workers: int | None = None,
                progress: bool = True) -> list[PairCounts]:
    """Mapped counts of every pair, in order; C is inferred from the data when the options lack it."""
    joints = read_pairs(pairs, options, workers, progress)
    size = options.num_classes or infer_num_classes(joints, options)
    lookups = Lookups.build(options, size)
    return [map_counts(joint, options, pair, size, lookups) for joint, pair in zip(joints, pairs)]


# ---- what the report shows -------------------------------------------------------------


def mapped_pair(pair: MaskPair, options: CountOptions, num_classes: int, lookups: Lookups | None = None,
                ignored: int = -1, view=None) -> tuple[np.ndarray, np.ndarray]:
    """Both maps of a pair as class indices (pixel by pixel, the counting's mapping), for drawing.

    Ground truth: ignored pixels hold ``ignored``; prediction: a miss (the ignore value)
    holds ``num_classes``. ``view`` (e.g. ``segfuse.report.html.displayed``) picks the
    pixels to map first.
    """
    lookups = lookups or Lookups.build(options, num_classes)
    view = view or (lambda labels: labels)
    gt, gt_decoded = read_labels(pair.gt, options.palette)
    pred, pred_decoded = read_labels(pair.pred, options.palette)
    if gt.shape != pred.shape:
        raise InputError(f"{pair.pred}: size {pred.shape} does not match the ground truth {pair.gt} of size {gt.shape}")
    gt, pred = view(gt), view(pred)
    gt_classes = class_map(gt, lookups.decoded if gt_decoded else lookups.gt, num_classes)
    gt_classes[gt_classes == num_classes] = ignored
    return gt_classes, class_map(pred, lookups.decoded if pred_decoded else lookups.pred, num_classes)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a bincount for small non-negative ones: faster than np.unique)."""
    if values.size and values.min() >= 0 and values.max() < 1 << 20:
        return np.flatnonzero(np.bincount(values))
    return np.unique(values)


IGNORED_TEXT, MISS_TEXT, INVALID_TEXT = "ignored", "miss (no prediction)", "invalid (only at ignored pixels)"


def label_mapping_used(joints: Sequence[JointCounts], options: CountOptions, num_classes: int,
                       max_values: int = 1024) -> dict[str, dict[int, object]]:
    """Stored value -> class index (or "ignored" / a miss) for every value the data holds, per side.

    Colour masks appear with their decoded class indices. At most ``max_values`` values per side.
    """
    lookups = Lookups.build(options, num_classes)
    used: dict[str, dict[int, object]] = {"ground_truth": {}, "prediction": {}}
    for side, values_of, decoded_of, texts in (
        ("ground_truth", lambda j: j.gt_values, lambda j: j.gt_decoded, {IGNORED: IGNORED_TEXT}),
        ("prediction", lambda j: j.pred_values, lambda j: j.pred_decoded, {IGNORED: MISS_TEXT, INVALID: INVALID_TEXT}),
    ):
        for decoded in (False, True):
            chosen = [values_of(joint) for joint in joints if decoded_of(joint) == decoded]
            if not chosen:
                continue
            values = _distinct(np.concatenate(chosen))[:max_values]
            lookup = lookups.decoded if decoded else (lookups.gt if side == "ground_truth" else lookups.pred)
            for value, mapped in zip(values.tolist(), lookup(values).tolist()):
                used[side][int(value)] = texts.get(mapped, mapped)
    return used
