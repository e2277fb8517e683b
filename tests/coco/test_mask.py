"""segfuse.coco.mask against pycocotools.mask: bit-identical RLEs, decodes, areas, boxes, IoU."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segfuse.coco import mask as ours
from tests.coco.helpers import coco_mask


def random_masks(rng, h, w, n, density=None):
    p = rng.random() if density is None else density
    return np.asfortranarray((rng.random((h, w, n)) < p).astype(np.uint8))


def test_convention_column_major_counts_start_with_zeros():
    m = np.zeros((3, 2), dtype=np.uint8)
    m[0, 0] = 1  # first pixel set -> leading 0-run of length 0
    m[2, 1] = 1  # last pixel in column-major order
    rle = ours.encode(np.asfortranarray(m))
    decoded = ours._counts.decode_strings([rle["counts"]], [3], [2])
    assert decoded.counts.tolist() == [0, 1, 4, 1]
    assert rle == coco_mask.encode(np.asfortranarray(m))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (13, 17), (64, 3), (5, 5)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_encode_decode_area_bbox_match(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    masks = random_masks(rng, *shape, 3, density)
    expected = coco_mask.encode(masks)
    rles = ours.encode(masks)
    assert rles == expected
    assert rles[0] == ours.encode(masks[:, :, 0]) == coco_mask.encode(np.asfortranarray(masks[:, :, 0]))
    np.testing.assert_array_equal(ours.decode(rles), coco_mask.decode(expected))
    np.testing.assert_array_equal(ours.decode(rles[0]), coco_mask.decode(expected[0]))
    np.testing.assert_array_equal(ours.area(rles), coco_mask.area(expected))
    assert ours.area(rles[1]) == coco_mask.area(expected[1])
    np.testing.assert_array_equal(ours.toBbox(rles), coco_mask.toBbox(expected))
    np.testing.assert_array_equal(ours.toBbox(rles[2]), coco_mask.toBbox(expected[2]))


def test_str_counts_and_bool_input_accepted():
    rng = np.random.default_rng(3)
    masks = random_masks(rng, 9, 11, 2)
    expected = coco_mask.encode(masks)
    assert ours.encode(masks.astype(bool)) == expected
    as_str = [{"size": r["size"], "counts": r["counts"].decode()} for r in expected]
    np.testing.assert_array_equal(ours.decode(as_str), coco_mask.decode(expected))


@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_iou_merge_match_random_masks(h, w, seed):
    rng = np.random.default_rng(seed)
    dt = coco_mask.encode(random_masks(rng, h, w, int(rng.integers(1, 5))))
    gt = coco_mask.encode(random_masks(rng, h, w, int(rng.integers(1, 5))))
    crowd = rng.integers(0, 2, len(gt)).tolist()
    np.testing.assert_array_equal(ours.iou(dt, gt, crowd), coco_mask.iou(dt, gt, crowd))
    assert ours.merge(dt) == coco_mask.merge(dt)
    assert ours.merge(dt, intersect=True) == coco_mask.merge(dt, intersect=True)
    assert ours.merge(dt[:1]) == coco_mask.merge(dt[:1])


def test_iou_empty_masks_boxes_and_size_mismatch():
    empty = coco_mask.encode(np.zeros((6, 5, 2), dtype=np.uint8, order="F"))
    full = coco_mask.encode(np.ones((6, 5, 1), dtype=np.uint8, order="F"))
    np.testing.assert_array_equal(ours.iou(empty, full, [0]), coco_mask.iou(empty, full, [0]))
    np.testing.assert_array_equal(ours.iou(full, full, [1]), coco_mask.iou(full, full, [1]))
    other = coco_mask.encode(np.ones((5, 6, 1), dtype=np.uint8, order="F"))
    np.testing.assert_array_equal(ours.iou(full, other, [0]), coco_mask.iou(full, other, [0]))
    assert ours.iou([], full, [0]) == coco_mask.iou([], full, [0]) == []


@given(st.integers(0, 2**32 - 1))
def test_box_iou_matches(seed):
    rng = np.random.default_rng(seed)
    dt = rng.uniform(-5, 50, (int(rng.integers(1, 6)), 4))
    gt = rng.uniform(-5, 50, (int(rng.integers(1, 6)), 4))
    dt[:, 2:] = np.abs(dt[:, 2:])
    gt[:, 2:] = np.abs(gt[:, 2:])
    crowd = rng.integers(0, 2, len(gt))
    np.testing.assert_array_equal(ours.iou(dt, gt, crowd), coco_mask.iou(dt, gt, crowd))
    np.testing.assert_array_equal(ours.iou(dt.tolist(), gt.tolist(), crowd), coco_mask.iou(dt.tolist(), gt.tolist(), crowd))


polygon = st.lists(st.floats(-20, 120, allow_nan=False, width=32), min_size=6, max_size=30).filter(
    lambda p: len(p) % 2 == 0
)


@given(st.lists(polygon, min_size=1, max_size=3), st.integers(1, 100), st.integers(1, 100))
def test_polygons_bit_identical(polygons, h, w):
    expected = coco_mask.frPyObjects(polygons, h, w)
    assert ours.frPyObjects(polygons, h, w) == expected


def test_polygons_seeded_many_shapes():
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        k = int(rng.integers(3, 12))
        poly = rng.uniform(-10, max(h, w) + 10, 2 * k).round(int(rng.integers(0, 3)))
        if rng.random() < 0.3:
            poly[2:4] = poly[0:2]  # a repeated vertex (degenerate edge)
        poly = poly.tolist()
        assert ours.frPyObjects([poly], h, w) == coco_mask.frPyObjects([poly], h, w)


def test_boxes_and_uncompressed_rle():
    boxes = np.array([[1.2, 3.4, 10.5, 7.7], [0, 0, 30, 20], [25.5, -3, 9, 40]])
    assert ours.frPyObjects(boxes, 20, 30) == coco_mask.frPyObjects(boxes, 20, 30)
    uncompressed = {"size": [4, 5], "counts": [3, 2, 0, 4, 11]}
    assert ours.frPyObjects(uncompressed, 4, 5) == coco_mask.frPyObjects(uncompressed, 4, 5)
    assert ours.frPyObjects([uncompressed], 4, 5) == coco_mask.frPyObjects([uncompressed], 4, 5)


def test_compressed_rle_passes_through_frpyobjects():
    rle = coco_mask.encode(np.asfortranarray(np.eye(4, dtype=np.uint8)))
    assert ours.frPyObjects({"size": rle["size"], "counts": rle["counts"].decode()}, 4, 4) == rle


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"size": [2, 2], "counts": b"\x01"}, "characters"),
        ({"size": [2, 2], "counts": b"1"}, "sum to h\\*w"),
        ({"size": [2, 2]}, "'size' and 'counts'"),
    ],
)
def test_malformed_rle_raises(bad, message):
    with pytest.raises(ValueError, match=message):
        ours.decode([bad])


def test_encode_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8 or bool"):
        ours.encode(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        ours.encode(np.zeros(4, dtype=np.uint8))
