import math

import pytest
import torch
from torchmetrics.classification import (
    MulticlassFBetaScore,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.segmentation import MeanIoU

from segfuse.metrics import SemanticMetrics, confusion_matrix, semantic_metrics, semantic_scores
from tests.metrics.test_confusion import random_maps


def torchmetrics_scores(pred, target, num_classes, ignore_index, beta):
    kwargs = dict(num_classes=num_classes, average=None, ignore_index=ignore_index)
    return {
        "iou": MulticlassJaccardIndex(**kwargs)(pred, target),
        "fscore": MulticlassFBetaScore(beta=beta, **kwargs)(pred, target),
        "precision": MulticlassPrecision(**kwargs)(pred, target),
        "recall": MulticlassRecall(**kwargs)(pred, target),
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_dataset_scores_equal_torchmetrics(seed, beta):
    num_classes = 7
    pred, target = random_maps(seed, (3, 16, 16), num_classes, ignore_index=255)
    target[target == 3] = 255  # class 3 never in the truth (but predicted)
    pred[pred == 5] = 4  # class 5 never predicted (but in the truth)
    metric = SemanticMetrics(num_classes, ignore_index=255, beta=beta)
    metric.update(pred[:1], target[:1])
    metric.update(pred[1:], target[1:])
    ours = metric.compute()
    theirs = torchmetrics_scores(pred, target, num_classes, 255, beta)
    for name, expected in theirs.items():
        torch.testing.assert_close(getattr(ours, name).float(), expected, rtol=1e-6, atol=1e-6)
    assert ours.iou[3] == 0 and ours.recall[3] == 0 and ours.precision[5] == 0


def test_classes_absent_from_truth_and_prediction_are_nan_and_left_out():
    pred, target = random_maps(1, (2, 10, 10), 4)
    metric = semantic_metrics(pred, target, num_classes=6)
    theirs = torchmetrics_scores(pred, target, 6, None, 1.0)
    for name in ("iou", "fscore", "precision", "recall"):
        scores = getattr(metric, name)
        assert torch.isnan(scores[4:]).all()
        torch.testing.assert_close(scores[:4].float(), theirs[name][:4])
    torch.testing.assert_close(metric.miou, metric.iou[:4].mean())
    torch.testing.assert_close(metric.macc, metric.recall[:4].mean())


@pytest.mark.parametrize("zero_division", [0, 1])
def test_zero_division_sets_undefined_values_and_they_enter_the_means(zero_division):
    pred, target = random_maps(2, (2, 10, 10), 3)
    result = semantic_metrics(pred, target, 5, zero_division=zero_division)
    for name in ("iou", "dice", "fscore", "precision", "recall"):
        assert (getattr(result, name)[3:] == zero_division).all()
    torch.testing.assert_close(result.miou, result.iou.mean())


def test_convention_absent_classes_and_zero_division():
    # class 0: hit; class 1: predicted but absent from the truth; class 2: missed; class 3: nowhere
    target = torch.tensor([[0, 0, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1]])
    result = semantic_metrics(pred, target, 4)
    assert result.iou[1] == 0 and result.recall[1] == 0 and result.precision[1] == 0
    assert result.iou[2] == 0 and result.precision[2] == 0 and result.recall[2] == 0
    assert math.isnan(result.iou[3]) and math.isnan(result.precision[3])
    assert result.miou == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert result.acc == pytest.approx(1 / 4)
    ones = semantic_metrics(pred, target, 4, zero_division=1)
    assert ones.iou[3] == 1 and ones.miou == pytest.approx((1 / 2 + 1) / 4)


def test_dice_and_global_scores_from_the_confusion_matrix():
    pred, target = random_maps(4, (2, 12, 12), 5, ignore_index=255)
    result = semantic_metrics(pred, target, 5, ignore_index=255)
    matrix = confusion_matrix(pred, target, 5, ignore_index=255).double()
    tp = matrix.diag()
    support, predicted = matrix.sum(1), matrix.sum(0)
    torch.testing.assert_close(result.dice, 2 * tp / (support + predicted))
    torch.testing.assert_close(result.acc, tp.sum() / matrix.sum())
    torch.testing.assert_close(result.fwiou, (support / support.sum() * tp / (support + predicted - tp)).sum())
    torch.testing.assert_close(result.macc, (tp / support).mean())


def test_empty_input_and_all_ignored():
    metric = SemanticMetrics(3, ignore_index=255)
    empty = metric.compute()
    assert torch.isnan(empty.miou) and torch.isnan(empty.acc) and empty.confusion_matrix.sum() == 0
    metric.update(torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), 255))
    assert torch.isnan(metric.compute().iou).all()
    zero = SemanticMetrics(3, zero_division=0).compute()
    assert zero.miou == 0 and zero.acc == 0


