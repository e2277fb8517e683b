"""Input preparation and class reduction shared by the losses.

``prepare_inputs`` validates and normalises (input, target) for a mode; ``fused_loss_of``
asks the statistics core for the whole loss (:func:`segfuse._stats.fused_loss`, None when
the fused path does not serve it) and ``terms_of`` for the per-pass quantities of the same
request (:func:`segfuse._stats.loss_terms`); ``reduce_class_losses`` applies
include_background / skip_absent / class_weights and the reduction.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from segfuse import _stats
from segfuse._validate import (
    MODES,
    REDUCTIONS,
    check_binary_values,
    check_bool,
    check_choice,
    check_class_vector,
    check_float_tensor,
    check_in_unit_interval,
    check_label_tensor,
    check_labels_in_range,
    check_min_dims,
    check_optional_positive,
    check_positive,
    check_tensor,
)

ResizeMode = Union[bool, str]


class PreparedInputs(NamedTuple):
    """input (N, C, *S); target a class map (N, *S) when ``class_map`` else (N, C, *S)."""

    input: Tensor
    target: Tensor
    class_map: bool


# skip_absent: False keeps absent classes; True / "zero" sets their loss to 0 and keeps them
# in the mean (smp); "drop" leaves them out of the mean.
SKIP_ABSENT = (False, True, "zero", "drop")
POOLINGS = ("none", "class")


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
    if mode == "binary" and class_weights is not None and len(class_weights) != 1:
        raise ValueError(f"binary mode has one class: class_weights must have 1 entry, got {len(class_weights)}")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")


def check_overlap_arguments(
    *,
    smooth_nr=None,
    smooth_dr=None,
    skip_absent=False,
    normalize_weights: bool = True,
    pooling: str = "none",
    soft_label: bool = False,
    label_smoothing: float = 0.0,
) -> None:
    """Checks of the overlap-specific switches (Dice, F-beta, Tversky, Jaccard, compounds)."""
    check_optional_positive("smooth_nr", smooth_nr)
    check_optional_positive("smooth_dr", smooth_dr)
    if not any(skip_absent is choice or (isinstance(skip_absent, str) and skip_absent == choice)
               for choice in SKIP_ABSENT):
        raise ValueError(f"skip_absent must be one of {SKIP_ABSENT}, got {skip_absent!r}")
    check_bool("normalize_weights", normalize_weights)
    check_choice("pooling", pooling, POOLINGS)
    check_bool("soft_label", soft_label)
    check_in_unit_interval("label_smoothing", label_smoothing)
    if pooling == "class" and skip_absent is not False:
        raise ValueError(f"skip_absent has no meaning with pooling='class' (the classes are pooled into one "
                         f"score), got skip_absent={skip_absent!r}")


def absent_mode(skip_absent) -> str:
    """"keep", "zero" (smp) or "drop" for a ``skip_absent`` value."""
    if skip_absent is False:
        return "keep"
    return "zero" if skip_absent is True else skip_absent


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
    if is_singleton_class_map(input, target):
        target = target.squeeze(1)  # (N, 1, *S) class map, as MONAI users pass it
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


def is_singleton_class_map(input: Tensor, target: Tensor) -> bool:
    """A multiclass class map shaped (N, 1, *S) for input (N, C, *S), C > 1: integer labels."""
    return (target.dim() == input.dim() and target.dim() >= 2 and target.shape[1] == 1 and input.shape[1] != 1
            and target.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64))


binary_valid_mask = _stats.binary_valid_mask


def terms_of(prepared: PreparedInputs, *, mode: str, **request) -> _stats.LossTerms:
    """What a loss asks of the statistics core for prepared inputs (see :func:`_stats.loss_terms`)."""
    return _stats.loss_terms(prepared.input, prepared.target, mode=mode, class_map=prepared.class_map, **request)


def fused_loss_of(prepared: PreparedInputs, mix: Optional[_stats.LossMix], *, mode: str,
                  **request) -> Optional[Tensor]:
    """The loss ``mix`` whole for prepared inputs, or None: then the loss combines
    ``terms_of(prepared, mode=mode, **request)`` (see :func:`_stats.fused_loss`)."""
    return _stats.fused_loss(prepared.input, prepared.target, mix, mode=mode, class_map=prepared.class_map,
                             **request)


def overlap_term(*, tp_weight: float, fp_weight: float, fn_weight: float, gamma: float = 1.0, smooth: float = 1e-5,
                 smooth_nr=None, smooth_dr=None, log_loss: bool = False, include_background: bool = True,
                 skip_absent=False, class_weights=None, normalize_weights: bool = True, pooling: str = "none",
                 reduction: str = "mean") -> Optional[_stats.OverlapTerm]:
    """The overlap loss as the fused path takes it, or None when it has no such form
    (``pooling="class"`` or a reduction other than "mean")."""
    if pooling != "none" or reduction != "mean":
        return None
    return _stats.OverlapTerm(tp_weight, fp_weight, fn_weight, smooth=smooth, gamma=gamma, log_loss=log_loss,
                              include_background=include_background, skip_absent=skip_absent,
                              class_weights=class_weights, normalize_weights=normalize_weights,
                              smooth_nr=smooth_nr, smooth_dr=smooth_dr)


def class_weight_tensor(class_weights, like: Tensor) -> Optional[Tensor]:
    if class_weights is None:
        return None
    return torch.as_tensor(class_weights, dtype=like.dtype, device=like.device)


def reduce_class_losses(
    losses: Tensor,
    gs: Tensor,
    *,
    include_background: bool = True,
    skip_absent=False,
    class_weights=None,
    normalize_weights: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """Per-class losses (C,) or (N, C) -> the requested reduction.

    Convention: a class is absent where gs_c = 0. ``skip_absent`` True (or "zero") sets
    the loss of absent classes to 0 and keeps them in the mean (smp); "drop" leaves them
    out of the mean (m_c = 0). "mean" is sum_c w_c m_c l_c / sum_c w_c m_c over the kept
    classes (and images), or / sum_c m_c with ``normalize_weights=False`` (MONAI's mean
    of w_c l_c); 0 when nothing is kept. "sum" is the numerator. "none" returns the
    unweighted losses of the kept classes (background dropped), absent ones included
    (set to 0 under "zero").
    """
    num_classes = losses.shape[-1]
    weights = class_weight_tensor(class_weights, losses)
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"class_weights must have {num_classes} entries (one per class), got {weights.numel()}")
    if not include_background:
        losses, gs = losses[..., 1:], gs[..., 1:]
        weights = None if weights is None else weights[1:]
    mode = absent_mode(skip_absent)
    if mode == "zero":
        losses = torch.where(gs > 0, losses, 0.0)
    if reduction == "none":
        return losses
    kept = torch.ones_like(losses) if mode != "drop" else (gs > 0).to(losses.dtype)
    weighted = kept if weights is None else kept * weights
    if reduction == "sum":
        return (losses * weighted).sum()
    return _stats.safe_divide((losses * weighted).sum(), (weighted if normalize_weights else kept).sum())


def finish(loss: Tensor, input: Tensor) -> Tensor:
    """Losses are returned in the input's floating dtype unless it is half (then fp32)."""
    return loss if input.dtype == torch.float64 else loss.float()
