"""Combinations: Dice + CE and Dice + focal on one softmax, and weighted sums of any losses."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor, nn

from segfuse import _stats, kernels
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import (
    check_loss_arguments,
    class_weight_tensor,
    finish,
    prepare_inputs,
    soft_statistics,
)
from segfuse.losses.cross_entropy import binary_cross_entropy_with_logits, cross_entropy
from segfuse.losses.focal import _alpha_vector, check_focal_arguments, focal_loss
from segfuse.losses.overlap import overlap_loss_from_statistics


def _dice_of(stats, options: dict, mode: str) -> Tensor:
    return overlap_loss_from_statistics(
        stats, tp_weight=2.0, fp_weight=1.0, fn_weight=1.0, smooth=options["smooth"], log_loss=options["log_loss"],
        include_background=options["include_background"] or mode == "binary", skip_absent=options["skip_absent"],
        class_weights=options["class_weights"], reduction="mean")


def dice_ce_loss(
    input: Tensor,
    target: Tensor,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    *,
    mode: str = "multiclass",
    class_weights: Optional[Sequence[float]] = None,
    ignore_index: Optional[int] = None,
    smooth: float = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    skip_absent: bool = False,
    log_loss: bool = False,
    squared: bool = False,
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """dice_weight * Dice + ce_weight * CE (BCE in binary / multilabel mode).

    One softmax (one pass on CUDA) serves both terms; ``ignore_index`` and
    ``class_weights`` go to both (CE's ``weight``, Dice's class-weighted mean). Terms
    and Convention: :func:`segfuse.functional.dice_loss` and
    :func:`segfuse.functional.cross_entropy`. Equals MONAI's DiceCELoss(softmax=True,
    to_onehot_y=True, lambda_dice, lambda_ce) at the same smoothing and no weights.

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, 8, requires_grad=True)
        >>> dice_ce_loss(logits, torch.randint(0, 4, (2, 8, 8, 8)), ce_weight=0.5).backward()
    """
    options = dict(smooth=smooth, log_loss=log_loss, include_background=include_background,
                   skip_absent=skip_absent, class_weights=class_weights)
    check_loss_arguments(mode=mode, smooth=smooth, class_weights=class_weights, ignore_index=ignore_index)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = prepared.input
    if prepared.class_map:
        weights = class_weight_tensor(class_weights, x.new_empty(0, dtype=torch.float32))
        terms = _stats.multiclass_terms(x, prepared.target, ignore_index=ignore_index, per_image=per_image,
                                        squared=squared, want_ce=True, ce_weight=weights)
        ce = _stats.safe_divide(terms.ce_sum.sum(), terms.ce_weight.sum())
        return finish(dice_weight * _dice_of(terms.stats, options, mode) + ce_weight * ce, input)
    if mode != "multiclass" and kernels.fused_binary_available(x, prepared.target, squared=squared):
        terms = kernels.fused_binary_terms(x, prepared.target, ignore_index=ignore_index, per_image=per_image,
                                           want_bce=True)
        bce = _stats.safe_divide(terms.bce_sum.sum(), terms.count.sum())
        return finish(dice_weight * _dice_of(terms.stats, options, mode) + ce_weight * bce, input)
    stats = soft_statistics(prepared, mode=mode, ignore_index=ignore_index, per_image=per_image, squared=squared)
    if mode == "multiclass":
        ce = cross_entropy(x, prepared.target, weight=class_weights, validate_args=False)
    else:
        ce = binary_cross_entropy_with_logits(x, prepared.target, ignore_index=ignore_index, validate_args=False)
    return finish(dice_weight * _dice_of(stats, options, mode) + ce_weight * ce, input)


def dice_focal_loss(
    input: Tensor,
    target: Tensor,
    dice_weight: float = 1.0,
    focal_weight: float = 1.0,
    *,
    gamma: float = 2.0,
    alpha=None,
    mode: str = "multiclass",
    class_weights: Optional[Sequence[float]] = None,
    ignore_index: Optional[int] = None,
    smooth: float = 1e-5,
    per_image: bool = False,
    include_background: bool = True,
    skip_absent: bool = False,
    log_loss: bool = False,
    squared: bool = False,
    resize_logits=False,
    validate_args: bool = True,
) -> Tensor:
    """dice_weight * Dice + focal_weight * focal, one softmax (or sigmoid) for both.

    Focal arguments (gamma, alpha) and Convention: :func:`segfuse.functional.focal_loss`;
    Dice arguments: :func:`segfuse.functional.dice_loss`.
    """
    options = dict(smooth=smooth, log_loss=log_loss, include_background=include_background,
                   skip_absent=skip_absent, class_weights=class_weights)
    check_loss_arguments(mode=mode, smooth=smooth, class_weights=class_weights, ignore_index=ignore_index)
    check_focal_arguments(mode, alpha, gamma)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = prepared.input
    if prepared.class_map:
        alpha_vector = _alpha_vector(alpha, x.shape[1], x.new_empty(0, dtype=_stats.accumulation_dtype(x.dtype)))
        terms = _stats.multiclass_terms(x, prepared.target, ignore_index=ignore_index, per_image=per_image,
                                        squared=squared, focal_gamma=gamma, focal_alpha=alpha_vector)
        focal = _stats.safe_divide(terms.focal_sum.sum(), terms.count.sum())
        return finish(dice_weight * _dice_of(terms.stats, options, mode) + focal_weight * focal, input)
    if mode == "multiclass":
        raise ValueError(f"multiclass focal loss expects a class map target (N, *S), got {tuple(target.shape)}")
    if kernels.fused_binary_available(x, prepared.target, squared=squared):
        terms = kernels.fused_binary_terms(x, prepared.target, ignore_index=ignore_index, per_image=per_image,
                                           focal_gamma=gamma, focal_alpha=alpha)
        focal = _stats.safe_divide(terms.focal_sum.sum(), terms.count.sum())
        return finish(dice_weight * _dice_of(terms.stats, options, mode) + focal_weight * focal, input)
    stats = soft_statistics(prepared, mode=mode, ignore_index=ignore_index, per_image=per_image, squared=squared)
    focal = focal_loss(x, prepared.target, mode, alpha, gamma, ignore_index=ignore_index, validate_args=False)
    return finish(dice_weight * _dice_of(stats, options, mode) + focal_weight * focal, input)


class DiceCELoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.dice_ce_loss`."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, **kwargs):
        super().__init__()
        check_loss_arguments(mode=kwargs.get("mode", "multiclass"), smooth=kwargs.get("smooth", 1e-5),
                             class_weights=kwargs.get("class_weights"), ignore_index=kwargs.get("ignore_index"))
        self.dice_weight, self.ce_weight, self.options = dice_weight, ce_weight, kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_ce_loss(input, target, self.dice_weight, self.ce_weight, **self.options)


class DiceFocalLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.dice_focal_loss`."""

    def __init__(self, dice_weight: float = 1.0, focal_weight: float = 1.0, **kwargs):
        super().__init__()
        check_loss_arguments(mode=kwargs.get("mode", "multiclass"), smooth=kwargs.get("smooth", 1e-5),
                             class_weights=kwargs.get("class_weights"), ignore_index=kwargs.get("ignore_index"))
        check_focal_arguments(kwargs.get("mode", "multiclass"), kwargs.get("alpha"), kwargs.get("gamma", 2.0))
        self.dice_weight, self.focal_weight, self.options = dice_weight, focal_weight, kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_focal_loss(input, target, self.dice_weight, self.focal_weight, **self.options)


