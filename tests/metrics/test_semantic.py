import math

import pytest
import torch
from monai.metrics import compute_generalized_dice
from torchmetrics.classification import (
    MulticlassFBetaScore,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)
from torchmetrics.segmentation import DiceScore, MeanIoU

from segfuse.metrics import (
    OverlapCounts,
    SemanticMetrics,
    confusion_matrix,
    generalized_dice_score,
    mask_overlap_counts,
    per_image_confusion_matrix,
    semantic_metrics,
    semantic_scores,
)
from segfuse.metrics.scores import MEAN_NAMES
from tests.metrics.test_confusion import random_maps


def torchmetrics_scores(pred, target, num_classes, ignore_index, beta, average=None):
    kwargs = dict(num_classes=num_classes, average=average, ignore_index=ignore_index)
    return {
        "iou": MulticlassJaccardIndex(**kwargs)(pred, target),
        "fscore": MulticlassFBetaScore(beta=beta, **kwargs)(pred, target),
        "precision": MulticlassPrecision(**kwargs)(pred, target),
        "recall": MulticlassRecall(**kwargs)(pred, target),
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_torchmetrics_convention_equals_torchmetrics(seed, beta):
    num_classes = 7
    pred, target = random_maps(seed, (3, 16, 16), num_classes, ignore_index=255)
    target[target == 3] = 255  # class 3 never in the truth (but predicted)
    pred[pred == 5] = 4  # class 5 never predicted (but in the truth)
    metric = SemanticMetrics(num_classes, ignore_index=255, beta=beta, convention="torchmetrics")
    metric.update(pred[:1], target[:1])
    metric.update(pred[1:], target[1:])
    ours = metric.compute()
    theirs = torchmetrics_scores(pred, target, num_classes, 255, beta)
    for name, expected in theirs.items():
        torch.testing.assert_close(getattr(ours, name).float(), expected, rtol=1e-6, atol=1e-6)
    macro = torchmetrics_scores(pred, target, num_classes, 255, beta, average="macro")
    for name, expected in macro.items():
        torch.testing.assert_close(getattr(ours, MEAN_NAMES[name]).float(), expected, rtol=1e-6, atol=1e-6)
    assert ours.iou[3] == 0 and ours.recall[3] == 0 and ours.precision[5] == 0
    assert ours.convention == "torchmetrics" and ours.to_dict()["convention"] == "torchmetrics"


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_default_scores_are_undefined_exactly_where_their_own_denominator_is_zero(beta):
    num_classes = 7
    pred, target = random_maps(3, (3, 16, 16), num_classes, ignore_index=255)
    target[target == 3] = 255  # class 3: predicted, absent from the truth
    pred[pred == 5] = 4  # class 5: in the truth, never predicted
    ours = semantic_metrics(pred, target, num_classes, ignore_index=255, beta=beta)
    theirs = torchmetrics_scores(pred, target, num_classes, 255, beta)
    assert math.isnan(ours.recall[3]) and math.isnan(ours.precision[5])
    assert ours.iou[3] == 0 and ours.dice[3] == 0 and ours.fscore[3] == 0 and ours.precision[3] == 0
    assert ours.iou[5] == 0 and ours.recall[5] == 0 and ours.fscore[5] == 0
    for name, expected in theirs.items():  # every defined score equals torchmetrics'
        defined = ~torch.isnan(getattr(ours, name))
        torch.testing.assert_close(getattr(ours, name)[defined].float(), expected[defined], rtol=1e-6, atol=1e-6)
    keep = [c for c in range(num_classes) if c != 3]
    torch.testing.assert_close(ours.mrecall, ours.recall[keep].mean())
    torch.testing.assert_close(ours.macc, ours.mrecall)
    torch.testing.assert_close(ours.miou, ours.iou.mean())


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
    assert result.iou[1] == 0 and result.dice[1] == 0 and result.precision[1] == 0
    assert math.isnan(result.recall[1])  # TP + FN = 0: its own denominator
    assert result.iou[2] == 0 and result.recall[2] == 0
    assert math.isnan(result.precision[2])  # TP + FP = 0
    assert math.isnan(result.iou[3]) and math.isnan(result.precision[3]) and math.isnan(result.recall[3])
    assert result.miou == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert result.mrecall == pytest.approx((1 / 2 + 0) / 2)  # class 1 left out
    assert result.mprecision == pytest.approx((1 + 0) / 2)  # class 2 left out
    assert result.acc == pytest.approx(1 / 4)
    ones = semantic_metrics(pred, target, 4, zero_division=1)
    assert ones.iou[3] == 1 and ones.recall[1] == 1 and ones.precision[2] == 1
    assert ones.miou == pytest.approx((1 / 2 + 1) / 4)
    assert ones.mrecall == pytest.approx((1 / 2 + 1 + 0 + 1) / 4)


def test_convention_named_conventions_change_only_their_rules():
    # class 0: hit; class 1: predicted, absent from the truth; class 2: missed; class 3: nowhere
    target = torch.tensor([[0, 0, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1]])
    segfuse, mmseg, detectron2, torchmetrics = (
        semantic_metrics(pred, target, 4, convention=name)
        for name in ("segfuse", "mmseg", "detectron2", "torchmetrics")
    )
    # mmseg: F from P and R, NaN where TP = 0 (classes 1 and 2); everything else as segfuse
    assert math.isnan(mmseg.fscore[1]) and math.isnan(mmseg.fscore[2]) and segfuse.fscore[2] == 0
    assert mmseg.mfscore == pytest.approx(2 / 3)  # class 0 only: P = 1, R = 1/2
    for name in ("iou", "dice", "precision", "recall"):
        torch.testing.assert_close(getattr(mmseg, name), getattr(segfuse, name), equal_nan=True)
    # detectron2: class 1 (absent from the truth) is left out of every score
    assert math.isnan(detectron2.iou[1]) and math.isnan(detectron2.precision[1])
    assert detectron2.miou == pytest.approx((1 / 2 + 0) / 2) and detectron2.fwiou == segfuse.fwiou
    # torchmetrics: 0 for 0/0, the class absent from both left out of the means
    assert torchmetrics.recall[1] == 0 and torchmetrics.precision[2] == 0 and math.isnan(torchmetrics.iou[3])
    assert torchmetrics.mrecall == pytest.approx((1 / 2 + 0 + 0) / 3)
    zero = semantic_metrics(pred, target, 4, convention="torchmetrics", zero_division=0)
    assert zero.iou[3] == 0 and zero.miou == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert {r.convention for r in (segfuse, mmseg, detectron2, torchmetrics)} == {
        "segfuse", "mmseg", "detectron2", "torchmetrics"}


def test_convention_monai_scores_each_image_and_leaves_empty_truth_out():
    target = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0]])
    pred = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0]])
    result = semantic_metrics(pred, target, 3, convention="monai")
    # image 0: class 1 predicted but absent from its truth -> undefined there; class 2 nowhere
    # image 1: IoU 0 = 2/3, 1 = 1/2
    assert result.per_image and result.per_image_average == "image"
    assert result.iou.tolist()[:2] == [pytest.approx((1 / 2 + 2 / 3) / 2), pytest.approx(1 / 2)]
    assert math.isnan(result.iou[2])
    assert result.miou == pytest.approx((1 / 2 + (2 / 3 + 1 / 2) / 2) / 2)  # images first
    with pytest.raises(ValueError, match="per_image=True"):
        SemanticMetrics(3, convention="monai", per_image=False)


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


