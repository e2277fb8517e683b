"""Boundary IoU bands and iou_type="boundary" against boundary-iou-api's formula and faster-coco-eval 1.8.0."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segfuse.coco import _counts, _runs, evaluate, evaluate_masks, mask_to_boundary
from segfuse.coco._boundary import boundary_dilation, boundary_runs
from tests.coco.helpers import FCE_DT, FCE_GT, coco100, coco_mask, fce_eval, make_dataset

pytestmark = pytest.mark.usefixtures("coco_path")  # every case on the compiled and the numpy path

cv2 = pytest.importorskip("cv2")


def reference_boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """boundary-iou-api's mask_to_boundary (boundary_iou/utils/boundary_utils.py), re-derived with cv2."""
    mask = mask.astype(np.uint8)
    h, w = mask.shape
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)[1 : h + 1, 1 : w + 1]
    return (mask - eroded).astype(bool)


def random_mask(rng, h, w) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(0, 4))):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        mask[y : y + int(rng.integers(1, h + 1)), x : x + int(rng.integers(1, w + 1))] = True
    return mask ^ (rng.random((h, w)) < rng.choice([0.0, 0.02, 0.3]))


def to_runs(masks: np.ndarray) -> _runs.Runs:
    return _runs.from_counts(_counts.encode_dense(masks.astype(np.uint8)))


def test_dense_and_run_length_bands_equal_the_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        mask = random_mask(rng, h, w)
        ratio = float(rng.choice([0.02, 0.05, 0.12]))
        d = int(boundary_dilation(h, w, ratio))
        expected = reference_boundary(mask, d)
        np.testing.assert_array_equal(mask_to_boundary(mask, ratio), expected)
        bands = boundary_runs(to_runs(mask[None]), np.array([d]))
        np.testing.assert_array_equal(_counts.decode_dense(_runs.to_counts(bands))[:, :, 0].astype(bool), expected)


def test_batched_bands_of_many_sizes_at_once():
    rng = np.random.default_rng(1)
    masks = [random_mask(rng, int(h), int(w)) for h, w in rng.integers(5, 60, (12, 2))]
    counts = [_counts.encode_dense(m[None].astype(np.uint8)) for m in masks]
    batch = _counts.Counts(np.concatenate([c.counts for c in counts]),
                           np.cumsum([0] + [len(c.counts) for c in counts]),
                           np.array([m.shape[0] for m in masks]), np.array([m.shape[1] for m in masks]))
    runs = _runs.from_counts(batch)
    d = boundary_dilation(runs.heights, runs.widths, 0.08)
    bands = boundary_runs(runs, d)
    for i, m in enumerate(masks):
        one = _runs.take(bands, np.array([i]))
        np.testing.assert_array_equal(_counts.decode_dense(_runs.to_counts(one))[:, :, 0].astype(bool),
                                      reference_boundary(m, int(d[i])))


def test_mask_to_boundary_port_of_faster_coco_eval_mini_mask():
    """faster-coco-eval 1.8.0 tests/test_boundary.py, TestBoundary.setUp / test_rleToBoundary_mask_api."""
    mini_mask = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]])
    expected = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(mask_to_boundary(mini_mask), expected.astype(bool))


def test_bands_equal_faster_coco_eval_rle_to_boundary():
    fce_mask = pytest.importorskip("faster_coco_eval.core.mask")
    rng = np.random.default_rng(2)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(8, 120, 2))
        if h <= 2 * int(boundary_dilation(h, w)):
            continue  # see test_convention_thin_images_follow_the_reference
        mask = random_mask(rng, h, w)
        rle = fce_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        theirs = fce_mask.decode(fce_mask.rleToBoundary(rle, 0.02)).astype(bool)
        np.testing.assert_array_equal(mask_to_boundary(mask), theirs)


def test_convention_dilation_rounds_halves_down_like_faster_coco_eval():
    """d = round(0.02 * diagonal): at a diagonal of 175 px (3.5) faster-coco-eval's C++ gives 3, the
    boundary-iou-api's Python round gives 4; at 625 px (12.5) both give 12."""
    fce_mask = pytest.importorskip("faster_coco_eval.core.mask")
    assert boundary_dilation(105, 140).item() == 3 and round(0.02 * 175) == 4
    assert boundary_dilation(375, 500).item() == 12 == round(0.02 * 625)
    assert boundary_dilation(640, 480).item() == 16 and boundary_dilation(3, 3).item() == 1
    mask = np.zeros((105, 140), np.uint8)
    mask[10:90, 20:120] = 1
    theirs = fce_mask.decode(fce_mask.rleToBoundary(fce_mask.encode(np.asfortranarray(mask)), 0.02)).astype(bool)
    np.testing.assert_array_equal(mask_to_boundary(mask), theirs)
    np.testing.assert_array_equal(mask_to_boundary(mask), reference_boundary(mask, 3))


