"""Combinations: Dice + CE and Dice + focal on one softmax, and weighted sums of any losses."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from torch import Tensor, nn

from segfuse import _stats
from segfuse._validate import check_class_vector, check_in_unit_interval, check_optional_positive
from segfuse.losses._base import SegmentationLoss
from segfuse.losses._common import (
    check_loss_arguments,
    check_overlap_arguments,
    class_weight_tensor,
    finish,
    fused_loss_of,
    overlap_term,
    prepare_inputs,
    terms_of,
)
from segfuse.losses.focal import alpha_vector, check_focal_arguments
from segfuse.losses.overlap import overlap_loss_from_statistics

# The Dice term's switches, shared by DiceCELoss and DiceFocalLoss (see overlap_loss).
DICE_DEFAULTS = dict(smooth=1e-5, smooth_nr=None, smooth_dr=None, per_image=False, include_background=True,
                     skip_absent=False, normalize_weights=True, pooling="none", log_loss=False, squared=False,
                     soft_label=False)


def _check_dice_options(mode, class_weights, ignore_index, options) -> None:
    check_loss_arguments(mode=mode, smooth=options["smooth"], class_weights=class_weights, ignore_index=ignore_index)
    check_overlap_arguments(**{k: options[k] for k in ("smooth_nr", "smooth_dr", "skip_absent", "normalize_weights",
                                                       "pooling", "soft_label")})


def _dice_reduction(options: dict, mode: str, class_weights) -> dict:
    """The Dice term's reduction arguments (of overlap_loss_from_statistics / overlap_term)."""
    return dict(tp_weight=2.0, fp_weight=1.0, fn_weight=1.0, smooth=options["smooth"], smooth_nr=options["smooth_nr"],
                smooth_dr=options["smooth_dr"], log_loss=options["log_loss"],
                include_background=options["include_background"] or mode == "binary",
                skip_absent=options["skip_absent"], class_weights=class_weights,
                normalize_weights=options["normalize_weights"], pooling=options["pooling"], reduction="mean")


def _dice_of(stats, options: dict, mode: str, class_weights) -> Tensor:
    return overlap_loss_from_statistics(stats, **_dice_reduction(options, mode, class_weights))


def _mix(options: dict, mode: str, class_weights, dice_weight, **other_weights) -> Optional[_stats.LossMix]:
    """Dice + the other term as the fused path takes it (None with ``pooling="class"``)."""
    term = overlap_term(**_dice_reduction(options, mode, class_weights))
    return None if term is None else _stats.LossMix(term, overlap_weight=dice_weight, **other_weights)


