"""The harder procedural task: thin threads, a class of about 0.1 percent, noisy training boundaries.

Each scene is a pure function of (seed, index), like :mod:`~segfuse.train.procedural`. Classes:

- 0 ``background``: smooth random colour field plus pixel noise (about 93 percent of pixels),
- 1 ``blob``: one or two horizontally striped ellipses (about 4 percent),
- 2 ``thread``: one to three curved lines about 1.5 px wide (about 3 percent): thin
  structures, where a one-pixel shift costs most of the overlap but little boundary distance,
- 3 ``speck``: a disc of radius 1.5 to 2.5 px in a lighter shade of the blobs' colour, in
  about one scene in three (about 0.1 percent of pixels): the rare class.

``boundary_noise=p`` corrupts the *labels* (never the image) the way a hurried annotator
does: each pixel on a class boundary (a 4-neighbour has another label) takes the label of
one of its differing 4-neighbours, drawn at random, with probability p. Training sets use
it; validation and test sets keep clean masks (p = 0).

Images are float32 (3, H, W) with values around [0, 1]; masks int64 (H, W) in [0, 4).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from segfuse.train.procedural import NOISE_STD, _check_non_negative_int, _ellipse, _smooth_field

HARD_CLASS_NAMES = ("background", "blob", "thread", "speck")
HARD_NUM_CLASSES = len(HARD_CLASS_NAMES)
HARD_RARE_CLASS = 3
HARD_THIN_CLASS = 2
SPECK_PROBABILITY = 0.35
THREAD_HALF_WIDTH = 0.75


def _thread(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """A quadratic Bezier curve between two random points, rasterised ``2 * THREAD_HALF_WIDTH`` px wide."""
    start, control, end = rng.uniform(0, size, (3, 2))
    t = np.linspace(0.0, 1.0, 3 * size)[:, None]
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
    low = np.clip(np.floor(points.min(0) - 1).astype(int), 0, size)
    high = np.clip(np.ceil(points.max(0) + 2).astype(int), 0, size)
    rows, cols = slice(low[0], high[0]), slice(low[1], high[1])
    distance = np.hypot(yy[None, rows, cols] - points[:, 0, None, None], xx[None, rows, cols] - points[:, 1, None, None])
    region = np.zeros(yy.shape, dtype=bool)
    region[rows, cols] = distance.min(0) <= THREAD_HALF_WIDTH
    return region


def _speck(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    radius = rng.uniform(1.5, 2.5)
    cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def corrupt_boundaries(mask: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Each boundary pixel takes a random differing 4-neighbour's label with ``probability``.

    A boundary pixel has at least one 4-neighbour with another label. Decisions are taken on
    the clean mask, so the corruption does not spread. Returns a new mask.
    """
    if not 0 <= probability <= 1:
        raise ValueError(f"boundary_noise must be in [0, 1], got {probability}")
    padded = np.pad(mask, 1, mode="edge")
    height, width = mask.shape
    neighbours = np.stack([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    differs = neighbours != mask[None]
    boundary = differs.any(0)
    # a random differing neighbour: random keys, the largest key among the differing ones wins
    keys = np.where(differs, rng.random(differs.shape), -1.0)
    choice = neighbours[keys.argmax(0), np.arange(height)[:, None], np.arange(width)[None, :]]
    flip = boundary & (rng.random(mask.shape) < probability)
    return np.where(flip, choice, mask)


def generate_hard_scene(seed: int, index: int, size: int = 64,
                        boundary_noise: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One scene: image float32 (3, size, size) and mask int64 (size, size), from (seed, index)."""
    rng = np.random.default_rng([seed, index, 1])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = _smooth_field(rng, size)
    mask = np.zeros((size, size), dtype=np.int64)
    stripes = 0.5 + 0.5 * np.sin(yy * np.pi / 2)
    flat = np.ones_like(yy)
    blob_colour = rng.uniform(0.3, 0.7, 3)
    layers = [(1, _ellipse(rng, yy, xx, size, (4.0, 9.0)), blob_colour, stripes) for _ in range(rng.integers(1, 3))]
    thread_colour = rng.uniform(0.05, 0.25, 3)
    layers += [(HARD_THIN_CLASS, _thread(rng, yy, xx, size), thread_colour, flat) for _ in range(rng.integers(1, 4))]
    if rng.random() < SPECK_PROBABILITY:
        layers.append((HARD_RARE_CLASS, _speck(rng, yy, xx, size), 0.6 * blob_colour + 0.35, flat))
    for label, region, colour, texture in layers:
        mask[region] = label
        image[:, region] = colour[:, None] * (0.7 + 0.6 * texture[region])[None]
    image += rng.normal(0, NOISE_STD, image.shape)
    if boundary_noise > 0:
        mask = corrupt_boundaries(mask, boundary_noise, np.random.default_rng([seed, index, 2]))
    return image.astype(np.float32), mask


class HardProceduralSegmentation(Dataset):
    """``num_samples`` scenes of :func:`generate_hard_scene`; item i is (image, mask, stem).

    Args:
        num_samples: dataset length.
        seed: the scenes' seed; train, val and test sets use different seeds.
        image_size: H = W of every scene.
        boundary_noise: probability that a boundary pixel's label is corrupted (training only).
        cache: keep generated scenes in memory (they are regenerated identically otherwise).
    """

    class_names = HARD_CLASS_NAMES
    num_classes = HARD_NUM_CLASSES
    rare_class = HARD_RARE_CLASS
    thin_class = HARD_THIN_CLASS

    def __init__(self, num_samples: int, seed: int = 0, image_size: int = 64, boundary_noise: float = 0.0,
                 cache: bool = True):
        _check_non_negative_int("num_samples", num_samples)
        _check_non_negative_int("seed", seed)
        _check_non_negative_int("image_size", image_size)
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        if not 0 <= boundary_noise <= 1:
            raise ValueError(f"boundary_noise must be in [0, 1], got {boundary_noise}")
        self.num_samples, self.seed, self.image_size = num_samples, seed, image_size
        self.boundary_noise = float(boundary_noise)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_samples

    def stem(self, index: int) -> str:
        return f"hard_{self.seed}_{index:05d}"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index must be in [0, {self.num_samples}), got {index}")
        if self._cache is not None and index in self._cache:
            return (*self._cache[index], self.stem(index))
        image, mask = generate_hard_scene(self.seed, index, self.image_size, self.boundary_noise)
        item = (torch.from_numpy(image), torch.from_numpy(mask))
        if self._cache is not None:
            self._cache[index] = item
        return (*item, self.stem(index))