def test_convention_thin_images_follow_the_reference():
    """Images at most 2d pixels tall have no interior pixel (boundary-iou-api); faster-coco-eval's C++
    erosion wraps across columns there and keeps some."""
    mask = np.ones((2, 14), bool)
    np.testing.assert_array_equal(mask_to_boundary(mask), reference_boundary(mask, 1))
    assert mask_to_boundary(mask).all()


def test_mask_to_boundary_checks_its_input():
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(N, H, W\)"):
        mask_to_boundary(np.zeros(5))
    with pytest.raises(ValueError, match="dilation must be an int >= 1"):
        mask_to_boundary(np.zeros((4, 4)), dilation=0)
    stack = np.zeros((3, 9, 9), bool)
    stack[1, 2:7, 2:7] = True
    out = mask_to_boundary(stack, dilation=1)
    assert out.shape == (3, 9, 9) and out[1].sum() == 16 and not out[0].any()


def assert_same_as_fce(result, expected):
    names = ("AP_all", "AP_50", "AP_75", "AP_small", "AP_medium", "AP_large", "AR_all", "AR_second", "AR_third",
             "AR_small", "AR_medium", "AR_large")
    ours = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    for a, b in zip(ours, names):
        assert result.stats[a] == pytest.approx(expected.stats_as_dict[b], abs=1e-12), a
    np.testing.assert_allclose(result.precision, expected.eval["precision"], rtol=0, atol=1e-15)  # its C++ sums
    np.testing.assert_array_equal(result.recall, expected.eval["recall"])
    np.testing.assert_array_equal(result.scores, expected.eval["scores"])


def test_boundary_ap_on_real_coco100_equals_faster_coco_eval():
    gt, dt = coco100()
    assert_same_as_fce(evaluate(gt, dt, "boundary"), fce_eval(gt, dt, "boundary"))


@pytest.mark.parametrize("seed, ratio", [(0, 0.02), (1, 0.05)])
def test_boundary_ap_on_generated_sets_equals_faster_coco_eval(seed, ratio):
    gt, dt = make_dataset(seed, n_images=10, max_dt=14, min_size=60)  # every image taller than 2d
    assert all(img["height"] > 2 * boundary_dilation(img["height"], img["width"], ratio) for img in gt["images"])
    expected = fce_eval(gt, dt, "boundary", boundary_dilation_ratio=ratio)
    assert_same_as_fce(evaluate(gt, dt, "boundary", dilation_ratio=ratio), expected)


def test_port_of_faster_coco_eval_boundary_eval_pinned_values():
    """faster-coco-eval 1.8.0 tests/test_boundary.py::test_boundary_eval: its authors obtained these
    numbers with the original boundary-iou-api on gt_dataset / dt_dataset (bboxes dropped, polygons merged)."""
    expected = {"AP": 0.6947194719471946, "AP50": 0.6947194719471946, "AP75": 0.6947194719471946, "APs": -1.0,
                "APm": 0.7367986798679867, "APl": 0.0, "AR1": 0.6666666666666666, "AR10": 0.75, "AR100": 0.75,
                "ARs": -1.0, "ARm": 0.7916666666666666, "ARl": 0.0}
    gt = json.loads(FCE_GT.read_text())
    sizes = {img["id"]: (img["height"], img["width"]) for img in gt["images"]}
    dt = []
    for ann in json.loads(FCE_DT.read_text()):
        h, w = sizes[ann["image_id"]]
        rle = coco_mask.merge(coco_mask.frPyObjects(ann["segmentation"], h, w))
        dt.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": ann["score"],
                   "segmentation": rle})
    result = evaluate(gt, dt, "boundary")
    for key, value in expected.items():
        assert result.stats[key] == pytest.approx(value, abs=1e-10), key


def test_dense_masks_boundary_equals_the_json_path():
    rng = np.random.default_rng(3)
    predictions, targets, images, anns, results = [], [], [], [], []
    for i in range(5):
        h, w = 48, 64
        gt_masks = np.stack([random_mask(rng, h, w) for _ in range(3)])
        dt_masks = gt_masks ^ (rng.random(gt_masks.shape) < 0.05)
        labels, scores = np.array([1, 2, 1]), rng.random(3)
        targets.append({"masks": gt_masks, "labels": labels})
        predictions.append({"masks": dt_masks, "labels": labels, "scores": scores})
        images.append({"id": i, "height": h, "width": w})
        for m, label in zip(gt_masks, labels):
            rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label), "segmentation": rle,
                         "area": float(m.sum()), "iscrowd": 0})
        for m, label, s in zip(dt_masks, labels, scores):
            results.append({"image_id": i, "category_id": int(label), "score": float(s),
                            "segmentation": coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
    dense = evaluate_masks(predictions, targets, iou_type="boundary")
    np.testing.assert_array_equal(dense.precision, evaluate(gt, results, "boundary").precision)
