"""segfuse.metrics.boundary: Boundary IoU equal to the boundary-iou-api formula, re-derived here.

The reference is ``mask_to_boundary`` of bowenc0221/boundary-iou-api
(boundary_iou/utils/boundary_utils.py): ``dilation = int(round(ratio * sqrt(h**2 + w**2)))``
(at least 1); pad the mask with one pixel of 0; ``cv2.erode`` with a 3x3 kernel
``dilation`` times (cv2's default border for erosion never erodes); crop; boundary =
mask - eroded. Boundary IoU = |B_gt & B_pred| / |B_gt | B_pred|. Re-derived below with
scipy's ``binary_erosion`` (``border_value=1`` for cv2's border) instead of cv2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from segfuse.metrics import BoundaryIoU, BoundaryStatistics, boundary_iou, boundary_iou_statistics
from segfuse.metrics.boundary import band_radii


def api_boundary(mask: np.ndarray, dilation_ratio: float = 0.02, structure_radii=None) -> np.ndarray:
    """boundary-iou-api's mask_to_boundary (any D; a box of half-widths ``structure_radii`` per erosion step)."""
    if structure_radii is None:
        dilation = max(1, int(round(dilation_ratio * np.sqrt(sum(n**2 for n in mask.shape)))))
        structure, iterations = np.ones((3,) * mask.ndim, dtype=bool), dilation
    else:
        structure, iterations = np.ones(tuple(2 * r + 1 for r in structure_radii), dtype=bool), 1
    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, structure, iterations=iterations, border_value=1)
    eroded = eroded[tuple(slice(1, n + 1) for n in mask.shape)]
    return mask & ~eroded


def api_boundary_iou(gt: np.ndarray, pred: np.ndarray, **kw) -> float:
    b_gt, b_pred = api_boundary(gt, **kw), api_boundary(pred, **kw)
    union = (b_gt | b_pred).sum()
    return float((b_gt & b_pred).sum() / union) if union else math.nan


