"""torchmetrics' own segmentation test cases and doctests, ported: inputs, arguments, expected numbers.

Peer: Lightning-AI/torchmetrics v1.9.0 (the installed version):
tests/unittests/segmentation/test_mean_iou.py, test_dice.py and the doctests of
src/torchmetrics/functional/segmentation/{mean_iou,dice,generalized_dice}.py and
src/torchmetrics/segmentation/{mean_iou,dice,generalized_dice}.py. Doctests run after
``torch.manual_seed(42)`` (torchmetrics' src/conftest.py), as here. The harness is ours.

How torchmetrics' settings map onto segfuse:
- one-hot inputs: bool masks (segfuse reads integer tensors of equal shape as class maps);
  ``input_format="index"``: class maps, where a 2-D ``(H, W)`` input is one image
  (torchmetrics' ``_mean_iou_reshape_args``).
- per-sample outputs (functional API): ``semantic_scores`` of per-image counts.
- ``MeanIoU``: ``convention="torchmetrics"``, ``per_image=True`` (its ``per_image_average``
  is ``"pooled"``, MeanIoU's mean over every (image, class) with a union).
- ``DiceScore(aggregation_level="samplewise")``: ``per_image=True``; ``average="none"`` is the
  per-class vector, ``"macro"`` is ``per_image_average="image"``. ``"global"``: dataset-level
  scores (``per_image=False``).
- ``include_background=False``: the channels from 1 on.

Deliberate differences, asserted: torchmetrics reports a class absent from both truth and
prediction as -1 (MeanIoU) where segfuse reports NaN (STYLE.md: no -1 sentinels).
Not ported: DiceScore ``average="micro"`` / ``"weighted"`` (class-pooled or support-weighted
Dice per image, which segfuse does not offer): 4 + 4 parametrised cases of
test_samples_with_missing_classes / test_corner_case_zero_denominator and the ``micro`` lines
of the doctests; the random-input ``MetricTester`` classes (they compare with MONAI, which
tests/parity/test_monai_metrics.py and tests/metrics cover).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_generalized_dice
from torchmetrics.functional.segmentation import generalized_dice_score as torchmetrics_gds

from segfuse.metrics import (
    SemanticMetrics,
    generalized_dice_score,
    mask_overlap_counts,
    per_image_confusion_matrix,
    semantic_metrics,
    semantic_scores,
)

ATOL = 1e-4  # the doctests print 4 decimals; MetricTester's atol for MeanIoU


def close(actual, expected, atol=ATOL):
    np.testing.assert_allclose(torch.as_tensor(actual, dtype=torch.float64).numpy(), expected, atol=atol)


def per_image_masks(preds, target, **kwargs):
    """Scores (N, C) of each image of one-hot masks."""
    return semantic_scores(mask_overlap_counts(preds.bool(), target.bool(), per_image=True), **kwargs)


def per_image_maps(preds, target, num_classes, **kwargs):
    return semantic_scores(per_image_confusion_matrix(preds, target, num_classes), **kwargs)


def seeded_draws(*draws):
    """``torch.randint(0, high, shape)`` for each ``(high, shape)`` in turn after torch.manual_seed(42),
    leaving the caller's RNG state alone."""
    with torch.random.fork_rng():
        torch.manual_seed(42)
        return [torch.randint(0, high, shape) for high, shape in draws]


# ---- tests/unittests/segmentation/test_mean_iou.py --------------------------------------------------


