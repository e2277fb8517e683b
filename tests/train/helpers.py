"""Builders shared by the training tests: tiny VOC folders and tiny training configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from segfuse.train import ProceduralSegmentation, TrainConfig

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [224, 224, 192] * 252


def coded_pair(rng: np.random.Generator, height: int, width: int, labels=(0, 1, 2)):
    """An RGB image whose red channel is 40 * the mask label, green the column, blue the row."""
    mask = rng.choice(np.array(labels), size=(height, width)).astype(np.uint8)
    image = np.stack([mask * 40, np.tile(np.arange(width), (height, 1)) % 256,
                      np.tile(np.arange(height)[:, None], (1, width)) % 256], axis=-1).astype(np.uint8)
    return image, mask


def write_mask(path: Path, mask: np.ndarray, mode: str = "P") -> None:
    image = Image.fromarray(mask.astype(np.uint8))
    if mode == "P":
        image = image.convert("P")
        image.putpalette(PALETTE)
        image.putdata(mask.reshape(-1).tolist())
    image.save(path)


def make_voc(root: Path, stems, size=(12, 16), splits=None, image_suffix=".png", seed=0, labels=(0, 1, 2)) -> Path:
    """A VOC-layout folder with coded images (see :func:`coded_pair`); ``splits`` maps split -> stems."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for stem in stems:
        image, mask = coded_pair(rng, *size, labels=labels)
        Image.fromarray(image).save(root / "JPEGImages" / f"{stem}{image_suffix}")
        write_mask(root / "SegmentationClass" / f"{stem}.png", mask)
    if splits:
        list_dir = root / "ImageSets" / "Segmentation"
        list_dir.mkdir(parents=True)
        for split, names in splits.items():
            (list_dir / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
    return root


def tiny_datasets(train_samples=64, val_samples=16, image_size=32):
    return (ProceduralSegmentation(train_samples, seed=0, image_size=image_size),
            ProceduralSegmentation(val_samples, seed=1, image_size=image_size))


def tiny_config(**overrides) -> TrainConfig:
    options = dict(num_classes=4, loss="ce", epochs=2, batch_size=8, lr=1e-2, seed=0, base_channels=4, depth=1,
                   device="cpu", save_predictions="none")
    options.update(overrides)
    return TrainConfig(**options)