def dice_ce_loss(
    input: Tensor,
    target: Tensor,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    *,
    mode: str = "multiclass",
    class_weights: Optional[Sequence[float]] = None,
    pos_weight=None,
    ignore_index: Optional[int] = None,
    label_smoothing: float = 0.0,
    dice_label_smoothing: Optional[float] = None,
    resize_logits=False,
    validate_args: bool = True,
    smooth: float = 1e-5,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    per_image: bool = False,
    include_background: bool = True,
    skip_absent=False,
    normalize_weights: bool = True,
    pooling: str = "none",
    log_loss: bool = False,
    squared: bool = False,
    soft_label: bool = False,
) -> Tensor:
    """dice_weight * Dice + ce_weight * CE (BCE in binary / multilabel mode).

    One pass (one softmax) serves both terms: the statistics core returns the overlap
    statistics and the CE sums together; on CUDA one fused Triton op computes the whole
    loss (forward two launches, backward one). ``ignore_index`` and
    ``class_weights`` go to both terms (CE's ``weight``, Dice's class-weighted mean);
    ``pos_weight`` (C,) weighs the positives of the BCE term. The Dice switches
    (smooth, smooth_nr, smooth_dr, per_image, include_background, skip_absent,
    normalize_weights, pooling, log_loss, squared, soft_label) are those of
    :func:`segfuse.functional.dice_loss`.

    Convention:
        ``label_smoothing`` smooths the target of both terms: CE as in torch's
        ``cross_entropy(label_smoothing=...)``, Dice as in :func:`dice_loss`;
        ``dice_label_smoothing`` sets the Dice term's own (None: the same).
        CE is torch's weighted mean over the valid pixels. Equals MONAI's
        DiceCELoss(softmax=True, to_onehot_y=True, lambda_dice, lambda_ce) with
        ``per_image=True`` at the same smoothing; MONAI's ``label_smoothing`` smooths the
        CE term only (``dice_label_smoothing=0``) and its ``weight`` enters Dice as a mean
        of w_c l_c (``normalize_weights=False``).

    Example:
        >>> logits = torch.randn(2, 4, 8, 8, 8, requires_grad=True)
        >>> dice_ce_loss(logits, torch.randint(0, 4, (2, 8, 8, 8)), ce_weight=0.5).backward()
    """
    options = dict(smooth=smooth, smooth_nr=smooth_nr, smooth_dr=smooth_dr, per_image=per_image,
                   include_background=include_background, skip_absent=skip_absent,
                   normalize_weights=normalize_weights, pooling=pooling, log_loss=log_loss, squared=squared,
                   soft_label=soft_label)
    _check_dice_options(mode, class_weights, ignore_index, options)
    check_in_unit_interval("label_smoothing", label_smoothing)
    dice_smoothing = label_smoothing if dice_label_smoothing is None else dice_label_smoothing
    check_in_unit_interval("dice_label_smoothing", dice_smoothing)
    check_class_vector("pos_weight", pos_weight, values=validate_args)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = prepared.input
    weights = class_weight_tensor(class_weights, x.new_empty(0, dtype=_stats.accumulation_dtype(x.dtype)))
    positives = class_weight_tensor(pos_weight, x.new_empty(0, dtype=_stats.accumulation_dtype(x.dtype)))
    request = dict(ignore_index=ignore_index, per_image=options["per_image"], squared=options["squared"],
                   soft_label=options["soft_label"], label_smoothing=dice_smoothing, want_ce=True,
                   ce_weight=weights if mode == "multiclass" else None, ce_label_smoothing=label_smoothing,
                   pos_weight=positives)
    # the Dice term takes the class-weight tensor of the CE term (one host-to-device copy)
    fused = fused_loss_of(prepared, _mix(options, mode, weights, dice_weight, ce_weight=ce_weight), mode=mode,
                          **request)
    if fused is not None:
        return finish(fused, input)
    terms = terms_of(prepared, mode=mode, **request)
    ce = _stats.safe_divide(terms.ce_sum.sum(), terms.ce_weight.sum())
    return finish(dice_weight * _dice_of(terms.stats, options, mode, class_weights) + ce_weight * ce, input)


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
    label_smoothing: float = 0.0,
    resize_logits=False,
    validate_args: bool = True,
    smooth: float = 1e-5,
    smooth_nr: Optional[float] = None,
    smooth_dr: Optional[float] = None,
    per_image: bool = False,
    include_background: bool = True,
    skip_absent=False,
    normalize_weights: bool = True,
    pooling: str = "none",
    log_loss: bool = False,
    squared: bool = False,
    soft_label: bool = False,
) -> Tensor:
    """dice_weight * Dice + focal_weight * focal, one softmax (or sigmoid) pass for both.

    Focal arguments (gamma, alpha) and Convention: :func:`segfuse.functional.focal_loss`
    (one-hot / soft multiclass targets included); the Dice switches and
    ``class_weights`` (the Dice term's): :func:`segfuse.functional.dice_loss`;
    ``label_smoothing`` smooths the Dice term's target.
    """
    options = dict(smooth=smooth, smooth_nr=smooth_nr, smooth_dr=smooth_dr, per_image=per_image,
                   include_background=include_background, skip_absent=skip_absent,
                   normalize_weights=normalize_weights, pooling=pooling, log_loss=log_loss, squared=squared,
                   soft_label=soft_label)
    _check_dice_options(mode, class_weights, ignore_index, options)
    check_in_unit_interval("label_smoothing", label_smoothing)
    check_focal_arguments(mode, alpha, gamma)
    prepared = prepare_inputs(input, target, mode=mode, ignore_index=ignore_index, resize_logits=resize_logits,
                              validate_args=validate_args)
    x = prepared.input
    alpha = alpha_vector(alpha, x.shape[1], x.new_empty(0, dtype=_stats.accumulation_dtype(x.dtype))) \
        if mode == "multiclass" else alpha
    request = dict(ignore_index=ignore_index, per_image=options["per_image"], squared=options["squared"],
                   soft_label=options["soft_label"], label_smoothing=label_smoothing, focal_gamma=gamma,
                   focal_alpha=alpha)
    fused = fused_loss_of(prepared, _mix(options, mode, class_weights, dice_weight, focal_weight=focal_weight),
                          mode=mode, **request)
    if fused is not None:
        return finish(fused, input)
    terms = terms_of(prepared, mode=mode, **request)
    focal = _stats.safe_divide(terms.focal_sum.sum(), terms.count.sum())
    return finish(dice_weight * _dice_of(terms.stats, options, mode, class_weights) + focal_weight * focal, input)


