"""Dispatch between the fused Triton kernels (CUDA) and the torch reference path.

CUDA tensors take the kernels when Triton is importable; everything else, and every
call while ``SEGFUSE_DISABLE_KERNELS=1`` is set, takes the torch path in
:mod:`segfuse._stats`. The torch path is the reference the kernels are tested against.

Entry points, each with its ``*_available`` check:

* :func:`fused_multiclass_terms` / :func:`fused_binary_terms`: per-class statistics and
  CE / BCE / focal sums with autograd (the twins of the torch path's terms);
* :func:`fused_multiclass_loss` / :func:`fused_binary_loss`: a whole loss (overlap term
  of an :class:`OverlapTerm`, CE / BCE, focal, weighted) as one 0-d tensor: the class
  reduction and the combination run in the kernels' finish step, so forward + backward
  is three launches and no small torch ops;
* :func:`fused_confusion_matrix`: exact counts from scores or a class map.

``SEGFUSE_FORCE_KERNELS=1`` together with ``TRITON_INTERPRET=1`` sends CPU tensors
through the kernels too (Triton's interpreter), so that CI without a GPU runs the whole
loss pipeline through them.

The kernel modules (``multiclass``, ``sigmoid``, ``confusion``) import Triton and define
their kernels at import; they are imported here only at the first call that uses them,
so that ``TRITON_INTERPRET`` is read then. The ``*_available`` functions never import
them and never synchronise with the device.
"""

from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple, Optional

import torch
from torch import Tensor

KERNEL_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
# The multiclass kernels hold a [next_pow2(C), pixels] tile in registers.
MAX_FUSED_CLASSES = 256
# The confusion kernel counts C x C per program in private histograms up to 63 classes and
# with global atomics above; past MAX_CONFUSION_CLASSES the torch bincount is used.
MAX_CONFUSION_CLASSES = 1024
# Whether integer class maps (not only scores) take the confusion kernel. A class map is
# cheap to read, so there the kernel's per-pixel work, not memory, sets its speed:
# benchmarks/device_check.py times it against torch.bincount ("confusion from class map");
# set this False if bincount wins on the GPU.
FUSED_CLASS_MAP_CONFUSION = True


def kernels_disabled() -> bool:
    return os.environ.get("SEGFUSE_DISABLE_KERNELS", "0") not in ("", "0")


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0")


_TRITON_FOUND = importlib.util.find_spec("triton") is not None


def triton_available() -> bool:
    """Whether Triton can be imported (found at import of segfuse, without importing it)."""
    return _TRITON_FOUND


def _device_eligible(tensor: Tensor) -> bool:
    if kernels_disabled() or not triton_available():
        return False
    if tensor.device.type == "cuda":
        return True
    return tensor.device.type == "cpu" and _flag("SEGFUSE_FORCE_KERNELS") and _flag("TRITON_INTERPRET")


# Pixel indices inside one image are 32-bit (offsets past 2^31 elements are 64-bit).
MAX_PIXELS_PER_IMAGE = 2**31 - 2**20


def _pixels_fit(tensor: Tensor, leading: int) -> bool:
    """Whether one image of ``tensor`` (``leading`` dims before the spatial ones) has fewer
    pixels than the kernels index in 32 bits."""
    return tensor.dim() <= leading or tensor[(0,) * leading].numel() < MAX_PIXELS_PER_IMAGE


def fused_multiclass_available(logits: Tensor, *, squared: bool = False, from_logits: bool = True) -> bool:
    """Whether :func:`fused_multiclass_terms` serves this call (CUDA, Triton, supported options)."""
    if squared or not from_logits or logits.dim() < 2 or logits.dtype not in KERNEL_FLOAT_DTYPES:
        return False
    return (1 <= logits.shape[1] <= MAX_FUSED_CLASSES and logits.numel() > 0 and _pixels_fit(logits, 2)
            and _device_eligible(logits))


