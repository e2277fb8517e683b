"""Input preparation and class reduction shared by the losses.

``prepare_inputs`` validates and normalises (input, target) for a mode; ``soft_statistics``
turns them into :class:`~segfuse._stats.OverlapStatistics`; ``reduce_class_losses``
applies include_background / skip_absent / class_weights and the reduction.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from segfuse import _stats, kernels
from segfuse._validate import (
    MODES,
    REDUCTIONS,
    check_binary_values,
    check_choice,
    check_class_vector,
    check_float_tensor,
    check_label_tensor,
    check_labels_in_range,
    check_min_dims,
    check_positive,
    check_tensor,
    representable_ignore_index,
)

ResizeMode = Union[bool, str]


class PreparedInputs(NamedTuple):
    """input (N, C, *S); target a class map (N, *S) when ``class_map`` else (N, C, *S)."""

    input: Tensor
    target: Tensor
    class_map: bool


def check_loss_arguments(
    *,
    mode: str = "multiclass",
    smooth: float = 0.0,
    reduction: str = "mean",
    class_weights=None,
    ignore_index=None,
) -> None:
    """Argument checks shared by the losses (run once, in ``__init__`` or at the call)."""
    check_choice("mode", mode, MODES)
    check_choice("reduction", reduction, REDUCTIONS)
    check_positive("smooth", smooth, allow_zero=True)
    check_class_vector("class_weights", class_weights)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")


def resize_to_target(input: Tensor, target_spatial: Sequence[int], resize_logits: ResizeMode) -> Tensor:
    """Interpolate logits to the target's spatial size (the seeds' F.interpolate)."""
    if isinstance(resize_logits, str):
        mode = resize_logits
    else:
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(target_spatial))
        if mode is None:
            raise ValueError(f"resize_logits supports 1 to 3 spatial dims, got {len(target_spatial)}")
    align = True if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
    return F.interpolate(input, size=tuple(target_spatial), mode=mode, align_corners=align)


def _match_spatial(input: Tensor, target_spatial, resize_logits: ResizeMode, target_shape) -> Tensor:
    if tuple(input.shape[2:]) == tuple(target_spatial):
        return input
    if resize_logits and len(input.shape[2:]) == len(target_spatial):
        return resize_to_target(input, target_spatial, resize_logits)
    raise ValueError(
        f"input and target spatial sizes must match, got input {tuple(input.shape)} and target {tuple(target_shape)}"
        " (pass resize_logits=True to interpolate the logits to the target size)"
    )


def prepare_inputs(
    input: Tensor,
    target: Tensor,
    *,
    mode: str,
    ignore_index: Optional[int] = None,
    resize_logits: ResizeMode = False,
    validate_args: bool = True,
) -> PreparedInputs:
    """Validate (input, target) for ``mode`` and bring them to (N, C, *S) form.

    multiclass: input (N, C, *S); target a class map (N, *S) of integers or a dense
    one-hot / soft target (N, C, *S). binary: input (N, 1, *S) or (N, *S); target of
    the same spatial shape. multilabel: input and target (N, C, *S).
    """
    check_float_tensor("input", input)
    check_tensor("target", target)
    if mode == "multiclass":
        return _prepare_multiclass(input, target, ignore_index, resize_logits, validate_args)
    if mode == "binary":
        input, target = _binary_layout(input, target)
    check_min_dims("input", input, 2, "(N, C, *S)")
    if target.dim() != input.dim() or target.shape[:2] != input.shape[:2]:
        raise ValueError(f"{mode} mode expects a target of shape (N, C, *S) = {tuple(input.shape[:2])} + S, "
                         f"got input {tuple(input.shape)} and target {tuple(target.shape)}")
    input = _match_spatial(input, target.shape[2:], resize_logits, target.shape)
    if validate_args:
        check_binary_values("target", target, ignore_index)
    return PreparedInputs(input, target, False)


def _binary_layout(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Bring binary (N, *S) or (N, 1, *S) input and target to (N, 1, *S)."""
    channel_first = input.dim() >= 2 and input.shape[1] == 1
    if channel_first and target.dim() == input.dim() - 1:
        return input, target.unsqueeze(1)
    if channel_first and target.dim() == input.dim():
        return input, target
    if input.dim() == target.dim():
        return input.unsqueeze(1), target.unsqueeze(1)
    raise ValueError(f"binary mode expects input (N, 1, *S) or (N, *S) and a target of the same spatial shape, "
                     f"got input {tuple(input.shape)} and target {tuple(target.shape)}")


