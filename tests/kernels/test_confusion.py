"""Confusion-matrix kernel (segfuse.kernels.confusion) against torch.bincount of the
argmax: exact int64 counts, Triton interpreter."""

import pytest
import torch

from segfuse import kernels
from tests.kernels.helpers import make_labels

pytestmark = pytest.mark.usefixtures("interpreted_kernels")


def _reference(pred, target, num_classes, ignore_index):
    if pred.dtype.is_floating_point:
        pred = pred.argmax(1)
    truth, predicted = target.reshape(-1).long(), pred.reshape(-1).long()
    if ignore_index is not None:
        info = torch.iinfo(target.dtype)
        if info.min <= ignore_index <= info.max:
            keep = target.reshape(-1) != ignore_index
            truth, predicted = truth[keep], predicted[keep]
    return torch.bincount(truth * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)


@pytest.mark.parametrize("score_dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("num_classes, spatial, ignore_index, label_dtype", [
    (1, (13,), None, torch.int64),
    (3, (7, 9), None, torch.uint8),
    (21, (17, 13), 255, torch.uint8),
    (70, (9, 11), -1, torch.int64),       # C * C above the histogram size: the atomic path
    (150, (6, 5), 255, torch.int16),
    (4, (5, 6, 7), 255, torch.int32),
])
def test_scores_match_bincount_of_argmax(num_classes, spatial, ignore_index, label_dtype, score_dtype):
    generator = torch.Generator().manual_seed(num_classes)
    scores = torch.randn((2, num_classes, *spatial), generator=generator).to(score_dtype)
    scores[:, :, :2] = 0.5  # ties: the first maximum wins, as in torch.argmax
    target = make_labels((2, *spatial), num_classes, label_dtype, ignore_index)
    assert kernels.fused_confusion_available(scores, target, num_classes)
    counts = kernels.fused_confusion_matrix(scores, target, num_classes, ignore_index)
    assert counts.dtype == torch.int64 and counts.shape == (num_classes, num_classes)
    assert torch.equal(counts, _reference(scores, target, num_classes, ignore_index))


@pytest.mark.parametrize("num_classes, shape, ignore_index, dtypes", [
    (2, (3, 31), 255, (torch.uint8, torch.uint8)),
    (5, (2, 17, 19), None, (torch.int64, torch.int32)),
    (19, (2, 40, 33), 255, (torch.int64, torch.uint8)),
    (150, (2, 40, 20), -100, (torch.int16, torch.int64)),
    (300, (4, 50), None, (torch.int32, torch.int32)),
])
def test_class_map_matches_bincount(num_classes, shape, ignore_index, dtypes):
    pred = make_labels(shape, num_classes, dtypes[0], seed=3)
    target = make_labels(shape, num_classes, dtypes[1], ignore_index)
    counts = kernels.fused_confusion_matrix(pred, target, num_classes, ignore_index)
    assert torch.equal(counts, _reference(pred, target, num_classes, ignore_index))


def test_ignore_index_outside_dtype_ignores_nothing():
    """As segfuse.metrics.confusion: -1 does not wrap to 255 for uint8 targets."""
    target = torch.tensor([[0, 1, 255, 2]], dtype=torch.uint8)
    pred = torch.tensor([[0, 1, 1, 2]], dtype=torch.uint8)
    counts = kernels.fused_confusion_matrix(pred, target, 256, ignore_index=-1)
    assert counts.sum() == 4 and counts[255, 1] == 1


def test_all_ignored_is_all_zero():
    scores = torch.randn(2, 6, 5, 7)
    target = torch.full((2, 5, 7), 255, dtype=torch.uint8)
    counts = kernels.fused_confusion_matrix(scores, target, 6, 255)
    assert counts.shape == (6, 6) and torch.count_nonzero(counts) == 0
