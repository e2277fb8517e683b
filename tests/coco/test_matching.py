"""Greedy matching edge cases against pycocotools: threshold order, contested ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import _pipeline, evaluate
from segfuse.coco._matching import greedy_match
from segfuse.coco._overlap import Pairs
from tests.coco.helpers import make_dataset, reference_eval
from tests.coco.test_evaluate import assert_same

pytestmark = pytest.mark.usefixtures("coco_path")  # every case on the compiled and the numpy path


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_unsorted_thresholds_match_pycocotools(iou_type):
    gt, dt = make_dataset(21, n_images=10, max_dt=20)
    thresholds = [0.75, 0.5, 0.95, 0.3, 1.0]
    assert_same(evaluate(gt, dt, iou_type, iou_thresholds=thresholds),
                reference_eval(gt, dt, iou_type, iou_thresholds=thresholds))


def _greedy_match(pairs, rank, ignore, crowd, thresholds, coco_path):
    """``greedy_match`` of the path under test (the compiled one takes the pairs' arrays)."""
    if coco_path == "numpy":
        return greedy_match(pairs, rank, ignore, crowd, thresholds, lambda n: None)
    return _pipeline.kernels().greedy_match(pairs.dt, pairs.gt, pairs.iou, len(rank), ignore, crowd, thresholds)


def test_contested_ground_truth_prefers_non_ignored_then_iou_then_later_gt(coco_path):
    # one cell: detections 0 (rank 0) and 1 (rank 1); gts 0..2, gt 2 ignored in area 1
    pairs = Pairs(np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 1, 2]), np.array([0.6, 0.6, 0.9, 0.7, 0.55]))
    ignore = np.array([[False, False, False], [False, False, True]])
    matched = _greedy_match(pairs, np.array([0, 1]), ignore, np.zeros(3, bool), np.array([0.5, 0.65]), coco_path)
    np.testing.assert_array_equal(matched[0], [[2, 1], [2, 1]])  # best IoU; dt 1 then takes gt 1
    np.testing.assert_array_equal(matched[1], [[1, 2], [2, 1]])  # non-ignored first: the later of the tied gts


def test_crowd_ground_truths_stay_free_and_ignored_ones_are_a_fallback(coco_path):
    # gt 0 crowd (ignored), gt 1 ordinary. At 0.5 dt 0 takes gt 1 over the crowd region's higher IoU, dt 1 the
    # crowd region, dt 2 nothing (gt 1 is taken); at 0.7 gt 1 is out of reach for dts 0 and 1, which both take
    # the crowd region (it stays free), and dt 2 takes gt 1 at exactly 0.7
    pairs = Pairs(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 1]), np.array([0.9, 0.5, 0.8, 0.6, 0.7]))
    ignore = np.array([[True, False]])
    matched = _greedy_match(pairs, np.array([0, 1, 2]), ignore, np.array([True, False]), np.array([0.5, 0.7]),
                            coco_path)
    np.testing.assert_array_equal(matched[0], [[1, 0, -1], [0, 0, 1]])


def test_no_pairs_and_no_thresholds_give_no_matches(coco_path):
    empty = Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    ignore = np.zeros((2, 3), bool)
    crowd = np.zeros(3, bool)
    assert (_greedy_match(empty, np.array([0, 1]), ignore, crowd, np.array([0.5]), coco_path) == -1).all()
    assert _greedy_match(empty, np.array([0]), ignore, crowd, np.zeros(0), coco_path).shape == (2, 0, 1)
