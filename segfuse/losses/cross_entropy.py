"""Cross-entropy and binary cross-entropy: torch's values and gradients, plus validation,
N-D inputs, any integer target dtype, ``ignore_index=None`` that checks labels, an
all-ignored batch that gives 0 (not NaN), and the fused kernel path on CUDA."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from segfuse import _stats
from segfuse._validate import (
    REDUCTIONS,
    check_binary_values,
    check_choice,
    check_class_vector,
    check_float_tensor,
    check_in_unit_interval,
    check_same_shape,
    check_tensor,
)
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import (
    binary_valid_mask,
    check_loss_arguments,
    finish,
    fused_loss_of,
    prepare_inputs,
    terms_of,
)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    *,
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """Softmax cross-entropy, equal to ``torch.nn.functional.cross_entropy``.

    Args:
        input: logits (N, C, *S), any float dtype (half accumulates in fp32).
        target: class map (N, *S) or (N, 1, *S) with labels in [0, C) (uint8 to int64),
            or class probabilities (N, C, *S).
        weight: per-class weights (C,). ignore_index: label left out of the loss and of
            the mean's denominator. label_smoothing: in [0, 1].
        reduction: "mean" (weighted mean over valid pixels), "sum" or "none" ((N, *S),
            0 at ignored pixels).

    Convention:
        Mean = sum_i w_{y_i} (-log p_{i y_i}) / sum_i w_{y_i} over valid pixels, torch's
        definition (label smoothing adds eps/C sum_c w_c (-log p_ic) to each pixel's
        term with the same denominator). When every pixel is ignored (or the batch is
        empty) the mean is 0 with a zero gradient, where torch returns NaN.

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, requires_grad=True)
        >>> labels = torch.randint(0, 4, (2, 8, 8), dtype=torch.uint8)
        >>> cross_entropy(logits, labels, ignore_index=255).backward()
    """
    check_loss_arguments(reduction=reduction, ignore_index=ignore_index)
    check_in_unit_interval("label_smoothing", label_smoothing)
    num_classes = input.shape[1] if input.dim() >= 2 else None
    check_class_vector("weight", weight, num_classes, values=validate_args)
    prepared = prepare_inputs(input, target, mode="multiclass", ignore_index=ignore_index,
                              resize_logits=resize_logits, validate_args=validate_args)
    x, target = prepared.input, prepared.target
    acc = _stats.accumulation_dtype(x.dtype)
    weight = None if weight is None else torch.as_tensor(weight, device=x.device).to(acc)
    if prepared.class_map and reduction != "none":
        request = dict(ignore_index=ignore_index, want_stats=False, want_ce=True, ce_weight=weight,
                       ce_label_smoothing=label_smoothing)
        fused = fused_loss_of(prepared, _stats.LossMix(ce_weight=1.0) if reduction == "mean" else None,
                              mode="multiclass", **request)
        if fused is not None:
            return finish(fused, input)
        terms = terms_of(prepared, mode="multiclass", **request)
        loss = terms.ce_sum if reduction == "sum" else _stats.safe_divide(terms.ce_sum, terms.ce_weight)
        return finish(loss, input)
    x = x.to(acc)
    if not prepared.class_map:
        return finish(F.cross_entropy(x, target.to(acc), weight=weight, label_smoothing=label_smoothing,
                                      reduction=reduction), input)
    torch_ignore = -100 if ignore_index is None else ignore_index
    return finish(F.cross_entropy(x, target.long(), weight=weight, ignore_index=torch_ignore,
                                  label_smoothing=label_smoothing, reduction="none"), input)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor] = None,
    pos_weight: Optional[Tensor] = None,
    ignore_index: Optional[int] = None,
    reduction: str = "mean",
    *,
    validate_args: bool = True,
) -> Tensor:
    """Binary cross-entropy on logits, equal to torch's ``binary_cross_entropy_with_logits``.

    Args:
        input: logits of any shape (N, *); target: same shape, values in [0, 1] (or
            ``ignore_index``). weight / pos_weight broadcast as in torch (pos_weight
            against the last dimension, so pass (C, 1, 1) for (N, C, H, W)).

    Convention:
        Mean = sum of (weighted) element losses over the valid elements / their count;
        entries equal to ``ignore_index`` leave both sums. All ignored gives 0.
    """
    check_loss_arguments(reduction=reduction, ignore_index=ignore_index)
    check_float_tensor("input", input)
    check_tensor("target", target)
    check_same_shape("input", input, "target", target)
    if validate_args:
        check_binary_values("target", target, ignore_index)
    if weight is None and pos_weight is None and reduction == "mean":
        fused = _stats.fused_loss(input, target, _stats.LossMix(ce_weight=1.0), mode="multilabel", class_map=False,
                                  ignore_index=ignore_index, want_stats=False, want_ce=True)
        if fused is not None:
            return finish(fused, input)
    acc = _stats.accumulation_dtype(input.dtype)
    valid = binary_valid_mask(target, ignore_index)
    clean_target = target.to(acc) if valid is None else torch.where(valid, target.to(acc), 0)
    element = F.binary_cross_entropy_with_logits(
        input.to(acc), clean_target, weight=None if weight is None else torch.as_tensor(weight).to(acc),
        pos_weight=None if pos_weight is None else torch.as_tensor(pos_weight).to(acc), reduction="none")
    if valid is not None:
        element = element * valid
    if reduction == "none":
        return finish(element, input)
    if reduction == "sum":
        return finish(element.sum(), input)
    count = torch.tensor(element.numel(), dtype=acc, device=element.device) if valid is None else valid.sum().to(acc)
    return finish(_stats.safe_divide(element.sum(), count), input)


class CrossEntropyLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.cross_entropy`."""

    def __init__(self, weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean", *,
                 resize_logits=False, validate_args=True):
        super().__init__()
        check_loss_arguments(reduction=reduction, ignore_index=ignore_index)
        check_in_unit_interval("label_smoothing", label_smoothing)
        check_class_vector("weight", weight)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index, self.label_smoothing, self.reduction = ignore_index, label_smoothing, reduction
        self.resize_logits, self.validate_args = resize_logits, validate_args

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cross_entropy(input, target, self.weight, self.ignore_index, self.label_smoothing, self.reduction,
                             resize_logits=self.resize_logits, validate_args=self.validate_args)


class BCEWithLogitsLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.binary_cross_entropy_with_logits`."""

    def __init__(self, weight=None, pos_weight=None, ignore_index=None, reduction="mean", *, validate_args=True):
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.register_buffer("pos_weight",
                             None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32))
        self.ignore_index, self.reduction, self.validate_args = ignore_index, reduction, validate_args

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, self.pos_weight, self.ignore_index,
                                                self.reduction, validate_args=self.validate_args)