def fused_multiclass_terms(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    want_stats: bool = True,
    ce_weight: Optional[Tensor] = None,
    want_ce: bool = False,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[Tensor] = None,
):
    """The fused twin of :func:`segfuse._stats.multiclass_terms_reference` (same values and
    gradients w.r.t. ``logits``): one kernel pass forward, one backward."""
    from segfuse import _stats
    from segfuse.kernels import _launch, multiclass  # noqa: F401  (registers the custom ops)

    if labels.dtype not in LABEL_DTYPES:
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    wanted_focal = None if focal_gamma is None else float(focal_gamma)
    tp, ps, gs, ce, ce_weight_sum, focal, count = torch.ops.segfuse.multiclass_forward(
        logits, labels, ce_weight if want_ce else None, focal_alpha if wanted_focal is not None else None,
        _launch.kernel_ignore_index(ignore_index, labels.dtype), per_image, want_stats, want_ce, wanted_focal,
    )
    return _stats.MulticlassTerms(
        stats=_stats.OverlapStatistics(tp, ps, gs) if want_stats else None,
        ce_sum=ce if want_ce else None,
        ce_weight=ce_weight_sum if want_ce else None,
        focal_sum=focal if wanted_focal is not None else None,
        count=count,
    )


class OverlapTerm(NamedTuple):
    """The overlap loss of :func:`segfuse.losses.overlap.overlap_loss_from_statistics` with
    ``reduction="mean"`` and ``pooling="none"``.

    Per class: score = (w_tp tp + s_nr) / (w_tp tp + a fp + b fn + s_dr) (1 where the
    denominator is 0; ``smooth_nr`` / ``smooth_dr`` default to ``smooth``), loss
    (1 - score) or -log(score), raised to ``gamma``. Mean: sum_c w_c m_c l_c / sum_c w_c m_c
    (or / sum_c m_c with ``normalize_weights=False``) over kept classes (and images with
    ``per_image``), 0 when nothing is kept. ``skip_absent``: False keeps classes with
    gs = 0; True or "zero" sets their loss to 0 and keeps them in the mean (smp); "drop"
    leaves them out of it. Dice: (2, 1, 1); F-beta: (1 + b^2, 1, b^2); Tversky:
    (1, alpha, beta); Jaccard: (1, 1, 1).
    """

    tp_weight: float
    fp_weight: float
    fn_weight: float
    smooth: float = 1e-5
    gamma: float = 1.0
    log_loss: bool = False
    include_background: bool = True
    skip_absent: object = False
    class_weights: Optional[object] = None
    normalize_weights: bool = True
    smooth_nr: Optional[float] = None
    smooth_dr: Optional[float] = None


ABSENT_MODES = {False: 0, "keep": 0, True: 1, "zero": 1, "drop": 2}


def _overlap_args(overlap: Optional[OverlapTerm], like: Tensor) -> tuple:
    """(class weight tensor or None, has_overlap, the custom op's overlap scalars)."""
    if overlap is None:
        return None, False, (1.0, 1.0, 1.0, 0.0, 0.0, 1.0, False, True, 0, True)
    if overlap.skip_absent not in ABSENT_MODES:
        raise ValueError(f"skip_absent must be False, True, 'zero' or 'drop', got {overlap.skip_absent!r}")
    weights = None
    if overlap.class_weights is not None:
        weights = torch.as_tensor(overlap.class_weights, dtype=torch.float32, device=like.device).reshape(-1)
        if weights.numel() != like.shape[1]:
            raise ValueError(f"class_weights must have {like.shape[1]} entries (one per class), got {weights.numel()}")
    smooth_nr = overlap.smooth if overlap.smooth_nr is None else overlap.smooth_nr
    smooth_dr = overlap.smooth if overlap.smooth_dr is None else overlap.smooth_dr
    return weights, True, (float(overlap.tp_weight), float(overlap.fp_weight), float(overlap.fn_weight),
                           float(smooth_nr), float(smooth_dr), float(overlap.gamma), bool(overlap.log_loss),
                           bool(overlap.include_background), ABSENT_MODES[overlap.skip_absent],
                           bool(overlap.normalize_weights))