def _prepare_multiclass(input, target, ignore_index, resize_logits, validate_args) -> PreparedInputs:
    check_min_dims("input", input, 2, "(N, C, *S)")
    num_classes = input.shape[1]
    if target.dim() == input.dim() - 1:
        check_label_tensor("target", target)
        if target.shape[0] != input.shape[0]:
            raise ValueError(f"input and target batch sizes must match, got input {tuple(input.shape)} "
                             f"and target {tuple(target.shape)}")
        input = _match_spatial(input, target.shape[1:], resize_logits, target.shape)
        if validate_args:
            check_labels_in_range("target", target, num_classes, ignore_index)
        return PreparedInputs(input, target, True)
    if target.dim() == input.dim():
        if target.shape[:2] != input.shape[:2]:
            raise ValueError(f"a dense target must have shape (N, C, *S) with N, C = {tuple(input.shape[:2])}, "
                             f"got input {tuple(input.shape)} and target {tuple(target.shape)}")
        input = _match_spatial(input, target.shape[2:], resize_logits, target.shape)
        if validate_args:
            check_binary_values("target", target)
        return PreparedInputs(input, target, False)
    raise ValueError(f"multiclass target must be a class map (N, *S) or dense (N, C, *S) for input "
                     f"{tuple(input.shape)}, got {tuple(target.shape)}")


def binary_valid_mask(target: Tensor, ignore_index: Optional[int]) -> Optional[Tensor]:
    """Elementwise mask of the non-ignored entries of a binary / multilabel target."""
    ignore_index = representable_ignore_index(target, ignore_index)
    return None if ignore_index is None else target != ignore_index


def soft_statistics(
    prepared: PreparedInputs,
    *,
    mode: str,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    squared: bool = False,
    from_logits: bool = True,
) -> _stats.OverlapStatistics:
    """Soft tp / ps / gs for any mode and target form."""
    input, target, class_map = prepared
    if class_map:
        terms = _stats.multiclass_terms(input, target, ignore_index=ignore_index, per_image=per_image,
                                        squared=squared, from_logits=from_logits)
        return terms.stats
    acc = _stats.accumulation_dtype(input.dtype)
    if mode == "multiclass":
        x = input.to(acc)
        probs = torch.softmax(x, dim=1) if from_logits else x
        return _stats.dense_statistics(probs, target.to(acc), per_image=per_image, squared=squared)
    if kernels.fused_binary_available(input, target, squared=squared, from_logits=from_logits):
        return kernels.fused_binary_statistics(input, target, ignore_index=ignore_index, per_image=per_image)
    probs = _stats.binary_probabilities(input, from_logits)
    valid = binary_valid_mask(target, ignore_index)
    target = target.to(acc) if valid is None else torch.where(valid, target.to(acc), 0)
    return _stats.dense_statistics(probs, target, valid=valid, per_image=per_image, squared=squared)


def class_weight_tensor(class_weights, like: Tensor) -> Optional[Tensor]:
    if class_weights is None:
        return None
    return torch.as_tensor(class_weights, dtype=like.dtype, device=like.device)


def reduce_class_losses(
    losses: Tensor,
    gs: Tensor,
    *,
    include_background: bool = True,
    skip_absent: bool = False,
    class_weights=None,
    reduction: str = "mean",
) -> Tensor:
    """Per-class losses (C,) or (N, C) -> the requested reduction.

    Convention: "mean" is sum_c w_c m_c l_c / sum_c w_c m_c over the kept classes (and
    images), where m drops classes with gs_c = 0 when ``skip_absent``; 0 when nothing is
    kept. "sum" is the numerator. "none" returns the unweighted losses of the kept
    classes (background dropped), absent ones included.
    """
    num_classes = losses.shape[-1]
    weights = class_weight_tensor(class_weights, losses)
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"class_weights must have {num_classes} entries (one per class), got {weights.numel()}")
    if not include_background:
        losses, gs = losses[..., 1:], gs[..., 1:]
        weights = None if weights is None else weights[1:]
    if reduction == "none":
        return losses
    mask = torch.ones_like(losses) if weights is None else weights.expand_as(losses).clone()
    if skip_absent:
        mask = mask * (gs > 0).to(losses.dtype)
    if reduction == "sum":
        return (losses * mask).sum()
    return _stats.safe_divide((losses * mask).sum(), mask.sum())


def finish(loss: Tensor, input: Tensor) -> Tensor:
    """Losses are returned in the input's floating dtype unless it is half (then fp32)."""
    return loss if input.dtype == torch.float64 else loss.float()
