"""Input checks and preparation shared by the surface-distance and Boundary IoU metrics.

Convention:
    ``target`` is an integer class map ``(N, *S)`` (numpy arrays are accepted too);
    ``pred`` the same or scores ``(N, C, *S)`` (argmax over C). Pixels whose target equals
    ``ignore_index`` become the label ``num_classes`` (no class) in both maps, so their
    surfaces and bands stop there, and a prediction equal to the truth on every valid pixel
    scores perfectly. Spacing is one value per spatial axis (or one for all axes, or one
    row per image), in the unit the distances are reported in.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from segfuse._validate import check_label_tensor, check_num_classes, check_same_shape
from segfuse.metrics.confusion import check_label_ranges, ignored_pixels


def as_tensor(name: str, value) -> torch.Tensor:
    """A tensor view of ``value`` (numpy arrays are wrapped without a copy where possible)."""
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            value = value.astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    return value.to(torch.uint8) if value.dtype == torch.bool else value


def check_ignore_index(ignore_index) -> None:
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")


def class_maps(
    pred,
    target,
    num_classes: int,
    ignore_index: int | None,
    validate_args: bool,
    spatial_dims: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps as one signed dtype, ignored pixels set to ``num_classes`` in both.

    Returns ``(pred, target)`` of shape ``(N, *S)``, of one integer dtype that holds
    ``num_classes`` (the inputs' own when both share it: no copy).
    """
    check_num_classes(num_classes)
    check_ignore_index(ignore_index)
    target = as_tensor("target", target)
    pred = as_tensor("pred", pred)
    check_label_tensor("target", target)
    if pred.is_floating_point() and pred.dim() == target.dim() + 1:
        if pred.shape[1] != num_classes:
            raise ValueError(f"pred scores must have C={num_classes} channels (dim 1), got shape {tuple(pred.shape)}")
        pred = pred.argmax(1)
    check_label_tensor("pred", pred)
    check_same_shape("pred", pred, "target", target)
    dims = target.dim() - 1
    if dims not in spatial_dims:
        allowed = " or ".join(f"{d}D" for d in spatial_dims)
        raise ValueError(f"target must be a batch of {allowed} class maps (N, *S), got shape {tuple(target.shape)}")
    if validate_args:
        check_label_ranges(pred, target, num_classes, ignore_index)
    ignored = ignored_pixels(target, ignore_index)
    dtype = _label_dtype(target.dtype, pred.dtype, num_classes)
    pred, target = pred.to(dtype), target.to(dtype)
    if ignored is not None:
        pred = pred.masked_fill(ignored, num_classes)
        target = target.masked_fill(ignored, num_classes)
    return pred, target


def _label_dtype(target: torch.dtype, pred: torch.dtype, num_classes: int) -> torch.dtype:
    if target == pred and num_classes <= torch.iinfo(target).max:
        return target
    return torch.int16 if num_classes < 32767 else torch.int32


def spacing_per_image(spacing, images: int, dims: int) -> list[tuple[float, ...]]:
    """One tuple of ``dims`` positive spacings per image (None means 1)."""
    if spacing is None:
        return [(1.0,) * dims] * images
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.tolist()
    if isinstance(spacing, np.ndarray):
        spacing = spacing.tolist()
    if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
        rows = [(float(spacing),) * dims] * images
    elif isinstance(spacing, Sequence) and spacing and all(isinstance(v, Sequence) for v in spacing):
        if len(spacing) != images:
            raise ValueError(f"spacing with one row per image must have {images} rows, got {len(spacing)}")
        rows = [tuple(float(v) for v in row) for row in spacing]
    elif isinstance(spacing, Sequence):
        rows = [tuple(float(v) for v in spacing)] * images
    else:
        raise TypeError(f"spacing must be a number, a sequence of {dims} numbers or None, got {type(spacing).__name__}")
    for row in rows:
        if len(row) != dims or not all(math.isfinite(v) and v > 0 for v in row):
            raise ValueError(f"spacing must hold {dims} finite values > 0 (one per spatial axis), got {row}")
    return rows


def evaluated_classes(num_classes: int, include_background: bool) -> np.ndarray:
    """Class ids whose scores are computed (class 0 left out unless ``include_background``)."""
    return np.arange(0 if include_background else 1, num_classes)


def keep_lookup(num_classes: int, include_background: bool, device) -> torch.Tensor:
    """Bool lookup over labels 0..num_classes (the last, no class, is never kept)."""
    keep = torch.zeros(num_classes + 1, dtype=torch.bool, device=device)
    keep[torch.as_tensor(evaluated_classes(num_classes, include_background), device=device)] = True
    return keep
