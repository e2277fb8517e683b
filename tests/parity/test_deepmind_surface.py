"""segfuse's ``definition="deepmind"`` against DeepMind's surface-distance 0.1 (the ``surface-distance`` package).

Every score is compared per class with the reference run on that class's binary masks, to
1e-9 relative (the implementation reproduces the reference's arithmetic, so the values are
in fact equal), with the reference's own empty-mask behaviour (``empty="reference"``). The
ported cases come from surface-distance's ``surface_distance_test.py`` (google-deepmind/
surface-distance, the test file of version 0.1) with its expected numbers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import surface_distance as sd
import torch

from segfuse.metrics import surface_scores, surface_statistics
from tests.parity._surface_cases import SPACINGS, pairs

PERCENTILES = (95.0, 50.0, 99.0)
TOLERANCES = (0.0, 1.0, 1.5, 2.5)


@pytest.fixture(autouse=True)
def numpy2_aliases(monkeypatch):
    """surface-distance 0.1 uses ``np.Inf`` / ``np.NaN``, removed in NumPy 2: give them back to it."""
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def reference_scores(gt_mask, pred_mask, spacing, percentiles=PERCENTILES, tolerances=TOLERANCES) -> dict:
    """DeepMind's numbers for one class; ASSD is the surfel-weighted mean over both of its distance lists."""
    d = sd.compute_surface_distances(gt_mask, pred_mask, spacing)
    out = {"hd": sd.compute_robust_hausdorff(d, 100)}
    for p in percentiles:
        out[f"hd{p:g}"] = sd.compute_robust_hausdorff(d, p)
    out["msd_gt_to_pred"], out["msd_pred_to_gt"] = sd.compute_average_surface_distance(d)
    areas = np.concatenate([d["surfel_areas_gt"], d["surfel_areas_pred"]])
    distances = np.concatenate([d["distances_gt_to_pred"], d["distances_pred_to_gt"]])
    with np.errstate(all="ignore"):
        out["assd"] = np.sum(distances * areas) / np.sum(areas)
    for t in tolerances:
        out[f"nsd@{t:g}"] = sd.compute_surface_dice_at_tolerance(d, t)
        out[f"overlap@{t:g}"] = sd.compute_surface_overlap_at_tolerance(d, t)
    return out


def assert_same(ours: float, expected: float, what: str, rtol: float = 1e-9) -> None:
    if math.isnan(expected) or math.isinf(expected):
        assert ours == expected or (math.isnan(ours) and math.isnan(expected)), f"{what}: {ours} != {expected}"
    else:
        assert ours == pytest.approx(expected, rel=rtol, abs=0), f"{what}: {ours} != {expected}"


def check_against_reference(gt, pred, classes, spacing, backend=None) -> None:
    stats = surface_statistics(
        pred[None], gt[None], classes, spacing=spacing, percentiles=PERCENTILES, tolerances=TOLERANCES, backend=backend
    )
    scores = surface_scores(stats, empty="reference")
    for c in range(1, classes):
        expected = reference_scores(gt == c, pred == c, spacing)
        for name, value in scores.values.items():
            assert_same(float(value[0, c]), float(expected[name]), f"class {c} {name}")
        for k, t in enumerate(TOLERANCES):
            with np.errstate(all="ignore"):
                overlap = (stats.within[0, c, k] / stats.surface[0, c]).tolist()
            for direction in (0, 1):
                assert_same(overlap[direction], float(expected[f"overlap@{t:g}"][direction]), f"class {c} overlap@{t}")


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("spacing_index", [0, 1])
def test_equals_deepmind_on_random_structured_and_empty_pairs(dims, spacing_index):
    spacing = SPACINGS[dims][spacing_index]
    for kind, gt, pred in pairs(seed=10 * dims + spacing_index, dims=dims):
        check_against_reference(gt, pred, 4 if kind != "random" else 3, spacing)


def test_equals_deepmind_with_odd_3d_spacing():
    spacing = SPACINGS[3][2]
    for _, gt, pred in pairs(seed=7, dims=3):
        check_against_reference(gt, pred, 4, spacing)


@pytest.mark.parametrize("backend", ["search", "kdtree", "scipy", "torch"])
def test_every_backend_equals_deepmind(backend):
    for dims in (2, 3):
        _, gt, pred = list(pairs(seed=3, dims=dims))[1]
        check_against_reference(gt, pred, 4, SPACINGS[dims][1], backend=backend)


def _scores(gt, pred, spacing, tolerance=1.0):
    stats = surface_statistics(pred[None], gt[None], 2, spacing=spacing, percentiles=(95.0,), tolerances=(tolerance,))
    scores = surface_scores(stats, empty="reference")
    with np.errstate(all="ignore"):
        overlap = (stats.within[0, 1, 0] / stats.surface[0, 1]).tolist()
    return {name: float(value[0, 1]) for name, value in scores.values.items()}, overlap


def _check_ported(gt, pred, spacing, average, hd100, hd95, overlap, nsd, places=3):
    """The assertions of surface_distance_test.py's ``_assert_metrics`` (assertAlmostEqual to ``places``)."""
    scores, ours_overlap = _scores(gt, pred, spacing)
    tolerance = 0.5 * 10 ** (-places)
    pairs_ = [
        (scores["msd_gt_to_pred"], average[0]), (scores["msd_pred_to_gt"], average[1]),
        (scores["hd"], hd100), (scores["hd95"], hd95),
        (ours_overlap[0], overlap[0]), (ours_overlap[1], overlap[1]), (scores["nsd@1"], nsd),
    ]
    for ours, expected in pairs_:
        if math.isnan(expected) or math.isinf(expected):
            assert ours == expected or (math.isnan(ours) and math.isnan(expected))
        else:
            assert abs(ours - expected) < tolerance, (ours, expected)