def per_image_reference(pred, target, num_classes):
    """torchmetrics MeanIoU(per_class=True): per-class mean over images where the class is present."""
    metric = MeanIoU(num_classes=num_classes, per_class=True, input_format="index")
    metric.update(pred, target)
    values = metric.compute()
    return torch.where(values == -1, torch.full_like(values, float("nan")), values)


@pytest.mark.parametrize("seed", range(3))
def test_per_image_iou_equals_torchmetrics_mean_iou(seed):
    num_classes = 5
    pred, target = random_maps(seed, (6, 12, 12), num_classes)
    target[0][target[0] == 1] = 0
    pred[0][pred[0] == 1] = 0  # class 1 absent from image 0 entirely: left out of its average
    pred[1][pred[1] == 4] = 2
    target[1][target[1] == 4] = 2
    pred[:, :, :][pred == 3] = 2
    target[target == 3] = 2  # class 3 absent from every image: NaN (torchmetrics -1)
    metric = SemanticMetrics(num_classes, per_image=True)
    metric.update(pred[:2], target[:2])
    metric.update(pred[2:], target[2:])
    ours = metric.compute()
    expected = per_image_reference(pred, target, num_classes)
    torch.testing.assert_close(ours.iou.float(), expected, equal_nan=True)
    torch.testing.assert_close(ours.miou.float(), torch.nanmean(expected))


def test_per_image_mean_equals_torchmetrics_pooled_mean_when_every_class_is_everywhere():
    num_classes = 3
    pred, target = random_maps(7, (4, 16, 16), num_classes)
    reference = MeanIoU(num_classes=num_classes, per_class=False, input_format="index")
    reference.update(pred, target)
    ours = semantic_metrics(pred, target, num_classes, per_image=True)
    torch.testing.assert_close(ours.miou.float(), reference.compute())


def test_convention_per_image_scores_average_per_image_results():
    pred, target = random_maps(5, (4, 8, 8), 4, ignore_index=255)
    ours = semantic_metrics(pred, target, 4, ignore_index=255, per_image=True, beta=2.0)
    images = [semantic_metrics(pred[i : i + 1], target[i : i + 1], 4, ignore_index=255, beta=2.0) for i in range(4)]
    for name in ("iou", "dice", "fscore", "precision", "recall"):
        stacked = torch.stack([getattr(image, name) for image in images])
        torch.testing.assert_close(getattr(ours, name), torch.nanmean(stacked, 0))
    torch.testing.assert_close(ours.acc, torch.stack([image.acc for image in images]).mean())


def test_per_image_zero_division_counts_undefined_images():
    target = torch.tensor([[0, 0], [1, 1]])
    pred = target.clone()
    nan_mode = semantic_metrics(pred, target, 2, per_image=True)
    assert nan_mode.iou.tolist() == [1.0, 1.0]
    zero_mode = semantic_metrics(pred, target, 2, per_image=True, zero_division=0)
    assert zero_mode.iou.tolist() == [0.5, 0.5]


def test_per_image_state_is_o_of_c():
    metric = SemanticMetrics(4, per_image=True)
    for seed in range(3):
        metric.update(*random_maps(seed, (5, 6, 6), 4))
    sizes = {name: tuple(value.shape) for name, value in metric.sums.items()}
    assert sizes == {"class_sums": (5, 4), "class_counts": (4,), "image_sums": (2,), "image_counts": (2,)}


def test_scores_input_reset_and_to_dict():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 5, 5, generator=generator)
    target = torch.randint(0, 3, (2, 5, 5), generator=generator)
    metric = SemanticMetrics(3, class_names=["sky", "road", "car"])
    metric.update(scores, target)
    result = metric.compute()
    assert torch.equal(result.confusion_matrix, confusion_matrix(scores.argmax(1), target, 3))
    data = result.to_dict()
    assert set(data["per_class"]) == {"sky", "road", "car"}
    assert data["miou"] == pytest.approx(float(result.miou))
    metric.reset()
    assert metric.compute().confusion_matrix.sum() == 0


def test_semantic_scores_batches_of_matrices_give_per_image_scores():
    pred, target = random_maps(8, (3, 9, 9), 4)
    matrices = torch.stack([confusion_matrix(pred[i], target[i], 4) for i in range(3)])
    batch = semantic_scores(matrices)
    assert batch.iou.shape == (3, 4) and batch.miou.shape == (3,)
    torch.testing.assert_close(batch.iou[1], semantic_scores(matrices[1]).iou)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_classes=0), ValueError, "num_classes"),
        (dict(num_classes=3, beta=0.0), ValueError, "beta must be > 0, got 0.0"),
        (dict(num_classes=3, zero_division=2), ValueError, "zero_division"),
        (dict(num_classes=3, class_names=["a"]), ValueError, "class_names must have num_classes=3 entries, got 1"),
        (dict(num_classes=3, ignore_index=1.5), TypeError, "ignore_index"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SemanticMetrics(**kwargs)


def test_update_confusion_checks_shape():
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        SemanticMetrics(3).update_confusion(torch.zeros(2, 2, dtype=torch.int64))
