import numpy as np
import pytest
import sklearn.metrics
import torch

from segfuse.metrics import confusion_matrix, per_image_confusion_matrix


def random_maps(seed, shape, num_classes, ignore_index=None, dtype=torch.int64, ignore_fraction=0.2):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=generator)
    pred = torch.randint(0, num_classes, shape, generator=generator)
    if ignore_index is not None:
        target[torch.rand(shape, generator=generator) < ignore_fraction] = ignore_index
    return pred.to(dtype), target.to(dtype)


def sklearn_confusion(pred, target, num_classes, ignore_index=None):
    pred, target = pred.reshape(-1).numpy(), target.reshape(-1).numpy()
    keep = np.ones_like(target, dtype=bool) if ignore_index is None else target != ignore_index
    return sklearn.metrics.confusion_matrix(target[keep], pred[keep], labels=list(range(num_classes)))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("shape", [(2, 17, 13), (3, 5, 6, 7), (40,)])
def test_confusion_equals_sklearn_with_ignored_pixels(seed, dtype, shape):
    num_classes = 2 + seed * 3
    pred, target = random_maps(seed, shape, num_classes, ignore_index=255 if dtype == torch.uint8 else -1, dtype=dtype)
    ignore = 255 if dtype == torch.uint8 else -1
    result = confusion_matrix(pred, target, num_classes, ignore_index=ignore)
    assert result.dtype == torch.int64
    np.testing.assert_array_equal(result.numpy(), sklearn_confusion(pred, target, num_classes, ignore))


@pytest.mark.parametrize("ignore_index", [255, -1, None])
def test_large_label_sets_take_the_direct_path_and_equal_sklearn(ignore_index):
    pred, target = random_maps(9, (2, 40, 40), 300, ignore_index=ignore_index, dtype=torch.int16)
    result = confusion_matrix(pred, target, 300, ignore_index=ignore_index)
    np.testing.assert_array_equal(result.numpy(), sklearn_confusion(pred, target, 300, ignore_index))
    pred[0, 0, 0] = 300
    target[0, 0, 0] = 0
    with pytest.raises(ValueError, match=r"pred must hold labels in \[0, 300\).*\[300\]"):
        confusion_matrix(pred, target, 300, ignore_index=ignore_index)


def test_scores_are_argmaxed():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 5, 8, 9, generator=generator)
    target = torch.randint(0, 5, (2, 8, 9), generator=generator)
    expected = sklearn_confusion(scores.argmax(1), target, 5)
    np.testing.assert_array_equal(confusion_matrix(scores, target, 5).numpy(), expected)


def test_per_image_matrices_sum_to_the_batch_matrix():
    pred, target = random_maps(3, (4, 9, 9), 6, ignore_index=255)
    per_image = per_image_confusion_matrix(pred, target, 6, ignore_index=255)
    assert per_image.shape == (4, 6, 6)
    for i in range(4):
        np.testing.assert_array_equal(per_image[i].numpy(), sklearn_confusion(pred[i], target[i], 6, 255))
    assert torch.equal(per_image.sum(0), confusion_matrix(pred, target, 6, ignore_index=255))


def test_convention_rows_are_truth_and_ignored_pixels_count_nowhere():
    target = torch.tensor([0, 0, 1, 255])
    pred = torch.tensor([1, 1, 1, 7])  # the prediction at an ignored pixel may be anything
    result = confusion_matrix(pred, target, 2, ignore_index=255)
    assert result[0, 1] == 2 and result[1, 1] == 1 and result.sum() == 3


def test_ignore_index_outside_the_dtype_does_not_wrap():
    target = torch.tensor([0, 1, 255], dtype=torch.uint8)
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(target.clone(), target, 2, ignore_index=-1)


@pytest.mark.parametrize(
    "pred, target, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), r"pred must hold labels in \[0, 3\).*\[3\]"),
        (torch.tensor([0, 1]), torch.tensor([0, 5]), r"target must hold labels in \[0, 3\).*\[5\]"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), r"pred.*\[-1\]"),
        (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), "same shape"),
        (torch.zeros(2, 4, 3), torch.tensor([[0, 1, 1], [0, 0, 0]]), r"\(N, C, \*S\)"),
    ],
)
def test_bad_input_names_argument_expected_and_actual(pred, target, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(pred, target, 3)


def test_bad_types():
    with pytest.raises(TypeError, match="target"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(TypeError, match="num_classes"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 0)


def test_all_ignored_gives_zero_counts():
    target = torch.full((2, 3), 255)
    assert confusion_matrix(torch.zeros(2, 3, dtype=torch.long), target, 4, ignore_index=255).sum() == 0