def test_mean_iou_absent_class():
    """test_mean_iou_absent_class: a class absent from both is -1 in torchmetrics, NaN in segfuse."""
    target = torch.tensor([[0, 1], [1, 0]])
    preds = torch.tensor([[0, 1], [1, 0]])
    metric = SemanticMetrics(3, convention="torchmetrics", per_image=True)
    metric.update(preds[None], target[None])  # a 2-D index input is one image
    per_class = metric.compute().iou
    expected_ious = [1.0, 1.0, -1.0]
    assert per_class[:2].tolist() == expected_ious[:2] and torch.isnan(per_class[2])
    functional = per_image_maps(preds[None], target[None], 3, convention="torchmetrics").iou.mean(dim=0)
    assert functional[:2].tolist() == expected_ious[:2] and torch.isnan(functional[2])
    # "when reducing the nan is ignored and we dont get nan as output if class is absent"
    assert metric.compute().miou.item() == 1.0
    assert per_image_maps(preds[None], target[None], 3, convention="torchmetrics").miou.item() == 1.0


def test_mean_iou_perfect_prediction():
    """test_mean_iou_perfect_prediction: a (3, 2) index input (one image) -> [1, 1, 1]."""
    target = torch.tensor([[0, 1], [1, 0], [2, 2]])
    preds = target.clone()
    result = semantic_metrics(preds[None], target[None], 3, convention="torchmetrics", per_image=True)
    assert result.iou.tolist() == [1.0, 1.0, 1.0]


# ---- doctests: functional/segmentation/mean_iou.py and segmentation/mean_iou.py ---------------------


def test_mean_iou_functional_doctest():
    """functional mean_iou: 4 samples, 5 classes, 16 x 16, one-hot then index inputs."""
    preds = torch.randint(0, 2, (4, 5, 16, 16), generator=torch.Generator().manual_seed(42))
    target = torch.randint(0, 2, (4, 5, 16, 16), generator=torch.Generator().manual_seed(43))
    close(per_image_masks(preds, target).miou, [0.3323, 0.3336, 0.3397, 0.3435])
    close(per_image_masks(preds[:, 1:], target[:, 1:]).miou, [0.3250, 0.3258, 0.3307, 0.3398])
    close(per_image_masks(preds, target).iou, [
        [0.3617, 0.3128, 0.3366, 0.3242, 0.3263],
        [0.3646, 0.2893, 0.3297, 0.3073, 0.3770],
        [0.3756, 0.3168, 0.3505, 0.3400, 0.3155],
        [0.3579, 0.3317, 0.3797, 0.3523, 0.2957],
    ])
    preds = torch.randint(0, 2, (4, 16, 16), generator=torch.Generator().manual_seed(42))
    target = torch.randint(0, 2, (4, 16, 16), generator=torch.Generator().manual_seed(43))
    close(per_image_maps(preds, target, 5).miou, [0.3617, 0.3128, 0.3047, 0.3499])
    per_class = per_image_maps(preds, target, 5).iou
    close(per_class[:, :2], [[0.3617, 0.3617], [0.3128, 0.3128], [0.2727, 0.3366], [0.3756, 0.3242]])
    assert torch.isnan(per_class[:, 2:]).all()  # torchmetrics: -1.0000


def test_mean_iou_class_doctest():
    """MeanIoU: 10 samples, 3 classes, 128 x 128."""
    preds = torch.randint(0, 2, (10, 3, 128, 128), generator=torch.Generator().manual_seed(42))
    target = torch.randint(0, 2, (10, 3, 128, 128), generator=torch.Generator().manual_seed(43))

    def mean_iou(p, t, **kwargs):
        metric = SemanticMetrics(p.shape[1], convention="torchmetrics", per_image=True, **kwargs)
        metric.update(p, t)
        return metric.compute()

    close(mean_iou(preds.bool(), target.bool()).miou, 0.3336)
    close(mean_iou(preds.bool(), target.bool()).iou, [0.3361, 0.3340, 0.3308])
    close(mean_iou(preds[:, 1:].bool(), target[:, 1:].bool()).iou, [0.3340, 0.3308])
    index = SemanticMetrics(3, convention="torchmetrics", per_image=True)
    index.update(preds, target)  # input_format="index": the 0/1 tensors read as class maps
    per_class = index.compute().iou
    close(per_class[:2], [0.3334, 0.3336])
    assert torch.isnan(per_class[2])  # torchmetrics: -1.0000


