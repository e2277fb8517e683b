"""The procedural task: a pure function of (seed, index), strongly imbalanced."""

import numpy as np
import pytest
import torch

from segfuse.train import ProceduralSegmentation
from segfuse.train.procedural import RARE_CLASS, generate_scene


def test_scenes_are_a_pure_function_of_seed_and_index():
    image, mask = generate_scene(3, 7)
    again_image, again_mask = generate_scene(3, 7)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    assert not np.array_equal(mask, generate_scene(4, 7)[1])
    assert not np.array_equal(mask, generate_scene(3, 8)[1])
    uncached = ProceduralSegmentation(10, seed=3, cache=False)[7]
    assert torch.equal(uncached[0], torch.from_numpy(image)) and uncached[2] == "scene_3_00007"


def test_items_have_the_documented_shapes_and_dtypes():
    image, mask, stem = ProceduralSegmentation(4, seed=0, image_size=48)[2]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert mask.shape == (48, 48) and mask.dtype == torch.int64 and stem == "scene_0_00002"
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3}


def test_classes_are_strongly_imbalanced_with_a_rare_class_near_one_percent():
    masks = np.stack([generate_scene(0, index)[1] for index in range(300)])
    fractions = np.bincount(masks.ravel(), minlength=4) / masks.size
    assert 0.85 < fractions[0] < 0.95
    assert all(0.02 < fractions[c] < 0.08 for c in (1, 2))
    assert 0.005 < fractions[RARE_CLASS] < 0.015


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="image_size must be >= 16, got 8"):
        ProceduralSegmentation(4, image_size=8)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        ProceduralSegmentation(4.0)
    with pytest.raises(IndexError, match=r"index must be in \[0, 4\), got 4"):
        ProceduralSegmentation(4)[4]
