"""The VOC-layout reader: pairing, split lists and ratios, and clear errors for bad folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.train import SegmentationFolder
from tests.train.helpers import make_voc, write_mask

STEMS = ["a", "b", "c", "d", "e"]


def test_pairs_each_image_with_its_mask(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": ["a", "c", "e"], "val": ["b", "d"]})
    train = SegmentationFolder(root, "train", num_classes=3)
    assert train.stems == ["a", "c", "e"] and len(train) == 3
    for index in range(len(train)):
        image, mask, stem = train[index]
        assert image.shape == (3, 12, 16) and image.dtype == torch.float32 and mask.dtype == torch.int64
        # the red channel encodes the label: 40 * mask / 255
        assert torch.equal(torch.round(image[0] * 255 / 40).long(), mask)
        expected = np.asarray(Image.open(root / "SegmentationClass" / f"{stem}.png"))
        assert np.array_equal(mask.numpy(), expected)
    assert SegmentationFolder(root, "val").stems == ["b", "d"]


def test_reads_jpeg_images_and_palette_masks_as_indices(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": STEMS[:3], "val": STEMS[3:]}, image_suffix=".jpg")
    image, mask, _ = SegmentationFolder(root, "val", num_classes=3)[0]
    assert image.shape == (3, 12, 16) and set(mask.unique().tolist()) <= {0, 1, 2}


def test_split_ratio_is_seeded_disjoint_and_complete(tmp_path):
    root = make_voc(tmp_path / "voc", [f"s{i}" for i in range(10)])
    train = SegmentationFolder(root, "train", split_ratio=0.7, seed=3)
    val = SegmentationFolder(root, "val", split_ratio=0.7, seed=3)
    assert len(train) == 7 and len(val) == 3
    assert set(train.stems) | set(val.stems) == {f"s{i}" for i in range(10)}
    assert SegmentationFolder(root, "train", split_ratio=0.7, seed=3).stems == train.stems


def test_missing_mask_is_an_error_naming_the_image(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS)
    (root / "SegmentationClass" / "c.png").unlink()
    with pytest.raises(ValueError, match=r"c\.png.*no mask"):
        SegmentationFolder(root, "train", split_ratio=0.5)


def test_listed_stem_without_mask_is_an_error(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": ["a", "b", "zz"], "val": ["c", "d", "e"]})
    with pytest.raises(ValueError, match=r"'zz' listed in .*train\.txt has no image"):
        SegmentationFolder(root, "train")


def test_size_mismatch_is_an_error_naming_both_files(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": STEMS[:3], "val": STEMS[3:]})
    write_mask(root / "SegmentationClass" / "b.png", np.zeros((12, 15), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"b\.png is 16x12 \(WxH\) but its mask .*b\.png is 15x12"):
        SegmentationFolder(root, "train")


def test_mask_in_no_split_list_is_an_error(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": ["a", "b"], "val": ["c", "d"]})
    with pytest.raises(ValueError, match=r"1 mask\(s\) .* in no split list .*first: e\.png"):
        SegmentationFolder(root, "train")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    (tmp_path / "voc" / "SegmentationClass").mkdir()
    with pytest.raises(ValueError, match="no masks"):
        SegmentationFolder(tmp_path / "voc", "train", split_ratio=0.5)
    with pytest.raises(ValueError, match="expected a folder"):
        SegmentationFolder(tmp_path, "train", split_ratio=0.5)


def test_no_list_and_no_ratio_is_an_error(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS)
    with pytest.raises(ValueError, match="no split list .*split_ratio"):
        SegmentationFolder(root, "train")


def test_rgb_mask_and_out_of_range_labels_are_errors_naming_the_file(tmp_path):
    root = make_voc(tmp_path / "voc", STEMS, splits={"train": STEMS[:3], "val": STEMS[3:]}, labels=(0, 1, 2, 255))
    dataset = SegmentationFolder(root, "train", num_classes=3, ignore_index=255)
    assert dataset[0][1].max() == 255
    with pytest.raises(ValueError, match=r"a\.png has labels \[255\] outside \[0, 3\)"):
        SegmentationFolder(root, "train", num_classes=3)[0]
    Image.fromarray(np.zeros((12, 16, 3), dtype=np.uint8)).save(root / "SegmentationClass" / "d.png")
    with pytest.raises(ValueError, match=r"d\.png has mode RGB"):
        SegmentationFolder(root, "val", num_classes=3)[0]
