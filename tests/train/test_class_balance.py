"""Median frequency class weights."""

import pytest
import torch

from segfuse.train.class_balance import class_frequencies, median_frequency_weights


def test_frequencies_skip_ignored_pixels_and_weights_are_median_over_frequency():
    masks = [torch.tensor([[0, 0, 0, 1], [0, 0, 2, 255]]), torch.tensor([[0, 0, 1, 1], [255, 0, 0, 0]])]
    dataset = [(None, mask, str(i)) for i, mask in enumerate(masks)]
    frequencies = class_frequencies(dataset, 4, ignore_index=255)
    assert frequencies.tolist() == pytest.approx([10 / 14, 3 / 14, 1 / 14, 0.0])
    # median over the present classes (10, 3, 1) / 14 is 3 / 14; absent classes weigh 0
    assert median_frequency_weights(frequencies) == pytest.approx([0.3, 1.0, 3.0, 0.0])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\) or ignore_index=None"):
        class_frequencies(dataset, 4)
