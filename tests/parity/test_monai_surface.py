"""segfuse's ``definition="monai"`` against MONAI's compute_hausdorff_distance,
compute_average_surface_distance and compute_surface_dice (the installed MONAI).

MONAI computes in float32 (its distances, quantiles, means and ratios). The strict tests
run MONAI's own code in float64: the ``monai_float64`` fixture hands its metric modules a
view of torch whose float32 is float64 (and makes float64 the default dtype), and the
results must equal segfuse's to 1e-9 relative, for each distance_metric, 2D and 3D, with
and without spacing, on random, structured and empty cases. A stock float32 run is also
compared, to float32 precision. Ported cases cite MONAI's tests/metrics/
test_hausdorff_distance.py, test_surface_distance.py and test_surface_dice.py.
"""

from __future__ import annotations

import math
import warnings

import monai.metrics.hausdorff_distance as monai_hd
import monai.metrics.surface_dice as monai_dice
import monai.metrics.surface_distance as monai_sd
import monai.metrics.utils as monai_utils
import numpy as np
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

from segfuse.metrics import surface_metrics, surface_scores, surface_statistics
from tests.parity._surface_cases import SPACINGS, pairs

METRICS = ("euclidean", "chessboard", "taxicab")
TOLERANCES = (0.0, 1.0, 1.5, 2.0)


class _Float64Torch:
    """torch, except that ``float`` and ``float32`` name float64 (for MONAI's module globals)."""

    float = torch.float64
    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


@pytest.fixture
def monai_float64(monkeypatch):
    for module in (monai_utils, monai_hd, monai_sd, monai_dice):
        monkeypatch.setattr(module, "torch", _Float64Torch())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_default_dtype(default)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def one_hot(labels: np.ndarray, classes: int, dtype=torch.float64) -> torch.Tensor:
    """(1, C, *S) one-hot of a class map; labels >= classes (ignored) get no channel."""
    values = torch.from_numpy(np.asarray(labels)).long()
    hot = torch.nn.functional.one_hot(values.clamp(max=classes), classes + 1)[..., :classes]
    return hot.movedim(-1, 0)[None].to(dtype)


def monai_scores(gt, pred, classes, metric, spacing, dtype=torch.float64, percentiles=(95.0, 50.0)) -> dict:
    y, y_pred = one_hot(gt, classes, dtype), one_hot(pred, classes, dtype)
    kw = {"distance_metric": metric, "spacing": spacing}
    out = {"hd": compute_hausdorff_distance(y_pred, y, **kw)}
    for p in percentiles:
        out[f"hd{p:g}"] = compute_hausdorff_distance(y_pred, y, percentile=p, **kw)
    out["assd"] = compute_average_surface_distance(y_pred, y, symmetric=True, **kw)
    out["msd_pred_to_gt"] = compute_average_surface_distance(y_pred, y, symmetric=False, **kw)
    for t in TOLERANCES:
        out[f"nsd@{t:g}"] = compute_surface_dice(y_pred, y, [t] * (classes - 1), **kw)
    return {name: value[0] for name, value in out.items()}


def ours(gt, pred, classes, metric, spacing, **kw):
    scores = surface_metrics(
        pred[None], gt[None], classes, spacing=spacing, definition="monai", distance_metric=metric,
        percentiles=(95.0, 50.0), tolerances=TOLERANCES, empty="reference", **kw,
    )
    return {name: value[0, 1:] for name, value in scores.values.items()}


def assert_equal_scores(mine: dict, theirs: dict, rtol: float) -> None:
    for name, expected in theirs.items():
        value = mine[name].to(torch.float64)
        expected = expected.to(torch.float64)
        assert torch.equal(torch.isnan(value), torch.isnan(expected)), (name, value, expected)
        assert torch.equal(torch.isinf(value), torch.isinf(expected)), (name, value, expected)
        finite = torch.isfinite(expected)
        torch.testing.assert_close(value[finite], expected[finite], rtol=rtol, atol=0, msg=name)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("metric", METRICS)
