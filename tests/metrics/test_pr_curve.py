import numpy as np
import pytest
import sklearn.metrics
import torch
from torchmetrics.classification import BinaryAveragePrecision, BinaryPrecisionRecallCurve, MulticlassAveragePrecision

from segfuse.metrics import BinaryPRCurve, average_precision, precision_recall_curve


def binary_data(seed, shape=(3, 20, 20), ties=False, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, shape, generator=generator)
    scores = torch.rand(shape, generator=generator, dtype=torch.float64) * 0.7 + 0.3 * target
    if ties:
        scores = (scores * 10).round() / 10
    return scores.to(dtype), target


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_exact_curve_and_ap_equal_sklearn(seed, ties):
    scores, target = binary_data(seed, ties=ties)
    curve = precision_recall_curve(scores, target)
    precision, recall, thresholds = sklearn.metrics.precision_recall_curve(target.reshape(-1), scores.reshape(-1))
    np.testing.assert_array_equal(curve.precision.numpy(), precision)
    np.testing.assert_array_equal(curve.recall.numpy(), recall)
    np.testing.assert_array_equal(curve.thresholds.numpy(), thresholds)
    expected = sklearn.metrics.average_precision_score(target.reshape(-1), scores.reshape(-1))
    assert float(average_precision(scores, target)) == pytest.approx(expected, rel=1e-12)


def test_exact_curve_with_ignored_pixels_equals_sklearn_on_the_rest():
    scores, target = binary_data(5)
    target[torch.rand(target.shape, generator=torch.Generator().manual_seed(1)) < 0.25] = 255
    keep = target.reshape(-1) != 255
    curve = precision_recall_curve(scores, target, ignore_index=255)
    expected = sklearn.metrics.precision_recall_curve(target.reshape(-1)[keep], scores.reshape(-1)[keep])
    for ours, theirs in zip(curve, expected):
        np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize("thresholds", [5, 11, 100])
@pytest.mark.parametrize("seed", range(2))
def test_binned_curve_and_ap_equal_torchmetrics(thresholds, seed):
    scores, target = binary_data(seed, dtype=torch.float32)
    scores[0, 0, :4] = torch.tensor([0.0, 0.25, 0.5, 1.0])  # on the grid: score >= threshold counts
    streaming = BinaryPRCurve(thresholds=thresholds)
    reference = BinaryPrecisionRecallCurve(thresholds=thresholds)
    for i in range(3):
        streaming.update(scores[i], target[i])
        reference.update(scores[i], target[i])
    ours, theirs = streaming.compute(), reference.compute()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.float(), b.float(), equal_nan=True)
    expected_ap = BinaryAveragePrecision(thresholds=thresholds)(scores, target)
    torch.testing.assert_close(streaming.average_precision().float(), expected_ap)
    torch.testing.assert_close(average_precision(scores, target, thresholds=thresholds).float(), expected_ap)
    assert streaming.counts.shape == (2, thresholds + 1)


def test_binned_with_a_threshold_tensor_and_undefined_precision():
    scores, target = binary_data(3, dtype=torch.float32)
    grid = torch.tensor([0.0, 0.3, 0.6, 0.99, 1.0])
    ours = precision_recall_curve(scores, target, thresholds=grid)
    theirs = BinaryPrecisionRecallCurve(thresholds=grid)(scores, target)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.float(), b.float(), equal_nan=True)
    assert torch.isnan(ours.precision[-2])  # nothing scores >= 1.0: 0/0


def test_streaming_exact_equals_one_shot():
    scores, target = binary_data(4)
    curve = BinaryPRCurve()
    curve.update(scores[:1], target[:1])
    curve.update(scores[1:], target[1:])
    for a, b in zip(curve.compute(), precision_recall_curve(scores, target)):
        assert torch.equal(a, b)
    curve.reset()
    with pytest.raises(ValueError, match="at least one"):
        curve.compute()


