"""The harder procedural task: a 0.1 % class, thin threads, label noise only on boundaries."""

import numpy as np
import pytest
import torch

from segfuse.train import HardProceduralSegmentation
from segfuse.train.procedural_hard import (
    HARD_RARE_CLASS,
    HARD_THIN_CLASS,
    corrupt_boundaries,
    generate_hard_scene,
)


def boundary_of(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label (written independently of the module)."""
    boundary = np.zeros(mask.shape, dtype=bool)
    boundary[1:] |= mask[1:] != mask[:-1]
    boundary[:-1] |= mask[:-1] != mask[1:]
    boundary[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    boundary[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    return boundary


def test_scenes_are_a_pure_function_of_seed_and_index():
    image, mask = generate_hard_scene(3, 7)
    again_image, again_mask = generate_hard_scene(3, 7)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    assert not np.array_equal(mask, generate_hard_scene(4, 7)[1])
    item = HardProceduralSegmentation(10, seed=3, cache=False)[7]
    assert torch.equal(item[0], torch.from_numpy(image)) and torch.equal(item[1], torch.from_numpy(mask))
    assert item[0].dtype == torch.float32 and item[1].dtype == torch.int64 and item[2] == "hard_3_00007"


def test_the_rare_class_is_about_a_thousandth_of_the_pixels_and_threads_are_thin():
    masks = np.stack([generate_hard_scene(0, index)[1] for index in range(300)])
    fractions = np.bincount(masks.ravel(), minlength=4) / masks.size
    assert 0.0005 < fractions[HARD_RARE_CLASS] < 0.002
    assert 0.2 < (masks == HARD_RARE_CLASS).any(axis=(1, 2)).mean() < 0.5
    assert 0.015 < fractions[HARD_THIN_CLASS] < 0.06 and 0.85 < fractions[0] < 0.96
    # thin: a 3x3 erosion keeps almost no thread pixel (a 3 px wide band would keep its core)
    thread = masks == HARD_THIN_CLASS
    core = thread[:, 1:-1, 1:-1].copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            core &= thread[:, 1 + dy:thread.shape[1] - 1 + dy, 1 + dx:thread.shape[2] - 1 + dx]
    assert core.sum() < 0.05 * thread.sum()


def test_boundary_noise_changes_only_boundary_pixels_to_a_neighbours_label():
    clean = generate_hard_scene(0, 5)[1]
    boundary = boundary_of(clean)
    noisy = corrupt_boundaries(clean, 1.0, np.random.default_rng(0))
    assert np.array_equal(noisy[~boundary], clean[~boundary])
    assert (noisy[boundary] != clean[boundary]).all()
    padded = np.pad(clean, 1, constant_values=-1)
    for y, x in zip(*np.nonzero(boundary)):
        neighbours = {padded[y, x + 1], padded[y + 2, x + 1], padded[y + 1, x], padded[y + 1, x + 2]} - {-1}
        assert noisy[y, x] in neighbours - {clean[y, x]}
    assert np.array_equal(corrupt_boundaries(clean, 0.0, np.random.default_rng(0)), clean)
    half = corrupt_boundaries(clean, 0.5, np.random.default_rng(1))
    assert 0.3 < (half != clean)[boundary].mean() < 0.7


def test_training_labels_are_noisy_and_the_images_are_not():
    clean_image, clean_mask = generate_hard_scene(2, 4)
    noisy_image, noisy_mask = generate_hard_scene(2, 4, boundary_noise=0.3)
    assert np.array_equal(clean_image, noisy_image)
    changed = noisy_mask != clean_mask
    assert changed.any() and not (changed & ~boundary_of(clean_mask)).any()
    dataset = HardProceduralSegmentation(5, seed=2, boundary_noise=0.3)
    assert torch.equal(dataset[4][1], torch.from_numpy(noisy_mask))


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="boundary_noise must be in \\[0, 1\\], got 1.5"):
        HardProceduralSegmentation(4, boundary_noise=1.5)
    with pytest.raises(ValueError, match="image_size must be >= 16, got 8"):
        HardProceduralSegmentation(4, image_size=8)
    with pytest.raises(IndexError, match=r"index must be in \[0, 4\), got 4"):
        HardProceduralSegmentation(4)[4]
