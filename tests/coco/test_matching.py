"""Greedy matching edge cases against pycocotools: threshold order, contested ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import evaluate
from segfuse.coco._matching import greedy_match
from segfuse.coco._overlap import Pairs
from tests.coco.helpers import make_dataset, reference_eval
from tests.coco.test_evaluate import assert_same


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_unsorted_thresholds_match_pycocotools(iou_type):
    gt, dt = make_dataset(21, n_images=10, max_dt=20)
    thresholds = [0.75, 0.5, 0.95, 0.3, 1.0]
    assert_same(evaluate(gt, dt, iou_type, iou_thresholds=thresholds),
                reference_eval(gt, dt, iou_type, iou_thresholds=thresholds))


def test_contested_ground_truth_prefers_non_ignored_then_iou_then_later_gt():
    # one cell: detections 0 (rank 0) and 1 (rank 1); gts 0..2, gt 2 ignored in area 1
    pairs = Pairs(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 1, 2]), np.array([0.6, 0.6, 0.9, 0.7, 0.55]))
    ignore = np.array([[False, False, False], [False, False, True]])
    matched = greedy_match(pairs, np.array([0, 1]), ignore, np.zeros(3, bool), np.array([0.5, 0.65]), lambda n: None)
    np.testing.assert_array_equal(matched[0], [[2, 1], [2, 1]])  # best IoU; dt 1 then takes gt 1
    np.testing.assert_array_equal(matched[1], [[1, 2], [2, 1]])  # non-ignored first: the later of the tied gts


def test_no_pairs_and_no_thresholds_give_no_matches():
    empty = Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    ignore = np.zeros((2, 3), bool)
    assert (greedy_match(empty, np.array([0, 1]), ignore, np.zeros(3, bool), np.array([0.5]), lambda n: None) == -1).all()
    assert greedy_match(empty, np.array([0]), ignore, np.zeros(3, bool), np.zeros(0), lambda n: None).shape == (2, 0, 1)