class WeightedSum(SegmentationLoss):
    """sum_k w_k L_k(input, target), written ``1.0 * CrossEntropyLoss() + 0.5 * DiceLoss()``.

    After each call ``last_terms`` maps each term's name to its detached unweighted value,
    for logging.
    """

    def __init__(self, terms: Iterable[tuple[float, nn.Module]]):
        super().__init__()
        terms = list(terms)
        self.weights = [float(weight) for weight, _ in terms]
        self.losses = nn.ModuleList([loss for _, loss in terms])
        self.last_terms: dict[str, Tensor] = {}

    @classmethod
    def of(cls, loss: nn.Module) -> "WeightedSum":
        return loss if isinstance(loss, WeightedSum) else cls([(1.0, loss)])

    def term_names(self) -> list[str]:
        names = [type(loss).__name__ for loss in self.losses]
        return [name if names.count(name) == 1 else f"{name}[{i}]" for i, name in enumerate(names)]

    def __add__(self, other):
        if not isinstance(other, SegmentationLoss):
            return NotImplemented
        other = WeightedSum.of(other)
        return WeightedSum(list(zip(self.weights + other.weights, [*self.losses, *other.losses])))

    def __mul__(self, weight):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return NotImplemented
        return WeightedSum([(weight * w, loss) for w, loss in zip(self.weights, self.losses)])

    __rmul__ = __mul__

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        values = [loss(input, target) for loss in self.losses]
        self.last_terms = {name: value.detach() for name, value in zip(self.term_names(), values)}
        return sum(weight * value for weight, value in zip(self.weights, values))

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g} * {name}" for w, name in zip(self.weights, self.term_names()))