@pytest.mark.parametrize("thresholds", [None, 50])
def test_multiclass_one_vs_rest_ap(thresholds):
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 10, 10), generator=generator)
    target[target == 3] = 2  # class 3 has no positive pixel
    scores = torch.softmax(torch.randn(2, 4, 10, 10, generator=generator) + 2 * torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2), 1)
    target[0, 0] = 255
    per_class = average_precision(scores, target, thresholds=thresholds, ignore_index=255, average=None)
    keep = target.reshape(-1) != 255
    flat_scores = scores.permute(0, 2, 3, 1).reshape(-1, 4)[keep]
    flat_target = target.reshape(-1)[keep]
    for c in range(3):
        if thresholds is None:
            expected = sklearn.metrics.average_precision_score((flat_target == c).numpy(), flat_scores[:, c].numpy())
        else:
            expected = float(BinaryAveragePrecision(thresholds=thresholds)(flat_scores[:, c], (flat_target == c).long()))
        assert float(per_class[c]) == pytest.approx(expected, rel=1e-6)
    assert torch.isnan(per_class[3])
    macro = average_precision(scores, target, thresholds=thresholds, ignore_index=255)
    assert float(macro) == pytest.approx(float(per_class[:3].mean()))
    curves = precision_recall_curve(scores, target, thresholds=thresholds, ignore_index=255)
    assert len(curves) == 4


def test_convention_scores_at_threshold_are_positive_and_no_sigmoid():
    scores = torch.tensor([0.5, 0.5, 2.0])  # 2.0 is used as is, not squashed
    target = torch.tensor([1, 0, 1])
    curve = precision_recall_curve(scores, target, thresholds=torch.tensor([0.5, 1.5]))
    assert curve.precision.tolist()[:2] == [pytest.approx(2 / 3), 1.0]
    assert curve.recall.tolist()[:2] == [1.0, 0.5]


@pytest.mark.parametrize(
    "scores, target, kwargs, error, match",
    [
        (torch.rand(4), torch.tensor([0, 1, 2, 1]), {}, ValueError, r"target must hold values in \[0, 1\]"),
        (torch.rand(4), torch.tensor([0, 1, 1]), {}, ValueError, "same shape"),
        (torch.tensor([1, 0]), torch.tensor([0, 1]), {}, TypeError, "scores"),
        (torch.rand(4), torch.tensor([0, 1, 1, 0]), dict(thresholds=1), ValueError, "thresholds"),
        (torch.rand(4), torch.tensor([0, 1, 1, 0]), dict(thresholds=torch.zeros(2, 2)), ValueError, "thresholds"),
        (torch.rand(1, 3, 4), torch.tensor([[0, 5, 1, 0]]), {}, ValueError, r"\[0, 3\)"),
    ],
)
def test_bad_input(scores, target, kwargs, error, match):
    with pytest.raises(error, match=match):
        precision_recall_curve(scores, target, **kwargs)


@pytest.mark.parametrize("thresholds", [None, 20])
def test_convention_torchmetrics_multiclass_ap_scores_a_class_without_positives_zero_when_binned(thresholds):
    generator = torch.Generator().manual_seed(3)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)  # class 3 has no positive pixel
    scores = torch.softmax(torch.randn(2, 4, 8, 8, generator=generator), 1)
    ours = average_precision(scores, target, thresholds=thresholds, average=None, convention="torchmetrics")
    flat_scores, flat_target = scores.movedim(1, -1).reshape(-1, 4), target.reshape(-1)
    reference = MulticlassAveragePrecision(num_classes=4, thresholds=thresholds, average="none")
    expected = reference(flat_scores, flat_target)
    torch.testing.assert_close(ours.float(), expected, equal_nan=True)
    macro = average_precision(scores, target, thresholds=thresholds, convention="torchmetrics")
    expected_macro = MulticlassAveragePrecision(num_classes=4, thresholds=thresholds)(flat_scores, flat_target)
    torch.testing.assert_close(macro.float(), expected_macro)
    segfuse = average_precision(scores, target, thresholds=thresholds, average=None)
    assert torch.isnan(segfuse[3])  # segfuse: no positives, no AP, in both modes
    assert torch.isnan(ours[3]) if thresholds is None else ours[3] == 0
    with pytest.raises(ValueError, match="convention"):
        average_precision(scores, target, convention="mmseg")
