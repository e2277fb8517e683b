"""Paired geometric transforms: one random draw moves an image and its mask together.

Images are float (C, H, W), masks integer (H, W). Masks are only ever indexed (flipped,
cropped, padded, resized with nearest-neighbour): a mask value is never interpolated, so
every output label is an input label (or ``mask_fill`` in padding).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def hflip(image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror both along the width."""
    return image.flip(-1), mask.flip(-1)


def rescale(image: Tensor, mask: Tensor, factor: float) -> tuple[Tensor, Tensor]:
    """Resize both by ``factor``: the image bilinearly, the mask by nearest neighbour."""
    size = [max(1, round(side * factor)) for side in mask.shape[-2:]]
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].to(mask.dtype)
    return image, mask


def pad_to(image: Tensor, mask: Tensor, size: tuple[int, int], mask_fill: Optional[int]) -> tuple[Tensor, Tensor]:
    """Pad bottom and right to at least ``size``: image with 0, mask with ``mask_fill``."""
    height, width = mask.shape[-2:]
    pad = (0, max(0, size[1] - width), 0, max(0, size[0] - height))
    if pad == (0, 0, 0, 0):
        return image, mask
    if mask_fill is None:
        raise ValueError(f"crop_size {tuple(size)} exceeds the mask size ({height}, {width}) and there is no "
                         f"ignore_index to fill the padding: pass a smaller crop_size or an ignore_index")
    return F.pad(image, pad, value=0.0), F.pad(mask, pad, value=mask_fill)


def crop(image: Tensor, mask: Tensor, top: int, left: int, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The window [top, top + h) x [left, left + w) of both."""
    rows, cols = slice(top, top + size[0]), slice(left, left + size[1])
    return image[..., rows, cols], mask[rows, cols]


class PairedTransform:
    """Random scale, pad, crop and horizontal flip, drawn once per (image, mask) pair.

    Args:
        crop_size: (h, w) or int of the output; None keeps the (rescaled) size.
        flip: mirror with probability 1/2.
        scale_range: (low, high) of a uniform rescale factor; None keeps the size.
        mask_fill: mask value of padding (the ignore_index); None forbids padding.
    """

    def __init__(self, crop_size=None, flip: bool = True, scale_range: Optional[tuple[float, float]] = None,
                 mask_fill: Optional[int] = None):
        if isinstance(crop_size, int):
            crop_size = (crop_size, crop_size)
        if crop_size is not None and (len(crop_size) != 2 or min(crop_size) < 1):
            raise ValueError(f"crop_size must be a positive int or (h, w), got {crop_size!r}")
        if scale_range is not None and not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.crop_size = None if crop_size is None else tuple(int(side) for side in crop_size)
        self.flip, self.scale_range, self.mask_fill = flip, scale_range, mask_fill

    def __call__(self, image: Tensor, mask: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        if image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"image (C, H, W) and mask (H, W) sizes must match, got {tuple(image.shape)} and "
                             f"{tuple(mask.shape)}")
        if self.scale_range is not None:
            image, mask = rescale(image, mask, float(rng.uniform(*self.scale_range)))
        if self.crop_size is not None:
            image, mask = pad_to(image, mask, self.crop_size, self.mask_fill)
            top = int(rng.integers(0, mask.shape[0] - self.crop_size[0] + 1))
            left = int(rng.integers(0, mask.shape[1] - self.crop_size[1] + 1))
            image, mask = crop(image, mask, top, left, self.crop_size)
        if self.flip and rng.random() < 0.5:
            image, mask = hflip(image, mask)
        return image.contiguous(), mask.contiguous()


class AugmentedDataset(torch.utils.data.Dataset):
    """A dataset of (image, mask, stem) with a :class:`PairedTransform` drawn from (seed, epoch, index).

    The draws depend only on those three numbers, so an epoch replays identically after
    a resume, in any worker process. Call ``set_epoch`` before each epoch.
    """

    def __init__(self, dataset, transform: PairedTransform, seed: int = 0):
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, mask, stem = self.dataset[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, mask = self.transform(image, mask, rng)
        return image, mask, stem
