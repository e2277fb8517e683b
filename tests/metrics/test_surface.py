"""segfuse.metrics.surface: conventions, empty policies, ignore_index, streaming, backends, input checks.

Equality with the references (DeepMind surface-distance, MONAI) is in tests/parity/.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import math
import pickle
from itertools import product

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from segfuse.metrics import (
    SurfaceMetrics,
    SurfaceStatistics,
    surface_metrics,
    surface_scores,
    surface_statistics,
)
import segfuse.metrics._edt as edt
from segfuse.metrics._edt import exact_distance_transform, nearest_by_class, nearest_distances, point_distances
from segfuse.metrics._surface_inputs import keep_lookup
from segfuse.metrics._surface_points import (
    _corner_scan,
    _extract_numpy,
    corner_surfels,
    corner_surfels_torch,
    voxel_edges,
    voxel_edges_torch,
)

NAMES = ("hd", "hd95", "assd", "msd_gt_to_pred", "msd_pred_to_gt", "nsd@1")


def square(shape, box, label=1, dtype=torch.int64) -> torch.Tensor:
    labels = torch.zeros(shape, dtype=dtype)
    labels[tuple(slice(a, b) for a, b in box)] = label
    return labels


def random_maps(seed: int, shape, classes: int = 4, batch: int = 2):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, classes, (batch,) + tuple(max(1, n // 4) for n in shape), generator=generator)
    target = torch.nn.functional.interpolate(coarse[:, None].float(), size=shape, mode="nearest")[:, 0].long()
    pred = target.clone()
    noise = torch.rand(target.shape, generator=generator) < 0.05
    pred[noise] = torch.randint(0, classes, (int(noise.sum()),), generator=generator)
    return pred, target


@pytest.mark.parametrize("name", ["surface", "boundary", "_edt"])
def test_docstring_examples_run(name):
    module = importlib.import_module(f"segfuse.metrics.{name}")
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.failed == 0 and result.attempted > 0


def test_convention_deepmind_surfels_weigh_their_contour_length():
    # one pixel with spacing (2, 1): four diagonal surfels of length sqrt(2**2 + 1**2) / 2 each
    target = square((1, 7, 7), [(0, 1), (3, 4), (3, 4)])
    stats = surface_statistics(target, target, 2, spacing=(2.0, 1.0))
    assert stats.surface[0, 1].tolist() == pytest.approx([2 * math.sqrt(5)] * 2, rel=1e-15)


def test_convention_monai_counts_edge_voxels_and_the_image_border():
    target = square((1, 6, 6), [(0, 1), (1, 4), (1, 4)])  # 3x3 square: 8 edge pixels
    # 3 rows along the top border: rows 0 and 2 are edges, and row 1's two pixels on the left and right border
    border = square((1, 6, 6), [(0, 1), (0, 3), (0, 6)])
    stats = surface_statistics(torch.cat([target, border]), torch.cat([target, border]), 2, definition="monai")
    assert stats.surface[:, 1, 0].tolist() == [8.0, 6 + 2 + 6]


def test_convention_scores_are_the_stated_ratios_of_the_statistics():
    pred, target = random_maps(0, (20, 24))
    stats = surface_statistics(pred, target, 4, spacing=(0.8, 1.3), percentiles=(95.0,), tolerances=(1.0,))
    scores = surface_scores(stats)
    both = stats.surface[..., 0] > 0
    both &= stats.surface[..., 1] > 0
    s = stats
    expected = {
        "hd": s.hausdorff.amax(-1),
        "hd95": s.percentile[..., 0, :].amax(-1),
        "assd": s.distance_sum.sum(-1) / s.surface.sum(-1),
        "msd_gt_to_pred": s.distance_sum[..., 0] / s.surface[..., 0],
        "msd_pred_to_gt": s.distance_sum[..., 1] / s.surface[..., 1],
        "nsd@1": s.within[..., 0, :].sum(-1) / s.surface.sum(-1),
    }
    assert both[:, 1:].all()
    for name in NAMES:
        torch.testing.assert_close(scores[name][:, 1:], expected[name][:, 1:], rtol=0, atol=0)
    directed = surface_scores(stats, directed=True)
    torch.testing.assert_close(directed["hd"][:, 1:], s.hausdorff[:, 1:, 1], rtol=0, atol=0)


def test_convention_background_is_left_out_unless_included():
    pred, target = random_maps(1, (12, 12))
    default = surface_metrics(pred, target, 4)
    assert torch.isnan(default["hd"][:, 0]).all() and not torch.isnan(default["hd"][:, 1:]).any()
    included = surface_metrics(pred, target, 4, include_background=True)
    assert not torch.isnan(included["hd"][:, 0]).any()
    torch.testing.assert_close(included["hd"][:, 1:], default["hd"][:, 1:], rtol=0, atol=0)


def _empty_cases():
    """Image 0 of a 3-class batch: class 1 absent from the prediction, class 2 from the truth; class 3 from both."""
    target = square((1, 10, 10), [(0, 1), (2, 5), (2, 5)], label=1)
    pred = square((1, 10, 10), [(0, 1), (5, 8), (5, 8)], label=2)
    return pred, target


@pytest.mark.parametrize(
    "empty, one_side, both",
    [("inf", math.inf, math.nan), (7.5, 7.5, math.nan), ("nan", math.nan, math.nan)],
)
def test_convention_empty_policies(empty, one_side, both):
    pred, target = _empty_cases()
    scores = surface_metrics(pred, target, 4, empty=empty)
    for name in NAMES:
        expected_one = (0.0 if not math.isnan(one_side) else math.nan) if name.startswith("nsd") else one_side
        for c in (1, 2):
            value = float(scores[name][0, c])
            assert value == expected_one or (math.isnan(value) and math.isnan(expected_one)), (name, c, value)
        assert math.isnan(float(scores[name][0, 3]))
    assert scores.gt_empty[0].tolist() == [False, False, True, True]
    assert scores.pred_empty[0].tolist() == [False, True, False, True]


def test_convention_empty_reference_policies():
    pred, target = _empty_cases()
    nan, inf = math.nan, math.inf
    deepmind = surface_metrics(pred, target, 4, empty="reference")
    expected = {  # class 1 (pred empty), class 2 (truth empty), class 3 (both empty): DeepMind's behaviour
        "hd": [inf, inf, inf], "hd95": [inf, inf, inf], "assd": [inf, inf, nan],
        "msd_gt_to_pred": [inf, nan, nan], "msd_pred_to_gt": [nan, inf, nan], "nsd@1": [0.0, 0.0, nan],
    }
    monai = surface_metrics(pred, target, 4, definition="monai", empty="reference")
    expected_monai = {
        "hd": [inf, inf, nan], "hd95": [nan, nan, nan], "assd": [inf, inf, nan],
        "msd_gt_to_pred": [inf, inf, nan], "msd_pred_to_gt": [inf, inf, nan], "nsd@1": [0.0, 0.0, nan],
    }
    for scores, table in ((deepmind, expected), (monai, expected_monai)):
        for name, values in table.items():
            np.testing.assert_array_equal(scores[name][0, 1:].numpy(), np.array(values), err_msg=name)


def test_convention_ignored_pixels_belong_to_no_class_in_both_maps():
    target = square((1, 16, 16), [(0, 1), (3, 12), (3, 12)], label=1)
    target[0, 3:12, 8:10] = 255  # a void band across the object
    pred = target.clone()
    pred[pred == 255] = 1  # the prediction fills the band: ignored, so still perfect
    scores = surface_metrics(pred, target, 2, ignore_index=255, tolerances=(0.0,))
    assert float(scores["hd"][0, 1]) == 0.0 and float(scores["nsd@0"][0, 1]) == 1.0
    stats = surface_statistics(pred, target, 2, ignore_index=255)
    whole = surface_statistics(pred.clamp(max=1), target.clamp(max=1), 2)
    assert float(stats.surface[0, 1, 0]) > float(whole.surface[0, 1, 0])  # the band makes surfaces
    unrepresentable = surface_statistics(pred.to(torch.uint8) % 2, target.to(torch.uint8) % 2, 2, ignore_index=-1)
    reference = surface_statistics(pred.to(torch.uint8) % 2, target.to(torch.uint8) % 2, 2)
    assert torch.equal(unrepresentable.surface, reference.surface)


def test_swapping_prediction_and_truth_swaps_the_directions():
    pred, target = random_maps(3, (14, 17), classes=3)
    forward = surface_statistics(pred, target, 3, spacing=(1.1, 0.6))
    backward = surface_statistics(target, pred, 3, spacing=(1.1, 0.6))
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        torch.testing.assert_close(getattr(forward, name), getattr(backward, name).flip(-1), equal_nan=True)


@given(st.integers(0, 10_000), st.sampled_from(["deepmind", "monai"]), st.booleans())
def test_search_backend_equals_the_kdtree_on_random_maps(seed, definition, three_d):
    shape = (6, 7, 5) if three_d else (13, 11)
    pred, target = random_maps(seed, shape, classes=3, batch=1)
    kw = dict(spacing=(0.7, 1.3, 2.1)[: len(shape)], definition=definition, percentiles=(50.0, 95.0), tolerances=(1.0,))
    search = surface_statistics(pred, target, 3, backend="search", **kw)
    kdtree = surface_statistics(pred, target, 3, backend="kdtree", **kw)
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        torch.testing.assert_close(getattr(search, name), getattr(kdtree, name), rtol=1e-12, atol=0, equal_nan=True)


@pytest.mark.parametrize("metric", ["euclidean", "chessboard", "taxicab"])
def test_every_backend_agrees_for_monai_metrics(metric):
    pred, target = random_maps(4, (9, 10, 11), batch=1)
    results = [
        surface_statistics(pred, target, 4, spacing=(1.0, 0.5, 2.0), definition="monai", distance_metric=metric,
                           backend=backend, percentiles=(95.0,), tolerances=(1.0, 2.0))
        for backend in ("search", "kdtree", "scipy", "torch")
    ]
    for other in results[1:]:
        for name in ("distance_sum", "hausdorff", "percentile", "within"):
            torch.testing.assert_close(getattr(other, name), getattr(results[0], name), rtol=1e-12, atol=0, equal_nan=True)


def test_far_points_are_exact():
    target = square((1, 90, 90), [(0, 1), (2, 6), (2, 6)])
    pred = square((1, 90, 90), [(0, 1), (80, 88), (70, 88)])
    pred[0, 3:5, 3:5] = 1
    search = surface_statistics(pred, target, 2, backend="search")
    scipy = surface_statistics(pred, target, 2, backend="scipy")
    torch.testing.assert_close(search.distance_sum, scipy.distance_sum, rtol=1e-12, atol=0)
    assert float(search.hausdorff[0, 1].max()) > 100


def test_many_classes_search_equals_the_kdtree():
    generator = torch.Generator().manual_seed(5)
    target = torch.randint(0, 70, (1, 24, 24), generator=generator)
    pred = torch.randint(0, 70, (1, 24, 24), generator=generator)
    search = surface_statistics(pred, target, 70, backend="search")
    kdtree = surface_statistics(pred, target, 70, backend="kdtree")
    torch.testing.assert_close(search.distance_sum, kdtree.distance_sum, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64])
def test_numpy_extraction_equals_the_torch_extraction(dims, dtype):
    # the CPU path (flat shifted comparisons, codes at sparse positions) against the torch path (CUDA's)
    generator = torch.Generator().manual_seed(dims)
    for trial in range(12):
        shape = tuple(int(n) for n in torch.randint(1, 9, (dims,), generator=generator))
        classes = int(torch.randint(1, 6, (), generator=generator))
        labels = torch.randint(0, classes + 1, (int(torch.randint(1, 4, (), generator=generator)),) + shape,
                               generator=generator)
        if trial % 3 == 0:  # sparse objects in background, as in real maps
            labels[torch.rand(labels.shape, generator=generator) < 0.7] = 0
        labels = labels.to(dtype)
        holds_no_class = bool((labels == classes).any())
        for include_background in (False, True):
            first = 0 if include_background else 1
            keep = keep_lookup(classes, include_background, "cpu")
            for corners, torch_path in ((True, corner_surfels_torch), (False, voxel_edges_torch)):
                reference = torch_path(labels, keep, first, classes, holds_no_class)
                for use_compiled in (False, True):  # numpy's sparse half, and numba's where installed
                    ours = _extract_numpy(labels.numpy(), keep.numpy(), first, classes, holds_no_class, corners,
                                          use_compiled)
                    np.testing.assert_array_equal(ours.coords, reference.coords)
                    np.testing.assert_array_equal(ours.labels, reference.labels)
                    if reference.codes is None:
                        assert ours.codes is None
                    else:
                        np.testing.assert_array_equal(ours.codes, reference.codes)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
@pytest.mark.parametrize("dims", [2, 3])
def test_compiled_extraction_equals_the_numpy_extraction(dims):
    # corners and edge voxels; 2D: the word-at-a-time scan, widths that fill whole 8-byte words (no copy) and
    # that do not (a padded copy), every label width, non-contiguous maps, objects touching the border, empty
    # maps, ignored pixels
    from tests.parity._surface_cases import structured_pair

    rng = np.random.default_rng(dims)
    widths = (7, 8, 16, 17, 24) if dims == 2 else (3, 8, 9)
    for trial, (width, dtype) in enumerate(product(widths, (np.uint8, np.int16, np.int32, np.int64))):
        gt, pred = structured_pair(rng, dims)
        start = (gt.shape[-1] - width) // 2  # a slab through the middle of the objects
        gt = np.stack([gt, pred, np.zeros_like(gt)])[..., start : start + width].astype(dtype)
        if trial % 3 == 1:
            gt[1][rng.random(gt[1].shape) < 0.1] = 4  # ignored pixels: label num_classes
        maps = gt[:, ::-1] if trial % 4 == 2 else gt
        holds_no_class = bool((maps == 4).any())
        for include_background, corners in product((False, True), (True, False)):
            keep = keep_lookup(4, include_background, "cpu").numpy()
            first = 0 if include_background else 1
            reference = _extract_numpy(np.ascontiguousarray(maps), keep, first, 4, holds_no_class, corners,
                                       use_compiled=False)
            assert len(reference.labels) > 0
            compiled = [_extract_numpy(maps, keep, first, 4, holds_no_class, corners, use_compiled=True)]
            if dims == 2:  # the word scan itself (volumes take the sparse kernels)
                compiled.append(_corner_scan(maps, keep, 4, corners))
            for ours in compiled:
                np.testing.assert_array_equal(ours.coords, reference.coords)
                np.testing.assert_array_equal(ours.labels, reference.labels)
                assert (ours.codes is None) == (not corners)
                if corners:
                    np.testing.assert_array_equal(ours.codes, reference.codes)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
@pytest.mark.parametrize("definition", ["deepmind", "monai"])
@pytest.mark.parametrize("dims", [2, 3])
def test_statistics_are_the_same_with_and_without_the_compiled_kernels(dims, definition, monkeypatch):
    # the extraction and percentile kernels against numpy (the search is the same): anisotropic spacing,
    # structured maps, classes empty on one side or both
    from segfuse.metrics import _surface_points, _surface_stats
    from tests.parity._surface_cases import SPACINGS, pairs

    cases = list(pairs(dims, dims))
    target = torch.from_numpy(np.stack([gt for _, gt, _ in cases[1:]]))
    pred = torch.from_numpy(np.stack([p for _, _, p in cases[1:]]))
    spacing = SPACINGS[dims][-1]
    kwargs = {"spacing": spacing, "percentiles": (95.0, 50.0, 100.0), "tolerances": (0.0, 1.0, 2.5),
              "definition": definition}
    compiled = surface_statistics(pred, target, 4, **kwargs)
    assert bool((compiled.surface == 0).any()) and bool((compiled.surface > 0).any())
    for module in (_surface_points, _surface_stats):
        monkeypatch.setattr(module, "compiled", lambda name: None)
    plain = surface_statistics(pred, target, 4, **kwargs)
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        assert torch.equal(getattr(compiled, name).nan_to_num(-1), getattr(plain, name).nan_to_num(-1)), name


@pytest.mark.parametrize("extract", [corner_surfels, voxel_edges])
def test_labels_past_num_classes_are_an_error_without_validation(extract):
    labels = torch.zeros(1, 4, 4, dtype=torch.uint8)
    labels[0, 1, 1] = 7  # num_classes 3: 7 is no label
    with pytest.raises(IndexError):
        extract(labels, keep_lookup(3, False, "cpu"), 1, 3, False)


def _random_point_sets(seed: int, dims: int):
    """Keyed integer points: queries partly outside the features' box, keys with and without features."""
    rng = np.random.default_rng(seed)
    features = np.unique(np.column_stack([rng.integers(0, 3, 80), np.zeros(80, int), rng.integers(0, 14, (80, dims))]),
                         axis=0)
    queries = np.unique(np.column_stack([rng.integers(0, 4, 70), np.zeros(70, int), rng.integers(-6, 20, (70, dims))]),
                        axis=0)
    return queries[:, 1:], queries[:, 0], features[:, 1:], features[:, 0]


