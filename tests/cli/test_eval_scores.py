"""eval's numpy scores equal segfuse.metrics' (torch) on the same counts; misses are a phantom class."""

import numpy as np
import pytest
import torch

from segfuse.cli.eval_scores import CLASS_SCORES, MEAN_NAMES, eval_scores, per_image_average, per_image_sums
from segfuse.metrics import SemanticMetrics, semantic_scores

MEANS = (*MEAN_NAMES.values(), "acc", "macc", "fwiou")


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
    assert np.isnan(ours.iou[3]) and ours.iou[1] == 0 and ours.precision[2] == 0
    batch = eval_scores(with_misses, beta)
    assert_same(batch, semantic_scores(torch.from_numpy(counts), beta=beta), (*CLASS_SCORES, *MEANS))
    metric = SemanticMetrics(5, beta=beta, per_image=True)
    metric.update_confusion(torch.from_numpy(counts))
    averaged = per_image_average(per_image_sums(batch), with_misses.sum(0), beta)
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