# ---- tests/unittests/segmentation/test_dice.py ---------------------------------------------------------


def missing_classes_inputs():
    """test_samples_with_missing_classes: 3 samples, 4 classes, 10 x 10."""
    num_samples, num_classes = 3, 4
    target = torch.full((num_samples, num_classes, 10, 10), 0, dtype=torch.int8)
    preds = torch.full((num_samples, num_classes, 10, 10), 0, dtype=torch.int8)
    # sample with class 1 & 3
    target[0, 1, :4, :4], preds[0, 1, :2, :2] = 1, 1
    target[0, 3, 4:, 4:], preds[0, 3, 8:, 8:] = 1, 1
    # sample with only background and false positives
    preds[1, 3, :2, :2] = 1
    return preds.bool(), target.bool()


@pytest.mark.parametrize(
    ("average", "aggregation_level", "expected_score"),
    [
        ("macro", "samplewise", 0.15),
        ("none", "samplewise", [torch.nan, 0.4, torch.nan, 0.1]),
        ("macro", "global", 0.2909),
        ("none", "global", [torch.nan, 0.4, torch.nan, 0.1818]),
    ],
)
def test_samples_with_missing_classes(average, aggregation_level, expected_score):
    """test_samples_with_missing_classes (4 of 8: micro and weighted are not offered)."""
    preds, target = missing_classes_inputs()
    if aggregation_level == "samplewise":
        metric = SemanticMetrics(4, per_image=True, per_image_average="image")
    else:
        metric = SemanticMetrics(4)
    metric.update(preds, target)
    result = metric.compute()
    score = result.mdice if average == "macro" else result.dice
    assert torch.allclose(score.float(), torch.tensor(expected_score), equal_nan=True, atol=1e-4)


@pytest.mark.parametrize("average", ["macro", None])
@pytest.mark.parametrize("aggregation_level", ["samplewise", "global"])
def test_corner_case_zero_denominator(aggregation_level, average):
    """test_corner_case_zero_denominator (4 of 8): all-zero masks -> NaN."""
    num_classes = 3
    target = torch.full((4, num_classes, 128, 128), 0, dtype=torch.int8)
    preds = torch.full((4, num_classes, 128, 128), 0, dtype=torch.int8)
    per_image = aggregation_level == "samplewise"
    result = semantic_metrics(preds.bool(), target.bool(), num_classes, per_image=per_image,
                              per_image_average="image" if per_image else None)
    if average is None:
        assert len(result.dice) == num_classes
        assert all(t.isnan() for t in result.dice)
    else:
        assert result.mdice.isnan()


# ---- doctests: functional/segmentation/dice.py and segmentation/dice.py -------------------------------


def test_dice_score_functional_doctest():
    """functional dice_score, one-hot and index examples (each after torch.manual_seed(42))."""
    preds, target = seeded_draws((2, (4, 5, 16, 16)), (2, (4, 5, 16, 16)))
    close(per_image_masks(preds, target).dice, [
        [0.4724, 0.5185, 0.4710, 0.5062, 0.4500],
        [0.4571, 0.4980, 0.5191, 0.4380, 0.5649],
        [0.5428, 0.4904, 0.5358, 0.4830, 0.4724],
        [0.4715, 0.4925, 0.4797, 0.5267, 0.4788],
    ])
    close(semantic_metrics(preds.bool(), target.bool(), 5).mdice, 0.4942)  # macro, global
    preds, target = seeded_draws((5, (4, 16, 16)), (5, (4, 16, 16)))
    close(per_image_maps(preds, target, 5).dice, [
        [0.1731, 0.1667, 0.2400, 0.2424, 0.1947],
        [0.2245, 0.2247, 0.2321, 0.1132, 0.1682],
        [0.2500, 0.2476, 0.1887, 0.1818, 0.2718],
        [0.1308, 0.1800, 0.1980, 0.1607, 0.1522],
    ])
    close(semantic_metrics(preds, target, 5).mdice, 0.1965)  # macro, global