def test_per_image_averages_equal_torchmetrics_mean_iou_and_dice_score():
    num_classes = 5
    pred, target = random_maps(11, (6, 12, 12), num_classes)
    target[0][target[0] == 1] = 0
    pred[0][pred[0] == 1] = 0  # class 1 absent from image 0
    target[1][target[1] == 4] = 2  # class 4 predicted in image 1, absent from its truth
    target[target == 3] = 2
    pred[pred == 3] = 2  # class 3 nowhere
    pooled = semantic_metrics(pred, target, num_classes, convention="torchmetrics", per_image=True)
    reference = MeanIoU(num_classes=num_classes, per_class=False, input_format="index")
    reference.update(pred, target)
    assert pooled.per_image_average == "pooled"
    torch.testing.assert_close(pooled.miou.float(), reference.compute())
    image_first = semantic_metrics(pred, target, num_classes, per_image=True, per_image_average="image")
    dice = DiceScore(num_classes=num_classes, average="macro", input_format="index")(pred, target)
    torch.testing.assert_close(image_first.mdice.float(), dice)


def test_convention_per_image_scores_average_per_image_results():
    pred, target = random_maps(5, (4, 8, 8), 4, ignore_index=255)
    ours = semantic_metrics(pred, target, 4, ignore_index=255, per_image=True, beta=2.0)
    images = [semantic_metrics(pred[i : i + 1], target[i : i + 1], 4, ignore_index=255, beta=2.0) for i in range(4)]
    for name in ("iou", "dice", "fscore", "precision", "recall"):
        stacked = torch.stack([getattr(image, name) for image in images])
        torch.testing.assert_close(getattr(ours, name), torch.nanmean(stacked, 0))
    torch.testing.assert_close(ours.acc, torch.stack([image.acc for image in images]).mean())
    assert ours.per_image_average == "class"
    torch.testing.assert_close(ours.miou, torch.nanmean(ours.iou))
    batch = semantic_scores(per_image_confusion_matrix(pred, target, 4, ignore_index=255), beta=2.0)
    for average, expected in (("image", torch.nanmean(batch.mfscore)), ("pooled", torch.nanmean(batch.fscore))):
        result = semantic_metrics(pred, target, 4, 255, beta=2.0, per_image=True, per_image_average=average)
        torch.testing.assert_close(result.mfscore, expected)


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
    assert sizes == {
        "class_sums": (5, 4), "class_counts": (5, 4), "image_sums": (7,), "image_counts": (7,), "num_images": ()
    }


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
        (dict(num_classes=3, convention="sklearn"), ValueError, "convention must be one of"),
        (dict(num_classes=3, per_image_average="image"), ValueError, "needs per_image=True"),
        (dict(num_classes=3, per_image=True, per_image_average="batch"), ValueError, "per_image_average"),
        (dict(num_classes=3, per_image="yes"), TypeError, "per_image"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SemanticMetrics(**kwargs)


def test_update_confusion_checks_shape():
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        SemanticMetrics(3).update_confusion(torch.zeros(2, 2, dtype=torch.int64))


# ---- input forms: one-hot masks and class maps with a singleton channel --------------------


def one_hot(labels, num_classes):
    return torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1)