@pytest.mark.skipif(not edt.row_search_available(), reason="numba is not installed")
@pytest.mark.parametrize("dims", [2, 3])
def test_row_search_equals_the_kdtree_for_every_metric_and_formula(dims):
    for seed in range(6):
        query, query_keys, features, feature_keys = _random_point_sets(seed, dims)
        spacing = (0.7, 1.9, 2.5)[:dims] if seed % 2 else (1.0, 1.0, 2.5)[:dims]
        for metric in ("euclidean", "chessboard", "taxicab"):
            for formula in ("deepmind", "monai"):
                args = (query, query_keys, features, feature_keys, metric, spacing)
                rows = nearest_by_class(*args, "search", formula=formula)
                tree = nearest_by_class(*args, "kdtree", formula=formula)
                assert ((rows[:, 0] >= 0) == np.isin(query_keys, feature_keys)).all()
                assert np.array_equal(rows[:, 0] >= 0, tree[:, 0] >= 0)
                found = rows[:, 0] >= 0
                ours = point_distances(query[found, 1:], rows[found, 1:], metric, spacing, formula)
                theirs = point_distances(query[found, 1:], tree[found, 1:], metric, spacing, formula)
                np.testing.assert_allclose(ours, theirs, rtol=1e-15 if formula == "deepmind" else 0, atol=0)
                direct = nearest_distances(*args, "search", formula=formula)  # the kernel's own value, to the bit
                np.testing.assert_array_equal(direct[found], ours)
                assert np.isinf(direct[~found]).all()