def test_ported_2d_on_2_pixels_2mm_away():
    # surface_distance_test.py, SurfaceDistance2DTest.test_on_2_pixels_2mm_away
    gt, pred = np.zeros((128, 128), np.int64), np.zeros((128, 128), np.int64)
    gt[50, 70], pred[50, 72] = 1, 1
    _check_ported(gt, pred, (2, 1), (1.5, 1.5), 2.0, 2.0, (0.5, 0.5), 0.5)


def test_ported_2d_two_squares_shifted_by_one_pixel():
    # surface_distance_test.py, SurfaceDistance2DTest.test_two_squares_shifted_by_one_pixel: its expected
    # surfel lengths and distances, listed clockwise from the top-left corner, fed to DeepMind's functions.
    gt, pred = np.zeros((6, 6), np.int64), np.zeros((6, 6), np.int64)
    gt[1:3, 1:3], pred[1:4, 1:3] = 1, 1
    vertical, horizontal = 2, 1
    diag = 0.5 * math.sqrt(horizontal**2 + vertical**2)
    areas_gt = np.asarray([diag, horizontal, diag, vertical, diag, horizontal, diag, vertical])
    areas_pred = np.asarray([diag, horizontal, diag, vertical, vertical, diag, horizontal, diag, vertical, vertical])
    expected = {
        "distances_gt_to_pred": np.asarray([0.0] * 5 + [horizontal] + [0.0] * 2),
        "distances_pred_to_gt": np.asarray([0.0] * 5 + [vertical] * 3 + [0.0] * 2),
        "surfel_areas_gt": areas_gt,
        "surfel_areas_pred": areas_pred,
    }
    order_gt = np.lexsort((areas_gt, expected["distances_gt_to_pred"]))
    order_pred = np.lexsort((areas_pred, expected["distances_pred_to_gt"]))
    for key, order in (("gt_to_pred", order_gt), ("pred_to_gt", order_pred)):
        expected[f"distances_{key}"] = expected[f"distances_{key}"][order]
    expected["surfel_areas_gt"], expected["surfel_areas_pred"] = areas_gt[order_gt], areas_pred[order_pred]
    _check_ported(
        gt, pred, (vertical, horizontal),
        sd.compute_average_surface_distance(expected),
        sd.compute_robust_hausdorff(expected, 100),
        sd.compute_robust_hausdorff(expected, 95),
        sd.compute_surface_overlap_at_tolerance(expected, 1),
        sd.compute_surface_dice_at_tolerance(expected, 1),
    )


@pytest.mark.parametrize("dims", [2, 3])
def test_ported_empty_prediction_ground_truth_and_both(dims):
    # surface_distance_test.py, SurfaceDistance{2D,3D}Test.test_empty_prediction_mask / _ground_truth_mask /
    # test_both_empty_masks (spacing (3, 2) and (3, 2, 1)).
    shape, spacing = ((128, 128), (3, 2)) if dims == 2 else ((128, 128, 128), (3, 2, 1))
    point = (50, 60) if dims == 2 else (50, 60, 70)
    empty, one = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    one[point] = 1
    inf, nan = np.inf, np.nan
    _check_ported(one, empty, spacing, (inf, nan), inf, inf, (0.0, nan), 0.0)
    _check_ported(empty, one, spacing, (nan, inf), inf, inf, (nan, 0.0), 0.0)
    _check_ported(empty, empty, spacing, (nan, nan), inf, inf, (nan, nan), nan)


def test_ported_3d_on_2_pixels_2mm_away():
    # surface_distance_test.py, SurfaceDistance3DTest.test_on_2_pixels_2mm_away
    gt, pred = np.zeros((128, 128, 128), np.int64), np.zeros((128, 128, 128), np.int64)
    gt[50, 60, 70], pred[50, 60, 72] = 1, 1
    _check_ported(gt, pred, (3, 2, 1), (1.5, 1.5), 2.0, 2.0, (0.5, 0.5), 0.5)


def test_ported_3d_two_cubes_shifted_by_one_pixel():
    # surface_distance_test.py, SurfaceDistance3DTest.test_two_cubes_shifted_by_one_pixel (3 places)
    gt, pred = np.zeros((100, 100, 100), np.int64), np.zeros((100, 100, 100), np.int64)
    gt[0:50], pred[0:51] = 1, 1
    _check_ported(gt, pred, (2, 1, 1), (0.322, 0.339), 2.0, 2.0, (0.842, 0.830), 0.836)


def test_multiclass_map_equals_reference_per_class_mask_with_uint8_and_torch_inputs():
    _, gt, pred = list(pairs(seed=5, dims=3))[1]
    stats_numpy = surface_statistics(pred[None], gt[None], 4, spacing=(1.0, 1.0, 2.5))
    stats_torch = surface_statistics(
        torch.from_numpy(pred[None].astype(np.uint8)), torch.from_numpy(gt[None].astype(np.uint8)), 4,
        spacing=(1.0, 1.0, 2.5),
    )
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        assert torch.equal(getattr(stats_numpy, name).nan_to_num(-1), getattr(stats_torch, name).nan_to_num(-1))