def test_one_hot_masks_equal_their_class_maps():
    pred, target = random_maps(12, (3, 9, 9), 4)
    from_maps = semantic_metrics(pred, target, 4)
    from_masks = semantic_metrics(one_hot(pred, 4).float(), one_hot(target, 4), 4)
    for name in ("iou", "dice", "fscore", "precision", "recall", "miou", "acc", "fwiou"):
        torch.testing.assert_close(getattr(from_masks, name), getattr(from_maps, name), equal_nan=True)
    assert from_masks.confusion_matrix is None and from_masks.to_dict()["confusion_matrix"] is None
    per_image = semantic_metrics(one_hot(pred, 4).bool(), one_hot(target, 4).bool(), 4, convention="monai")
    torch.testing.assert_close(per_image.iou, semantic_metrics(pred, target, 4, convention="monai").iou, equal_nan=True)


def test_convention_multi_hot_masks_are_counted_channel_by_channel():
    pred = torch.tensor([[[1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]]])  # pixel 0 and 3 in both channels
    target = torch.tensor([[[1, 0, 0, 0], [0, 0, 1, 1]]])
    counts = mask_overlap_counts(pred, target)
    assert counts.tp.tolist() == [1, 1] and counts.fp.tolist() == [2, 1] and counts.fn.tolist() == [0, 1]
    metric = SemanticMetrics(2)
    metric.update(pred, target)
    assert metric.compute().iou.tolist() == [pytest.approx(1 / 3), pytest.approx(1 / 3)]
    with pytest.raises(ValueError, match="must hold 0 or 1"):
        metric.update(pred * 0.7, target)
    with pytest.raises(ValueError, match="ignore_index"):
        SemanticMetrics(2, ignore_index=255).update(pred, target)
    with pytest.raises(ValueError, match="mask_overlap_counts"):
        confusion_matrix(pred, target, 2)


def test_masks_and_class_maps_add_up_in_one_metric():
    pred, target = random_maps(13, (4, 6, 6), 3)
    metric = SemanticMetrics(3)
    metric.update(pred[:2], target[:2])
    metric.update(one_hot(pred[2:], 3).float(), one_hot(target[2:], 3))
    torch.testing.assert_close(metric.compute().iou, semantic_metrics(pred, target, 3).iou)


