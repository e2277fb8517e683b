"""Paired transforms move image and mask together and never interpolate a mask."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segfuse.train import AugmentedDataset, PairedTransform, SegmentationFolder
from segfuse.train.transforms import rescale
from tests.train.helpers import coded_pair, make_voc


def coded_tensors(seed=0, height=20, width=24, labels=(0, 1, 2)):
    image, mask = coded_pair(np.random.default_rng(seed), height, width, labels)
    return torch.from_numpy(image).permute(2, 0, 1).float(), torch.from_numpy(mask).long()


@pytest.mark.parametrize("seed", range(8))
def test_flip_and_crop_move_image_and_mask_together(seed):
    image, mask = coded_tensors(seed)
    out_image, out_mask = PairedTransform(crop_size=(11, 13), flip=True)(image, mask, np.random.default_rng(seed))
    assert out_image.shape == (3, 11, 13) and out_mask.shape == (11, 13)
    assert torch.equal(out_image[0].long(), out_mask * 40)
    # the green / blue channels give each output pixel's source column / row
    rows, cols = out_image[2].long(), out_image[1].long()
    assert torch.equal(mask[rows, cols], out_mask)


def test_flip_is_drawn_per_pair_and_both_ways():
    image, mask = coded_tensors()
    flipped = {bool(PairedTransform(flip=True)(image, mask, np.random.default_rng(s))[0][1, 0, 0] != 0)
               for s in range(16)}
    assert flipped == {True, False}


def test_rescale_uses_nearest_for_the_mask():
    image, mask = coded_tensors(labels=(0, 7, 200))
    out_image, out_mask = rescale(image, mask, 1.37)
    reference = F.interpolate(mask[None, None].float(), size=out_mask.shape, mode="nearest")[0, 0].long()
    assert torch.equal(out_mask, reference)
    assert set(out_mask.unique().tolist()) <= {0, 7, 200}
    # the image, bilinear, does take values between labels
    assert not set((out_image[0] / 40).unique().tolist()) <= {0.0, 7.0, 200.0}


@pytest.mark.parametrize("seed", range(4))
def test_random_scale_crop_keeps_mask_labels(seed):
    image, mask = coded_tensors(seed, labels=(0, 3, 9))
    transform = PairedTransform(crop_size=16, scale_range=(0.5, 2.0), mask_fill=255)
    _, out_mask = transform(image, mask, np.random.default_rng(seed))
    assert out_mask.shape == (16, 16) and set(out_mask.unique().tolist()) <= {0, 3, 9, 255}


def test_padding_fills_the_mask_with_ignore_index_or_refuses():
    image, mask = coded_tensors(height=8, width=8)
    out_image, out_mask = PairedTransform(crop_size=12, flip=False, mask_fill=255)(image, mask,
                                                                                   np.random.default_rng(0))
    assert torch.equal(out_mask[:8, :8], mask) and (out_mask[8:] == 255).all() and (out_image[:, 8:] == 0).all()
    with pytest.raises(ValueError, match="crop_size .* exceeds .* no ignore_index"):
        PairedTransform(crop_size=12)(image, mask, np.random.default_rng(0))


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="crop_size"):
        PairedTransform(crop_size=(0, 3))
    with pytest.raises(ValueError, match="scale_range"):
        PairedTransform(scale_range=(2.0, 1.0))
    image, mask = coded_tensors()
    with pytest.raises(ValueError, match="sizes must match"):
        PairedTransform()(image, mask[:-1], np.random.default_rng(0))


def test_augmented_folder_replays_an_epoch_exactly(tmp_path):
    root = make_voc(tmp_path / "voc", list("abcdef"), size=(20, 24), splits={"train": list("abcd"), "val": ["e", "f"]})
    dataset = AugmentedDataset(SegmentationFolder(root, "train", num_classes=3), PairedTransform(crop_size=10), seed=5)
    dataset.set_epoch(3)
    first = [dataset[i] for i in range(4)]
    dataset.set_epoch(4)
    other = [dataset[i] for i in range(4)]
    dataset.set_epoch(3)
    again = [dataset[i] for i in range(4)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    for image, mask, _ in first:
        assert torch.equal(torch.round(image[0] * 255).long(), mask * 40)
