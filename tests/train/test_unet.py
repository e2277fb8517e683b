"""The compact U-Net: shapes for any input size, and argument checks."""

import pytest
import torch

from segfuse.train import UNet


@pytest.mark.parametrize("size", [(32, 32), (31, 45), (7, 9)])
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_logits_keep_the_input_size(size, depth):
    model = UNet(in_channels=3, num_classes=5, base_channels=4, depth=depth)
    logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_arguments_and_inputs_are_errors():
    with pytest.raises(ValueError, match="depth must be >= 0, got -1"):
        UNet(depth=-1)
    with pytest.raises(TypeError, match="base_channels must be an int, got float"):
        UNet(base_channels=4.0)
    with pytest.raises(ValueError, match=r"UNet expects an image batch \(N, C, H, W\), got shape \(3, 8, 8\)"):
        UNet(base_channels=2, depth=1)(torch.randn(3, 8, 8))