@pytest.mark.parametrize("per_image", [False, True])
def test_class_map_targets_with_a_singleton_channel_are_accepted(per_image):
    """Issue 11: (N, 1, H, W) class-map targets (as MONAI users pass them) used to be rejected."""
    generator = torch.Generator().manual_seed(14)
    scores = torch.randn(2, 4, 5, 5, generator=generator)
    target = torch.randint(0, 4, (2, 1, 5, 5), generator=generator)
    expected = semantic_metrics(scores, target[:, 0], 4, per_image=per_image)
    for pred in (scores, scores.argmax(1), scores.argmax(1, keepdim=True)):
        result = semantic_metrics(pred, target, 4, per_image=per_image)
        torch.testing.assert_close(result.iou, expected.iou, equal_nan=True)
        assert torch.equal(result.confusion_matrix, expected.confusion_matrix)
    metric = SemanticMetrics(4, per_image=per_image)
    metric.update(scores.argmax(1, keepdim=True), target[:, 0])
    torch.testing.assert_close(metric.compute().iou, expected.iou, equal_nan=True)


def test_thin_two_dimensional_maps_keep_their_meaning():
    # target (N, 1, W) with scores (N, C, 1, W) is a 2-D map one pixel high, not a channel
    scores = torch.randn(2, 3, 1, 6, generator=torch.Generator().manual_seed(15))
    target = torch.randint(0, 3, (2, 1, 6), generator=torch.Generator().manual_seed(16))
    assert torch.equal(confusion_matrix(scores, target, 3), confusion_matrix(scores.argmax(1), target, 3))


# ---- state: state_dict, load_state_dict, device ----------------------------------------------


@pytest.mark.parametrize("per_image", [False, True])
def test_state_dict_round_trip_resumes_exactly(per_image):
    """Issue 11: SemanticMetrics had no state_dict / load_state_dict."""
    pred, target = random_maps(17, (4, 8, 8), 5, ignore_index=255)
    full = SemanticMetrics(5, 255, beta=2.0, per_image=per_image)
    full.update(pred[:2], target[:2])
    full.update(pred[2:], target[2:])
    first = SemanticMetrics(5, 255, beta=2.0, per_image=per_image)
    first.update(pred[:2], target[:2])
    saved = first.state_dict()
    first.update(pred[:1], target[:1])  # later changes do not reach the saved copy
    resumed = SemanticMetrics(5, 255, beta=2.0, per_image=per_image)
    resumed.load_state_dict(saved)
    resumed.update(pred[2:], target[2:])
    ours, expected = resumed.compute(), full.compute()
    for name in ("iou", "fscore", "recall", "miou", "mfscore", "acc", "fwiou"):
        torch.testing.assert_close(getattr(ours, name), getattr(expected, name), equal_nan=True, rtol=0, atol=0)
    assert torch.equal(ours.confusion_matrix, expected.confusion_matrix)


def test_load_state_dict_rejects_other_settings():
    state = SemanticMetrics(3).state_dict()
    with pytest.raises(ValueError, match=r"state_dict\['confusion'\] must be a torch.int64 tensor of shape \(4, 4\)"):
        SemanticMetrics(4).load_state_dict(state)
    with pytest.raises(KeyError, match="missing"):
        SemanticMetrics(3, per_image=True).load_state_dict(state)


def test_device_argument_and_to_keep_the_state_there():
    """Issue 11: SemanticMetrics had no device argument and no .to()."""
    metric = SemanticMetrics(3, device="meta", per_image=True)
    assert metric.device == torch.device("meta")
    metric.update(*random_maps(18, (2, 4, 4), 3))  # CPU inputs: the counts go to the state's device
    assert {value.device.type for value in (metric.confusion, metric.mask_counts, *metric.sums.values())} == {"meta"}
    metric.reset()
    assert metric.confusion.device.type == "meta"
    moved = SemanticMetrics(3, per_image=True)
    moved.update(*random_maps(19, (2, 4, 4), 3))
    assert moved.to("meta") is moved and moved.device.type == "meta"
    assert {value.device.type for value in moved.state_dict().values()} == {"meta"}


# ---- generalized Dice score --------------------------------------------------------------------