def _brute_force_distances(query, query_keys, features, feature_keys, metric, spacing, formula):
    """Smallest ``point_distances`` value over the same key's features (inf if none): the definition itself."""
    out = np.full(len(query), np.inf)
    for i in range(len(query)):
        own = features[feature_keys == query_keys[i], 1:]
        if len(own):
            out[i] = point_distances(np.repeat(query[i : i + 1, 1:], len(own), 0), own, metric, spacing, formula).min()
    return out


def test_one_kdtree_with_keys_as_a_coordinate_equals_the_definition(monkeypatch):
    query, query_keys, features, feature_keys = _random_point_sets(7, 3)
    features[feature_keys == 1, 1:] += 10_000  # far-apart boxes per key
    spacing = (0.85, 1.2, 0.9)
    for metric in ("euclidean", "chessboard", "taxicab"):
        expected = _brute_force_distances(query, query_keys, features, feature_keys, metric, spacing, "monai")
        for separation in (None, 0.0):  # 0: keys collide in the tree, and the per-key guard must answer
            if separation is not None:
                monkeypatch.setattr(edt, "_key_separation", lambda low, high: separation)
            ours = nearest_distances(query, query_keys, features, feature_keys, metric, spacing, "kdtree",
                                     formula="monai")
            np.testing.assert_array_equal(ours, expected)
        monkeypatch.undo()


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
def test_compiled_deepmind_ranks_equal_numpys_cumsum_and_sum():
    # runs of surfel weights (DeepMind's 2D and 3D tables, anisotropic) of every length regime of NumPy's
    # pairwise sum (< 8, <= 128, split in two) and targets on exact cumulative fractions
    from segfuse.metrics import _surface_ranks
    from segfuse.metrics._surface_stats import _deepmind_ranks
    from segfuse.metrics._surface_tables import deepmind_surfel_areas

    rng = np.random.default_rng(0)
    tables = [deepmind_surfel_areas((0.7, 1.9)), deepmind_surfel_areas((0.85, 1.2, 0.9))]
    lengths = [1, 2, 7, 8, 9, 16, 127, 128, 129, 136, 255, 300, 1031, 5000]
    for table in tables:
        choices = table[table > 0]
        weights = np.concatenate([rng.choice(choices, n) * rng.choice([1.0, 1e6], n, p=[0.95, 0.05]) for n in lengths])
        counts = np.array(lengths)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        for start, count in zip(starts, counts):
            run = weights[start : start + count]
            assert _surface_ranks.numpy_sum(weights, start, count) == np.sum(run)
        exact = [100.0 * float(np.cumsum(weights[s : s + n])[n // 2] / np.sum(weights[s : s + n]))
                 for s, n in zip(starts, counts)]
        for percentiles in [(100.0, 95.0, 50.0, 0.0, 99.9)] + [(p,) for p in exact]:
            ours = _deepmind_ranks(weights, starts, counts, percentiles, use_compiled=True)
            numpy = _deepmind_ranks(weights, starts, counts, percentiles, use_compiled=False)
            np.testing.assert_array_equal(ours, numpy)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
def test_compiled_segment_statistics_equal_numpys_to_the_bit():
    # DeepMind's rule: runs of table weights, lattice distances with many ties, a run of infinite distances
    # (no target surface), percentiles 0 to 100 and tolerances on lattice distances
    from segfuse.metrics import _surface_ranks
    from segfuse.metrics._surface_stats import DistanceConfig, segment_statistics
    from segfuse.metrics._surface_tables import deepmind_surfel_areas

    rng = np.random.default_rng(1)
    values = rng.random(300) * rng.choice([1.0, 1e7], 300)
    for start, count in ((0, 1), (3, 9), (10, 130), (20, 280)):
        expected = np.add.reduceat(values[start : start + count], [0])[0]
        assert _surface_ranks.reduceat_sum(values, start, count) == expected
    config = DistanceConfig("euclidean", "deepmind", (95.0, 50.0, 0.0, 100.0), (0.0, 1.0, 2.5), "search")
    for trial in range(20):
        table = deepmind_surfel_areas((0.7, 1.9) if trial % 2 else (0.85, 1.2, 0.9))
        counts = rng.integers(1, 400, int(rng.integers(1, 12)))
        keys = np.repeat(np.sort(rng.choice(1000, len(counts), replace=False)), counts)
        weights = rng.choice(table[table > 0], len(keys))
        distances = np.sqrt(rng.integers(0, 60, len(keys)) * 0.49 + rng.integers(0, 5, len(keys)) * 3.61)
        if trial % 4 == 0:
            distances[keys == keys[0]] = np.inf
        ours = segment_statistics(distances, weights, keys, config, use_compiled=True)
        numpy = segment_statistics(distances, weights, keys, config, use_compiled=False)
        for name in ("keys", "size", "distance_sum", "hausdorff", "percentile", "within"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(numpy, name))


@pytest.mark.parametrize(
    "target, pred, spacing",
    [
        ([[1, 1]] * 5, [[1, 0], [1, 0], [0, 0], [1, 0], [1, 1]], (1.0, 2.0)),  # truth's fraction is 0.75 exactly
        ([[0, 1], [0, 1]], [[0, 0], [1, 0]], (1.0, 2.0)),  # 0.5 exactly
    ],
)
def test_percentile_at_an_exact_cumulative_fraction_is_deepminds(target, pred, spacing):
    # cases where a cumulative surfel fraction equals p / 100 and the next distance differs: the index
    # DeepMind's searchsorted picks there depends on its own cumsum / sum arithmetic
    import surface_distance as sd

    target, pred = np.array(target), np.array(pred)
    stats = surface_statistics(torch.from_numpy(pred)[None], torch.from_numpy(target)[None], 2, spacing=spacing,
                               percentiles=(50.0, 75.0))
    with np.errstate(all="ignore"):
        reference = sd.compute_surface_distances(target == 1, pred == 1, spacing)
        for k, p in enumerate((50.0, 75.0)):
            assert float(stats.percentile[0, 1, k].amax()) == sd.compute_robust_hausdorff(reference, p)


@pytest.mark.parametrize("shape, spacing", [((37,), (0.7,)), ((13, 17), (0.7, 1.9)), ((7, 9, 8), (1.0, 1.0, 2.5))])
def test_exact_distance_transform_equals_scipy(shape, spacing):
    rng = np.random.default_rng(len(shape))
    features = rng.random(shape) < 0.08
    features.flat[0] = True
    value, nearest = exact_distance_transform(torch.from_numpy(features), "euclidean", spacing)
    expected = ndimage.distance_transform_edt(~features, sampling=spacing)
    np.testing.assert_allclose(np.sqrt(value.numpy()), expected, rtol=1e-12, atol=0)
    grid = np.indices(shape).reshape(len(shape), -1).T
    through_nearest = point_distances(grid, nearest.numpy().reshape(len(shape), -1).T, "euclidean", spacing, "deepmind")
    np.testing.assert_allclose(through_nearest, expected.reshape(-1), rtol=1e-12, atol=0)
    for metric in ("chessboard", "taxicab"):
        value = exact_distance_transform(torch.from_numpy(features), metric)[0]
        np.testing.assert_array_equal(value.numpy(), ndimage.distance_transform_cdt(~features, metric=metric))


def test_exact_distance_transform_without_features_is_infinite():
    value, nearest = exact_distance_transform(torch.zeros(4, 5, dtype=torch.bool))
    assert torch.isinf(value).all() and (nearest == -1).all()


def test_nearest_by_class_matches_only_the_same_image_and_class():
    # rows: image, y, x; keys: image * 3 + class (sorted)
    query = np.array([[0, 5, 5], [0, 0, 0], [1, 0, 0]])
    query_keys = np.array([1, 2, 4])
    features = np.array([[0, 0, 1], [0, 5, 9], [0, 0, 2], [1, 9, 9]])
    feature_keys = np.array([1, 1, 2, 4])
    for backend in ("search", "kdtree", "scipy", "torch"):
        nearest = nearest_by_class(query, query_keys, features, feature_keys, "euclidean", (1.0, 1.0), backend,
                                   key_base=3)
        assert nearest.tolist() == [[0, 5, 9], [0, 0, 2], [1, 9, 9]], backend


def test_streaming_equals_the_functional_api_and_counts_empty_cases():
    pred, target = random_maps(6, (16, 16), batch=4)
    pred[1][pred[1] == 2] = 0  # class 2 empty in one prediction
    target[2][target[2] == 3] = 0
    metric = SurfaceMetrics(num_classes=4, tolerances=(1.0, 2.0), empty="nan", class_names=["bg", "a", "b", "c"])
    metric.update(pred[:3], target[:3])
    metric.update(pred[3:], target[3:])
    summary = metric.compute()
    scores = surface_metrics(pred, target, 4, tolerances=(1.0, 2.0), empty="nan")
    for name, values in scores.values.items():
        expected = torch.tensor([np.nanmean(values[:, c].numpy()) if not torch.isnan(values[:, c]).all() else math.nan
                                 for c in range(4)], dtype=torch.float64)
        torch.testing.assert_close(summary.per_class[name], expected, equal_nan=True)
        assert summary.defined[name].tolist() == (~torch.isnan(values)).sum(0).tolist()
    assert summary.images.tolist() == [0, 4, 4, 4]
    assert summary.gt_empty.tolist() == scores.gt_empty.logical_and(~scores.pred_empty).sum(0).tolist()
    assert summary.pred_empty[2] >= 1 and summary.gt_empty[3] >= 1
    assert summary.to_dict()["class_names"] == ["bg", "a", "b", "c"]
    metric.reset()
    assert metric.sums.abs().sum() == 0 and metric.cases.sum() == 0


@pytest.mark.parametrize("definition", ["deepmind", "monai"])
@pytest.mark.parametrize("batch", [1, 11])
def test_two_threads_give_the_same_statistics(definition, batch):
    # with two torch threads: one image's two surfaces and two directions in two threads; a batch's chunks of
    # images in a pool (here two spacings: the chunks of each group, images not contiguous)
    pred, target = random_maps(11, (9, 10, 8), batch=batch)
    spacing = [(1.0, 0.7, 2.5) if i % 3 else (0.9, 1.0, 1.2) for i in range(batch)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = surface_statistics(pred, target, 4, spacing=spacing, definition=definition)
        torch.set_num_threads(2)
        two = surface_statistics(pred, target, 4, spacing=spacing, definition=definition)
    finally:
        torch.set_num_threads(before)
    assert bool((one.surface > 0).any())
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        assert torch.equal(getattr(one, name).nan_to_num(-1), getattr(two, name).nan_to_num(-1))


def test_statistics_merge_across_batches_and_survive_pickling():
    pred, target = random_maps(7, (12, 13), batch=3)
    whole = surface_statistics(pred, target, 4)
    parts = [pickle.loads(pickle.dumps(surface_statistics(pred[i : i + 1], target[i : i + 1], 4))) for i in range(3)]
    merged = SurfaceStatistics.concatenate(parts)
    for name in ("surface", "distance_sum", "hausdorff", "percentile", "within"):
        torch.testing.assert_close(getattr(merged, name), getattr(whole, name), equal_nan=True)
    streamed, direct = SurfaceMetrics(4), SurfaceMetrics(4)
    for part in parts:
        streamed.update_statistics(part)
    direct.update(pred, target)
    torch.testing.assert_close(streamed.compute().mean["hd95"], direct.compute().mean["hd95"])
    with pytest.raises(ValueError, match="percentiles"):
        SurfaceMetrics(4, percentiles=(90.0,)).update_statistics(whole)


def test_scores_as_pred_numpy_inputs_and_per_image_spacing():
    pred, target = random_maps(8, (10, 12), batch=2)
    scores = torch.nn.functional.one_hot(pred, 4).movedim(-1, 1).float() + 0.1 * torch.rand(2, 4, 10, 12)
    reference = surface_statistics(pred, target, 4)
    from_scores = surface_statistics(scores, target, 4)
    from_numpy = surface_statistics(pred.numpy(), target.numpy().astype(np.uint8), 4)
    for other in (from_scores, from_numpy):
        torch.testing.assert_close(other.distance_sum, reference.distance_sum)
    rows = surface_statistics(pred, target, 4, spacing=[(1.0, 2.0), (0.5, 0.5)])
    for i, spacing in enumerate([(1.0, 2.0), (0.5, 0.5)]):
        single = surface_statistics(pred[i : i + 1], target[i : i + 1], 4, spacing=spacing)
        torch.testing.assert_close(rows.distance_sum[i : i + 1], single.distance_sum)


def test_one_class_without_background_scores_nothing():
    target = torch.zeros(1, 5, 5, dtype=torch.long)
    scores = surface_metrics(target, target, 1)
    assert torch.isnan(scores["hd"]).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(definition="other"), ValueError, "definition"),
        (dict(distance_metric="chessboard"), ValueError, "distance_metric must be 'euclidean'"),
        (dict(definition="monai", distance_metric="cosine"), ValueError, "distance_metric"),
        (dict(percentiles=(101.0,)), ValueError, "percentiles"),
        (dict(percentiles=95), TypeError, "percentiles"),
        (dict(tolerances=(-1.0,)), ValueError, "tolerances"),
        (dict(empty="zero"), ValueError, "empty"),
        (dict(empty=-2.0), ValueError, "empty"),
        (dict(spacing=(1.0, 1.0, 1.0)), ValueError, "spacing"),
        (dict(spacing=(1.0, -1.0)), ValueError, "spacing"),
        (dict(spacing=[(1.0, 1.0)] * 3), ValueError, "spacing"),
        (dict(backend="gpu"), ValueError, "backend"),
        (dict(num_classes=2.5), TypeError, "num_classes"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, match):
    pred, target = random_maps(9, (6, 6))
    args = dict(num_classes=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        surface_metrics(pred, target, **args)


def test_bad_tensors_are_clear_errors():
    pred, target = random_maps(9, (6, 6))
    with pytest.raises(ValueError, match="same shape"):
        surface_statistics(pred[:, :5], target, 4)
    with pytest.raises(ValueError, match="2D or 3D"):
        surface_statistics(pred[:, 0], target[:, 0], 4)
    with pytest.raises(ValueError, match=r"target must hold labels in \[0, 3\)"):
        surface_statistics(pred % 3, torch.full_like(target, 3), 3)
    with pytest.raises(TypeError, match="target must hold integer"):
        surface_statistics(pred, target.float(), 4)
    with pytest.raises(TypeError, match="torch.Tensor or numpy"):
        surface_statistics(pred.tolist(), target, 4)
    with pytest.raises(ValueError, match="C=4 channels"):
        surface_statistics(torch.rand(2, 3, 6, 6), target, 4)
    with pytest.raises(ValueError, match="class_names"):
        SurfaceMetrics(4, class_names=["a"])
