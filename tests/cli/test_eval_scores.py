"""eval's numpy scores equal segfuse.metrics' (torch) on the same counts; misses are a phantom class.

eval scores its (C, C + 1) counts (last column: misses) with segfuse.metrics.scores on
numpy arrays; the helpers below are those call sites.
"""

import numpy as np
import pytest
import torch

from segfuse.metrics import SemanticMetrics, semantic_scores
from segfuse.metrics.scores import CLASS_SCORES, MEAN_NAMES, per_image_scores, per_image_sums

MEANS = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")


def eval_scores(counts, beta=1.0, class_names=None):
    """Scores of counts (..., C, C + 1) as eval computes them: the last column holds the misses."""
    counts = np.asarray(counts, dtype=np.int64)
    size = counts.shape[-2]
    return semantic_scores(counts[..., :size], beta, class_names=class_names, misses=counts[..., size])


def overlaps(counts):
    """Per-image TP, FP, FN (N, C) of counts (N, C, C + 1): misses are FN, not FP."""
    size = counts.shape[-2]
    tp = np.diagonal(counts[..., :size], axis1=-2, axis2=-1)
    return tp, counts[..., :size].sum(-2) - tp, counts.sum(-1) - tp


def per_image_average(counts, beta):
    """eval --per-image: the per-image sums of the images' counts (N, C, C + 1), averaged."""
    size = counts.shape[-2]
    total = counts.sum(0)
    return per_image_scores(per_image_sums(overlaps(counts), beta), total[:, :size], beta, misses=total[:, size])


def random_counts(rng, images: int, size: int) -> np.ndarray:
    counts = rng.integers(0, 30, (images, size, size))
    counts[:, 1] = 0  # a class absent from the truth
    counts[:, :, 2] = 0  # a class never predicted
    counts[:, 3] = 0
    counts[:, :, 3] = 0  # a class absent from both: undefined
    counts[0] = 0  # an image without valid pixels
    return counts


def assert_same(ours, theirs, names):
    for name in names:
        expected = getattr(theirs, name).numpy()
        assert np.allclose(getattr(ours, name), expected, rtol=0, atol=1e-12, equal_nan=True), name


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_convention_dataset_and_per_image_scores_equal_the_library(beta):
    rng = np.random.default_rng(0)
    counts = random_counts(rng, 6, 5)
    with_misses = np.concatenate([counts, np.zeros((6, 5, 1), dtype=counts.dtype)], axis=2)
    ours = eval_scores(with_misses.sum(0), beta)
    theirs = semantic_scores(torch.from_numpy(counts.sum(0)), beta=beta)
    assert_same(ours, theirs, (*CLASS_SCORES, *MEANS))
    # SPEC 4: undefined exactly when its own denominator is 0 (class 2 is never predicted: no precision)
    assert np.isnan(ours.iou[3]) and ours.iou[1] == 0 and np.isnan(ours.precision[2]) and ours.recall[2] == 0
    batch = eval_scores(with_misses, beta)
    assert_same(batch, semantic_scores(torch.from_numpy(counts), beta=beta), (*CLASS_SCORES, *MEANS))
    metric = SemanticMetrics(5, beta=beta, per_image=True)
    metric.update_confusion(torch.from_numpy(counts))
    averaged = per_image_average(with_misses, beta)
    assert_same(averaged, metric.compute(), (*CLASS_SCORES, *MEANS))


def test_convention_misses_count_as_a_never_true_phantom_class():
    """Pixels predicted as the ignore value: the library's scores with a phantom class C that is never true."""
    rng = np.random.default_rng(1)
    counts = random_counts(rng, 1, 4)[0] + 1
    misses = rng.integers(0, 20, 4)
    ours = eval_scores(np.concatenate([counts, misses[:, None]], axis=1))
    phantom = np.zeros((5, 5), dtype=np.int64)
    phantom[:4, :4], phantom[:4, 4] = counts, misses
    theirs = semantic_scores(torch.from_numpy(phantom))
    for name in CLASS_SCORES:
        assert np.allclose(getattr(ours, name), getattr(theirs, name).numpy()[:4], atol=1e-12, equal_nan=True), name
    assert ours.acc == pytest.approx(float(theirs.acc), abs=1e-12)
    assert ours.fwiou == pytest.approx(float(theirs.fwiou), abs=1e-12)
    assert ours.miou == pytest.approx(float(np.nanmean(theirs.iou.numpy()[:4])), abs=1e-12)
    assert ours.misses.tolist() == misses.tolist()