def fused_multiclass_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    overlap: Optional[OverlapTerm] = None,
    overlap_weight: float = 1.0,
    ce_weight: float = 0.0,
    ce_class_weights: Optional[Tensor] = None,
    focal_weight: float = 0.0,
    focal_gamma: float = 2.0,
    focal_alpha: Optional[Tensor] = None,
) -> Tensor:
    """overlap_weight * overlap + ce_weight * CE + focal_weight * focal, a float32 0-d tensor.

    Softmax over logits (N, C, *S) against a class map (N, *S); serves when
    :func:`fused_multiclass_available` is True. CE is torch's weighted mean
    (sum w_y (-log p_y) / sum w_y over valid pixels, ``ce_class_weights`` (C,) or None),
    focal the mean of -alpha_y (1 - p_y)^gamma log p_y over valid pixels; each mean is 0
    when nothing is valid. Terms with weight 0 are not computed. Values and gradients
    equal the torch path's (segfuse.losses), to float32 rounding.
    """
    from segfuse.kernels import _launch, multiclass  # noqa: F401  (registers the custom ops)

    if labels.dtype not in LABEL_DTYPES:
        raise TypeError(f"labels must have an integer dtype, got {labels.dtype}")
    weights, has_overlap, scalars = _overlap_args(overlap, logits)
    loss, _, _ = torch.ops.segfuse.multiclass_loss(
        logits, labels, weights, None if ce_class_weights is None else ce_class_weights.float(),
        None if focal_alpha is None else focal_alpha.float(), _launch.kernel_ignore_index(ignore_index, labels.dtype),
        per_image, has_overlap, *scalars, float(overlap_weight) if has_overlap else 0.0, float(ce_weight),
        float(focal_weight), float(focal_gamma) if focal_weight else None)
    return loss


def fused_binary_loss(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    overlap: Optional[OverlapTerm] = None,
    overlap_weight: float = 1.0,
    bce_weight: float = 0.0,
    focal_weight: float = 0.0,
    focal_gamma: float = 2.0,
    focal_alpha: Optional[float] = None,
) -> Tensor:
    """overlap_weight * overlap + bce_weight * BCE + focal_weight * focal, a float32 0-d tensor.

    Sigmoid over logits (N, C, *S) against a dense target of the same shape; serves when
    :func:`fused_binary_available` is True. BCE and focal are means over valid entries
    (0 when none), as :func:`fused_binary_terms` sums them; the overlap term reduces the
    (C,) or (N, C) statistics as :class:`OverlapTerm` says (binary mode: pass
    ``include_background=True``).
    """
    from segfuse.kernels import _launch, sigmoid  # noqa: F401  (registers the custom ops)

    if target.shape != logits.shape:
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}")
    weights, has_overlap, scalars = _overlap_args(overlap, logits)
    ignore = _launch.kernel_ignore_index(ignore_index, target.dtype)
    loss, _, _ = torch.ops.segfuse.sigmoid_loss(
        logits, target, weights, None if ignore is None else float(ignore), per_image, has_overlap, *scalars,
        float(overlap_weight) if has_overlap else 0.0, float(bce_weight), float(focal_weight),
        float(focal_gamma) if focal_weight else None,
        None if focal_alpha is None or not focal_weight else float(focal_alpha))
    return loss


def fused_binary_available(logits: Tensor, target: Optional[Tensor] = None, *, squared: bool = False,
                           from_logits: bool = True) -> bool:
    """Whether :func:`fused_binary_statistics` serves this call (sigmoid statistics)."""
    if squared or not from_logits or logits.dim() < 2 or logits.dtype not in KERNEL_FLOAT_DTYPES:
        return False
    if target is not None and (target.shape != logits.shape or target.dtype == torch.float64):
        return False
    return logits.numel() > 0 and _pixels_fit(logits, 2) and _device_eligible(logits)


class BinaryTerms(NamedTuple):
    """What one pass over sigmoid logits and a dense target produces (see
    :func:`fused_binary_terms`): statistics (or None), the summed BCE and focal element
    losses over valid entries (or None), and the valid count; sums are (N,) with
    ``per_image``, else 0-d."""

    stats: Optional[object]
    bce_sum: Optional[Tensor]
    focal_sum: Optional[Tensor]
    count: Tensor


