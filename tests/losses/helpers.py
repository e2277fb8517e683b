"""Shared inputs for the loss tests."""

import torch

MODES = ("multiclass", "binary", "multilabel")


def make_inputs(mode, n=2, c=4, spatial=(6, 7), dtype=torch.float64, seed=0, ignore_index=None, ignore_fraction=0.2):
    """Random logits and a matching target for a mode, with some pixels set to ignore_index."""
    generator = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "binary" else c
    logits = torch.randn(n, channels, *spatial, generator=generator, dtype=dtype) * 2
    if mode == "multiclass":
        target = torch.randint(0, c, (n, *spatial), generator=generator)
        mask_shape = target.shape
    else:
        target = torch.randint(0, 2, (n, channels, *spatial), generator=generator)
        mask_shape = target.shape
    if ignore_index is not None:
        ignored = torch.rand(mask_shape, generator=generator) < ignore_fraction
        target = target.masked_fill(ignored, ignore_index)
    return logits, target
