"""Counting one image pair, and many in parallel worker processes with a progress bar.

Each worker reads a pair, maps its labels and returns the pair's confusion matrix (from
``segfuse.metrics.confusion_matrix``) in sparse form, so only a few hundred bytes per image
travel back. Without a known number of classes, each matrix covers the labels the image
holds (the largest + 1); the caller pads them to the dataset's class count.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from segfuse.cli.errors import InputError
from segfuse.cli.io_masks import MaskPair, read_mask, reduce_zero_label
from segfuse.metrics import confusion_matrix


@dataclass(frozen=True)
class CountOptions:
    """How to turn a pair of files into counts."""

    num_classes: int | None
    ignore_index: int | None
    reduce_zero_label: bool = False


@dataclass(frozen=True)
class PairCounts:
    """Sparse confusion matrix of one pair: ``counts[k]`` pixels of truth ``rows[k]`` predicted ``cols[k]``."""

    stem: str
    shape: tuple[int, ...]
    size: int
    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray

    def dense(self, num_classes: int) -> np.ndarray:
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        matrix[self.rows, self.cols] = self.counts
        return matrix


def _as_torch(labels: np.ndarray) -> torch.Tensor:
    if labels.dtype in (np.uint8, np.int16, np.int32, np.int64, np.int8):
        return torch.from_numpy(np.ascontiguousarray(labels))
    return torch.from_numpy(labels.astype(np.int64))


def _label_count(gt: np.ndarray, pred: np.ndarray, ignore_index) -> int:
    """Largest valid label + 1 (predictions at ignored pixels do not count)."""
    valid = np.ones(gt.shape, dtype=bool) if ignore_index is None else gt != ignore_index
    if not valid.any():
        return 1
    return int(max(gt[valid].max(), pred[valid].max())) + 1


def count_pair(pair: MaskPair, options: CountOptions) -> PairCounts:
    """Read, check and count one pair; problems raise InputError naming the file."""
    gt, pred = read_mask(pair.gt), read_mask(pair.pred)
    if gt.shape != pred.shape:
        raise InputError(f"{pair.pred}: size {pred.shape} does not match the ground truth {pair.gt} of size {gt.shape}")
    if options.reduce_zero_label:
        gt = reduce_zero_label(gt, options.ignore_index)
    size = options.num_classes or _label_count(gt, pred, options.ignore_index)
    try:
        matrix = confusion_matrix(_as_torch(pred), _as_torch(gt), max(size, 1), options.ignore_index).numpy()
    except ValueError as error:
        path = pair.pred if str(error).startswith("pred") else pair.gt
        raise InputError(f"{path}: {error}") from error
    rows, cols = np.nonzero(matrix)
    return PairCounts(pair.stem, gt.shape, size, rows.astype(np.int32), cols.astype(np.int32), matrix[rows, cols])


def _worker_init() -> None:
    torch.set_num_threads(1)


def _count_job(job: tuple[MaskPair, CountOptions]) -> PairCounts:
    return count_pair(*job)


def default_workers(world_size: int = 1) -> int:
    """min(cpu count, 8), shared among the processes of a distributed run."""
    return max(1, min(os.cpu_count() or 1, 8) // world_size)


def _progress(total: int, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("reading masks"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=True, disable=not (enabled and console.is_terminal))


def _results(jobs: list, workers: int) -> Iterable[PairCounts]:
    if workers <= 1 or len(jobs) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # per-image work is too small for intra-op threads
        try:
            yield from map(_count_job, jobs)
        finally:
            torch.set_num_threads(threads)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunksize = max(1, min(16, len(jobs) // (workers * 8)))
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
        yield from pool.imap(_count_job, jobs, chunksize=chunksize)


def count_pairs(pairs: Sequence[MaskPair], options: CountOptions, workers: int, progress: bool = True) -> list[PairCounts]:
    """Counts of every pair, in order, read by ``workers`` processes (1: in this process)."""
    jobs = [(pair, options) for pair in pairs]
    counted: list[PairCounts] = []
    with _progress(len(jobs), progress and sys.stderr is not None) as bar:
        task = bar.add_task("reading", total=len(jobs))
        for result in _results(jobs, workers):
            counted.append(result)
            bar.advance(task)
    return counted