def test_equals_monai_in_float64(monai_float64, dims, metric):
    for index, (kind, gt, pred) in enumerate(pairs(seed=dims * 7 + len(metric), dims=dims)):
        spacing = None if index == 0 else SPACINGS[dims][1 + (index % (len(SPACINGS[dims]) - 1))]
        classes = 3 if kind == "random" else 4
        theirs = monai_scores(gt, pred, classes, metric, spacing)
        assert theirs["hd"].dtype == torch.float64
        assert_equal_scores(ours(gt, pred, classes, metric, spacing), theirs, rtol=1e-9)


def test_directed_hausdorff_equals_monai_directed(monai_float64):
    for dims in (2, 3):
        for kind, gt, pred in pairs(seed=dims, dims=dims):
            y, y_pred = one_hot(gt, 4), one_hot(pred, 4)
            for percentile in (None, 95.0):
                theirs = compute_hausdorff_distance(y_pred, y, percentile=percentile, directed=True, spacing=SPACINGS[dims][1])
                scores = surface_metrics(pred[None], gt[None], 4, spacing=SPACINGS[dims][1], definition="monai",
                                         empty="reference", directed=True, percentiles=(95.0,))
                mine = scores["hd" if percentile is None else "hd95"][:, 1:]
                assert_equal_scores({"hd": mine[0]}, {"hd": theirs[0]}, rtol=1e-9)


def test_equals_stock_monai_to_float32_precision():
    for dims in (2, 3):
        _, gt, pred = list(pairs(seed=11, dims=dims))[1]
        theirs = monai_scores(gt, pred, 4, "euclidean", SPACINGS[dims][1], dtype=torch.float32)
        assert theirs["hd"].dtype == torch.float32
        assert_equal_scores(ours(gt, pred, 4, "euclidean", SPACINGS[dims][1]), theirs, rtol=2e-6)