def fused_binary_terms(
    logits: Tensor,
    target: Tensor,
    *,
    ignore_index: Optional[int] = None,
    per_image: bool = False,
    want_stats: bool = True,
    want_bce: bool = False,
    focal_gamma: Optional[float] = None,
    focal_alpha: Optional[float] = None,
) -> BinaryTerms:
    """One sigmoid pass over logits (N, C, *S) and a dense target of the same shape.

    ``stats`` equals ``_stats.dense_statistics(torch.sigmoid(x), t, valid=v, per_image=...)``
    with ``v = target != ignore_index`` and ``t`` the target with 0 at ignored entries;
    ``bce_sum`` the sum of ``F.binary_cross_entropy_with_logits(x, t, reduction="none")``
    over valid entries (no weight / pos_weight); ``focal_sum`` the sum of torchvision's
    sigmoid focal terms (``focal_alpha`` a float or None), as in
    :func:`segfuse.functional.focal_loss`; ``count`` the number of valid entries. Values and
    gradients w.r.t. ``logits`` match the torch path; the target gets no gradient.
    """
    from segfuse import _stats
    from segfuse.kernels import _launch, sigmoid  # noqa: F401  (registers the custom ops)

    if target.shape != logits.shape:
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}")
    ignore = _launch.kernel_ignore_index(ignore_index, target.dtype)
    gamma = None if focal_gamma is None else float(focal_gamma)
    tp, ps, gs, bce, focal, count = torch.ops.segfuse.sigmoid_forward(
        logits, target, None if ignore is None else float(ignore), per_image, want_stats, want_bce, gamma,
        None if focal_alpha is None or gamma is None else float(focal_alpha))
    return BinaryTerms(
        stats=_stats.OverlapStatistics(tp, ps, gs) if want_stats else None,
        bce_sum=bce if want_bce else None,
        focal_sum=focal if gamma is not None else None,
        count=count,
    )


def fused_binary_statistics(logits: Tensor, target: Tensor, *, ignore_index: Optional[int] = None,
                            per_image: bool = False):
    """Soft statistics of sigmoid(logits) (N, C, *S) against a dense target of the same shape.

    Equal in value and gradient to ``_stats.dense_statistics(torch.sigmoid(x), t, valid=v,
    per_image=per_image)`` with ``v = target != ignore_index`` and ``t`` the target with 0
    at ignored entries. The target may be float (soft), integer or bool.
    """
    return fused_binary_terms(logits, target, ignore_index=ignore_index, per_image=per_image).stats


def fused_confusion_available(pred: Tensor, target: Tensor, num_classes: int) -> bool:
    """Whether :func:`fused_confusion_matrix` serves this call: scores (N, C, *S) in a kernel
    float dtype or an integer class map, an integer target, 1 <= C <= MAX_CONFUSION_CLASSES."""
    if not 1 <= num_classes <= MAX_CONFUSION_CLASSES or target.dtype not in LABEL_DTYPES or target.numel() == 0:
        return False
    if pred.dtype in KERNEL_FLOAT_DTYPES:
        if pred.dim() < 2 or pred.shape[1] != num_classes or pred.shape[0] != target.shape[0]:
            return False
    elif not FUSED_CLASS_MAP_CONFUSION or pred.dtype not in LABEL_DTYPES or pred.shape != target.shape:
        return False
    return pred.device == target.device and _pixels_fit(target, 1) and _device_eligible(pred)


def fused_confusion_matrix(pred: Tensor, target: Tensor, num_classes: int,
                           ignore_index: Optional[int] = None) -> Tensor:
    """Exact int64 (C, C) confusion matrix (rows truth, columns prediction) of a class map
    or of the argmax over dim 1 of scores (N, C, *S) (first maximum wins).

    Pixels whose target equals ``ignore_index`` are skipped (an ``ignore_index`` outside
    the target dtype's range ignores nothing, as in :mod:`segfuse.metrics.confusion`).
    Labels are expected in [0, C) (validated by the caller); other values are dropped.
    """
    from segfuse.kernels import confusion  # noqa: F401  (registers the custom op)

    if ignore_index is not None and target.dtype != torch.bool:
        info = torch.iinfo(target.dtype)
        if not info.min <= ignore_index <= info.max:
            ignore_index = None
    return torch.ops.segfuse.confusion_matrix(pred, target, num_classes, ignore_index)