def test_dice_score_class_doctest():
    """DiceScore(num_classes=5, average="none"): samplewise, then the mean over samples."""
    preds, target = seeded_draws((2, (4, 5, 16, 16)), (2, (4, 5, 16, 16)))
    result = semantic_metrics(preds.bool(), target.bool(), 5, per_image=True)
    close(result.dice, [0.4860, 0.4999, 0.5014, 0.4885, 0.4915])


# ---- doctests: generalized Dice score ----------------------------------------------------------------


def test_generalized_dice_score_functional_doctest():
    """functional generalized_dice_score: one-hot, then index inputs (one docstring: one seed)."""
    preds, target, index_preds, index_target = seeded_draws(
        (2, (4, 5, 16, 16)), (2, (4, 5, 16, 16)), (5, (4, 16, 16)), (5, (4, 16, 16))
    )
    counts = mask_overlap_counts(preds.bool(), target.bool(), per_image=True)
    close(generalized_dice_score(counts), [0.4830, 0.4935, 0.5044, 0.4880])
    close(semantic_scores(counts).dice, [  # per_class=True: the plain Dice of each class
        [0.4724, 0.5185, 0.4710, 0.5062, 0.4500],
        [0.4571, 0.4980, 0.5191, 0.4380, 0.5649],
        [0.5428, 0.4904, 0.5358, 0.4830, 0.4724],
        [0.4715, 0.4925, 0.4797, 0.5267, 0.4788],
    ])
    confusions = per_image_confusion_matrix(index_preds, index_target, 5)
    close(generalized_dice_score(confusions), [0.1991, 0.1971, 0.2350, 0.2216])
    close(semantic_scores(confusions).dice, [
        [0.1714, 0.2500, 0.1304, 0.2524, 0.2069],
        [0.1837, 0.2162, 0.0962, 0.2692, 0.1895],
        [0.3866, 0.1348, 0.2526, 0.2301, 0.2083],
        [0.1978, 0.2804, 0.1714, 0.1915, 0.2783],
    ])


def test_generalized_dice_score_class_doctest():
    """GeneralizedDiceScore(num_classes=3): the mean over samples of each sample's score."""
    preds, target = seeded_draws((2, (10, 3, 128, 128)), (2, (10, 3, 128, 128)))
    counts = mask_overlap_counts(preds.bool(), target.bool(), per_image=True)
    close(generalized_dice_score(counts).mean(), 0.4992)
    result = semantic_metrics(preds.bool(), target.bool(), 3, per_image=True)  # per_class=True
    close(result.dice, [0.5001, 0.4993, 0.4982])
    no_background = semantic_metrics(preds[:, 1:].bool(), target[:, 1:].bool(), 2, per_image=True)
    close(no_background.dice, [0.4993, 0.4982])


def test_generalized_dice_with_absent_classes_follows_monai_not_torchmetrics():
    """Documented difference: an absent class's infinite weight takes its image's largest finite weight
    (MONAI); torchmetrics 1.9 indexes that replacement transposed, so its numbers differ here."""
    generator = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 2, (3, 4, 8, 8), generator=generator)
    target = torch.randint(0, 2, (3, 4, 8, 8), generator=generator)
    target[0, 1] = 0
    target[2, 3] = 0
    ours = generalized_dice_score(mask_overlap_counts(preds.bool(), target.bool(), per_image=True))
    monai = compute_generalized_dice(preds.float(), target.float(), sum_over_classes=True).reshape(-1)
    torch.testing.assert_close(ours.float(), monai)
    theirs = torchmetrics_gds(preds, target, num_classes=4)
    assert not torch.allclose(ours.float(), theirs, atol=1e-3)
    torch.testing.assert_close(ours[1].float(), theirs[1])  # image 1 has every class: no replacement