@pytest.mark.parametrize("weight", ["square", "simple", "linear"])
def test_convention_generalized_dice_score_equals_monai_with_absent_classes(weight):
    generator = torch.Generator().manual_seed(20)
    pred = torch.randint(0, 2, (3, 4, 6, 6), generator=generator)
    target = torch.randint(0, 2, (3, 4, 6, 6), generator=generator)
    target[0, 1] = 0  # absent from image 0: infinite weight -> the image's largest finite weight
    target[2] = 0  # image 2 has no truth at all: every weight infinite -> 1
    ours = generalized_dice_score(mask_overlap_counts(pred.bool(), target.bool(), per_image=True), weight=weight)
    monai_weight = {"linear": "uniform"}.get(weight, weight)
    theirs = compute_generalized_dice(pred.float(), target.float(), weight_type=monai_weight, sum_over_classes=True)
    torch.testing.assert_close(ours.float(), theirs.reshape(-1))
    maps = generalized_dice_score(per_image_confusion_matrix(*random_maps(21, (2, 5, 5), 3), 3), weight=weight)
    assert maps.shape == (2,) and torch.isfinite(maps).all()


def test_generalized_dice_score_of_nothing_follows_zero_division():
    empty = OverlapCounts(*(torch.zeros(2, 3, dtype=torch.int64) for _ in range(3)))
    assert torch.isnan(generalized_dice_score(empty)).all()
    assert generalized_dice_score(empty, zero_division=1).tolist() == [1.0, 1.0]  # MONAI's value for 0/0
    with pytest.raises(ValueError, match="weight"):
        generalized_dice_score(empty, weight="cubic")


# ---- one scoring implementation: numpy math, torch at the boundary -----------------------------------


def test_scores_and_cityscapes_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import numpy as np\n"
        "import segfuse.metrics.scores as scores, segfuse.metrics.cityscapes\n"
        "result = scores.semantic_scores(np.array([[3, 1], [0, 2]]), misses=np.array([1, 0]))\n"
        "print('torch' in sys.modules, type(result.iou).__name__, result.recall.tolist())\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert output[:2] == ["False", "ndarray"]
    assert output[2:] == ["[0.6,", "1.0]"]  # class 0: TP 3, FN 1 + 1 miss


def test_convention_tensors_in_tensors_out_numpy_in_numpy_out():
    import numpy as np

    pred, target = random_maps(5, (4, 9, 9), 5)
    confusions = per_image_confusion_matrix(pred, target, 5)
    from_tensor = semantic_scores(confusions, beta=2.0, convention="mmseg")
    from_array = semantic_scores(confusions.numpy(), beta=2.0, convention="mmseg")
    for name in ("iou", "fscore", "recall", "miou", "acc", "fwiou"):
        tensor, array = getattr(from_tensor, name), getattr(from_array, name)
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64 and tensor.device == confusions.device
        assert isinstance(array, np.ndarray) and array.dtype == np.float64
        np.testing.assert_array_equal(tensor.numpy(), array)
    assert from_tensor.confusion_matrix is confusions
    counts = OverlapCounts(*(x.numpy() for x in mask_overlap_counts(
        torch.nn.functional.one_hot(pred, 5).movedim(-1, 1).float(), torch.nn.functional.one_hot(target, 5).movedim(-1, 1),
        per_image=True)))
    assert isinstance(generalized_dice_score(counts), np.ndarray)


def test_convention_misses_are_false_negatives_only():
    """misses= equals a phantom class C that is predicted but never true, restricted to the C real classes."""
    counts = torch.tensor([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    misses = torch.tensor([3, 0, 2])
    phantom = torch.zeros(4, 4, dtype=torch.int64)
    phantom[:3, :3], phantom[:3, 3] = counts, misses
    ours, theirs = semantic_scores(counts, misses=misses), semantic_scores(phantom)
    for name in ("iou", "dice", "precision", "recall"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name)[:3])
    torch.testing.assert_close(ours.acc, theirs.acc)
    assert ours.to_dict()["misses"] == [3, 0, 2]
    with pytest.raises(ValueError, match="misses must have the counts' shape"):
        semantic_scores(counts, misses=torch.tensor([1, 2]))


def test_lazy_namespace():
    import segfuse.metrics as metrics

    assert {"SemanticMetrics", "semantic_scores", "SurfaceMetrics", "compare_models"} <= set(dir(metrics))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        metrics.nothing  # noqa: B018