def _known(options: dict, where: str) -> dict:
    unknown = sorted(set(options) - set(DICE_DEFAULTS))
    if unknown:
        raise TypeError(f"{where} got unexpected arguments {unknown}")
    return options


class DiceCELoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.dice_ce_loss`."""

    def __init__(self, dice_weight: float = 1.0, ce_weight: float = 1.0, **kwargs):
        super().__init__()
        _check_compound_module(kwargs, "dice_ce_loss")
        check_in_unit_interval("label_smoothing", kwargs.get("label_smoothing", 0.0))
        check_optional_positive("dice_label_smoothing", kwargs.get("dice_label_smoothing"))
        check_class_vector("pos_weight", kwargs.get("pos_weight"))
        self.dice_weight, self.ce_weight, self.options = dice_weight, ce_weight, kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_ce_loss(input, target, self.dice_weight, self.ce_weight, **self.options)


class DiceFocalLoss(SegmentationLoss):
    """Module form of :func:`segfuse.functional.dice_focal_loss`."""

    def __init__(self, dice_weight: float = 1.0, focal_weight: float = 1.0, **kwargs):
        super().__init__()
        _check_compound_module(kwargs, "dice_focal_loss")
        check_in_unit_interval("label_smoothing", kwargs.get("label_smoothing", 0.0))
        check_focal_arguments(kwargs.get("mode", "multiclass"), kwargs.get("alpha"), kwargs.get("gamma", 2.0))
        self.dice_weight, self.focal_weight, self.options = dice_weight, focal_weight, kwargs

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return dice_focal_loss(input, target, self.dice_weight, self.focal_weight, **self.options)


_COMPOUND_ARGUMENTS = {
    "dice_ce_loss": ("mode", "class_weights", "pos_weight", "ignore_index", "label_smoothing", "dice_label_smoothing",
                     "resize_logits", "validate_args"),
    "dice_focal_loss": ("gamma", "alpha", "mode", "class_weights", "ignore_index", "label_smoothing",
                        "resize_logits", "validate_args"),
}


def _check_compound_module(kwargs: dict, where: str) -> None:
    """Argument checks run once, in the module's __init__."""
    dice_options = {k: v for k, v in kwargs.items() if k not in _COMPOUND_ARGUMENTS[where]}
    options = {**DICE_DEFAULTS, **_known(dice_options, where)}
    _check_dice_options(kwargs.get("mode", "multiclass"), kwargs.get("class_weights"), kwargs.get("ignore_index"),
                        options)


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

    def __radd__(self, other):
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        values = [loss(input, target) for loss in self.losses]
        self.last_terms = {name: value.detach() for name, value in zip(self.term_names(), values)}
        return sum(weight * value for weight, value in zip(self.weights, values))

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g} * {name}" for w, name in zip(self.weights, self.term_names()))
