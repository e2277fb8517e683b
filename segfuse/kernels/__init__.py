"""Dispatch between the fused Triton kernels (CUDA) and the torch reference path.

CUDA tensors take the kernels when Triton is importable; everything else, and every
call while ``SEGFUSE_DISABLE_KERNELS=1`` is set, takes the torch path in
:mod:`segfuse._stats`. The torch path is the reference the kernels are tested against.

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
# The confusion kernel keeps C*C counters per program (a histogram) up to this many bins,
# and uses global atomics above; past MAX_CONFUSION_CLASSES the torch bincount is used.
MAX_CONFUSION_CLASSES = 1024


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


def fused_multiclass_available(logits: Tensor, *, squared: bool = False, from_logits: bool = True) -> bool:
    """Whether :func:`fused_multiclass_terms` serves this call (CUDA, Triton, supported options)."""
    if squared or not from_logits or logits.dim() < 2 or logits.dtype not in KERNEL_FLOAT_DTYPES:
        return False
    return 1 <= logits.shape[1] <= MAX_FUSED_CLASSES and logits.numel() > 0 and _device_eligible(logits)


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


def fused_binary_available(logits: Tensor, target: Optional[Tensor] = None, *, squared: bool = False,
                           from_logits: bool = True) -> bool:
    """Whether :func:`fused_binary_statistics` serves this call (sigmoid statistics)."""
    if squared or not from_logits or logits.dim() < 2 or logits.dtype not in KERNEL_FLOAT_DTYPES:
        return False
    if target is not None and (target.shape != logits.shape or target.dtype == torch.float64):
        return False
    return logits.numel() > 0 and _device_eligible(logits)


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
    elif pred.dtype not in LABEL_DTYPES or pred.shape != target.shape:
        return False
    return pred.device == target.device and _device_eligible(pred)


def fused_confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: Optional[int] = None) -> Tensor:
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
