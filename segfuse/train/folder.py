"""A segmentation dataset in Pascal VOC layout::

    root/JPEGImages/<stem>.jpg|.jpeg|.png          RGB (or grey) images
    root/SegmentationClass/<stem>.png              class-index masks (palette P, L or 16-bit)
    root/ImageSets/Segmentation/train.txt, val.txt one stem per line (optional)

Without split lists, ``split_ratio`` sends a seeded shuffle of the stems to train / val.
Items are (image float32 (3, H, W) in [0, 1], mask int64 (H, W), stem). Every problem in
the folder is a ValueError naming the file: a missing image or mask, a listed stem with no
files, a mask in no split list, image and mask sizes that differ, an RGB mask, labels
outside [0, num_classes) other than ``ignore_index``, an empty folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_DIR, MASK_DIR, LIST_DIR = "JPEGImages", "SegmentationClass", Path("ImageSets") / "Segmentation"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_MODES = ("P", "L", "I;16", "I")


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"expected a folder {folder}, but it does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in files:
            raise ValueError(f"two files share the stem {path.stem!r}: {files[path.stem].name} and {path.name}")
        files[path.stem] = path
    return files


def _read_list(path: Path) -> list[str]:
    stems = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not stems:
        raise ValueError(f"split list {path} is empty")
    return stems


def _split_by_ratio(stems: list[str], split: str, ratio: float, seed: int) -> list[str]:
    if not 0 < ratio < 1:
        raise ValueError(f"split_ratio must be in (0, 1), got {ratio}")
    order = np.random.default_rng(seed).permutation(len(stems))
    count = int(round(ratio * len(stems)))
    if count in (0, len(stems)):
        raise ValueError(f"split_ratio={ratio} of {len(stems)} samples leaves the train or val split empty")
    chosen = order[:count] if split == "train" else order[count:]
    return [stems[i] for i in sorted(chosen)]


def read_mask(path: Path) -> np.ndarray:
    """A class-index PNG as int64 (H, W); RGB or other colour masks are rejected."""
    with Image.open(path) as mask:
        if mask.mode not in MASK_MODES:
            raise ValueError(f"mask {path} has mode {mask.mode}; expected a class-index PNG (modes {MASK_MODES})")
        return np.asarray(mask).astype(np.int64)


def read_image(path: Path) -> np.ndarray:
    """An image as float32 (3, H, W) in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


class SegmentationFolder(Dataset):
    """The ``split`` ("train" or "val") of a VOC-layout folder; see the module docstring.

    Args:
        root: the folder holding JPEGImages/, SegmentationClass/ (and ImageSets/Segmentation/).
        split: which list (``<split>.txt``) or which side of ``split_ratio``.
        split_ratio: fraction of stems for "train" when the folder has no split lists.
        seed: seed of the ``split_ratio`` shuffle.
        num_classes: when given, mask labels outside [0, num_classes) other than
            ``ignore_index`` raise a ValueError naming the file.
        ignore_index: the label of ignored pixels (e.g. 255 for VOC boundaries).
    """

    def __init__(self, root, split: str = "train", *, split_ratio: Optional[float] = None, seed: int = 0,
                 num_classes: Optional[int] = None, ignore_index: Optional[int] = None):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise ValueError(f"dataset root {self.root} is not a folder")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        images = _files_by_stem(self.root / IMAGE_DIR, IMAGE_SUFFIXES)
        masks = _files_by_stem(self.root / MASK_DIR, (".png",))
        if not masks:
            raise ValueError(f"no masks (.png) found in {self.root / MASK_DIR}")
        stems = self._stems(images, masks, split_ratio, seed)
        self.images, self.masks = [images[s] for s in stems], [masks[s] for s in stems]
        self.stems = stems
        self.sizes = [self._checked_size(image, mask) for image, mask in zip(self.images, self.masks)]

    def _stems(self, images: dict, masks: dict, split_ratio: Optional[float], seed: int) -> list[str]:
        list_dir = self.root / LIST_DIR
        list_path = list_dir / f"{self.split}.txt"
        if list_path.is_file():
            stems = _read_list(list_path)
            self._check_listed(stems, images, masks, list_path)
            self._check_unlisted(masks, list_dir)
            return stems
        if split_ratio is None:
            raise ValueError(f"no split list {list_path}; add it or pass a split_ratio (e.g. 0.8)")
        for stem in masks:
            if stem not in images:
                raise ValueError(f"mask {masks[stem]} has no image {stem}.jpg/.png in {self.root / IMAGE_DIR}")
        for stem in images:
            if stem not in masks:
                raise ValueError(f"image {images[stem]} has no mask {stem}.png in {self.root / MASK_DIR}")
        return _split_by_ratio(sorted(masks), self.split, split_ratio, seed)

    def _check_listed(self, stems: list[str], images: dict, masks: dict, list_path: Path) -> None:
        for stem in stems:
            if stem not in images:
                raise ValueError(f"{stem!r} listed in {list_path} has no image {stem}.jpg/.png in "
                                 f"{self.root / IMAGE_DIR}")
            if stem not in masks:
                raise ValueError(f"{stem!r} listed in {list_path} has no mask {stem}.png in {self.root / MASK_DIR}")

    def _check_unlisted(self, masks: dict, list_dir: Path) -> None:
        listed = {stem for path in sorted(list_dir.glob("*.txt")) for stem in _read_list(path)}
        unlisted = sorted(set(masks) - listed)
        if unlisted:
            raise ValueError(f"{len(unlisted)} mask(s) in {self.root / MASK_DIR} are in no split list of {list_dir} "
                             f"(first: {masks[unlisted[0]].name}); list them or remove them")

    @staticmethod
    def _checked_size(image_path: Path, mask_path: Path) -> tuple[int, int]:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size != mask.size:
                raise ValueError(f"image {image_path} is {image.size[0]}x{image.size[1]} (WxH) but its mask "
                                 f"{mask_path} is {mask.size[0]}x{mask.size[1]}")
            return image.size[1], image.size[0]

    def __len__(self) -> int:
        return len(self.stems)

    def _check_labels(self, mask: np.ndarray, path: Path) -> None:
        if self.num_classes is None:
            return
        bad = (mask < 0) | (mask >= self.num_classes)
        if self.ignore_index is not None:
            bad &= mask != self.ignore_index
        if bad.any():
            raise ValueError(f"mask {path} has labels {sorted(np.unique(mask[bad]).tolist())[:5]} outside "
                             f"[0, {self.num_classes}) (ignore_index={self.ignore_index})")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        mask = read_mask(self.masks[index])
        self._check_labels(mask, self.masks[index])
        image = read_image(self.images[index])
        return torch.from_numpy(image), torch.from_numpy(mask), self.stems[index]
