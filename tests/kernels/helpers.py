"""Shared pieces of the kernel tests: the per-dtype tolerance table and input makers."""

from __future__ import annotations

import torch
from torch.testing import assert_close

# (atol, rtol) for the forward sums (always accumulated in float32, so only the summation
# order differs) and for the gradients (computed in float32, rounded to the input dtype).
VALUE_TOLERANCE = {
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-4, 1e-5),
    torch.bfloat16: (1e-4, 1e-5),
}
GRAD_TOLERANCE = {
    torch.float32: (1e-6, 1e-5),
    torch.float16: (1e-4, 2e-3),
    torch.bfloat16: (1e-3, 1.6e-2),
}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def assert_values(actual, expected, dtype, name=""):
    atol, rtol = VALUE_TOLERANCE[dtype]
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} vs {expected.dtype}"
    # Sums of many terms: scale the absolute tolerance by the largest magnitude.
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    assert_close(actual, expected, atol=atol * scale, rtol=rtol, msg=lambda m: f"{name}: {m}")


def assert_grads(actual, expected, dtype, name="grad"):
    atol, rtol = GRAD_TOLERANCE[dtype]
    assert actual.dtype == expected.dtype == dtype, f"{name}: dtype {actual.dtype} / {expected.dtype}"
    assert_close(actual.float(), expected.float(), atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


def make_logits(shape, dtype, scale=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * scale).to(dtype).requires_grad_()


def make_labels(shape, num_classes, dtype=torch.int64, ignore_index=None, ignored_fraction=0.3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, shape, generator=generator)
    if ignore_index is not None:
        labels[torch.rand(shape, generator=generator) < ignored_fraction] = ignore_index
    return labels.to(dtype)


def upstream_like(tensor, seed):
    """A random upstream gradient (never all ones)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tensor.shape, generator=generator) * 1.7 + 0.3


def weighted_sum(values, upstream):
    return sum((value * grad).sum() for value, grad in zip(values, upstream) if value is not None)