def test_ignore_index_equals_monai_surface_dice_with_its_ignore_mask(monai_float64):
    # MONAI masks y_pred and y where the one-hot ground truth has no channel (ignore_index a sentinel);
    # segfuse's ignore_index gives the ignored pixels no class in both maps: the same surfaces.
    for dims in (2, 3):
        _, gt, pred = list(pairs(seed=4, dims=dims))[1]
        gt = gt.copy()
        rng = np.random.default_rng(dims)
        gt[rng.random(gt.shape) < 0.1] = 255
        gt[tuple(slice(0, n // 3) for n in gt.shape)] = 255
        y, y_pred = one_hot(np.where(gt == 255, 4, gt), 4), one_hot(pred, 4)
        theirs = compute_surface_dice(y_pred, y, [1.0, 1.0, 1.0], ignore_index=255, spacing=SPACINGS[dims][1])
        scores = surface_metrics(pred[None], gt[None], 4, spacing=SPACINGS[dims][1], definition="monai",
                                 tolerances=(1.0,), ignore_index=255, empty="reference")
        assert_equal_scores({"nsd": scores["nsd@1"][0, 1:]}, {"nsd": theirs[0]}, rtol=1e-9)


@pytest.mark.parametrize("dims", [2, 3])
def test_subvoxel_surface_dice_equals_deepmind_definition(monai_float64, dims):
    # compute_surface_dice(use_subvoxels=True) uses DeepMind's surfels; MONAI's 3D area table is float32.
    for _, gt, pred in pairs(seed=8 + dims, dims=dims):
        y, y_pred = one_hot(gt, 4), one_hot(pred, 4)
        spacing = SPACINGS[dims][1]
        theirs = compute_surface_dice(y_pred, y, [1.5] * 3, spacing=spacing, use_subvoxels=True)
        scores = surface_metrics(pred[None], gt[None], 4, spacing=spacing, tolerances=(1.5,), empty="reference")
        mine = scores["nsd@1.5"][0, 1:]
        assert_equal_scores({"nsd": mine}, {"nsd": theirs[0]}, rtol=1e-9 if dims == 2 else 1e-6)


def sphere(radius=20.0, centre=(49, 49, 49), shape=(99, 99, 99), spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """MONAI's tests' ``create_spherical_seg_3d``."""
    y, x, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    y, x, z = y.astype(float) * spacing[0] - centre[0], x.astype(float) * spacing[1] - centre[1], z.astype(float) * spacing[2] - centre[2]
    return ((x * x + y * y + z * z) <= radius * radius).astype(np.int64)


TEST_SPACING = (0.85, 1.2, 0.9)
# tests/metrics/test_hausdorff_distance.py TEST_CASES: (pred, gt, spacing, percentile) and the expected values for
# (euclidean, directed), (euclidean, undirected), (chessboard, ...), (taxicab, ...).
HAUSDORFF_CASES = [
    (dict(), dict(), None, None, [0, 0, 0, 0, 0, 0]),
    (dict(radius=20, centre=(20, 20, 20)), dict(radius=20, centre=(19, 19, 19)), None, None,
     [1.7320508075688772, 1.7320508075688772, 1, 1, 3, 3]),
    (dict(radius=33, centre=(19, 33, 22)), dict(radius=33, centre=(20, 33, 22)), None, None, [1, 1, 1, 1, 1, 1]),
    (dict(radius=20, centre=(20, 33, 22)), dict(radius=40, centre=(20, 33, 22)), None, None,
     [20.09975124224178, 20.223748416156685, 15, 20, 24, 35]),
    (None, dict(radius=40, centre=(20, 33, 22)), None, None, [math.inf] * 6),
    (dict(), None, None, None, [math.inf] * 6),
    (dict(radius=20, centre=(20, 33, 22)), dict(radius=40, centre=(20, 33, 22)), None, 95,
     [19.924858845171276, 20.09975124224178, 14, 18, 22, 33]),
    (dict(radius=20, centre=(20, 20, 20), spacing=TEST_SPACING), dict(radius=20, centre=(19, 19, 19), spacing=TEST_SPACING),
     TEST_SPACING, None, [2.0808651447296143, 2.2671568, 2, 2, 3, 4]),
    (dict(radius=15, centre=(20, 33, 22), spacing=TEST_SPACING), dict(radius=30, centre=(20, 33, 22), spacing=TEST_SPACING),
     TEST_SPACING, None, [15.439640998840332, 15.62594, 11, 17, 20, 28]),
]


def _volume(spec):
    return np.zeros((99, 99, 99), np.int64) if spec is None else sphere(**spec)


@pytest.mark.parametrize("case", range(len(HAUSDORFF_CASES)))
def test_ported_monai_hausdorff_distance_cases(case):
    # tests/metrics/test_hausdorff_distance.py, TestHausdorffDistance.test_value (rtol=1e-6 as there)
    pred_spec, gt_spec, spacing, percentile, expected = HAUSDORFF_CASES[case]
    pred, gt = _volume(pred_spec), _volume(gt_spec)
    name = "hd" if percentile is None else f"hd{percentile:g}"
    for i, metric in enumerate(METRICS):
        stats = surface_statistics(pred[None], gt[None], 2, spacing=spacing, definition="monai", distance_metric=metric,
                                   percentiles=(95.0,))
        for j, directed in enumerate((True, False)):
            value = float(surface_scores(stats, empty="reference", directed=directed)[name][0, 1])
            np.testing.assert_allclose(value, expected[2 * i + j], rtol=1e-6)


# tests/metrics/test_surface_distance.py TEST_CASES: (pred, gt, metric, spacing), expected (symmetric, not symmetric)
SURFACE_DISTANCE_CASES = [
    (dict(), dict(), "euclidean", None, [0, 0]),
    (dict(radius=20, centre=(20, 20, 20)), dict(radius=20, centre=(19, 19, 19)), "taxicab", None,
     [1.0380029806259314, 1.0380029806259314]),
    (dict(radius=33, centre=(19, 33, 22)), dict(radius=33, centre=(20, 33, 22)), "euclidean", None,
     [0.350217, 0.3483278807706289]),
    (dict(radius=20, centre=(20, 33, 22)), dict(radius=40, centre=(20, 33, 22)), "euclidean", None,
     [15.117741, 12.040033513150455]),
    (dict(radius=20, centre=(20, 33, 22)), dict(radius=40, centre=(20, 33, 22)), "chessboard", None,
     [11.492719, 9.605067064083457]),
    (dict(radius=20, centre=(20, 33, 22)), dict(radius=40, centre=(20, 33, 22)), "taxicab", None,
     [20.214613, 12.432687531048186]),
    (None, dict(radius=40, centre=(20, 33, 22)), "euclidean", None, [math.inf, math.inf]),
    (dict(), None, "taxicab", None, [math.inf, math.inf]),
    (dict(radius=33, centre=(42, 45, 52), spacing=TEST_SPACING), dict(radius=33, centre=(43, 45, 52), spacing=TEST_SPACING),
     "euclidean", TEST_SPACING, [0.4951, 0.4951]),
]


@pytest.mark.parametrize("case", range(len(SURFACE_DISTANCE_CASES)))
def test_ported_monai_surface_distance_cases(case):
    # tests/metrics/test_surface_distance.py, TestAllSurfaceMetrics.test_value (rtol=1e-5 as there)
    pred_spec, gt_spec, metric, spacing, expected = SURFACE_DISTANCE_CASES[case]
    pred, gt = _volume(pred_spec), _volume(gt_spec)
    scores = surface_metrics(pred[None], gt[None], 2, spacing=spacing, definition="monai", distance_metric=metric,
                             empty="reference")
    np.testing.assert_allclose(float(scores["assd"][0, 1]), expected[0], rtol=1e-5)
    np.testing.assert_allclose(float(scores["msd_pred_to_gt"][0, 1]), expected[1], rtol=1e-5)


def test_ported_monai_surface_distance_both_empty_is_nan():
    # test_surface_distance.py / test_hausdorff_distance.py test_nans: no foreground anywhere -> nothing defined
    empty = np.zeros((1, 99, 99, 99), np.int64)
    for spacing in (None, TEST_SPACING):
        scores = surface_metrics(empty, empty, 2, spacing=spacing, definition="monai", empty="reference")
        assert all(math.isnan(float(value[0, 1])) for value in scores.values.values())


def _nsd(pred, gt, tolerances, metric="euclidean", spacing=None):
    scores = surface_metrics(pred, gt, 2, spacing=spacing, definition="monai", distance_metric=metric,
                             tolerances=tolerances, include_background=True, empty="reference")
    return {t: scores[f"nsd@{t:g}"] for t in tolerances}


@pytest.mark.parametrize("spacing", [None, (0.85, 1.2)])
def test_ported_monai_surface_dice_tolerance_euclidean(spacing):
    # test_surface_dice.py, test_tolerance_euclidean_distance(_with_spacing): a 10 px shift along the columns
    predictions, labels = np.zeros((2, 480, 640), np.int64), np.zeros((2, 480, 640), np.int64)
    predictions[0, :, 50:], labels[0, :, 60:] = 1, 1
    res = _nsd(predictions, labels, (0, 1, 9, 10, 11, 12, 13), spacing=spacing)
    expected0 = np.array([[1 - (478 + 480 + 9 * 2) / (480 * 4 + 48 * 2 + 58 * 2),
                           1 - (478 + 480 + 9 * 2) / (480 * 4 + 588 * 2 + 578 * 2)], [1, np.nan]])
    np.testing.assert_allclose(res[0].numpy(), expected0)
    assert (res[0][0] < res[1][0]).all() and (res[1][0] < res[9][0]).all() and (res[9][0] < res[10][0]).all()
    if spacing is None:
        torch.testing.assert_close(res[10], res[11], equal_nan=True)
    else:
        assert (res[10][0] < res[11][0]).all()
        torch.testing.assert_close(res[12], res[13], equal_nan=True)


def test_ported_monai_surface_dice_tolerance_euclidean_3d():
    # test_surface_dice.py, test_tolerance_euclidean_distance_3d
    predictions, labels = np.zeros((2, 200, 110, 80), np.int64), np.zeros((2, 200, 110, 80), np.int64)
    predictions[0, :, :, 20:], labels[0, :, :, 30:] = 1, 1
    res = _nsd(predictions, labels, (0, 1, 10, 11))
    expected0 = np.array([
        [1 - (200 * 110 + 198 * 108 + 9 * 200 * 2 + 9 * 108 * 2) / (200 * 110 * 4 + (28 + 18) * 200 * 2 + (28 + 18) * 108 * 2),
         1 - (200 * 110 + 198 * 108 + 9 * 200 * 2 + 9 * 108 * 2) / (200 * 110 * 4 + (58 + 48) * 200 * 2 + (58 + 48) * 108 * 2)],
        [1, np.nan]])
    np.testing.assert_allclose(res[0].numpy(), expected0)
    assert (res[0][0] < res[1][0]).all() and (res[1][0] < res[10][0]).all()
    torch.testing.assert_close(res[10], res[11], equal_nan=True)


@pytest.mark.parametrize(
    "metric, cases",
    [
        ("euclidean", [((0, 0), [1 - (8 + 4) / (36 * 2 + 8 + 4), 0]), ((2.8, 5.5), [1 - 3 / (36 * 2 + 8 + 4), 1 - (2 + 2) / (3 + 3)]),
                       ((3, 6), [1 - 1 / (36 * 2 + 8 + 4), 1 - 2 / (3 + 3)])]),
        ("chessboard", [((0, 0), [1 - (8 + 4) / (36 * 2 + 8 + 4), 0]), ((1, 4.999), [1 - (7 + 2) / (36 * 2 + 8 + 4), 0]),
                        ((2, 5), [1 - 3 / (36 * 2 + 8 + 4), 1])]),
        ("taxicab", [((0, 0), [1 - (8 + 4) / (36 * 2 + 8 + 4), 0]), ((1, 7), [1 - (7 + 2) / (36 * 2 + 8 + 4), 1 - (2 + 2) / (3 + 3)]),
                     ((3, 9), [1 - 1 / (36 * 2 + 8 + 4), 1])]),
    ],
)
def test_ported_monai_surface_dice_tolerance_all_distances(metric, cases):
    # test_surface_dice.py, test_tolerance_all_distances (per-class thresholds: one tolerance per class here)
    predictions, labels = np.zeros((1, 10, 10), np.int64), np.zeros((1, 10, 10), np.int64)
    predictions[0, 1:4, 1], labels[0, 5:8, 6] = 1, 1
    for (background_tol, foreground_tol), expected in cases:
        res = _nsd(predictions, labels, tuple(sorted({background_tol, foreground_tol})), metric=metric)
        np.testing.assert_array_almost_equal([float(res[background_tol][0, 0]), float(res[foreground_tol][0, 1])], expected)


def test_ported_monai_surface_dice_not_predicted_not_present():
    # test_surface_dice.py, test_not_predicted_not_present
    predictions, labels = np.zeros((1, 80, 80), np.int64), np.zeros((1, 80, 80), np.int64)
    predictions[0, 10:20, 10:20], labels[0, 10:20, 10:20] = 1, 2
    with_background = surface_metrics(predictions, labels, 4, definition="monai", include_background=True,
                                      empty="reference")["nsd@1"]
    np.testing.assert_array_equal(with_background.numpy(), [[1, 0, 0, np.nan]])
    without = surface_metrics(predictions, labels, 4, definition="monai", empty="reference")["nsd@1"]
    np.testing.assert_array_equal(without[:, 1:].numpy(), [[0, 0, np.nan]])


def test_ported_monai_compute_surface_dice_subvoxel():
    # test_surface_dice.py, test_compute_surface_dice_subvoxel: use_subvoxels=True is DeepMind's surfels,
    # segfuse's definition="deepmind" (spacing (3, 2, 1), tolerance 1)
    def nsd(gt, pred, spacing):
        scores = surface_metrics(pred[None], gt[None], 2, spacing=spacing, tolerances=(1.0,), empty="reference")
        return float(scores["nsd@1"][0, 1])

    gt, pred = np.zeros((128, 128, 128), np.int64), np.zeros((128, 128, 128), np.int64)
    gt[50, 60, 70] = 1
    assert nsd(gt, pred, (3, 2, 1)) == 0.0
    gt[50, 60, 70], pred[50, 60, 72] = 0, 1
    assert nsd(gt, pred, (3, 2, 1)) == 0.0
    gt[50, 60, 70] = 1
    assert nsd(gt, pred, (3, 2, 1)) == pytest.approx(0.5, abs=1e-12)
    gt, pred = np.zeros((100, 100, 100), np.int64), np.zeros((100, 100, 100), np.int64)
    gt[0:50], pred[0:51] = 1, 1
    np.testing.assert_allclose(nsd(gt, pred, (2, 1, 1)), 0.836145, atol=1e-3, rtol=1e-3)
