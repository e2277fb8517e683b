"""Pair overlaps: the mask-IoU bound used to skip pairs never falls below the exact IoU."""

from __future__ import annotations

import numpy as np
import pytest

from segfuse.coco import _boxes, _runs
from segfuse.coco._counts import encode_dense
from tests.coco.helpers import coco_mask


def _masks(rng, n, h, w):
    masks = np.zeros((n, h, w), dtype=np.uint8)
    for i in range(n):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1, x1 = y0 + rng.integers(0, h // 2 + 1), x0 + rng.integers(0, w // 2 + 1)
        masks[i, y0:y1, x0:x1] = rng.random((min(y1, h) - y0, min(x1, w) - x0)) < rng.choice([0.3, 0.9, 1.0])
    return masks


@pytest.mark.parametrize("seed", range(4))
def test_mask_iou_bound_is_never_below_the_exact_iou(seed):
    rng = np.random.default_rng(seed)
    h, w, n = 13, 9, 40
    masks = _masks(rng, n, h, w)
    runs = _runs.from_counts(encode_dense(masks))
    boxes, areas = _runs.boxes(runs), _runs.areas(runs)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    crowd = rng.random(len(a)) < 0.3
    inter = _runs.pair_intersections(runs, a, runs, b)
    exact = _boxes.iou_from_areas(inter, areas[a], areas[b], crowd)
    bound = _boxes.mask_iou_bound(boxes[a], boxes[b], areas[a], areas[b], crowd)
    assert (bound >= exact).all()
    assert (bound[exact > 0] > 0).all()
    fortran = np.asfortranarray(masks.transpose(1, 2, 0))
    rles = coco_mask.encode(fortran)
    reference = coco_mask.iou(rles, rles, [0] * n)  # non-crowd pairs against pycocotools
    plain = ~crowd
    np.testing.assert_array_equal(exact[plain], reference.reshape(-1)[plain])