def blocky_pair(rng: np.random.Generator, shape, classes: int):
    coarse = rng.integers(0, classes, tuple(max(1, n // 8) for n in shape))
    gt = ndimage.zoom(coarse, [n / c for n, c in zip(shape, coarse.shape)], order=0)
    gt = np.pad(gt, [(0, n - g) for n, g in zip(shape, gt.shape)], mode="edge")[tuple(slice(0, n) for n in shape)]
    pred = np.roll(gt, tuple(int(v) for v in rng.integers(-3, 4, len(shape))), tuple(range(len(shape))))
    noise = rng.random(shape) < 0.03
    pred[noise] = rng.integers(0, classes, int(noise.sum()))
    return gt, pred


def assert_same(ours: float, expected: float) -> None:
    assert (math.isnan(ours) and math.isnan(expected)) or ours == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("ratio", [0.02, 0.005, 0.05, 0.1])
def test_equals_the_boundary_iou_api_formula_per_class(ratio):
    rng = np.random.default_rng(int(ratio * 1000))
    for shape in ((64, 48), (37, 91), (120, 80)):
        gt, pred = blocky_pair(rng, shape, 5)
        ours = boundary_iou(pred[None], gt[None], 5, dilation_ratio=ratio)[0]
        for c in range(5):
            assert_same(float(ours[c]), api_boundary_iou(gt == c, pred == c, dilation_ratio=ratio))


def test_3d_and_anisotropic_bands_equal_the_same_erosion_with_a_box():
    rng = np.random.default_rng(1)
    gt, pred = blocky_pair(rng, (20, 24, 18), 4)
    ours = boundary_iou(pred[None], gt[None], 4, dilation_ratio=0.05)[0]
    for c in range(4):
        assert_same(float(ours[c]), api_boundary_iou(gt == c, pred == c, dilation_ratio=0.05))
    spacing = (1.0, 0.5, 2.5)
    radii = band_radii(gt.shape, spacing, 0.02, boundary_width=2.0)
    assert radii == (2, 4, 1)
    ours = boundary_iou(pred[None], gt[None], 4, boundary_width=2.0, spacing=spacing)[0]
    for c in range(4):
        assert_same(float(ours[c]), api_boundary_iou(gt == c, pred == c, structure_radii=radii))


def test_convention_band_width_from_the_ratio_or_given():
    assert band_radii((480, 640), None, 0.02, None) == (16, 16)  # round(0.02 * 800)
    assert band_radii((10, 10), None, 0.02, None) == (1, 1)  # at least one pixel
    assert band_radii((10, 10), None, 0.02, 3) == (3, 3)
    assert band_radii((100, 100), None, 0.025, None) == (4, 4)  # Python's round: 3.5355 -> 4
    width = 0.02 * math.hypot(100 * 0.5, 100 * 2.0)  # the physical diagonal
    assert band_radii((100, 100), (0.5, 2.0), 0.02, None) == (round(width / 0.5), round(width / 2.0)) == (8, 2)


def test_convention_absent_classes_and_background():
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    target[0, 2:8, 2:8] = 1
    pred = torch.zeros_like(target)
    pred[0, 3:9, 3:9] = 2
    iou = boundary_iou(pred, target, 4, boundary_width=1)
    assert iou[0, 1] == 0 and iou[0, 2] == 0 and math.isnan(float(iou[0, 3]))
    assert not math.isnan(float(iou[0, 0]))  # background scored by default
    assert math.isnan(float(boundary_iou(pred, target, 4, boundary_width=1, include_background=False)[0, 0]))


def test_convention_ignored_pixels_belong_to_no_class_and_are_never_counted():
    rng = np.random.default_rng(2)
    gt, pred = blocky_pair(rng, (40, 40), 3)
    gt = gt.copy()
    gt[rng.random(gt.shape) < 0.1] = 255
    stats = boundary_iou_statistics(pred[None], gt[None], 3, boundary_width=2, ignore_index=255)
    no_class_gt, no_class_pred = np.where(gt == 255, 3, gt), np.where(gt == 255, 3, pred)
    for c in range(3):
        b_gt = api_boundary(no_class_gt == c, structure_radii=(2, 2))
        b_pred = api_boundary(no_class_pred == c, structure_radii=(2, 2))
        assert int(stats.gt_band[0, c]) == b_gt.sum() and int(stats.pred_band[0, c]) == b_pred.sum()
        assert int(stats.intersection[0, c]) == (b_gt & b_pred).sum()


def test_streaming_dataset_level_and_per_image_means():
    rng = np.random.default_rng(3)
    pairs = [blocky_pair(rng, (32, 40), 4) for _ in range(5)]
    gt = np.stack([g for g, _ in pairs])
    pred = np.stack([p for _, p in pairs])
    metric = BoundaryIoU(num_classes=4, dilation_ratio=0.05)
    metric.update(pred[:2], gt[:2])
    metric.update(torch.from_numpy(pred[2:]), torch.from_numpy(gt[2:]))
    summary = metric.compute()
    stats = boundary_iou_statistics(pred, gt, 4, dilation_ratio=0.05)
    expected = stats.intersection.sum(0).double() / stats.union.sum(0).double()
    torch.testing.assert_close(summary.iou, expected)
    per_image = boundary_iou(pred, gt, 4, dilation_ratio=0.05)
    torch.testing.assert_close(summary.iou_per_image, torch.from_numpy(np.nanmean(per_image.numpy(), 0)))
    assert summary.miou == pytest.approx(float(expected.mean()))
    merged = BoundaryStatistics.concatenate([boundary_iou_statistics(pred[i : i + 1], gt[i : i + 1], 4, dilation_ratio=0.05)
                                             for i in range(5)])
    assert torch.equal(merged.intersection, stats.intersection)
    assert set(summary.to_dict()) == {"iou", "miou", "iou_per_image", "miou_per_image", "images"}


def test_bad_arguments_name_the_argument():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="dilation_ratio"):
        boundary_iou(target, target, 2, dilation_ratio=0)
    with pytest.raises(ValueError, match="boundary_width"):
        BoundaryIoU(2, boundary_width=-1)
    with pytest.raises(ValueError, match="spacing"):
        boundary_iou(target, target, 2, spacing=(1.0,))
    with pytest.raises(ValueError, match="same shape"):
        boundary_iou(target[:, :4], target, 2)
    with pytest.raises(ValueError, match="labels"):
        boundary_iou(target + 5, target, 2)
