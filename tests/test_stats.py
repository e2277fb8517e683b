"""The statistics core: class-map statistics equal the one-hot formulas, without a one-hot."""

import pytest
import torch
import torch.nn.functional as F

from segfuse import _stats


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int32, torch.int64])
def test_class_map_statistics_equal_onehot_sums(per_image, squared, label_dtype):
    generator = torch.Generator().manual_seed(3)
    probs = torch.softmax(torch.randn(3, 5, 4, 6, generator=generator, dtype=torch.float64), 1)
    labels = torch.randint(0, 5, (3, 4, 6), generator=generator)
    labels[0, :2] = 255
    valid = (labels != 255).unsqueeze(1).double()
    onehot = F.one_hot(labels.masked_fill(labels == 255, 0), 5).movedim(-1, 1).double() * valid
    p = probs * valid
    dims = (2, 3) if per_image else (0, 2, 3)
    expected = (
        (p * onehot).sum(dims),
        (p * p if squared else p).sum(dims),
        onehot.sum(dims),
    )
    stats = _stats.class_map_statistics(probs, labels.to(label_dtype), ignore_index=255, per_image=per_image,
                                        squared=squared)
    for actual, wanted in zip(stats, expected):
        torch.testing.assert_close(actual, wanted)
    torch.testing.assert_close(stats.fp, expected[1] - expected[0] if not squared else stats.ps - stats.tp)
    torch.testing.assert_close(stats.fn, expected[2] - expected[0])


def test_convention_per_image_shapes_and_accumulation_dtype():
    probs = torch.softmax(torch.randn(2, 3, 4, 4), 1).half()
    labels = torch.randint(0, 3, (2, 4, 4))
    batch = _stats.class_map_statistics(probs.float(), labels)
    per_image = _stats.class_map_statistics(probs.float(), labels, per_image=True)
    assert batch.tp.shape == (3,) and per_image.tp.shape == (2, 3)
    torch.testing.assert_close(per_image.tp.sum(0), batch.tp)
    terms = _stats.loss_terms(torch.randn(2, 3, 4, 4, dtype=torch.float16), labels, mode="multiclass", class_map=True,
                              want_ce=True)
    assert terms.stats.tp.dtype == torch.float32 and terms.ce_sum.dtype == torch.float32
    assert _stats.accumulation_dtype(torch.bfloat16) == torch.float32
    assert _stats.accumulation_dtype(torch.float64) == torch.float64


def test_overlap_index_covers_the_family():
    stats = _stats.OverlapStatistics(torch.tensor([3.0]), torch.tensor([5.0]), torch.tensor([4.0]))
    tp, fp, fn = 3.0, 2.0, 1.0
    dice = _stats.overlap_index(stats, tp_weight=2, fp_weight=1, fn_weight=1, smooth=0)
    jaccard = _stats.overlap_index(stats, tp_weight=1, fp_weight=1, fn_weight=1, smooth=0)
    tversky = _stats.overlap_index(stats, tp_weight=1, fp_weight=0.3, fn_weight=0.7, smooth=0)
    assert dice.item() == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert jaccard.item() == pytest.approx(tp / (tp + fp + fn))
    assert tversky.item() == pytest.approx(tp / (tp + 0.3 * fp + 0.7 * fn))
    empty = _stats.OverlapStatistics(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    assert _stats.overlap_index(empty, tp_weight=2, fp_weight=1, fn_weight=1, smooth=0).item() == 1.0
