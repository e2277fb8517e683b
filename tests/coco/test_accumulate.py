"""Accumulation internals that must equal pycocotools' float searches exactly."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import _accumulate, evaluate
from segfuse.coco._params import recall_thresholds
from tests.coco.helpers import make_dataset, reference_eval
from tests.coco.test_evaluate import assert_same


def test_counts_needed_equal_searchsorted_on_float_recall():
    """c = first TP count whose float recall c / P reaches each threshold (pycocotools' side="left")."""
    positives = np.arange(1, 1201).reshape(-1, 1)
    thresholds = np.r_[recall_thresholds(), 0.1 + 0.2, 1 / 3, 2 / 3]
    need = _accumulate.counts_needed(positives[:, 0], thresholds)
    for p in range(1, 1201):
        recall = np.arange(p + 1) / p
        np.testing.assert_array_equal(need[p - 1], np.searchsorted(recall, thresholds, side="left"))


@pytest.mark.parametrize("chunk", [1, 37, 1 << 19])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_row_blocks_of_any_size_match_pycocotools(monkeypatch, chunk, iou_type):
    monkeypatch.setattr(_accumulate, "CHUNK_ELEMENTS", chunk)
    gt, dt = make_dataset(7, n_images=10)
    assert_same(evaluate(gt, dt, iou_type, max_dets=(1, 4, 100)),
                reference_eval(gt, dt, iou_type, max_dets=[1, 4, 100]))


def test_needs_table_equals_counts_needed_and_large_counts_bypass_it():
    """The tabled needs at the default recall thresholds are counts_needed's, below and above the table."""
    positives = np.array([[1, 2, 3], [97, _accumulate.NEEDS_TABLE_SIZE - 1, 1000]])
    np.testing.assert_array_equal(_accumulate._needs(positives, recall_thresholds()),
                                  _accumulate.counts_needed(positives, recall_thresholds()))
    big = np.array([[5, _accumulate.NEEDS_TABLE_SIZE + 3]])
    np.testing.assert_array_equal(_accumulate._needs(big, recall_thresholds()),
                                  _accumulate.counts_needed(big, recall_thresholds()))


@pytest.mark.parametrize("dense", [0, 10**9])
def test_precision_sums_by_dense_counts_and_by_binary_search_agree(monkeypatch, dense):
    """Both ways of counting the recall thresholds that read each table slot give pycocotools' numbers."""
    monkeypatch.setattr(_accumulate, "DENSE_READS", dense)
    gt, dt = make_dataset(11, n_images=12)
    for iou_type in ("bbox", "segm"):
        assert_same(evaluate(gt, dt, iou_type, max_dets=(1, 3, 100)),
                    reference_eval(gt, dt, iou_type, max_dets=[1, 3, 100]))
