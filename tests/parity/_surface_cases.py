"""Class-map pairs shared by the surface-distance parity tests: random and structured, 2D and 3D."""

from __future__ import annotations

import numpy as np

SPACINGS = {2: [(1.0, 1.0), (0.7, 1.9)], 3: [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5), (0.85, 1.2, 0.9)]}
SHAPES = {2: (23, 29), 3: (11, 13, 14)}


def random_pair(rng: np.random.Generator, dims: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Noisy labels: every pixel its own random class (surfaces everywhere, many ties)."""
    shape = SHAPES[dims]
    return rng.integers(0, classes, shape), rng.integers(0, classes, shape)


def ellipsoids(rng: np.random.Generator, shape, classes: int, jitter: float) -> np.ndarray:
    """Overlapping ellipses / ellipsoids of classes 1..classes-1 (later ones on top), some on the border."""
    grid = np.indices(shape).astype(np.float64)
    labels = np.zeros(shape, dtype=np.int64)
    for c in range(1, classes):
        centre = rng.uniform(0, 1, len(shape)) * np.array(shape)
        radii = rng.uniform(0.15, 0.45, len(shape)) * np.array(shape) * (1 + jitter * rng.normal())
        inside = sum(((g - m) / r) ** 2 for g, m, r in zip(grid, centre, radii)) <= 1
        labels[inside] = c
    return labels


def structured_pair(rng: np.random.Generator, dims: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A structured ground truth and a prediction from the same shapes, moved and resized a little."""
    shape = tuple(2 * n for n in SHAPES[dims])
    seed = int(rng.integers(0, 2**31))
    gt = ellipsoids(np.random.default_rng(seed), shape, classes, 0.0)
    pred = ellipsoids(np.random.default_rng(seed), shape, classes, 0.15)
    return gt, np.roll(pred, tuple(int(v) for v in rng.integers(-2, 3, dims)), axis=tuple(range(dims)))


def pairs(seed: int, dims: int):
    """Random and structured pairs, plus ones where a class is absent from one or both maps."""
    rng = np.random.default_rng(seed)
    gt, pred = random_pair(rng, dims)
    yield "random", gt, pred
    gt, pred = structured_pair(rng, dims)
    yield "structured", gt, pred
    gt, pred = structured_pair(rng, dims)
    gt[gt == 2], pred[pred == 3] = 0, 0  # class 2 absent from the truth, 3 from the prediction
    pred[pred == 1] = 0
    gt[gt == 1] = 0  # class 1 absent from both
    yield "empty", gt, pred
