"""A procedural segmentation task: textured shapes on noisy backgrounds, strongly imbalanced.

Each scene is a pure function of (seed, index): no files, nothing downloaded. Classes:

- 0 ``background``: smooth random colour field plus pixel noise (about 91 percent of pixels),
- 1 ``ellipse``: horizontally striped ellipses (about 4 percent),
- 2 ``rectangle``: dotted rectangles (about 4 percent),
- 3 ``speck``: one small disc (radius 2.5 to 4.5 px, about 1 percent) with diagonal stripes,
  in a lighter shade of the ellipses' colour: the rare class, small and easily confused.

Images are float32 (3, H, W) with values around [0, 1]; masks int64 (H, W) in [0, 4).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

CLASS_NAMES = ("background", "ellipse", "rectangle", "speck")
NUM_CLASSES = len(CLASS_NAMES)
RARE_CLASS = 3
NOISE_STD = 0.12


def _smooth_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A low-frequency colour field (3, size, size): bilinear upsampling of a 4x4 grid."""
    coarse = rng.uniform(0.25, 0.65, size=(3, 4, 4))
    grid = np.linspace(0, 3, size)
    low = np.clip(np.floor(grid).astype(int), 0, 2)
    frac = grid - low
    rows = coarse[:, low, :] * (1 - frac)[None, :, None] + coarse[:, low + 1, :] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac) + rows[:, :, low + 1] * frac


def _ellipse(rng, yy, xx, size, radius_range) -> np.ndarray:
    cy, cx = rng.uniform(0, size, 2)
    ry, rx = rng.uniform(*radius_range, 2)
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = dy * np.cos(angle) + dx * np.sin(angle)
    v = -dy * np.sin(angle) + dx * np.cos(angle)
    return (u / ry) ** 2 + (v / rx) ** 2 <= 1


def _rectangle(rng, yy, xx, size) -> np.ndarray:
    height, width = rng.uniform(7, 15, 2)
    top, left = rng.uniform(0, size - 7, 2)
    return (yy >= top) & (yy < top + height) & (xx >= left) & (xx < left + width)


def _disc(rng, yy, xx, size) -> np.ndarray:
    radius = rng.uniform(2.5, 4.5)
    cy, cx = rng.uniform(radius, size - radius, 2)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def generate_scene(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One scene: image float32 (3, size, size) and mask int64 (size, size), from (seed, index)."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = _smooth_field(rng, size)
    mask = np.zeros((size, size), dtype=np.int64)
    stripes = 0.5 + 0.5 * np.sin(yy * np.pi / 2)
    dots = ((yy % 3 < 1.5) & (xx % 3 < 1.5)).astype(np.float64)
    diagonal = 0.5 + 0.5 * np.sin((yy + xx) * np.pi / 2)
    ellipse_colour = rng.uniform(0.3, 0.7, 3)
    layers = [(1, _ellipse(rng, yy, xx, size, (4.0, 9.0)), ellipse_colour, stripes) for _ in range(rng.integers(1, 3))]
    layers += [(2, _rectangle(rng, yy, xx, size), rng.uniform(0.3, 0.7, 3), dots) for _ in range(rng.integers(1, 3))]
    layers.append((RARE_CLASS, _disc(rng, yy, xx, size), 0.6 * ellipse_colour + 0.35, diagonal))
    for label, region, colour, texture in layers:
        mask[region] = label
        image[:, region] = colour[:, None] * (0.7 + 0.6 * texture[region])[None]
    image += rng.normal(0, NOISE_STD, image.shape)
    return image.astype(np.float32), mask


def _check_non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


class ProceduralSegmentation(Dataset):
    """``num_samples`` scenes of :func:`generate_scene`; item i is (image, mask, stem).

    Args:
        num_samples: dataset length.
        seed: the scenes' seed; train and val sets use different seeds (e.g. 0 and 1).
        image_size: H = W of every scene.
        cache: keep generated scenes in memory (they are regenerated identically otherwise).
    """

    class_names = CLASS_NAMES
    num_classes = NUM_CLASSES
    rare_class = RARE_CLASS

    def __init__(self, num_samples: int, seed: int = 0, image_size: int = 64, cache: bool = True):
        _check_non_negative_int("num_samples", num_samples)
        _check_non_negative_int("seed", seed)
        _check_non_negative_int("image_size", image_size)
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        self.num_samples, self.seed, self.image_size = num_samples, seed, image_size
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_samples

    def stem(self, index: int) -> str:
        return f"scene_{self.seed}_{index:05d}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index must be in [0, {self.num_samples}), got {index}")
        if self._cache is not None and index in self._cache:
            return (*self._cache[index], self.stem(index))
        image, mask = generate_scene(self.seed, index, self.image_size)
        item = (torch.from_numpy(image), torch.from_numpy(mask))
        if self._cache is not None:
            self._cache[index] = item
        return (*item, self.stem(index))
